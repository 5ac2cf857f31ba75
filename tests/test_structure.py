"""The shape of the code itself: rules that keep the structure the elaborator knows
recorded once, and read through one record."""
from __future__ import annotations

import re

from conftest import ROOT

PACKAGE = ROOT / "archdsl"
# splitting or counting the dots of a name: rebuilding the hierarchy from node names
DOTTED = re.compile(r"""(r?split|r?partition)\(\s*["']\.["']|\.count\(\s*["']\.["']\)"""
                    r"""|\+\s*["']\.["']\)|startswith\([^)]*\+\s*["']\.["']""")


def test_no_backend_derives_the_hierarchy_from_names():
    found = []
    for path in sorted((PACKAGE / "backends").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if DOTTED.search(line) and "not a name of the IR" not in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "read the scope tree (ir.scope_of, ir.labels, ...):\n" + "\n".join(found)


def test_network_data_is_read_through_the_typed_record():
    found = [f"{path.relative_to(ROOT)}:{number}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.name != "ir.py"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\.graph\[", line)]
    assert not found, "use ir.network(graph): " + ", ".join(found)


def _functions(tree):
    import ast
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_no_room_past_a_few_hundred_lines():
    """Modules stay under 700 lines, functions under 60, the command line under 500."""
    import ast
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        lines = len(text.splitlines())
        limit = 500 if path.name == "cli.py" else 700
        if lines > limit:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines (at most {limit})")
        for function in _functions(ast.parse(text)):
            length = function.end_lineno - function.lineno + 1
            if length > 60:
                too_long.append(f"{path.relative_to(ROOT)}:{function.lineno}: "
                                f"{function.name} is {length} lines (at most 60)")
    assert not too_long, "\n".join(too_long)


def test_no_module_imports_another_modules_private_names():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            imported = re.match(r"\s*from \.+[\w.]* import (.+)", line)
            names = [n.strip() for n in imported.group(1).strip("()").split(",")] if imported else []
            if any(n.startswith("_") and not n.startswith("__") and " as " not in n
                   for n in names):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "make the name public where it is shared:\n" + "\n".join(found)
