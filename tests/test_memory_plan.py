"""`archdsl stats --train`: the memory plan of a training step, held against the peak
measured while archdsl's own step runs (torch's profiler on the CPU), and its rules one
by one: views and in-place layers share memory, autocast keeps 16-bit copies, the
optimizer's state, checkpointing, the largest batch that fits."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from archdsl import compile_file, compile_source
from archdsl.backends.plan_memory import OPTIMIZER_STATES, Setup, largest_batch, plan_memory
from archdsl.backends.report_memory import checkpoint_scopes, parse_memory
from archdsl.cli import main
from archdsl.errors import UsageError
from archdsl.ops import OPS

from conftest import ROOT

SMALL_GPT = dict(vocab_size=256, n_positions=64, n_embd=64, n_layer=2, n_head=4)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cifar_resnet():
    return compile_file(ROOT / "specs" / "cifar_resnet.arch").graphs["cifar_resnet"]


# ---- against measurement -------------------------------------------------------------------


@pytest.mark.parametrize("batch", [4, 16])
@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_plan_within_ten_percent_of_the_measured_peak_cnn(batch, amp):
    pytest.importorskip("torch")
    from archdsl.runtime.memory import measure_peak
    graph = cifar_resnet()
    planned = plan_memory(graph, Setup(batch=batch, amp=amp)).peak
    measured = measure_peak(graph, batch, amp=amp)
    assert abs(planned / measured - 1) < 0.10, (planned, measured)


@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_plan_within_ten_percent_of_the_measured_peak_transformer(amp):
    """Embeddings, layer norms, attention with dropout (the math kernel's matrices), a
    tied head: a two-layer GPT-2."""
    pytest.importorskip("torch")
    from archdsl.runtime.memory import measure_peak
    graph = compile_file(ROOT / "specs" / "gpt2.arch", settings=SMALL_GPT).graph
    planned = plan_memory(graph, Setup(batch=4, amp=amp)).peak
    measured = measure_peak(graph, 4, amp=amp)
    assert abs(planned / measured - 1) < 0.10, (planned, measured)


# ---- the rules ------------------------------------------------------------------------------


def test_every_op_states_what_it_keeps_in_words_the_plan_reads():
    for name, op in OPS.items():
        for token in op.keeps:
            assert token in ("inputs", "out") or (token.startswith("in") and token[2:].isdigit()), \
                (name, token)
        assert op.autocast in ("", "low", "float"), name


def test_a_view_and_an_in_place_activation_take_no_memory_of_their_own():
    graph = compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3); b: batchnorm; "
                           "r: relu; f: flatten; linear(10) }").graph
    layers = {layer.name: layer for layer in plan_memory(graph, Setup(batch=2)).layers}
    conv_out = 2 * 4 * 6 * 6 * 4
    assert layers["c"].kept == conv_out  # batch norm keeps its input
    assert layers["b"].kept == conv_out  # relu (in place) keeps its result: b's memory
    assert layers["r"].kept == 0 and layers["f"].kept == 0  # in place, a view


def test_an_activation_that_cannot_overwrite_keeps_its_own_result():
    """A value read twice cannot be overwritten: relu makes new memory and keeps it."""
    graph = compile_source("network t { input x: 3 x 8 x 8; c: conv(4, 3); b: batchnorm; "
                           "r: relu; a: add(r, b) }").graph
    layers = {layer.name: layer for layer in plan_memory(graph, Setup(batch=1)).layers}
    assert layers["r"].kept == 4 * 6 * 6 * 4


def test_the_optimizer_state_is_one_or_two_float32_tensors_per_parameter():
    graph = cifar_resnet()
    adamw = plan_memory(graph, Setup(batch=8))
    sgd = plan_memory(graph, Setup(batch=8, optimizer="sgd"))
    params = sum(layer.params for layer in adamw.layers)
    assert adamw.state == OPTIMIZER_STATES["adamw"] * 4 * params
    assert adamw.state - sgd.state == 4 * params == adamw.peak - sgd.peak


def test_autocast_halves_what_matrix_products_keep_and_copies_their_weights():
    graph = compile_source("network t { input x: 64; a: linear(64); r: relu; "
                           "b: linear(10) }").graph
    full = {layer.name: layer.kept for layer in plan_memory(graph, Setup(batch=8)).layers}
    mixed = {layer.name: layer.kept for layer in
             plan_memory(graph, Setup(batch=8, amp="bf16")).layers}
    assert full["a"] == 8 * 64 * 4  # relu keeps a's float32 result
    # a's bf16 result (relu keeps it), its copy of the float32 input, its weights' copy
    assert mixed["a"] == 8 * 64 * 2 + 8 * 64 * 2 + (64 * 64 + 64) * 2
    assert mixed["b"] == (10 * 64 + 10) * 2  # its weights' copy; it reads a's bf16 result


def test_checkpointing_keeps_less_and_recomputes_in_the_backward_pass():
    graph = compile_file(ROOT / "specs" / "resnet18.arch").graph
    setup = Setup(batch=8)
    plain = plan_memory(graph, setup)
    stages = checkpoint_scopes(graph, ["layer1", "layer2"])
    assert stages == ("layer1", "layer2")
    checkpointed = plan_memory(graph, replace(setup, checkpoint=stages))
    assert checkpointed.kept < plain.kept and checkpointed.peak < plain.peak
    kept_inside = {layer.name: layer.kept for layer in checkpointed.layers}
    assert kept_inside["layer1.0.conv1"] == 0
    assert checkpoint_scopes(graph, ["basic"]) == tuple(
        f"layer{s}.{i}" for s in range(1, 5) for i in range(2))
    with pytest.raises(UsageError, match="its stages are conv1|layer1"):
        checkpoint_scopes(graph, ["layer9"])


def test_the_largest_batch_fits_and_one_more_does_not():
    graph = cifar_resnet()
    setup = Setup()
    memory = parse_memory("256MiB")
    batch = largest_batch(graph, setup, memory)
    assert batch > 1
    assert plan_memory(graph, replace(setup, batch=batch)).peak <= memory
    assert plan_memory(graph, replace(setup, batch=batch + 1)).peak > memory
    assert largest_batch(graph, setup, 1000) == 0


def test_peak_grows_with_the_batch_by_what_one_example_keeps():
    graph = cifar_resnet()
    one, two = (plan_memory(graph, Setup(batch=b)) for b in (1, 2))
    assert two.kept == 2 * one.kept
    assert two.peak > one.peak


@pytest.mark.parametrize("text, size", [("24GiB", 24 * 2 ** 30), ("80GB", 80 * 10 ** 9),
                                        ("512m", 512 * 2 ** 20), ("1000", 1000)])
def test_memory_sizes_read_as_people_write_them(text, size):
    assert parse_memory(text) == size


# ---- the command -----------------------------------------------------------------------------


def test_stats_train_prints_the_plan(capsys):
    code, out, _ = run(capsys, "stats", ROOT / "specs" / "resnet18.arch", "--train",
                       "--batch-size", "32", "--depth", "1", "--memory", "24GiB")
    assert code == 0
    assert "one training step: batch 32, AdamW, fp32, cpu" in out
    for label in ("weights and buffers", "gradients", "optimizer state (AdamW)",
                  "activations kept for backward", "peak of one training step",
                  "largest batch in 24GiB"):
        assert label in out
    assert "layer3" in out and "layer3.0" not in out


def test_stats_train_json_adds_up(capsys):
    code, out, _ = run(capsys, "stats", ROOT / "specs" / "resnet18.arch", "--train",
                       "--batch-size", "4", "--format", "json", "--amp", "bf16",
                       "--optimizer", "sgd")
    assert code == 0
    report = json.loads(out)
    assert report["setup"]["amp"] == "bf16" and report["setup"]["optimizer"] == "sgd"
    assert sum(r["kept"] for r in report["rows"]) == report["kept"]
    assert sum(r["state"] for r in report["rows"]) == report["state"] == report["gradients"]
    assert report["peak"] >= report["weights"] + report["state"] + report["kept"]


@pytest.mark.parametrize("fmt, mark", [("markdown", "| `conv1` |"), ("csv", "kept_bytes"),
                                       ("latex", r"\toprule")])
def test_stats_train_formats(capsys, fmt, mark):
    code, out, _ = run(capsys, "stats", ROOT / "specs" / "resnet18.arch", "--train",
                       "--format", fmt)
    assert code == 0 and mark in out


def test_stats_train_says_what_checkpointing_saves(capsys):
    code, out, _ = run(capsys, "stats", ROOT / "specs" / "resnet50.arch", "--train",
                       "--checkpoint", "layer1,layer2,layer3", "--depth", "1")
    assert code == 0
    assert "checkpointing layer1, layer2, layer3" in out
    assert "checkpointing saves" in out


@pytest.mark.parametrize("argv, message", [
    (["--checkpoint", "stage9"], "no scope or block of that name"),
    (["--memory", "lots"], "give a size such as 24GiB"),
    (["--measure"], "give one of them"),
    (["--dtype", "fp16"], "use --amp"),
    (["--batch-size", "0"], "at least 1"),
    (["--plot", "x.svg"], "leave it out"),
])
def test_stats_train_refuses_with_a_reason(capsys, argv, message):
    code, _, err = run(capsys, "stats", ROOT / "specs" / "resnet18.arch", "--train", *argv)
    assert code == 2 and message in err and "Traceback" not in err
