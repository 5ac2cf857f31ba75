"""Cost figures: totals against torchvision's published numbers, a hand-computed AlexNet
table, golden outputs, and the formats."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess

import pytest

from archdsl import compile_file, compile_source
from archdsl.cli import main
from archdsl.backends.report_stats import format_report, report_stats

from conftest import ROOT, check_golden
from test_specs import TORCHVISION

GOLDEN = ROOT / "tests" / "golden"


def graph_of(spec: str, **options):
    return compile_file(ROOT / "specs" / f"{spec}.arch", **options).graph


@pytest.mark.parametrize("spec", sorted(TORCHVISION))
def test_totals_equal_torchvision(spec, reference):
    model, settings = TORCHVISION[spec]
    totals = report_stats(graph_of(spec, settings=settings)).totals
    assert totals.params == reference[model]["params"]
    assert totals.macs == pytest.approx(reference[model]["gmacs"] * 1e9, rel=1e-3)


def test_vgg16_bn_totals(reference):
    totals = report_stats(graph_of("vgg16", settings={"batch_norm": True})).totals
    assert totals.params == reference["vgg16_bn"]["params"]
    assert totals.macs == pytest.approx(reference["vgg16_bn"]["gmacs"] * 1e9, rel=1e-3)


def test_googlenet_macs_against_the_paper():
    """The paper-faithful GoogLeNet is not torchvision's (5x5 convs, conv biases, no BN),
    so its figures are checked against the paper: "1.5 billion multiply-adds" and
    Table 1's per-stage operation counts (in millions) for the main network."""
    graph = graph_of("googlenet")
    totals = report_stats(graph).totals
    assert 1.5e9 < totals.macs < 1.6e9
    by_stage = {r.name: r.macs for r in report_stats(graph, depth=1).rows}
    table1 = {"conv1": 118e6, "inception3a": 128e6, "inception3b": 304e6,
              "inception4a": 73e6, "inception4e": 170e6, "inception5b": 71e6}
    for stage, ops in table1.items():
        assert by_stage[stage] == pytest.approx(ops, rel=0.02), stage


def hand_alexnet_227():
    """torchvision AlexNet at 227x227, worked out by hand with the usual formulas:
    out = (in + 2 pad - kernel) // stride + 1; conv params = k*k*cin*cout + cout;
    conv MACs = out_h*out_w*cout * k*k*cin; linear params = in*out + out, MACs = in*out."""
    rows = {}
    rows["features.0"] = ((64, 56, 56), 11 * 11 * 3 * 64 + 64, 56 * 56 * 64 * 11 * 11 * 3)
    rows["features.2"] = ((64, 27, 27), 0, 0)
    rows["features.3"] = ((192, 27, 27), 5 * 5 * 64 * 192 + 192, 27 * 27 * 192 * 5 * 5 * 64)
    rows["features.5"] = ((192, 13, 13), 0, 0)
    rows["features.6"] = ((384, 13, 13), 9 * 192 * 384 + 384, 13 * 13 * 384 * 9 * 192)
    rows["features.8"] = ((256, 13, 13), 9 * 384 * 256 + 256, 13 * 13 * 256 * 9 * 384)
    rows["features.10"] = ((256, 13, 13), 9 * 256 * 256 + 256, 13 * 13 * 256 * 9 * 256)
    rows["features.12"] = ((256, 6, 6), 0, 0)
    rows["avgpool"] = ((256, 6, 6), 0, 0)
    rows["classifier.1"] = ((4096,), 9216 * 4096 + 4096, 9216 * 4096)
    rows["classifier.4"] = ((4096,), 4096 * 4096 + 4096, 4096 * 4096)
    rows["classifier.6"] = ((1000,), 4096 * 1000 + 1000, 4096 * 1000)
    for relu, shape in (("features.1", (64, 56, 56)), ("features.4", (192, 27, 27)),
                        ("features.7", (384, 13, 13)), ("features.9", (256, 13, 13)),
                        ("features.11", (256, 13, 13)), ("classifier.2", (4096,)),
                        ("classifier.5", (4096,))):
        rows[relu] = (shape, 0, 0)
    return rows


def test_alexnet_lecture_table_row_by_row(capsys, in_root):
    assert main(["stats", "specs/alexnet.arch", "--input", "3x227x227", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in report["rows"]}
    for name, (shape, params, macs) in hand_alexnet_227().items():
        row = rows[name]
        assert row["shape"] == "x".join(map(str, shape)), name
        assert (row["params"], row["macs"]) == (params, macs), name
        assert row["activation_bytes"] == 4 * eval("*".join(map(str, shape))), name
    assert rows["features.0"]["shape"] == "64x56x56"


@pytest.mark.parametrize("spec", ["resnet18", "googlenet"])
@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_golden_outputs(spec, fmt):
    text = format_report(report_stats(graph_of(spec), depth=None), fmt)
    check_golden(GOLDEN / f"stats_{spec}.{'md' if fmt == 'markdown' else 'txt'}", text)


def test_rollup_by_depth():
    rows = {r.name: r for r in report_stats(graph_of("resnet152"), depth=1).rows}
    assert [rows[f"layer{i}"].op for i in range(1, 5)] == [
        "bottleneck x3", "bottleneck x8", "bottleneck x36", "bottleneck x3"]
    full = report_stats(graph_of("resnet152")).rows
    assert sum(r.params for r in rows.values()) == sum(r.params for r in full)


def test_train_only_heads_marked_and_excluded():
    report = report_stats(graph_of("googlenet"))
    aux_rows = [r for r in report.rows if r.name.startswith("aux")]
    assert aux_rows and all(r.train_only for r in aux_rows)
    assert report.totals.params_with_train_only - report.totals.params == \
        sum(r.params for r in aux_rows)
    assert "[train]" in format_report(report, "table")


def test_table_fits_110_columns():
    for spec in ("resnet152", "googlenet", "vgg19"):
        text = format_report(report_stats(graph_of(spec)), "table")
        assert max(map(len, text.splitlines())) <= 110, spec


def test_csv_and_dtype(capsys, in_root):
    assert main(["stats", "specs/resnet18.arch", "--format", "csv", "--dtype", "fp16"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    conv1 = next(r for r in rows if r["layer"] == "conv1")
    assert int(conv1["activation_bytes"]) == 64 * 112 * 112 * 2


def test_side_by_side_comparison(capsys, in_root):
    assert main(["stats", "specs/alexnet.arch", "specs/vgg16.arch", "--format", "json"]) == 0
    alexnet, vgg16 = json.loads(capsys.readouterr().out)
    assert vgg16["macs"] / alexnet["macs"] > 20  # the lecture's "~20x AlexNet's compute"
    assert main(["stats", "specs/alexnet.arch", "specs/vgg16.arch"]) == 0
    assert "(x21.66)" in capsys.readouterr().out


def test_latex_table_escapes_names_and_closes_its_environment():
    from archdsl.backends.report_stats import format_latex, report_stats
    text = format_latex(report_stats(compile_source(
        "network t_1 { input x: 3 x 8 x 8; my_conv: conv(4, 3); relu }").graph))
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 1
    assert r"\texttt{my\_conv}" in text and r"$4\times 6\times 6$" in text
    assert r"\toprule" in text and r"\bottomrule" in text and "booktabs" in text
    body = text.split(r"\midrule")[1]
    assert all(line.endswith(r"\\") for line in body.strip().splitlines())


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_tables_compile(tmp_path):
    from archdsl.backends.report_stats import format_comparison, format_latex, report_stats
    reports = [report_stats(compile_file(ROOT / "specs" / f"{s}.arch").graph, depth=1)
               for s in ("resnet18", "vit_b_16")]
    body = "\n\n".join([format_latex(r) for r in reports] + [format_comparison(reports, "latex")])
    (tmp_path / "t.tex").write_text("\\documentclass{article}\\usepackage{booktabs}"
                                    "\\begin{document}\n" + body + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


def test_cost_plot_draws_every_network_side_by_side(tmp_path, capsys, in_root):
    pytest.importorskip("matplotlib")
    out = tmp_path / "costs.svg"
    assert main(["stats", "specs/alexnet.arch", "specs/vgg16.arch", "--plot", str(out)]) == 0
    svg = out.read_text()
    assert svg.lstrip().startswith("<?xml") and "alexnet" in svg and "vgg16" in svg
    assert "parameters (millions)" in svg and "MACs (multiply-adds, millions)" in svg
    assert main(["stats", "specs/alexnet.arch", "--plot", str(tmp_path / "c.jpg")]) == 2
    assert "--plot" in capsys.readouterr().err and not (tmp_path / "c.jpg").exists()
