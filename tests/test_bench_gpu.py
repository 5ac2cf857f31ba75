"""bench/gpu.py: its table of peaks, and a tiny run of the whole script on the CPU."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from conftest import ROOT  # noqa: E402


def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peaks_are_found_by_the_most_specific_device_name():
    module = bench()
    assert module.peak_for_name("NVIDIA H100 PCIe") == 756e12
    assert module.peak_for_name("NVIDIA H100 80GB HBM3") == 989e12
    assert module.peak_for_name("NVIDIA L40S") == 362e12 and module.peak_for_name("NVIDIA L4") == 121e12
    assert module.peak_for_name("Tesla V100-SXM2-16GB") is None  # no bf16 tensor cores


@pytest.mark.slow
def test_smoke_run_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    completed = subprocess.run([sys.executable, "bench/gpu.py", "--smoke", "--json", str(out)],
                               cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    figures = json.loads(out.read_text())
    rows = {row["network"]: row for row in figures["throughput"]}
    assert set(rows) == {"resnet50", "vit_b_16"}
    assert rows["resnet50"]["lowered_images_per_s"] > 0 and rows["resnet50"]["ratio"] > 0
    plans = figures["memory_plan"]
    assert {(p["network"], p["amp"]) for p in plans} >= {("resnet50", "none"), ("vit_b_16", "bf16")}
    # a network of a few MiB is within a kernel's scratch buffer of its plan (the tiny
    # ViT's patch-embedding backward takes 2.4 MiB of oneDNN scratch): held from 64 MiB
    assert all(abs(p["ratio"] - 1) < 0.10 for p in plans if p["measured_bytes"] > 2 ** 26)
    assert all(p["ratio"] > 0.5 for p in plans), plans
    assert figures["ddp"]["two_process_images_per_s"] > 0
    assert "ratio" in completed.stdout and "DDP scaling" in completed.stdout
