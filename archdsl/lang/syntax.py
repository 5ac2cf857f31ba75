"""The typed AST of a .arch file: one frozen dataclass per grammar rule.

Class names equal the grammar's rule names and aliases (in CamelCase), and every node
carries the Span of the text it was parsed from.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ..source import Source, Span


# ---- expressions ----------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: int | float | bool | str
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class InputRef:
    """`in`: the value flowing into the enclosing block."""
    span: Span


@dataclass(frozen=True)
class Attribute:
    value: "Expr"
    attr: str
    span: Span


@dataclass(frozen=True)
class Index:
    """`widths[i]`: an item of a tuple, counted from 0 (negative: from the end)."""
    value: "Expr"
    index: "Expr"
    span: Span


@dataclass(frozen=True)
class TupleExpr:
    items: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class Unary:
    op: str  # "-" or "not"
    operand: "Expr"
    span: Span


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / // % == != < <= > >= and or
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True)
class Conditional:
    test: "Expr"
    then: "Expr"
    otherwise: "Expr"
    span: Span


@dataclass(frozen=True)
class FuncCall:
    """`max(8, c // 2)`, `make_divisible(c * w)`: a built-in or a `def` function."""
    name: str
    args: tuple["Arg", ...]
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Template:
    """A computed label, `"denselayer{i + 1}"`: text pieces (Literal) and expressions."""
    parts: tuple["Expr", ...]
    span: Span


Expr = Union[Literal, Name, InputRef, Attribute, Index, TupleExpr, Unary, Binary, Conditional,
             FuncCall]


# ---- statements -----------------------------------------------------------------


@dataclass(frozen=True)
class Keyword:
    name: str
    value: Expr
    span: Span


Arg = Union[Expr, Keyword]


@dataclass(frozen=True)
class Call:
    """A layer or block: `conv(64, 3, pad = 1)`, `relu`, `bottleneck(128, stride = 2)`."""
    name: str
    args: tuple[Arg, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Body:
    stmts: tuple["Stmt", ...]
    span: Span


@dataclass(frozen=True)
class Repeat:
    count: Expr
    index: str | None
    body: Body
    span: Span


@dataclass(frozen=True)
class Skip:
    label: str | None
    when: Expr | None
    body: Body
    span: Span


@dataclass(frozen=True)
class Residual:
    body: Body
    skip: Skip | None
    span: Span
    when: Expr | None = None  # `residual when cond { ... }`: no shortcut where cond is false


@dataclass(frozen=True)
class Branch:
    label: str | None
    body: Body | Call
    span: Span


@dataclass(frozen=True)
class Branches:
    """`concat { ... }`, `add { ... }`: parallel branches from one value, merged."""
    op: str
    branches: tuple[Branch, ...]
    span: Span
    op_span: Span


@dataclass(frozen=True)
class Group:
    body: Body
    span: Span


@dataclass(frozen=True)
class Aux:
    """`aux(weight = 0.3) { ... }`: a side output, train-only unless told otherwise."""
    args: tuple[Arg, ...]
    body: Body
    span: Span


Action = Union[Call, Repeat, Residual, Branches, Group, Aux, "IfStmt"]


@dataclass(frozen=True)
class Caption:
    """`as "conv{i + 2}_x"`: the words figures and tables use for a network, a stage or a
    layer; its {expressions} are filled in where it is elaborated."""
    text: str
    template: Template
    span: Span


@dataclass(frozen=True)
class Labelled:
    label: str  # as written: a name, a number, or the text of a computed label
    action: Action
    span: Span
    label_span: Span
    template: Template | None = None  # a computed label, filled in when elaborated
    caption: Caption | None = None  # `layer1 as "conv2_x": ...`


@dataclass(frozen=True)
class IfStmt:
    """`if cond { ... } else { ... }`: include one body or the other."""
    test: Expr
    then: Body
    otherwise: "Body | IfStmt | None"
    span: Span


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class Layout:
    """`as tokens`: which axes a declared value has (archdsl.ops.shapes.LAYOUTS)."""
    name: str
    span: Span


@dataclass(frozen=True)
class InputDecl:
    name: str
    dims: tuple[Expr, ...]
    span: Span
    layout: Layout | None = None


@dataclass(frozen=True)
class ParamDecl:
    """`param class_token: 1 x 768 = zeros`: a learned value, named in its scope."""
    name: str
    dims: tuple[Expr, ...]
    layout: Layout | None
    init: "Call | None"
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Output:
    name: str
    span: Span


@dataclass(frozen=True)
class FromValue:
    name: str
    span: Span


@dataclass(frozen=True)
class BufferDecl:
    """`buffer relative_position_index: 49 x 49 = relative_position_index(7, 7)`: a
    constant tensor the network keeps in its state_dict, named in its scope."""
    name: str
    dims: tuple[Expr, ...]
    layout: Layout | None
    init: "Call"
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Declare:
    """`declare norm1, attn`: labels of this scope whose layers come first in the
    state_dict, in this order, whatever order the statements that define them run in."""
    names: tuple[str, ...]
    name_spans: tuple[Span, ...]
    span: Span


@dataclass(frozen=True)
class Push:
    """`push skips`: the current value onto the stack `skips` of the enclosing network or
    block, from which `let skip = pop(skips)` takes the last value back."""
    name: str
    name_span: Span
    span: Span


@dataclass(frozen=True)
class Tie:
    """`tie lm_head.weight = embed_tokens.weight`: the learned tensor at the first path is
    the one at the second (weight tying), kept under both names in the state_dict and
    counted once."""
    tied: str
    to: str
    tied_span: Span
    to_span: Span
    span: Span


Stmt = Union[Labelled, Action, IfStmt, Let, InputDecl, ParamDecl, BufferDecl, Output, FromValue,
             Declare, Tie, Push]


# ---- definitions ----------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class BlockDef:
    name: str
    params: tuple[Param, ...]
    body: Body
    span: Span
    name_span: Span
    caption: str | None = None  # `block mha(h) as "Multi-Head Attention"`: figures' words


@dataclass(frozen=True)
class NetworkDef:
    name: str
    params: tuple[Param, ...]
    body: Body
    span: Span
    name_span: Span
    caption: Caption | None = None  # `network resnet(depth = 18) as "{depth}-layer"`


@dataclass(frozen=True)
class FuncDef:
    """`def make_divisible(v, d = 8) = max(d, int(v + d / 2) // d * d)`."""
    name: str
    params: tuple[Param, ...]
    value: Expr
    span: Span
    name_span: Span


@dataclass(frozen=True)
class ImportFile:
    path: str
    span: Span


@dataclass(frozen=True)
class ImportStd:
    name: str
    span: Span


Definition = Union[BlockDef, NetworkDef, FuncDef, ImportFile, ImportStd]


@dataclass(frozen=True)
class Module:
    """One parsed file."""
    source: Source
    definitions: tuple[Definition, ...]

    @property
    def networks(self) -> tuple[NetworkDef, ...]:
        return tuple(d for d in self.definitions if isinstance(d, NetworkDef))


# ---- text form -------------------------------------------------------------------------

_POSITIONS = {"span", "name_span", "name_spans", "label_span", "op_span", "source", "tied_span", "to_span"}


def dump(node, indent: int = 0) -> str:
    """A deterministic, indented text form of an AST, without source positions.

    >>> from archdsl.lang.parse import parse
    >>> print(dump(parse(Source("t.arch", "network t { input x: 3; fc: linear(2) }"))))
    Module
      NetworkDef name='t'
        Body
          InputDecl name='x'
            Literal value=3
          Labelled label='fc'
            Call name='linear'
              Literal value=2
    """
    lines = []
    stack = [(node, indent)]  # iterative: a spec may nest a thousand levels deep
    while stack:
        current, depth = stack.pop()
        scalars, children = _fields(current)
        lines.append("  " * depth + type(current).__name__ + "".join(f" {s}" for s in scalars))
        stack.extend((child, depth + 1) for child in reversed(children))
    return "\n".join(lines)


def _fields(node) -> tuple[list[str], list]:
    scalars, children = [], []
    for name in node.__dataclass_fields__:
        if name in _POSITIONS:
            continue
        value = getattr(node, name)
        items = value if isinstance(value, tuple) else (value,)
        if items and all(hasattr(item, "__dataclass_fields__") for item in items):
            children.extend(items)
        elif value is not None and value != ():
            scalars.append(f"{name}={value!r}")
    return scalars, children


def size_symbol(dim) -> tuple[str, "Expr | None"] | None:
    """(name, bound) where an input's size is a symbol: `L <= 2048` or a bare name (which
    is a symbol where nothing defines it); None for any other size expression."""
    if isinstance(dim, Binary) and dim.op == "<=" and isinstance(dim.left, Name):
        return dim.left.id, dim.right
    if isinstance(dim, Name):
        return dim.id, None
    return None


def size_symbols(network: "NetworkDef") -> set[str]:
    """The names an input of `network` may declare as size symbols (`--set` may give
    them values)."""
    names, bodies = set(), [network.body]
    while bodies:
        for stmt in bodies.pop().stmts:
            if isinstance(stmt, InputDecl):
                names |= {symbol[0] for symbol in map(size_symbol, stmt.dims) if symbol}
            elif isinstance(stmt, IfStmt):
                rest = stmt.otherwise
                bodies += [stmt.then] + ([] if rest is None else [rest] if isinstance(
                    rest, Body) else [Body((rest,), rest.span)])
    return names

