"""What an editor shows for a .arch document: diagnostics, hover, definitions,
completions, symbols. Pure functions of the text (and the files it imports); the
language server (archdsl/tools/lsp.py) only converts their results to the protocol.

Positions are 0-based (line, column) pairs, as the Language Server Protocol counts them.

    >>> doc = analyse("network t {\\n    input x: 3 x 8 x 8\\n    c: conv(4, 3)\\n}\\n", "t.arch")
    >>> print(hover(doc, 2, 4).text)
    **c** `conv(4, 3)`
    <BLANKLINE>
    output `4x6x6` · 112 params · 3.89K MACs
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

from ..compile import Compilation, compile_source
from ..diagnostics import Diagnostic
from ..lang import syntax as ast
from ..lang.load import stdlib_dir, stdlib_names
from ..lang.parse import keywords
from ..source import Span, format_value
from ..ops import OPS, REQUIRED, Derived
from ..backends.report_stats import human_count

KEYWORDS = tuple(sorted(keywords() - {"std", "x"}))  # the grammar's words, for completion
_STATEMENTS = (ast.Labelled, ast.Call, ast.Repeat, ast.Residual, ast.Skip, ast.Branches,
               ast.Branch, ast.Group, ast.Aux, ast.IfStmt, ast.BlockDef, ast.NetworkDef)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Place:
    """A range in a file: its path and 0-based (line, column) start and end."""
    path: str
    start: tuple[int, int]
    end: tuple[int, int]


@dataclass(frozen=True)
class Related:
    place: Place
    message: str


@dataclass(frozen=True)
class Problem:
    """A diagnostic, placed in the document being edited."""
    place: Place
    severity: str  # "error" or "warning"
    code: str
    message: str
    related: tuple[Related, ...] = ()


@dataclass(frozen=True)
class Hover:
    text: str  # Markdown
    place: Place


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # "layer", "block", "function", "keyword", "argument", "module"
    detail: str = ""
    documentation: str = ""
    insert: str | None = None


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # "network", "block", "function", "label"
    place: Place
    name_place: Place
    children: tuple["Symbol", ...] = ()


@dataclass
class Document:
    """One analysed document: its text, where it lives, what compiling it gave."""
    text: str
    path: str
    result: Compilation

    @property
    def module(self) -> ast.Module | None:
        return self.result.program.root if self.result.program else None

    def offset(self, line: int, column: int) -> int:
        """The character offset of a (line, column), clamped to the end of its line."""
        lines = self.text.split("\n")
        if line >= len(lines):
            return len(self.text)
        start = sum(len(text) + 1 for text in lines[:line])
        return start + min(column, len(lines[line]))


def analyse(text: str, path: str) -> Document:
    """Compile `text` as the file at `path` (imports resolve beside it)."""
    return Document(text, path, compile_source(text, path))


def place(span: Span) -> Place:
    source = span.source
    (line, column), (end_line, end_column) = source.position(span.start), source.position(span.end)
    return Place(file_path(source.path), (line - 1, column - 1), (end_line - 1, end_column - 1))


def file_path(shown: str) -> str:
    """The file behind a path as diagnostics show it: `<std.resnet>` is the shipped library."""
    if shown.startswith("<std.") and shown.endswith(">"):
        return str(Path(str(stdlib_dir())) / f"{shown[5:-1]}.arch")
    if shown.startswith("<"):
        return shown
    return str(Path(shown).resolve())


# ---- diagnostics ---------------------------------------------------------------------------


def problems(doc: Document) -> list[Problem]:
    """The diagnostics `archdsl check` prints, each placed in this document: one found in an
    imported file is shown where this document leads to it (a call or the import)."""
    here = file_path(doc.path)
    return [_problem(d, here, doc) for d in doc.result.diagnostics]


def _problem(diagnostic: Diagnostic, here: str, doc: Document) -> Problem:
    labels = (diagnostic.primary,) + diagnostic.secondary
    related = tuple(Related(place(label.span), label.message or diagnostic.message)
                    for label in labels)
    message = diagnostic.message
    if diagnostic.primary.message:
        message += f": {diagnostic.primary.message}"
    message += "".join(f"\nnote: {note}" for note in diagnostic.notes)
    if diagnostic.help:
        message += f"\nhelp: {diagnostic.help}"
    spot = next((r.place for r in related if r.place.path == here), None)
    if spot is None:
        spot = _import_place(doc) or Place(here, (0, 0), (0, 0))
        where = related[0].place
        message += f"\n(in {diagnostic.primary.span})" if where.path != here else ""
    return Problem(spot, diagnostic.severity, diagnostic.code, message, related[1:]
                   if related[0].place == spot else related)


def _import_place(doc: Document) -> Place | None:
    imports = [d for d in (doc.module.definitions if doc.module else ())
               if isinstance(d, (ast.ImportFile, ast.ImportStd))]
    return place(imports[0].span) if imports else None


# ---- hover -------------------------------------------------------------------------------


def hover(doc: Document, line: int, column: int) -> Hover | None:
    """What the statement under the cursor makes: output shape, parameters, MACs (summed
    over every use of a line inside a block), and the signature of a layer's name."""
    if doc.module is None:
        return None
    offset = doc.offset(line, column)
    statement = _innermost(doc.module, offset)
    signature = _signature_at(doc, offset)
    if statement is None:
        return Hover(signature, _word_place(doc, offset)) if signature else None
    summary = _summary(doc, statement)
    if summary is None and not signature:
        return None
    parts = [p for p in (summary, signature) if p]
    return Hover("\n\n".join(parts), place(statement.span))


def _walk(node):
    """Every AST node under `node`, parents first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for f in fields(current):
            value = getattr(current, f.name)
            for item in reversed(value if isinstance(value, tuple) else (value,)):
                if is_dataclass(item) and not isinstance(item, (Span, type)) \
                        and hasattr(item, "span"):
                    stack.append(item)


def _innermost(module: ast.Module, offset: int):
    """The smallest statement around `offset`; a labelled one for its action."""
    best, labelled = None, {}
    for node in _walk(module):
        if isinstance(node, ast.Labelled):
            labelled[id(node.action)] = node
        if isinstance(node, _STATEMENTS) and node.span.start <= offset < node.span.end:
            if best is None or node.span.end - node.span.start <= best.span.end - best.span.start:
                best = node
    return labelled.get(id(best), best)


def _made_by(doc: Document, statement) -> list[tuple[object, str]]:
    """(graph, node name) of every layer the statement made, in any network, through any
    chain of block calls."""
    span, path = statement.span, statement.span.source.path
    found = []
    for graph in doc.result.graphs.values():
        for name, data in graph.nodes(data=True):
            item = data["node"]
            where = [item.span] + [frame.call for frame in item.trace]
            if any(s.source.path == path and span.start <= s.start and s.end <= span.end
                   for s in where):
                found.append((graph, name))
    return found


def _summary(doc: Document, statement) -> str | None:
    made = _made_by(doc, statement)
    if not made:
        return None
    chosen = {(id(g), n) for g, n in made}
    exits, params, macs = [], 0, 0
    uses = set()
    for graph, name in made:
        item = graph.nodes[name]["node"]
        cost = graph.nodes[name].get("cost")
        if cost is not None:
            params, macs = params + cost.params, macs + cost.macs
        uses.add((id(graph), tuple(f.call.start for f in item.trace
                                   if not _inside(f.call, statement.span))))
        if not any((id(graph), s) in chosen for s in graph.successors(name)):
            exits.append(graph.nodes[name].get("shape"))
    shapes = list(dict.fromkeys("?" if s is None else "x".join(map(str, s)) for s in exits))
    shown = ", ".join(f"`{s}`" for s in shapes[:4]) + (", …" if len(shapes) > 4 else "")
    head = _title(statement)
    counts = f"{params:,} params · {human_count(macs)} MACs"
    layers = f" · {len(made)} layers" if len(made) > 1 else ""
    text = f"{head}\n\noutput {shown} · {counts}{layers}"
    if len(uses) > 1:
        text += f"\n\n{len(uses)} uses; the counts are their sum"
    return text


def _inside(span: Span, outer: Span) -> bool:
    return span.source.path == outer.source.path and outer.start <= span.start \
        and span.end <= outer.end


def _title(statement) -> str:
    first = statement.span.text.split("\n")[0].strip()
    if isinstance(statement, ast.Labelled):
        first = first[len(statement.label_span.text):].lstrip(" :")
        code = first if len(first) <= 60 else first[:59] + "…"
        return f"**{statement.label}** `{code}`"
    code = first if len(first) <= 60 else first[:59] + "…"
    return f"`{code}`"


def _word_at(doc: Document, offset: int) -> tuple[str, int, int] | None:
    for match in _WORD.finditer(doc.text, max(0, offset - 80), offset + 80):
        if match.start() <= offset <= match.end():
            return match.group(), match.start(), match.end()
    return None


def _word_place(doc: Document, offset: int) -> Place:
    word = _word_at(doc, offset)
    start, end = (word[1], word[2]) if word else (offset, offset)
    return place(Span(doc.result.source, start, end))


def _signature_at(doc: Document, offset: int) -> str | None:
    word = _word_at(doc, offset)
    if word is None or word[0] not in OPS or word[0] == "input":
        return None
    program = doc.result.program if doc.result is not None else None
    if program is not None and word[0] in program.blocks:  # the spec's block shadows it
        return None
    following = doc.text[word[2]:word[2] + 1]
    if following.isalnum() or following == "_":
        return None
    return signature(word[0])


def signature(op_name: str) -> str:
    """A layer's signature and shape rule, in the words of docs/language.md.

    >>> print(signature("maxpool").splitlines()[0])
    `maxpool(kernel, stride = kernel, pad = 0, dilation = 1, ceil_mode = false)`
    """
    op = OPS[op_name]
    args = ", ".join(_argument(a) for a in op.args)
    text = f"`{op.name}({args})`" if op.args or op.merge else f"`{op.name}`"
    if op.merge:
        text += "\n\nmerges values by name, or the branches of its body"
    return text + f"\n\nshape: {op.rule}" + (f"\n\nlowers to {op.lowers}" if op.lowers else "")


def _argument(arg) -> str:
    if arg.default is REQUIRED:
        return arg.name
    if isinstance(arg.default, Derived):
        return f"{arg.name} = {arg.default.source}"
    return f"{arg.name} = {format_value(arg.default)}"


# ---- definitions ---------------------------------------------------------------------------


def definition(doc: Document, line: int, column: int) -> Place | None:
    """Where the name under the cursor is defined: a block or function (in this file, an
    imported one or the standard library), an imported file, or a label, `let`, parameter
    or input of the definition around the cursor."""
    if doc.module is None:
        return None
    offset = doc.offset(line, column)
    for item in doc.module.definitions:
        if isinstance(item, (ast.ImportStd, ast.ImportFile)) and \
                item.span.start <= offset <= item.span.end:
            return _imported_file(item, doc)
    word = _word_at(doc, offset)
    if word is None:
        return None
    name = word[0]
    program = doc.result.program
    for table in (program.blocks, program.functions, program.networks):
        if name in table:
            return place(table[name].name_span)
    around = next((d for d in doc.module.definitions
                   if d.span.start <= offset <= d.span.end and hasattr(d, "params")), None)
    if around is None:
        return None
    return _local(around, name)


def _imported_file(item, doc: Document) -> Place | None:
    if isinstance(item, ast.ImportStd):
        path = Path(str(stdlib_dir())) / f"{item.name}.arch"
    else:
        path = Path(file_path(doc.path)).parent / item.path
    return Place(str(path.resolve()), (0, 0), (0, 0)) if path.is_file() else None


def _local(around, name: str) -> Place | None:
    for param in around.params:
        if param.name == name:
            return place(param.span)
    for node in _walk(around):
        if isinstance(node, ast.Labelled) and node.label == name:
            return place(node.label_span)
        if isinstance(node, (ast.Let, ast.InputDecl)) and node.name == name:
            return place(node.span)
        if isinstance(node, ast.ParamDecl) and node.name == name:
            return place(node.name_span)
    return None


# ---- completion ----------------------------------------------------------------------------


def completions(doc: Document, line: int, column: int,
                known: Document | None = None) -> list[Completion]:
    """What may be typed at the cursor: after `import std.` the library's modules; inside
    a call's parentheses its keyword arguments first; then layers (with signatures),
    blocks and functions (from `known`, the last version that compiled, while the text
    is being edited), and the keywords."""
    offset = doc.offset(line, column)
    before = doc.text[max(0, offset - 200):offset]
    if re.search(r"import\s+std\.\w*$", before):
        return [Completion(n, "module", f"std.{n}") for n in stdlib_names()]
    program = (doc.result.program or (known.result.program if known else None))
    items = []
    callee = _open_call(doc.text, offset)
    if callee is not None:
        items += _keyword_arguments(callee, program)
    for op in OPS.values():
        if op.name != "input":
            items.append(Completion(op.name, "layer", signature(op.name).split("\n")[0].strip("`"),
                                    signature(op.name)))
    if program is not None:
        for block in program.blocks.values():
            params = ", ".join(_param_text(p) for p in block.params)
            items.append(Completion(block.name, "block", f"{block.name}({params})",
                                    f"block, defined in {block.span.source.path}"))
        for function in program.functions.values():
            params = ", ".join(_param_text(p) for p in function.params)
            items.append(Completion(function.name, "function", f"{function.name}({params})"))
    items += [Completion(k, "keyword") for k in KEYWORDS]
    return items


def _param_text(param: ast.Param) -> str:
    return param.name if param.default is None else f"{param.name} = {param.default.span.text}"


def _open_call(text: str, offset: int) -> str | None:
    """The name before the innermost `(` still open at `offset`, on the same statement."""
    depth, at = 0, offset - 1
    while at >= 0 and offset - at < 2000:
        char = text[at]
        if char == ")":
            depth += 1
        elif char == "(":
            if depth == 0:
                match = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", text[max(0, at - 80):at])
                return match.group(1) if match else None
            depth -= 1
        elif char in "{};" and depth == 0:
            return None
        at -= 1
    return None


def _keyword_arguments(callee: str, program) -> list[Completion]:
    if program is not None and callee in program.blocks:  # a block shadows a layer (W0200)
        return [Completion(f"{p.name} =", "argument", _param_text(p), insert=f"{p.name} = ")
                for p in program.blocks[callee].params]
    if callee in OPS:
        return [Completion(f"{a.name} =", "argument", _argument(a), signature(callee),
                           insert=f"{a.name} = ") for a in OPS[callee].args]
    return []


# ---- symbols -------------------------------------------------------------------------------


def symbols(doc: Document) -> list[Symbol]:
    """Networks, blocks and functions, each with its labels (nested as written)."""
    if doc.module is None:
        return []
    kinds = {ast.NetworkDef: "network", ast.BlockDef: "block", ast.FuncDef: "function"}
    result = []
    for item in doc.module.definitions:
        if type(item) in kinds:
            children = _labels(item.body) if hasattr(item, "body") else ()
            result.append(Symbol(item.name, kinds[type(item)], place(item.span),
                                 place(item.name_span), children))
    return result


def _labels(node) -> tuple[Symbol, ...]:
    found = []
    for f in fields(node):
        value = getattr(node, f.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, ast.Labelled):
                found.append(Symbol(item.label, "label", place(item.span), place(item.label_span),
                                    _labels(item.action)))
            elif is_dataclass(item) and not isinstance(item, Span) and hasattr(item, "span"):
                found.extend(_labels(item))
    return tuple(found)
