"""Reductions over named axes (`sum`, `mean`, `amax`, `amin`, `var`, `std`, `norm`), which
remove the axes they reduce or, with `keep = true`, keep them at size 1; and running
operations along one axis (`cumsum`, `log_softmax`). Axis arguments arrive normalised
(`normalise_axes`): numbered from 0 without the batch, never negative."""
from __future__ import annotations

from .args import Arg, Args
from .op import GLOBAL, Op, named, torch_axis
from .shapes import FLOATS, Shape, ShapeError, axes_of, default_axes, numel


def _reduced(op: str):
    """The shape once `axis` (one or more axes) is reduced: gone, or 1 with `keep`."""
    def shape(args: Args, ins) -> Shape:
        (s,) = ins
        axes = args["axis"]
        if len(set(axes)) < len(axes):
            raise ShapeError("E0310", f"{op} names an axis twice: "
                             + ", ".join(map(str, axes)), "repeated axis",
                             help="name each axis once")
        letters = axes_of(s)
        if args["keep"]:
            return Shape(tuple(1 if i in axes else n for i, n in enumerate(s)), letters)
        if len(axes) == len(s):
            raise ShapeError("E0310", f"{op} over every axis leaves no axis", "nothing left",
                             help="keep the axes at size 1: `keep = true`")
        rest = "".join(a for i, a in enumerate(letters) if i not in axes)
        dims = tuple(n for i, n in enumerate(s) if i not in axes)
        return Shape(dims, rest if "C" in rest else default_axes(len(rest)))
    return shape


def _window(args: Args, ins):
    """Global where a reduced axis is spatial; a reduction over the channels keeps each
    position to itself."""
    letters = axes_of(ins[0])
    return GLOBAL if any(letters[i] != "C" for i in args["axis"]) else None


def _emit(function: str, extra=lambda args: {}):
    """`torch.<function>(x, dim=(axes...), keepdim=keep, ...)`."""
    def emit(graph, inputs, args, ins):
        import torch
        target = torch
        for part in function.split("."):
            target = getattr(target, part)
        dims = tuple(torch_axis(a) for a in args["axis"])
        return graph.call_function(target, (inputs[0],), dict(
            dim=dims, keepdim=args["keep"], **extra(args)))
    return emit


def _axes_text(args: Args) -> str:
    return ",".join(map(str, args["axis"])) + (" keep" if args["keep"] else "")


def _reduction(name: str, function: str, what: str, *, default=(0,), per_element: int = 1,
               more: tuple[Arg, ...] = (), extra=lambda args: {}, lowers: str = "") -> Op:
    return Op(name, "math", _reduced(name), accepts=FLOATS, gives=None,
              keeps=() if name in ("sum", "mean") else ("in0", "out"),
              autocast="float" if name in ("sum", "norm") else "",
              args=(Arg("axis", "axes", default),) + more + (Arg("keep", "bool", False),),
              function=_emit(function, extra), window=_window,
              other_ops=lambda a, ins, out: per_element * numel(ins[0]),
              describe=lambda a: f"{name} {_axes_text(a)}", caption=named(name),
              rule=f"the {what} over `axis` (one or more axes), which go away, or stay at "
                   "size 1 with `keep = true`: `" + ("mean(0)` on L×C tokens averages them"
                                                     if name == "mean" else
                                                     f"{name}(1, 2, keep = true)` on C×H×W "
                                                     "is C×1×1"),
              lowers=lowers or f"`torch.{function}(x, dim, keepdim=keep)` (a function, no "
                                "module)",
              other_rule=f"{per_element} per input element")


CORRECTION = Arg("correction", "int", 1, minimum=0)


def _running(name: str, function: str, what: str, per_element: int) -> Op:
    """An op along one axis that keeps the shape: each output element reads the entries
    of its axis (all of them, or those before it)."""
    def emit(graph, inputs, args, ins):
        import torch
        return graph.call_function(getattr(torch, function),
                                   (inputs[0], torch_axis(args["axis"])))
    return Op(name, "math", lambda a, ins: ins[0], args=(Arg("axis", "axis"),), accepts=FLOATS,
              keeps=("out",) if name == "log_softmax" else (),
              autocast="float",
              gives=None,
              function=emit, window=lambda a, ins: None if axes_of(ins[0])[a["axis"]] == "C"
              else GLOBAL,
              other_ops=lambda a, ins, out: per_element * numel(out),
              describe=lambda a: f"{name} {a['axis']}", caption=named(name.replace("_", " ")),
              rule=f"unchanged; {what} along `axis`",
              lowers=f"`torch.{function}(x, axis + 1)` (a function, no module)",
              other_rule=f"{per_element} per output element")


OPS = (
    _reduction("sum", "sum", "sum"),
    _reduction("mean", "mean", "mean"),
    _reduction("amax", "amax", "largest value"),
    _reduction("amin", "amin", "smallest value"),
    _reduction("var", "var", "variance (`correction = 1`: unbiased, as torch; 0: "
               "the population's)", more=(CORRECTION,), per_element=2,
               extra=lambda a: dict(correction=a["correction"])),
    _reduction("std", "std", "standard deviation (`correction` as `var`)",
               more=(CORRECTION,), per_element=2,
               extra=lambda a: dict(correction=a["correction"])),
    _reduction("norm", "linalg.vector_norm", "p-norm (`p = 2`: Euclidean)",
               more=(Arg("p", "float", 2.0, above=0),), per_element=2,
               extra=lambda a: dict(ord=a["p"]),
               lowers="`torch.linalg.vector_norm(x, ord=p, dim, keepdim=keep)` (a function, "
                      "no module)"),
    _running("cumsum", "cumsum", "the running sum", 1),
    _running("log_softmax", "log_softmax", "the log of the softmax", 3),
)
