"""`archdsl stats --measure`: every spec layer listed with its measured forward and
backward time, the layers' sum against the whole step, the formats, the roofline, and
the usage errors (no torch, no CUDA, options it cannot honour). Small networks, few
steps: the figures are checked for what any machine gives, not for speed."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from archdsl import compile_file, compile_source
from archdsl.backends.lower_fx import lower_fx
from archdsl.backends.report_measure import (LayerTime, Measurement, Roofs, format_measure,
                                             layer_groups, measure_report)
from archdsl.backends.report_stats import report_stats
from archdsl.cli import main
from archdsl.runtime.measure import layer_of_nodes, measure

from conftest import ROOT

TINY = """\
block unit(width) {
    residual {
        conv1: conv(width, 3, pad = 1)
        bn1:   batchnorm
               relu
        conv2: conv(width, 3, pad = 1)
    }
    relu
}

network tiny {
    input image: 3 x 16 x 16
    stem:   conv(8, 3, pad = 1)
    stage:  repeat 2 { unit(8) }
    pool:   global_avgpool
    flat:   flatten
    param shift: 8 = zeros
    moved:  add(flat, shift)
    fc:     linear(10)
    aux1:   aux(weight = 0.3) { linear(10) }
}
"""
ROOFS = Roofs("cpu (assumed)", 1e10, 1e10, "assumed")


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("measure") / "tiny.arch"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def measured_json(spec, tmp_path_factory):
    """One run of the command: JSON on standard output, a roofline in a file."""
    plot = tmp_path_factory.mktemp("plot") / "roofline.svg"
    threads = torch.get_num_threads()
    try:
        out = _run(["stats", str(spec), "--measure", "--steps", "3", "--warmup", "1",
                    "--threads", "1", "--format", "json", "--plot", str(plot)])
    finally:
        torch.set_num_threads(threads)  # --threads sets this process's
    return json.loads(out), plot


def _run(argv) -> str:
    import contextlib
    import io
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    return buffer.getvalue()


def test_every_spec_layer_is_listed_with_its_times(measured_json, spec):
    report, _ = measured_json
    graph = compile_file(spec).graph
    assert [row["name"] for row in report["rows"]] == list(graph)
    assert all(row["forward_ms"] >= 0 and row["backward_ms"] >= 0 for row in report["rows"])
    rows = {row["name"]: row for row in report["rows"]}
    for conv in ("stem", "stage.0.conv1", "stage.1.conv2"):  # learned: both passes timed
        assert rows[conv]["forward_ms"] > 0 and rows[conv]["backward_ms"] > 0
        assert rows[conv]["macs"] == 8 * graph.nodes[conv]["cost"].macs
        assert rows[conv]["macs_per_s"] > 0 and rows[conv]["intensity"] > 0
    assert rows["image"]["forward_ms"] == 0  # an input takes no time
    assert rows["aux1.0"]["train_only"] and rows["aux1.0"]["forward_ms"] > 0


def test_the_layers_add_up_to_about_the_whole_step(measured_json):
    report, _ = measured_json
    summed = sum(row["forward_ms"] + row["backward_ms"] for row in report["rows"])
    assert report["layers_ms"] == pytest.approx(summed)
    assert report["ratio"] == pytest.approx(report["layers_ms"] / report["step_ms"])
    assert 0.5 < report["ratio"] < 2.0, report["ratio"]
    assert report["unattributed_ms"] < 0.5 * report["step_ms"]
    assert report["roofs"]["macs_per_s"] > 1e8 and report["roofs"]["bytes_per_s"] > 1e8


def test_the_roofline_is_drawn(measured_json):
    _, plot = measured_json
    text = plot.read_text()
    assert text.startswith("<?xml") and "arithmetic intensity" in text


def test_backward_time_goes_to_the_layer_whose_forward_made_it():
    """Only the linear layer has a backward here: relu and flatten of an input that
    needs no gradient have none, so all of the backward is fc's."""
    graph = compile_source("network t { input x: 4 x 6 x 6; relu; f: flatten; "
                           "fc: linear(3) }").graph
    measured = measure(graph, torch.device("cpu"), batch=2, steps=2, warmup=0, roofs=ROOFS)
    assert measured.layers["fc"].backward_ms > 0
    assert measured.layers["0"].backward_ms == 0 and measured.layers["f"].backward_ms == 0
    assert set(measured.layers) == {"0", "f", "fc"}


def test_every_fx_node_belongs_to_its_spec_layer(spec):
    """A parameter lowers to three fx nodes (get_attr, size, expand): all are its."""
    graph = compile_file(spec).graph
    module = lower_fx(graph).train_module
    layers = layer_of_nodes(module.graph)
    assert sorted(node.op for node, layer in layers.items() if layer == "shift") == \
        ["call_method", "call_method", "get_attr"]
    assert set(layers.values()) == {name for name in graph if name != "image"}


def test_depth_rolls_the_times_up_by_the_scope_tree(spec):
    graph = compile_file(spec).graph
    times = {name: LayerTime(1.0, 2.0) for name in graph if name != "image"}
    measured = Measurement(ROOFS, "fp32", 4, 1, 0, times, 30.0, 0.0)
    report = measure_report(graph, measured, depth=1)
    assert [row.name for row in report.rows] == [r.name for r in report_stats(graph, 1).rows]
    stage = next(row for row in report.rows if row.name == "stage")
    members = dict(layer_groups(graph, 1))["stage"]
    assert stage.forward_ms == len(members) and stage.backward_ms == 2 * len(members)
    assert report.layers_ms == 3.0 * len(times) and report.ratio == 3.0 * len(times) / 30
    table = format_measure(report)
    assert "stage" in table and "stage.0.conv1" not in table
    assert f"{report.layers_ms:.1f} ms = {report.ratio:.1%} of the step" in table


def test_the_csv_and_markdown_forms_have_a_row_per_layer(spec):
    graph = compile_file(spec).graph
    measured = Measurement(ROOFS, "fp32", 4, 1, 0, {"stem": LayerTime(1.0, 2.0)}, 3.0, 0.0)
    report = measure_report(graph, measured)
    assert len(format_measure(report, "csv").splitlines()) == len(graph) + 1
    assert "| `stem` | conv 3x3 p1 | 1.000 | 2.000 |" in format_measure(report, "markdown")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_there_is_none_is_a_usage_error(spec, capsys):
    assert main(["stats", str(spec), "--measure", "--device", "cuda"]) == 2
    assert "--device cuda: no CUDA device is available here" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--format", "latex"], "--measure prints table, markdown, csv, json"),
    (["--formula"], "--formula counts, --measure times"),
    (["--dtype", "int8"], "measuring runs fp32, bf16 or fp16"),
    (["--dtype", "fp16", "--device", "cpu"], "fp16 is measured on CUDA only"),
    (["--depth", "0"], "--depth must be at least 1"),
    (["--plot", "out.txt"], "give a file ending in .svg, .pdf or .png"),
])
def test_what_measuring_cannot_do_is_a_usage_error(spec, capsys, extra, message):
    assert main(["stats", str(spec), "--measure", *extra]) == 2
    assert message in capsys.readouterr().err


def test_one_file_at_a_time(spec, capsys):
    assert main(["stats", str(spec), str(spec), "--measure"]) == 2
    assert "--measure takes one FILE" in capsys.readouterr().err


def test_without_torch_measuring_says_what_to_install(spec):
    code = ("import sys\n"
            "sys.modules['torch'] = None  # as if torch were not installed\n"
            "import archdsl.cli\n"
            f"codes = [archdsl.cli.main(['stats', {str(spec)!r}, '--measure']),\n"
            f"         archdsl.cli.main(['stats', {str(spec)!r}])]\n"
            "print(codes)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.stdout.splitlines()[-1] == "[2, 0]", out.stderr  # counting still works
    assert "`archdsl stats --measure` needs PyTorch: pip install torch" in out.stderr
    assert "Traceback" not in out.stderr
