"""The front end: .arch text -> AST -> elaborated IR. Never imports torch."""
