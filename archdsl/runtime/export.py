"""`archdsl export`: the files of a checked network for use without archdsl.

`pytorch`: a standalone `.py` (archdsl.backends.export_pytorch) and its `weights.pt`.
`onnx` and `torch-export`: that same standalone module, in eval mode, traced by torch's
own exporters (`torch.onnx.export`, `torch.export.save`); for ONNX, the layers it has no
operator for are first written as the plain ops they stand for. Everything is produced in
memory; the command line writes it.
"""
from __future__ import annotations

import io
import warnings

import networkx as nx
import torch

from .. import ir
from ..backends.export_pytorch import Export, export_pytorch
from ..errors import UsageError
from .device import require_memory
from .inputs import example_inputs

TARGETS = ("pytorch", "onnx", "torch-export")
SUFFIXES = {"onnx": ".onnx", "torch-export": ".pt2"}


class ExportFailure(Exception):
    """torch's exporter refused the module: the message says what, in one line."""


def export_files(graph: nx.DiGraph, to: str, *, fold_bn: bool = False) -> dict[str, bytes]:
    """{file name: bytes} of one export: `NETWORK.py` and `weights.pt` for pytorch,
    `NETWORK.onnx` or `NETWORK.pt2` for the others."""
    require_memory(graph, "exporting", copies=2)  # the module and its saved weights
    exported = export_pytorch(graph, fold_bn=fold_bn)
    name = ir.network(graph).name
    if to == "pytorch":
        return {f"{name}.py": exported.source.encode(), "weights.pt": _saved(exported.state_dict)}
    module = standalone(exported)
    example = example_inputs(graph)
    if to == "onnx":
        return {name + SUFFIXES[to]: _onnx(module, example, graph)}
    return {name + SUFFIXES[to]: _torch_export(module, example, graph)}


def standalone(exported: Export) -> torch.nn.Module:
    """The exported source run as a module, its weights loaded, in eval mode."""
    namespace: dict = {"__name__": "archdsl_export"}
    exec(compile(exported.source, f"<{exported.class_name}>", "exec"), namespace)  # noqa: S102
    module = namespace[exported.class_name]()
    module.load_state_dict(exported.state_dict)
    return module.eval()


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
    module = onnx_ready(module)
    buffer = io.BytesIO()
    names = list(ir.network(graph).inputs)
    outputs = [o.name for o in ir.network(graph).outputs if not o.train_only]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter: no
        # onnxscript needed, and it takes the standalone module as it is
        # Its notes on constant folding and on Python values read off shapes concern the
        # fixed sizes of an export (only the batch varies), which the outputs are checked at.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        fastpath = torch.backends.mha.get_fastpath_enabled()
        # attention's fused inference kernel has no ONNX operator; its plain path does
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            torch.onnx.export(module, example, buffer, input_names=names, output_names=outputs,
                              dynamic_axes=_onnx_axes(graph), dynamo=False)
        except torch.onnx.errors.OnnxExporterError as error:
            raise ExportFailure(_first_line(error)) from None
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
    return buffer.getvalue()


class _ChannelShuffle(torch.nn.Module):
    """nn.ChannelShuffle as the reshape, transpose and reshape it stands for: ONNX has no
    operator of its own for it."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c = x.shape[:2]
        return (x.reshape(n, self.groups, c // self.groups, *x.shape[2:]).transpose(1, 2)
                .reshape(x.shape))


def onnx_ready(module: torch.nn.Module) -> torch.nn.Module:
    """The module, changed in place: the layers ONNX cannot take replaced by equivalent
    plain ops (the same names, no weights involved). A parameter of the top module whose
    name is not an identifier (an unlabelled layer scale, `0`) is refused by the tracer,
    so such a module is wrapped: its tensors are then named `network.0`, `network.fc.weight`."""
    for name, child in list(module.named_modules()):
        if isinstance(child, torch.nn.ChannelShuffle):
            parent, _, leaf = name.rpartition(".")
            setattr(module.get_submodule(parent), leaf, _ChannelShuffle(child.groups))
    if any(not name.isidentifier() for name, _ in module.named_parameters(recurse=False)):
        return _Wrapped(module)
    return module


class _Wrapped(torch.nn.Module):
    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, *inputs):
        return self.network(*inputs)


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def dynamic_axes(graph: nx.DiGraph, nodes: dict[str, str]) -> dict[str, dict[int, str]]:
    """{name: {axis (batch first): its size's name}} of the values `nodes` names ({name:
    node}): the batch of each, and the axes that follow the length where one size is a
    symbol (`input ids: L <= 2048`): an exported language model runs at any length, as
    the lowered one does."""
    sizes = ir.network(graph).sizes
    length = next(iter(sizes)) if len(sizes) == 1 else None
    return {name: {0: "batch", **{axis + 1: length for axis in
                                  sorted(ir.shape(graph, node).follows if length else ())}}
            for name, node in nodes.items()}


def _inputs(graph: nx.DiGraph) -> dict[str, str]:
    return {name: name for name in ir.network(graph).inputs}


def _onnx_axes(graph: nx.DiGraph) -> dict[str, dict[int, str]]:
    """ONNX's dynamic axes: the inputs' and the inference outputs'."""
    outputs = {o.name: o.node for o in ir.network(graph).outputs if not o.train_only}
    return dynamic_axes(graph, _inputs(graph) | outputs)


def _torch_export(module, example, graph) -> bytes:
    from torch._dynamo.exc import TorchDynamoException
    sizes = ir.network(graph).sizes
    dims = {"batch": torch.export.Dim("batch", min=1)}
    for symbol, (_, bound) in sizes.items():
        dims[symbol] = torch.export.Dim(symbol, min=1, max=bound) if bound else \
            torch.export.Dim(symbol, min=1)
    shapes = tuple({axis: dims[size] for axis, size in axes.items()}
                   for axes in dynamic_axes(graph, _inputs(graph)).values())
    batch_only = tuple({0: dims["batch"]} for _ in example)
    try:
        program = torch.export.export(module, example, dynamic_shapes=shapes)
    except TorchDynamoException as error:
        if shapes == batch_only:
            raise ExportFailure(_first_line(error)) from None
        try:  # a model whose code fixes the length (a loop over the positions: Mamba's
            # scan) is exported at the length it was checked at
            program = torch.export.export(module, example, dynamic_shapes=batch_only)
        except TorchDynamoException as again:
            raise ExportFailure(_first_line(again)) from None
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()
