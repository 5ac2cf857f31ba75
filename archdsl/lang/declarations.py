"""The declarations of a network, for the elaborator: `input` (its sizes, layout and size
symbols), `param` and `buffer` (named learned and constant values). A mixin of
`elaborate`'s elaborator, which holds the builder, the argument binder and the reporter."""
from __future__ import annotations

import difflib

from ..errors import UsageError
from ..ops import OPS, Arg, Args
from ..ops.io import BUFFER_INITS
from ..ops.shapes import LAYOUT_DTYPES, LAYOUTS, Shape, numel, show
from . import syntax as ast
from .context import Ctx, Reporter

_RANKS = (1, 2, 3, 4)
_INIT_ARGS = (Arg("std", "float", 1.0, minimum=0), Arg("mean", "float", 0.0))
_PARAM_INITS = {"zeros": (), "ones": (), "normal": _INIT_ARGS, "trunc_normal": _INIT_ARGS}
_BUFFER_ARGS = (Arg("height", "int", minimum=2), Arg("width", "int", minimum=2))


class Declarations(Reporter):
    """`input`, `param` and `buffer` statements."""

    def input_decl(self, stmt: ast.InputDecl, ctx: Ctx):
        if ctx.trace:
            self.fail("E0214", "`input` is only allowed in a network", stmt.span,
                      "inside a block", ctx, help="declare inputs in the network; a block "
                      "receives the value flowing into it as `in`")
        self.declared_input = True
        shape = self.declared_shape(stmt, "an input", ctx)
        dims = self.input_overrides.get(stmt.name, self.input_overrides.get("*", shape))
        if len(dims) != len(shape):
            given = "x".join(map(str, dims))
            axes = " x ".join(shape.axes)
            raise UsageError(f"--input {given}: {len(dims)} sizes, but input `{stmt.name}` "
                             f"({stmt.span}) has {len(shape)} axes, {axes}; give "
                             f"{len(shape)} sizes, e.g. {'x'.join(map(str, shape))}")
        if not isinstance(dims, Shape):
            dims = Shape(dims, shape.axes, shape.dtype)
        args = Args((("shape", dims),))
        value = self.builder.add((stmt.name,), OPS["input"], args, (), stmt.span, ctx)
        self.inputs.append(value.node)
        ctx.env.vars[stmt.name] = value
        return value

    def declared_shape(self, stmt, what: str, ctx: Ctx) -> Shape:
        """The size and layout written in an `input` or `param` declaration."""
        size = Arg("dimension", "int", minimum=1)
        written = stmt.dims
        if isinstance(stmt, ast.InputDecl):
            for dim in stmt.dims:
                self.size_symbol(dim, ctx)
            written = tuple(d.left if ast.size_symbol(d) and isinstance(d, ast.Binary) else d
                            for d in stmt.dims)  # `L <= 2048` is L
        dims = tuple(self.arguments.eval_as(size, d, ctx) for d in written)
        if stmt.layout is None:
            if len(dims) == 2 and isinstance(stmt, ast.InputDecl):
                self.fail("E0206", "a 2-dimensional input needs its layout: tokens (L x C) or "
                          "a signal (C x L)", stmt.span, "which axis is which?", ctx,
                          help=f"write `as tokens` or `as signal` after the sizes; an image "
                               f"needs its channels: `1 x {dims[0]} x {dims[1]}`")
            if len(dims) not in _RANKS:
                self.fail("E0206", f"{what} has 1 to 4 dimensions (features, tokens, an image or "
                          f"a volume), not {len(dims)}", stmt.span, f"{len(dims)} dimensions", ctx,
                          help="the batch dimension is implicit: `input image: 3 x 224 x 224`")
            return Shape(dims)
        axes = LAYOUTS.get(stmt.layout.name)
        if axes is None:
            close = difflib.get_close_matches(stmt.layout.name, LAYOUTS, n=1)
            self.fail("E0206", f"`{stmt.layout.name}` is not a layout", stmt.layout.span,
                      "unknown layout", ctx, help=(f"did you mean `{close[0]}`? " if close else "")
                      + "layouts: " + ", ".join(f"{n} ({' x '.join(a)})" for n, a in LAYOUTS.items()))
        if len(axes) != len(dims):
            self.fail("E0206", f"a {stmt.layout.name} value has {len(axes)} dimensions "
                      f"({' x '.join(axes)}), not {len(dims)}", stmt.layout.span,
                      f"{len(dims)} dimensions given", ctx,
                      help=f"write {len(axes)} sizes: {' x '.join(axes)}")
        return Shape(dims, axes, LAYOUT_DTYPES.get(stmt.layout.name, "float"))

    def size_symbol(self, dim, ctx: Ctx) -> None:
        """An input size written as a symbol, `L <= 2048` or a bare name nothing defines,
        takes its value from `--set`, else its bound; it is then a name like any other."""
        symbol = ast.size_symbol(dim)
        if symbol is None:
            return
        name, bound_expr = symbol
        if bound_expr is None and name in ctx.env.vars:
            return  # a name defined before: a size like any other expression
        bound = None if bound_expr is None else self.arguments.eval_as(
            Arg("bound", "int", minimum=1), bound_expr, ctx)
        value = self.size_values.get(name, ctx.env.vars.get(name, bound))
        if value is None:
            self.fail("E0203", f"input size `{name}` has no value", dim.span, "which size?",
                      ctx, help=f"bound it, `{name} <= 512` (checked at the bound), or give "
                                f"it with `--set {name}=...`")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (
                bound is not None and value > bound):
            self.fail("E0206", f"input size `{name}` is {value}, outside 1 to {bound}",
                      dim.span, f"{name} = {value} given", ctx,
                      help=f"give `--set {name}=...` at most {bound}" if bound else None)
        self.sizes.setdefault(name, (value, bound, dim.span))
        ctx.env.vars.setdefault(name, value)

    def param_decl(self, stmt: ast.ParamDecl, ctx: Ctx) -> None:
        """A learned value, named like a labelled layer; the current value flows past it."""
        shape = self.declared_shape(stmt, "a parameter", ctx)
        if shape.dtype != "float":
            self.fail("E0206", f"a parameter is learned, so it holds floats, not "
                      f"{stmt.layout.name}", stmt.layout.span, "not learnable", ctx,
                      help="declare integer values as an `input`")
        init = stmt.init or ast.Call("zeros", (), stmt.span, stmt.span)
        self.known_init(init, _PARAM_INITS, "a parameter", ctx)
        given = self.arguments.bind_args(_PARAM_INITS[init.name], init.args, init, ctx,
                                         f"`{init.name}`")
        args = Args((("shape", shape), ("init", init.name),
                     ("std", given.get("std", 1.0)), ("mean", given.get("mean", 0.0))))
        scope = self.labelled_scope(stmt.name, stmt.name_span, ctx)
        ctx.env.vars[stmt.name] = self.builder.add(scope.path, OPS["parameter"], args, (),
                                                   stmt.span, ctx)

    def known_init(self, init: ast.Call, table, what: str, ctx: Ctx, written: str = ""):
        """E0205 unless `init` names one of `table`'s initialisations."""
        if init.name not in table:
            close = difflib.get_close_matches(init.name, table, n=1)
            self.fail("E0205", f"`{init.name}` is not {what} initialisation",
                      init.name_span, "unknown", ctx,
                      help=(f"did you mean `{close[0]}`? " if close else "") + "choose one of: "
                      + ", ".join(f"`{n}{written}`" for n in table))

    def buffer_decl(self, stmt: ast.BufferDecl, ctx: Ctx) -> None:
        """A constant of the state_dict, named like a labelled layer; the current value
        flows past it."""
        shape = self.declared_shape(stmt, "a buffer", ctx)
        init = stmt.init
        self.known_init(init, BUFFER_INITS, "a buffer", ctx, "(h, w)")
        given = self.arguments.bind_args(_BUFFER_ARGS, init.args, init, ctx, f"`{init.name}`")
        dtype, count = BUFFER_INITS[init.name]
        values = count(given["height"], given["width"])
        if values != numel(shape):
            self.fail("E0206", f"`{init.name}({given['height']}, {given['width']})` holds "
                      f"{values:,} values, but the buffer's {show(shape)} holds "
                      f"{numel(shape):,}", stmt.span, "sizes do not hold them", ctx,
                      help="declare sizes whose product is the count, e.g. "
                           f"`{values}` or their 2-D layout")
        args = Args((("shape", Shape(shape, shape.axes, dtype)), ("init", init.name),
                     ("height", given["height"]), ("width", given["width"])))
        scope = self.labelled_scope(stmt.name, stmt.name_span, ctx)
        ctx.env.vars[stmt.name] = self.builder.add(scope.path, OPS["buffer"], args, (),
                                                   stmt.span, ctx)
