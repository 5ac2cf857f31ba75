"""Regularisation: layers that change values in training only and are the identity in
eval (`dropout`, `stochastic_depth`)."""
from __future__ import annotations

from .args import Arg, Args
from .op import Op, named, same, torch_layer
from .shapes import numel


def _stochastic_depth_module(args: Args, ins):
    from .functions import StochasticDepth
    return StochasticDepth(args["p"], args["mode"])


def _kept_mask(args: Args, ins, out, device: str) -> tuple[tuple[int, str], ...]:
    """Dropout in training keeps which elements it zeroed: a mask of the input's size, in
    the values' precision on the CPU (torch scales a mask of floats), of bools on CUDA."""
    if not args["p"]:
        return ()
    return ((numel(ins[0]), "bool" if device == "cuda" else "float"),)


OPS = (
    Op("dropout", "reg", same("dropout"), args=(Arg("p", "float", 0.5, minimum=0, maximum=1),),
       keeps=(), kept_inside=_kept_mask,
       kept_text="in training, a mask of its input's size (of floats on the CPU, bools on CUDA)",
       imports=("Dropout",), read=lambda m: ("dropout", dict(p=m.p)),
       module=torch_layer("Dropout", "p"), describe=lambda a: f"dropout {a['p']}",
       caption=lambda a: f"dropout {a['p']}",
       lowers="`nn.Dropout(p)`"),
    Op("stochastic_depth", "reg", same("stochastic_depth"),
       keeps=(),
       args=(Arg("p", "float", minimum=0, below=1),
             Arg("mode", "str", "row", choices=("row", "batch"))),
       module=_stochastic_depth_module,
       describe=lambda a: f"stochastic_depth {a['p']}", caption=named("stochastic depth"),
       rule="unchanged; in training, zero the input per sample (`row`) or for the whole batch "
            "with probability `p` and scale by 1 / (1 − p); identity in eval",
       lowers="`StochasticDepth(p, mode)` (torchvision's semantics)"),
)
