"""`archdsl export`: the files of a checked network for use without archdsl.

`pytorch`: a standalone `.py` (archdsl.backends.export_pytorch) and its `weights.pt`.
`onnx` and `torch-export`: that same standalone module, in eval mode, traced by torch's
own exporters (`torch.onnx.export`, `torch.export.save`). Everything is produced in
memory; the command line writes it.
"""
from __future__ import annotations

import io
import warnings

import networkx as nx
import torch

from ..backends.export_pytorch import Export, export_pytorch
from ..errors import UsageError

TARGETS = ("pytorch", "onnx", "torch-export")
SUFFIXES = {"onnx": ".onnx", "torch-export": ".pt2"}


def export_files(graph: nx.DiGraph, to: str, *, fold_bn: bool = False) -> dict[str, bytes]:
    """{file name: bytes} of one export: `NETWORK.py` and `weights.pt` for pytorch,
    `NETWORK.onnx` or `NETWORK.pt2` for the others."""
    exported = export_pytorch(graph, fold_bn=fold_bn)
    name = graph.graph["name"]
    if to == "pytorch":
        return {f"{name}.py": exported.source.encode(), "weights.pt": _saved(exported.state_dict)}
    module = standalone(exported)
    example = example_inputs(graph)
    if to == "onnx":
        return {name + SUFFIXES[to]: _onnx(module, example, graph)}
    return {name + SUFFIXES[to]: _torch_export(module, example)}


def standalone(exported: Export) -> torch.nn.Module:
    """The exported source run as a module, its weights loaded, in eval mode."""
    namespace: dict = {"__name__": "archdsl_export"}
    exec(compile(exported.source, f"<{exported.class_name}>", "exec"), namespace)  # noqa: S102
    module = namespace[exported.class_name]()
    module.load_state_dict(exported.state_dict)
    return module.eval()


def example_inputs(graph: nx.DiGraph, batch: int = 2, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, *graph.nodes[n]["shape"], generator=generator)
                 for n in graph.graph["inputs"])


def _saved(state_dict: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def _onnx(module, example, graph) -> bytes:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ModuleNotFoundError:
        raise UsageError("--to onnx needs the onnx package: pip install onnx "
                         "(or archdsl[onnx])") from None
    buffer = io.BytesIO()
    names = list(graph.graph["inputs"])
    outputs = [o.name for o in graph.graph["outputs"] if not o.train_only]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: no
        # onnxscript needed, and it takes the standalone module as it is
        torch.onnx.export(module, example, buffer, input_names=names, output_names=outputs,
                          dynamic_axes={n: {0: "batch"} for n in names + outputs},
                          dynamo=False)
    return buffer.getvalue()


def _torch_export(module, example) -> bytes:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(module, example,
                                  dynamic_shapes=tuple({0: batch} for _ in example))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()
