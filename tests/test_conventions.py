"""Counting conventions stated everywhere: every output that shows MACs says they are
multiply-adds, FLOPs appear only as 2 × MACs and say so, and every table of a network
with tied tensors says that its parameters count each shared tensor once (and a network
without ties says nothing of it)."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess

import pytest

from archdsl import compile_file
from archdsl.cli import main
from archdsl.backends import report_table
from archdsl.backends.report_diff import diff_graphs, diff_json, format_diff
from archdsl.backends.report_stats import (FORMATS, format_comparison, format_report,
                                           report_stats, summary_line)

from conftest import ROOT

GPT2 = ROOT / "specs" / "gpt2.arch"
TIE = "lm_head.weight = transformer.wte.weight"
TIE_SIZE = 50257 * 768  # the embedding, one tensor under two keys


@pytest.fixture(scope="module")
def gpt2():
    return compile_file(GPT2).graph


@pytest.fixture(scope="module")
def resnet18():
    return compile_file(ROOT / "specs" / "resnet18.arch").graph


def test_gpt2_counts_each_unique_tensor_once(gpt2):
    torch = pytest.importorskip("torch")
    from archdsl.backends.lower_fx import lower_fx
    module = lower_fx(gpt2)
    unique = {id(p): p.numel() for _, p in module.named_parameters(remove_duplicate=False)}
    every_name = sum(p.numel() for _, p in module.named_parameters(remove_duplicate=False))
    assert module.lm_head.weight is module.transformer.wte.weight
    assert isinstance(module.lm_head.weight, torch.nn.Parameter)
    report = report_stats(gpt2)
    assert report.totals.params == sum(unique.values()) == 124_439_808
    assert every_name - report.totals.params == TIE_SIZE  # what counting per name adds
    assert report.ties == (TIE,) and report.tied_params == (TIE_SIZE,)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_stats_format_mentions_the_tie(gpt2, fmt):
    text = format_report(report_stats(gpt2), fmt)
    if fmt == "csv":  # rows only: the tied layer's row says so
        rows = {r["layer"]: r for r in csv.DictReader(io.StringIO(text))}
        assert rows["lm_head"]["op"].endswith("(tied)") and rows["lm_head"]["params"] == "0"
    elif fmt == "json":
        record = json.loads(text)
        assert record["ties"] == [TIE] and record["tied_params"] == [TIE_SIZE]
    else:
        assert "counting each shared tensor once" in text
        assert f"{TIE} ({TIE_SIZE:,})".replace("_", r"\_" if fmt == "latex" else "_") in text
        assert "(tied)" in text


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_paper_tables_mark_the_tied_layer_and_note_the_tie(gpt2, resnet18, fmt):
    formatter = getattr(report_table, f"format_{fmt}")
    text = formatter([gpt2])
    assert "fc 50257 (tied)" in text
    escape = (lambda s: s.replace("_", r"\_")) if fmt == "latex" else (lambda s: s)
    assert escape(f"Parameters count each shared tensor once: {TIE} ({TIE_SIZE:,}).") in text
    both = formatter([resnet18, gpt2])
    assert escape(f"once: gpt2: {TIE}") in both  # several networks: each tie by its network
    assert "shared" not in formatter([resnet18]) and "tied" not in formatter([resnet18])


def test_diff_notes_the_tie_of_either_network(gpt2, resnet18):
    smaller = compile_file(GPT2, settings={"n_layer": 2}).graph
    text = format_diff(diff_graphs(gpt2, smaller))
    assert text.splitlines()[-1] == \
        f"parameters count each shared tensor once: {TIE} ({TIE_SIZE:,})"
    assert "MACs (multiply-adds)" in text
    apart = format_diff(diff_graphs(resnet18, gpt2, "r", "g"))
    assert f"parameters count each shared tensor once, in g: {TIE}" in apart
    assert json.loads(diff_json(diff_graphs(resnet18, gpt2)))["ties"] == \
        [[], [f"{TIE} ({TIE_SIZE:,})"]]
    untied = compile_file(ROOT / "specs" / "resnet50.arch").graph
    assert "shared" not in format_diff(diff_graphs(resnet18, untied))


def test_check_says_shared_tensors_are_counted_once(gpt2, resnet18):
    assert "124,439,808 parameters (1 shared tensor counted once)" in summary_line(gpt2)
    assert "shared" not in summary_line(resnet18)


@pytest.mark.parametrize("fmt", ["table", "markdown", "latex"])
def test_totals_label_macs_as_multiply_adds_and_flops_as_twice_them(resnet18, fmt):
    report = report_stats(resnet18)
    assert report.totals.flops == 2 * report.totals.macs
    text = format_report(report, fmt)
    assert f"({report.totals.macs:,})" in text and f"({report.totals.flops:,})" in text
    assert "MACs (multiply-adds, conv + linear)" in text
    assert ("FLOPs (= 2 $\\times$ MACs)" if fmt == "latex" else "FLOPs (= 2 × MACs)") in text
    assert "shared" not in text and "tied" not in text  # no ties, nothing said


def test_json_keeps_macs_and_adds_flops(resnet18):
    totals = json.loads(format_report(report_stats(resnet18), "json"))["totals"]
    assert totals["macs"] == 1_814_073_344 and totals["flops"] == 2 * totals["macs"]
    compared = json.loads(format_comparison([report_stats(resnet18)], "json"))
    assert compared[0]["flops"] == 2 * compared[0]["macs"]
    lines = format_comparison([report_stats(resnet18)], "csv").splitlines()
    assert lines[0].split(",")[1:4] == ["params", "macs", "flops"]


def test_the_terminal_table_of_gpt2_keeps_its_totals_narrow(gpt2):
    text = format_report(report_stats(gpt2), "table")
    totals = text.split("\n\n", 1)[1]
    assert max(map(len, totals.splitlines())) <= 110


def test_the_cost_plot_labels_macs_as_multiply_adds():
    from archdsl.backends.plot_costs import PANELS
    from archdsl.backends.report_sweep import LABELS
    assert "MACs (multiply-adds, millions)" in [title for title, _ in PANELS]
    assert LABELS["macs"] == "MACs (multiply-adds)"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_with_a_tie_note_compiles(gpt2, tmp_path):
    body = "\n\n".join([format_report(report_stats(gpt2, depth=1), "latex"),
                        report_table.format_latex([gpt2])])
    (tmp_path / "t.tex").write_text("\\documentclass{article}\\usepackage{booktabs}"
                                    "\\usepackage{amsmath}\\usepackage[utf8]{inputenc}"
                                    "\\begin{document}\n" + body + "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


def test_stats_cli_prints_flops_beside_macs(capsys):
    assert main(["stats", str(ROOT / "specs" / "alexnet.arch")]) == 0
    out = capsys.readouterr().out
    macs = next(line for line in out.splitlines() if line.startswith("MACs (multiply-adds"))
    flops = next(line for line in out.splitlines() if line.startswith("FLOPs (= 2 × MACs)"))
    assert int(flops.split("(")[-1].rstrip(")").replace(",", "")) == \
        2 * int(macs.split("(")[-1].rstrip(")").replace(",", ""))
