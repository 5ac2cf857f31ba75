"""Pass: load a file and everything it imports into one Program of definitions.

`import "other.arch"` is resolved relative to the importing file; `import std.NAME`
reads a block library shipped inside the package (archdsl/stdlib/NAME.arch).
Blocks from every loaded file share one namespace; networks come from the root file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from . import syntax as ast
from ..diagnostics import Diagnostic, Label, Sink, SpecError
from ..ops import OPS
from .parse import parse
from .space import SPACE_FUNCTIONS, check_space_calls
from .read import UnreadableSource, read_source
from ..source import Source


# Functions expressions call without a `def` (evaluated in elaborate.py); a `def` may not
# take their names.
BUILTIN_FUNCTIONS = ("int", "round", "floor", "ceil", "min", "max", "abs", "len", "log", "exp",
                     "sqrt")


@dataclass
class Program:
    root: ast.Module
    blocks: dict[str, ast.BlockDef] = field(default_factory=dict)
    functions: dict[str, ast.FuncDef] = field(default_factory=dict)
    networks: dict[str, ast.NetworkDef] = field(default_factory=dict)
    failed_imports: bool = False


def stdlib_names() -> list[str]:
    return sorted(p.name[:-5] for p in stdlib_dir().iterdir() if p.name.endswith(".arch"))


def stdlib_dir():
    return resources.files("archdsl").joinpath("stdlib")


def load(source: Source, sink: Sink) -> Program | None:
    """Parse `source` and its imports. Returns None when the root file does not parse.

    >>> program = load(Source("t.arch", "import std.resnet\\nnetwork t { input x: 3 x 8 x 8 }"), Sink())
    >>> "bottleneck" in program.blocks
    True
    """
    try:
        root = parse(source)
    except SpecError as error:
        sink.add(error.diagnostic)
        return None
    program = Program(root)
    loader = _Loader(program, sink)
    loader.add_module(root, stack=(_key(source),))
    for definition in root.definitions:
        if isinstance(definition, ast.NetworkDef):
            loader.define(program.networks, definition)
    return program


def _key(source: Source) -> str:
    return str(Path(source.path).resolve()) if source.path != "<string>" else "<string>"


class _Loader:
    def __init__(self, program: Program, sink: Sink):
        self.program, self.sink, self.loaded = program, sink, set()

    def add_module(self, module: ast.Module, stack: tuple[str, ...]) -> None:
        self.loaded.add(stack[-1])
        check_space_calls(module, self.sink)
        for definition in module.definitions:
            if isinstance(definition, ast.BlockDef):
                self.define(self.program.blocks, definition)
            elif isinstance(definition, ast.FuncDef):
                self.define(self.program.functions, definition)
            elif isinstance(definition, (ast.ImportFile, ast.ImportStd)):
                self.import_(definition, module.source, stack)

    def define(self, table: dict, definition) -> None:
        self.check_params(definition)
        if isinstance(definition, ast.BlockDef) and definition.name in OPS:
            # the spec's own block wins, as a Python name shadows a builtin: a layer added
            # to archdsl never breaks a spec that already had a block of that name
            self.sink.add(Diagnostic(
                "W0200", f"block `{definition.name}` shadows the built-in layer "
                f"`{definition.name}`: calls of `{definition.name}` in this program run the "
                "block", Label(definition.name_span, "shadows the layer"),
                help=f"rename the block (e.g. `{definition.name}_block`) to use the layer "
                     "as well", severity="warning"))
        if isinstance(definition, ast.FuncDef) and definition.name in (*BUILTIN_FUNCTIONS,
                                                                   *SPACE_FUNCTIONS):
            self.sink.add(Diagnostic(
                "E0208", f"function `{definition.name}` has the name of a built-in function",
                Label(definition.name_span, "shadows the function"),
                help=f"rename the function, e.g. `my_{definition.name}`"))
            return
        first = table.get(definition.name)
        if first is None:
            table[definition.name] = definition
            return
        kind = {ast.BlockDef: "block", ast.FuncDef: "function"}.get(type(definition), "network")
        self.sink.add(Diagnostic(
            "E0208", f"{kind} `{definition.name}` is defined twice",
            Label(definition.name_span, "defined again here"),
            (Label(first.name_span, "first defined here"),),
            help=f"rename one of the two {kind}s"))

    def check_params(self, definition) -> None:
        seen = {}
        for param in definition.params:
            if param.name in seen:
                self.sink.add(Diagnostic(
                    "E0210", f"parameter `{param.name}` is declared twice", Label(param.span,
                    "declared again here"), (Label(seen[param.name].span, "first declared here"),),
                    help="rename or remove one of them"))
            seen.setdefault(param.name, param)

    def import_(self, statement, importer: Source, stack: tuple[str, ...]) -> None:
        found = self._read(statement, importer)
        if found is None:
            return
        key, source = found
        if key in stack:
            chain = " -> ".join(Path(k).name for k in stack[stack.index(key):] + (key,))
            self.sink.add(Diagnostic("E0401", f"import cycle: {chain}",
                                     Label(statement.span, "imports a file that imports this one"),
                                     help="move the shared blocks into a third file both import"))
            return
        if key in self.loaded:
            return
        self.loaded.add(key)
        try:
            module = _parse_import(source.path, source.text)
        except SpecError as error:
            self._failed(statement, key, error.diagnostic)
            return
        self.add_module(module, stack + (key,))

    def _read(self, statement, importer: Source) -> tuple[str, Source] | None:
        if isinstance(statement, ast.ImportStd):
            path = stdlib_dir().joinpath(statement.name + ".arch")
            if not path.is_file():
                self._not_found(statement, f"no standard library `std.{statement.name}`",
                                "available: " + ", ".join(f"std.{n}" for n in stdlib_names()))
                return None
            key = f"std.{statement.name}"
            return key, Source(_display_path(key), path.read_text(encoding="utf-8"))
        base = Path(importer.path).parent if importer.path != "<string>" else Path.cwd()
        path = (base / statement.path).resolve()
        try:
            return str(path), read_source(path, _display_path(str(path)))
        except UnreadableSource as error:
            if str(error) == "no such file":
                self._not_found(statement, f"import `{statement.path}` is not found",
                                f"paths are relative to the importing file, here {base}")
            else:
                self._not_found(statement, f"import `{statement.path}` cannot be read: {error}",
                                "import .arch spec files")
        except SpecError as error:  # not UTF-8
            self._failed(statement, str(path), error.diagnostic)
        return None

    def _failed(self, statement, key: str, diagnostic: Diagnostic) -> None:
        """An imported file that does not parse. Its own error is shown when it is a spec;
        for any other file (`import "/etc/passwd"`), one short line at the import, since
        its lines are not archdsl's to show."""
        self.program.failed_imports = True
        if key.startswith("std.") or key.endswith(".arch"):
            self.sink.add(diagnostic)
            return
        where = diagnostic.primary.span
        self.sink.add(Diagnostic(
            "E0400", f"import `{statement.path}` is not an .arch file ({diagnostic.message.lower()}"
            f" at line {where.line}, column {where.column})", Label(statement.span, "imported here"),
            help="import .arch files; spec files are named NAME.arch"))

    def _not_found(self, statement, message: str, help_text: str) -> None:
        self.program.failed_imports = True
        self.sink.add(Diagnostic("E0400", message, Label(statement.span, "imported here"),
                                 help=help_text))


@lru_cache(maxsize=64)
def _parse_import(path: str, text: str) -> ast.Module:
    """An imported file's syntax tree, parsed once per text: a language server compiles a
    document on every edit, and parsing std.resnet again was a quarter of that."""
    return parse(Source(path, text))


def _display_path(key: str) -> str:
    if key.startswith("std."):
        return f"<{key}>"
    try:
        return str(Path(key).relative_to(Path.cwd()))
    except ValueError:
        return key
