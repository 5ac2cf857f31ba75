"""Recurrences over a sequence: `selective_scan`, the state-space recurrence of Mamba
(Gu and Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023),
with the semantics of its reference PyTorch implementation (transformers' slow path):

    h_t = exp(A · dt_t) ⊙ h_{t-1} + (dt_t · B_t) · x_t,    y_t = h_t · C_t,    h_0 = 0

for x and dt of L x I, A of I x N, B and C of L x N: I channels, each with a state of N.
What surrounds it in a Mamba layer (the softplus of dt, A = -exp(A_log), the D skip and
the gate) is tensor algebra in the spec, where a reference's precision steps are written
as they are (std.layers has none of them: specs/mamba.arch)."""
from __future__ import annotations

from .args import Args
from .op import GLOBAL, Op, named
from .shapes import FLOATS, Shape, ShapeError, describe, dtype_of, numel, show


def _scan_parts(ins) -> tuple[int, int, int]:
    """(L, I, N), or the error that says which operand does not fit."""
    x, dt, a, b, c = ins
    for name, s in zip(("x", "dt", "A", "B", "C"), ins):
        if len(s) != 2:
            raise ShapeError("E0306", f"selective_scan's {name} is {describe(s)}: each operand "
                             "has two axes (x, dt: L x I; A: I x N; B, C: L x N)",
                             "scanned here", help="split heads or channels into one axis first")
    length, channels = x
    states = a[1]
    wanted = {"dt": (dt, (length, channels)), "A": (a, (channels, states)),
              "B": (b, (length, states)), "C": (c, (length, states))}
    for name, (s, shape) in wanted.items():
        if tuple(s) != shape:
            raise ShapeError("E0300", f"selective_scan's {name} is {show(s)}, not "
                             f"{show(shape)}: with x of {show(x)} and A's {states} states",
                             "scanned here", help="x, dt: L x I; A: I x N; B, C: L x N")
    if len({dtype_of(s) for s in ins}) > 1:
        raise ShapeError("E0300", "selective_scan's operands are of several precisions: "
                         + ", ".join(dtype_of(s) for s in ins), "scanned here",
                         help="bring them to one with `cast_like`, rounding where the "
                              "reference does by a cast there and back")
    return length, channels, states


def _scan_shape(args: Args, ins) -> Shape:
    length, channels, _ = _scan_parts(ins)
    return Shape((length, channels), "LC")


def _scan_module(args: Args, ins):
    from .functions import SelectiveScan
    return SelectiveScan()


OPS = (
    Op("selective_scan", "math", _scan_shape, merge=True, operands=5, accepts=FLOATS, gives=None,
       module=_scan_module, window=lambda a, ins: GLOBAL,
       macs=lambda a, ins, out: numel(_scan_parts(ins)),  # L·I·N
       other_ops=lambda a, ins, out: 5 * numel(_scan_parts(ins)),
       describe=named("selective_scan"), caption=named("Selective Scan"),
       rule="`selective_scan(x, dt, A, B, C)`: Mamba's state-space recurrence "
            "h_t = exp(A·dt_t)⊙h_{t−1} + dt_t·B_t·x_t, y_t = h_t·C_t (h_0 = 0), x and dt L×I, A "
            "I×N, B and C L×N; result L×I",
       lowers="`SelectiveScan()`: a loop over the positions, as the reference PyTorch "
              "implementation; while generating, from the state the last call left",
       macs_rule="L·I·N: each position's readout h_t·C_t",
       other_rule="5 per state element and position (the discretisation and update)"),
)
