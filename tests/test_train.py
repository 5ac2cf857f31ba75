"""Training: loss falls, exact resume after SIGKILL, data-parallel equals single-process,
clear errors for bad checkpoints and data, and eval/run on the result."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from archdsl.cli import main  # noqa: E402
from archdsl.runtime.checkpoint import load_checkpoint  # noqa: E402
from archdsl.runtime.runlog import read_epochs  # noqa: E402
from archdsl.runtime.train import TrainConfig, train  # noqa: E402

from conftest import ROOT  # noqa: E402

TINY = str(ROOT / "tests" / "data" / "tiny_classifier.arch")


def archdsl(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "archdsl", *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def finish(process) -> None:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]


def weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_loss_falls_on_shapes(tmp_path):
    history = train(TrainConfig(TINY, data="shapes:512", epochs=4, batch_size=32, lr=3e-3,
                                out=str(tmp_path / "run"), progress=False))
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.05
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    epochs = read_epochs(tmp_path / "run" / "metrics.jsonl")
    assert [row["epoch"] for row in epochs] == [1, 2, 3, 4]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_exact(tmp_path):
    common = ["train", TINY, "--data", "shapes:1920", "--epochs", "2", "--batch-size", "32",
              "--checkpoint-every", "5", "--device", "cpu", "--quiet", "--seed", "3",
              "--set", "width=24", "--input", "3x32x32"]
    finish(archdsl(*common, "--out", str(tmp_path / "straight")))

    interrupted = tmp_path / "interrupted"
    process = archdsl(*common, "--out", str(interrupted))
    checkpoint = interrupted / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    position = load_checkpoint(checkpoint)["position"]
    assert position["epoch"] == 0 and 0 < position["step"] < 60, position  # mid-epoch
    assert not (interrupted / "model.pt").exists()

    finish(archdsl(*common, "--out", str(interrupted), "--resume"))
    straight, resumed = weights(tmp_path / "straight" / "model.pt"), weights(interrupted / "model.pt")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path):
    common = ["train", TINY, "--data", "shapes:256", "--epochs", "1", "--batch-size", "32",
              "--device", "cpu", "--quiet", "--seed", "5", "--set", "width=4", "--set", "drop=0.0"]
    # (dropout would draw different masks in each process than in one)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    two = archdsl(*common, "--nproc", "2", "--out", str(tmp_path / "two"), env=env)
    one = archdsl(*common, "--out", str(tmp_path / "one"), env=env)
    finish(two)
    finish(one)
    a, b = weights(tmp_path / "one" / "model.pt"), weights(tmp_path / "two" / "model.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    assert not torch.equal(a["fc.weight"], weights_at_init(tmp_path))


def weights_at_init(tmp_path):
    from archdsl import load
    torch.manual_seed(5)
    return load(TINY, width=4, drop=0.0).state_dict()["fc.weight"]


@pytest.fixture
def finished_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", TINY, "--data", "shapes:128", "--epochs", "1", "--batch-size", "32",
                 "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    return out


def test_truncated_checkpoint_is_refused(finished_run, capsys):
    checkpoint = finished_run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:2000])
    before = digest(checkpoint)
    code = main(["train", TINY, "--data", "shapes:128", "--epochs", "2", "--out",
                 str(finished_run), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "truncated or corrupted" in err and "Traceback" not in err
    assert digest(checkpoint) == before


def test_checkpoint_of_another_network_is_refused(finished_run, capsys):
    before = digest(finished_run / "checkpoint.pt")
    code = main(["train", TINY, "--set", "width=4", "--data", "shapes:128", "--epochs", "2",
                 "--out", str(finished_run), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "written for another network" in err
    assert digest(finished_run / "checkpoint.pt") == before


def test_existing_run_is_not_overwritten(finished_run, capsys):
    before = digest(finished_run / "model.pt")
    code = main(["train", TINY, "--data", "shapes:128", "--out", str(finished_run), "--quiet"])
    assert code == 2 and "--resume" in capsys.readouterr().err
    assert digest(finished_run / "model.pt") == before


def test_a_folder_that_is_not_a_run_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    mine = {"model.pt": b"mine", "best.pt": b"mine", "curves.png": b"mine",
            "metrics.csv": b"mine", "metrics.jsonl": b"mine\n"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    code = main(["train", TINY, "--data", "shapes:128", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "archdsl did not write" in err and "--out" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == mine


def test_out_at_a_file_says_it_is_a_file(tmp_path, capsys):
    (tmp_path / "run").write_text("mine")
    code = main(["train", TINY, "--data", "shapes:128", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "is a file, not a folder" in err
    assert (tmp_path / "run").read_text() == "mine"


def test_a_run_without_a_manifest_is_still_resumed(finished_run, capsys):
    (finished_run / ".archdsl-manifest.json").unlink()  # a run of an earlier archdsl
    code = main(["train", TINY, "--data", "shapes:128", "--epochs", "2", "--batch-size", "32",
                 "--out", str(finished_run), "--resume", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert (finished_run / ".archdsl-manifest.json").is_file()


def test_class_count_mismatch_says_how_to_fix(tmp_path, capsys):
    code = main(["train", TINY, "--set", "classes=10", "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "the data has 6 classes" in err and "--set classes=6" in err
    assert not (tmp_path / "x").exists()


def test_missing_data_folder(tmp_path, capsys):
    code = main(["train", TINY, "--data", f"folder:{tmp_path / 'nope'}",
                 "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_folder_data_eval_and_run(finished_run, tmp_path, capsys):
    from PIL import Image
    from archdsl.runtime.data import SHAPES, shapes_split
    images, labels = shapes_split(12, (3, 16, 16), 1, "val").batch(list(range(12)))
    pixels = ((images * 0.25 + 0.5).clamp(0, 1) * 255).byte().permute(0, 2, 3, 1).numpy()
    for i, (array, label) in enumerate(zip(pixels, labels)):
        folder = tmp_path / "data" / SHAPES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(folder / f"{i}.png")
    assert main(["eval", TINY, "--weights", str(finished_run / "model.pt"),
                 "--data", f"folder:{tmp_path / 'data'}"]) == 0
    assert "accuracy" in capsys.readouterr().out
    first = next((tmp_path / "data").rglob("*.png"))
    assert main(["run", TINY, "--weights", str(finished_run / "checkpoint.pt"), str(first),
                 "--top-k", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(first) and len(out) == 4
    assert any(name in out[1] for name in SHAPES)


def test_cifar10_batches(tmp_path, capsys):
    import pickle
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    generator = torch.Generator().manual_seed(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = torch.randint(0, 256, (20, 3072), generator=generator, dtype=torch.uint8)
        labels = torch.randint(0, 10, (20,), generator=generator).tolist()
        with open(root / name, "wb") as stream:
            pickle.dump({b"data": data.numpy(), b"labels": labels}, stream)
    out = tmp_path / "run"
    assert main(["train", TINY, "--set", "classes=10", "--data", f"cifar10:{root}",
                 "--epochs", "1", "--batch-size", "20", "--out", str(out), "--quiet"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["classes"][:2] == ["airplane", "automobile"]
    (root / "test_batch").unlink()
    code = main(["eval", TINY, "--set", "classes=10", "--weights", str(out / "model.pt"),
                 "--data", f"cifar10:{root}"])
    assert code == 2 and "lacks the CIFAR-10 python batches test_batch" in capsys.readouterr().err


def test_resume_may_extend_epochs_but_not_change_the_data(finished_run, capsys):
    before = digest(finished_run / "checkpoint.pt")
    code = main(["train", TINY, "--data", "shapes:128", "--epochs", "2", "--batch-size", "16",
                 "--out", str(finished_run), "--resume", "--quiet"])
    assert code == 2 and "--batch-size 32, not 16" in capsys.readouterr().err
    assert digest(finished_run / "checkpoint.pt") == before
    first = weights(finished_run / "model.pt")
    assert main(["train", TINY, "--data", "shapes:128", "--epochs", "2", "--batch-size", "32",
                 "--out", str(finished_run), "--resume", "--quiet"]) == 0
    assert [row["epoch"] for row in read_epochs(finished_run / "metrics.jsonl")] == [1, 2]
    assert not torch.equal(first["fc.weight"], weights(finished_run / "model.pt")["fc.weight"])


def test_eval_uses_the_input_shape_the_checkpoint_was_trained_with(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", TINY, "--input", "3x24x24", "--data", "shapes:64", "--epochs", "1",
                 "--batch-size", "32", "--out", str(out), "--quiet"]) == 0
    assert main(["eval", TINY, "--weights", str(out / "checkpoint.pt"), "--data", "shapes:64"]) == 0
    assert main(["eval", TINY, "--weights", str(out / "model.pt"), "--data", "shapes:64"]) == 2
    assert "pass the --set and --input options" in capsys.readouterr().err


def _cifar_root(tmp_path, protocol=2):
    import pickle
    root = tmp_path / "cifar"
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = torch.zeros(4, 3072, dtype=torch.uint8).numpy()
        with open(root / name, "wb") as stream:
            pickle.dump({b"data": data, b"labels": [0, 1, 2, 3]}, stream, protocol=protocol)
    return root


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_batches_of_any_pickle_protocol_load(tmp_path, protocol):
    from archdsl.runtime.data import open_source
    train_split, val_split = open_source(f"cifar10:{_cifar_root(tmp_path, protocol)}", (3, 32, 32), 0)
    assert len(train_split) == 20 and len(val_split) == 4


def test_a_crafted_cifar_batch_runs_no_code_and_is_exit_2(tmp_path, capsys):
    import pickle
    root = _cifar_root(tmp_path)
    marker = tmp_path / "pwned"
    (root / "data_batch_3").write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": []}))
    code = main(["train", TINY, "--data", f"cifar10:{root}", "--set", "classes=10",
                 "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "data_batch_3 is not a CIFAR-10 batch" in err and "posix.system" in err
    assert not marker.exists()
    (root / "data_batch_3").write_bytes((root / "data_batch_2").read_bytes()[:100])
    code = main(["train", TINY, "--data", f"cifar10:{root}", "--set", "classes=10",
                 "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2 and "data_batch_3 is not a CIFAR-10 batch" in capsys.readouterr().err


RESUMABLE = dict(data="shapes:320", epochs=2, batch_size=32, checkpoint_every=3, seed=1,
                 progress=False)


def _interrupt_after(monkeypatch, steps: int):
    from archdsl.runtime.train import _Run
    original, calls = _Run._step, []

    def step(self, x, y):
        calls.append(1)
        if len(calls) > steps:
            raise KeyboardInterrupt
        return original(self, x, y)
    monkeypatch.setattr(_Run, "_step", step)
    return lambda: monkeypatch.setattr(_Run, "_step", original)


@pytest.mark.parametrize("workers", [0, 1])
def test_resume_mid_epoch_is_exact_for_any_worker_count(tmp_path, monkeypatch, workers):
    train(TrainConfig(TINY, out=str(tmp_path / "straight"), workers=workers, **RESUMABLE))
    restore = _interrupt_after(monkeypatch, 13)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(TINY, out=str(tmp_path / "cut"), workers=workers, **RESUMABLE))
    restore()
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["position"] == \
        {"epoch": 1, "step": 2, "global_step": 12}
    train(TrainConfig(TINY, out=str(tmp_path / "cut"), workers=workers, resume="last", **RESUMABLE))
    straight, resumed = weights(tmp_path / "straight" / "model.pt"), weights(tmp_path / "cut" / "model.pt")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert [row["epoch"] for row in read_epochs(tmp_path / "cut" / "metrics.jsonl")] == [1, 2]
    steps = {name: [row for row in map(json.loads, (tmp_path / name / "metrics.jsonl").open())
                    if row["kind"] == "step"] for name in ("straight", "cut")}
    assert steps["cut"] == steps["straight"] and len(steps["cut"]) == 20  # none twice


def test_a_flipped_bit_in_a_checkpoint_is_refused(finished_run, tmp_path, capsys):
    data = bytearray((finished_run / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the payload's tensors
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    code = main(["train", TINY, "--data", "shapes:128", "--epochs", "3", "--batch-size", "32",
                 "--out", str(tmp_path / "again"), "--resume", str(damaged), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and ("damaged" in err or "not readable" in err), err


def test_resume_a_finished_run_into_a_new_directory(finished_run, tmp_path, capsys):
    out = tmp_path / "continued"
    assert main(["train", TINY, "--data", "shapes:128", "--epochs", "1", "--batch-size", "32",
                 "--out", str(out), "--resume", str(finished_run / "checkpoint.pt"),
                 "--quiet"]) == 0
    assert (out / "metrics.jsonl").read_text() == (finished_run / "metrics.jsonl").read_text()
    assert (out / "curves.png").exists() and (out / "model.pt").exists()


def test_two_runs_into_one_directory_are_refused(tmp_path, capsys):
    from archdsl.files import claim_directory
    from archdsl.runtime.train import RUN_FILES, _lock
    claim_directory(tmp_path / "run", "training run", RUN_FILES)  # as the first run does
    held = _lock(tmp_path / "run")
    try:
        code = main(["train", TINY, "--data", "shapes:64", "--epochs", "1", "--batch-size", "16",
                     "--out", str(tmp_path / "run"), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and f"(pid {os.getpid()}) is writing to" in err
    finally:
        held.close()


def test_batch_norm_on_single_values_needs_a_batch_of_two(tmp_path, capsys):
    spec = tmp_path / "bn.arch"
    spec.write_text("network bn { input image: 3 x 16 x 16; conv(4, 3); global_avgpool; "
                    "batchnorm; flatten; linear(6) }")
    code = main(["train", str(spec), "--data", "shapes:64", "--batch-size", "1", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2 and "use --batch-size 2 or more" in capsys.readouterr().err


def test_metrics_that_cannot_be_written_name_the_file():
    from archdsl.runtime.runlog import append
    with pytest.raises(OSError) as error:
        append(__import__("pathlib").Path("/dev/full"), [{"epoch": 1}])
    assert error.value.filename == "/dev/full"


# ---- values of other ranks: signals (waves), tokens, clips (shapes that move) ----------------

SIGNAL_NET = """network waves_net(classes = 6) {
    input wave: 1 x 256 as signal
    conv(16, 9, stride = 2, pad = 4); batchnorm; relu; maxpool(4)
    conv(32, 3, pad = 1); batchnorm; relu
    global_avgpool; flatten; linear(classes)
}"""
TOKEN_NET = """network token_net(classes = 6) {
    input image: 3 x 16 x 16
    param cls: 1 x 32
    conv(32, 4, stride = 4); flatten(1, 2); p: transpose(0, 1)
    t: concat(cls, p, axis = 0)
    param pos: 17 x 32 = normal(std = 0.02)
    add(t, pos)
    residual { layernorm; attention(4) }
    residual { layernorm; linear(64); gelu; linear(32) }
    layernorm; take(0); linear(classes)
}"""
CLIP_NET = """network clip_net(classes = 6) {
    input clip: 3 x 4 x 16 x 16
    conv(8, (1, 3, 3), pad = (0, 1, 1)); batchnorm; relu; maxpool((1, 2, 2))
    conv(16, 3, pad = 1); batchnorm; relu
    global_avgpool; flatten; linear(classes)
}"""


def _spec(tmp_path, text: str) -> str:
    path = tmp_path / "net.arch"
    path.write_text(text)
    return str(path)


def test_a_1d_network_learns_the_waves(tmp_path):
    history = train(TrainConfig(_spec(tmp_path, SIGNAL_NET), data="waves:480", epochs=4,
                                batch_size=32, lr=3e-3, out=str(tmp_path / "run"),
                                progress=False))
    assert history[-1]["val_acc"] > 0.5  # six classes: chance is 1/6


@pytest.mark.parametrize("text", [TOKEN_NET, CLIP_NET], ids=["tokens", "clips"])
def test_transformers_and_3d_networks_train(tmp_path, text):
    history = train(TrainConfig(_spec(tmp_path, text), data="shapes:96", epochs=2,
                                batch_size=16, out=str(tmp_path / "run"), progress=False))
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)
    assert (tmp_path / "run" / "model.pt").exists()


def test_waves_for_an_image_network_say_what_input_they_need(tmp_path, capsys):
    code = main(["train", TINY, "--data", "waves", "--out", str(tmp_path / "x"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "as signal" in err and "Traceback" not in err


BN_NET = """network bn_net(classes = 6) {
    input image: 3 x 16 x 16
    conv(8, 3, pad = 1, bias = false); batchnorm; relu; maxpool(2)
    conv(16, 3, pad = 1, bias = false); batchnorm; relu
    global_avgpool; flatten; linear(classes)
}"""


@pytest.mark.slow
def test_sync_batch_norm_over_two_gloo_processes_equals_one_process(tmp_path):
    spec = _spec(tmp_path, BN_NET)
    common = ["train", spec, "--data", "shapes:256", "--epochs", "1", "--batch-size", "32",
              "--device", "cpu", "--quiet", "--seed", "2"]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    runs = {"one": archdsl(*common, "--out", str(tmp_path / "one"), env=env),
            "sync": archdsl(*common, "--nproc", "2", "--sync-bn", "--out", str(tmp_path / "sync"),
                            env=env),
            "local": archdsl(*common, "--nproc", "2", "--out", str(tmp_path / "local"), env=env)}
    for process in runs.values():
        finish(process)
    one, sync, local = (weights(tmp_path / name / "model.pt") for name in ("one", "sync", "local"))
    assert one.keys() == sync.keys()
    for key in one:  # weights and running statistics alike
        torch.testing.assert_close(one[key], sync[key], atol=1e-5, rtol=1e-4)
    # without --sync-bn each process normalises by its own 16 images: the runs part
    assert any(not torch.allclose(one[k], local[k], atol=1e-5, rtol=1e-4) for k in one)


def test_a_checkpoint_missing_weights_is_refused_on_resume(finished_run, capsys):
    from archdsl.runtime.checkpoint import load_checkpoint, pack
    checkpoint = finished_run / "checkpoint.pt"
    state = load_checkpoint(checkpoint)
    state["model"].pop(next(iter(state["model"])))
    checkpoint.write_bytes(pack(state))
    code = main(["train", TINY, "--data", "shapes:128", "--epochs", "2", "--batch-size", "32",
                 "--out", str(finished_run), "--resume", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "do not fit the network" in err, err


def test_a_run_with_warm_up_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", TINY, "--data", "shapes:128", "--batch-size", "32", "--warmup", "0.5",
              "--out", str(out), "--quiet"]
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "2", "--resume"]) == 0, capsys.readouterr().err
    assert [row["epoch"] for row in read_epochs(out / "metrics.jsonl")] == [1, 2]
