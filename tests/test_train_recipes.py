"""What `archdsl train` does beyond the loop: augmentation (train inputs only), the
preprocessing and class names a checkpoint carries, best.pt / last.pt, early stopping,
EMA, metric files and TensorBoard, class count from the data, recipes, and eval/run with
torchvision-style weights."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import archdsl  # noqa: E402
from archdsl.cli import main  # noqa: E402
from archdsl.runtime import recipes, transforms  # noqa: E402
from archdsl.runtime.checkpoint import load_checkpoint  # noqa: E402
from archdsl.runtime.data import open_source  # noqa: E402
from archdsl.runtime.predict import evaluate  # noqa: E402
from archdsl.runtime.loader import Loader  # noqa: E402
from archdsl.runtime.runlog import Progress, curves_figure, read_epochs  # noqa: E402
from archdsl.runtime.train import TrainConfig, train  # noqa: E402

from conftest import ROOT  # noqa: E402

TINY = str(ROOT / "tests" / "data" / "tiny_classifier.arch")
PHOTO = ROOT / "tests" / "data" / "photo.png"
QUICK = dict(data="shapes:96", batch_size=32, progress=False)


def weights_of(path):
    return load_checkpoint(path)["model"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- augmentation and preprocessing ---------------------------------------------------------


def test_augmentation_changes_training_inputs_but_not_eval_inputs():
    split, _ = open_source("shapes:64", (3, 16, 16), 0)
    indices = list(range(8))
    plain, _ = split.batch(indices)

    def first_batch(name):
        loader = Loader(split, transforms.policy(name, split.crop_scale), split.preprocess,
                        seed=0, batch_size=8, rank=0, world=1, workers=0, pin_memory=False)
        loader.items = lambda epoch, first: [(epoch, 0, indices)]
        return next(iter(loader.epoch(0, 0)))[1][0]

    assert torch.equal(first_batch("none"), plain)
    basic = first_batch("basic")
    assert basic.shape == plain.shape and not torch.equal(basic, plain)
    assert torch.equal(first_batch("basic"), basic)  # a function of (seed, epoch, step)
    assert not torch.equal(first_batch("trivial"), basic)
    assert torch.equal(split.batch(indices)[0], plain)  # evaluation never augments


def test_eval_view_resizes_then_cuts_the_centre():
    image = torch.zeros(3, 100, 200)
    image[:, :, 90:110] = 1.0  # a bright vertical band in the middle
    out = transforms.view(image, (32, 32), transforms.IMAGENET)
    assert out.shape == (3, 32, 32)
    assert out[:, :, 16].min() > 0.9 and out[:, :, 0].max() < 0.05  # centre kept, not squashed


def test_mixup_and_cutmix_give_soft_targets_that_sum_to_one():
    x = torch.rand(8, 3, 16, 16)
    y = torch.arange(8) % 6
    for mixup, cutmix in ((0.4, 0.0), (0.0, 1.0)):
        mixed, soft = transforms.mix(x, y, 6, mixup, cutmix, torch.Generator().manual_seed(1))
        assert not torch.equal(mixed, x) and soft.shape == (8, 6)
        torch.testing.assert_close(soft.sum(1), torch.ones(8))


def test_no_weight_decay_on_norms_and_biases_unless_asked():
    model = archdsl.load(TINY)
    decay, no_decay = recipes.parameter_groups(model, 0.05, decay_all=False)
    assert {p.dim() for p in no_decay["params"]} == {1} and no_decay["weight_decay"] == 0
    assert all(p.dim() > 1 for p in decay["params"])
    assert len(recipes.parameter_groups(model, 0.05, decay_all=True)) == 1


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_the_optimizer_runs_fused_and_steps_as_torchs_default_loop(name):
    torch.manual_seed(0)
    ours, theirs = archdsl.load(TINY).eval(), archdsl.load(TINY).eval()  # eval: no dropout
    theirs.load_state_dict(ours.state_dict())
    fast = recipes.optimizer(ours, name, 0.01, 0.05)
    groups = recipes.parameter_groups(theirs, 0.05, decay_all=False)
    plain = (torch.optim.AdamW(groups, lr=0.01, foreach=False) if name == "adamw" else
             torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True, foreach=False))
    assert fast.defaults["fused"] and not plain.defaults["fused"]
    x = torch.randn(4, 3, 16, 16)
    for _ in range(3):
        for model, optimizer in ((ours, fast), (theirs, plain)):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    for (key, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=key)


# ---- checkpoints ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("best") / "run"
    history = train(TrainConfig(TINY, epochs=3, lr=2e-2, schedule="none", out=str(out),
                                best_metric="val_loss", **QUICK))
    return out, history


def test_best_pt_holds_the_best_epochs_weights(three_epochs):
    out, history = three_epochs
    best_epoch = min(history, key=lambda h: h["val_loss"])["epoch"]
    saved = load_checkpoint(out / "best.pt")
    assert saved["epoch"] == best_epoch
    model = archdsl.load_checkpoint(out / "best.pt")
    _, val = open_source("shapes:96", (3, 16, 16), 0)
    result = evaluate(model, val, "cpu", 32, preprocess=model.preprocess)
    assert result["loss"] == pytest.approx(history[best_epoch - 1]["val_loss"], rel=1e-5)
    assert load_checkpoint(out / "last.pt")["epoch"] == 3
    assert same(weights_of(out / "last.pt"), load_checkpoint(out / "checkpoint.pt")["model"])


def test_a_checkpoint_alone_rebuilds_the_model_and_its_preprocessing(three_epochs):
    out, _ = three_epochs
    model = archdsl.load_checkpoint(out / "best.pt")
    assert model.classes == ("circle", "square", "triangle", "cross", "ring", "bar")
    assert model.preprocess == transforms.PLAIN and not model.training
    assert same(model.state_dict(), weights_of(out / "best.pt"))
    with pytest.raises(archdsl.UsageError, match="bare state_dict"):
        archdsl.load_checkpoint(out / "model.pt")


def test_early_stop_stops(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", TINY, "--data", "shapes:96", "--batch-size", "32", "--epochs", "6",
                 "--lr", "1e-12", "--early-stop", "1", "--out", str(out)]) == 0
    assert "early stop: val_acc has not improved for 1 epochs" in capsys.readouterr().out
    assert [row["epoch"] for row in read_epochs(out / "metrics.jsonl")] == [1, 2]
    assert load_checkpoint(out / "best.pt")["epoch"] == 1


def test_ema_weights_differ_from_raw_and_are_what_best_pt_holds(tmp_path):
    out = tmp_path / "run"
    train(TrainConfig(TINY, epochs=1, lr=1e-2, ema=0.5, out=str(out), **QUICK))
    state = load_checkpoint(out / "checkpoint.pt")
    ema = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    assert not same(ema, state["model"])
    assert same(weights_of(out / "best.pt"), ema)


def test_preprocessing_and_labels_round_trip_through_the_checkpoint(tmp_path, capsys):
    from PIL import Image
    for label in ("ball", "sky"):
        folder = tmp_path / "data" / label
        folder.mkdir(parents=True)
        for i in range(5):
            colour = (200, 180, 40 * i) if label == "ball" else (40 * i, 90, 200)
            Image.new("RGB", (24, 20), colour).save(folder / f"{i}.png")
    labels = tmp_path / "labels.txt"
    labels.write_text("ball a round ball\nsky the blue sky\n")
    out = tmp_path / "run"
    assert main(["train", TINY, "--data", f"folder:{tmp_path / 'data'}", "--set", "classes=2",
                 "--batch-size", "4", "--epochs", "1", "--labels", str(labels),
                 "--out", str(out), "--quiet"]) == 0
    model = archdsl.load_checkpoint(out / "best.pt")
    assert model.preprocess == transforms.IMAGENET  # photos: ImageNet's statistics and crop
    assert model.classes == ("a round ball", "the blue sky")
    capsys.readouterr()
    assert main(["run", TINY, "--weights", str(out / "best.pt"), str(PHOTO), "--top-k", "1"]) == 0
    shown = capsys.readouterr().out.splitlines()[1]
    image = transforms.view(_pixels(PHOTO), (16, 16), transforms.IMAGENET)
    expected = model(transforms.normalise(image[None], transforms.IMAGENET)).softmax(1)[0]
    assert shown.split()[0] == f"{expected.max().item():.1%}"
    assert shown.endswith(model.classes[expected.argmax().item()])


def _pixels(path):
    from PIL import Image
    with Image.open(path) as image:
        return image.convert("RGB")


def test_class_count_is_taken_from_the_data_when_not_set(tmp_path, capsys):
    spec = tmp_path / "net.arch"
    spec.write_text("network net(classes = 1000) { input image: 3 x 16 x 16; conv(4, 3); relu; "
                    "global_avgpool; flatten; linear(classes) }")
    out = tmp_path / "run"
    assert main(["train", str(spec), "--data", "shapes:64", "--batch-size", "32", "--epochs", "1",
                 "--out", str(out)]) == 0
    assert "classes = 6, from the data (shapes:64)" in capsys.readouterr().out
    assert load_checkpoint(out / "best.pt")["spec"]["settings"] == {"classes": 6}
    assert archdsl.load_checkpoint(out / "best.pt")(torch.zeros(1, 3, 16, 16)).shape == (1, 6)


# ---- logging ------------------------------------------------------------------------------------


def test_metric_files_have_step_and_epoch_rows_and_a_csv(three_epochs):
    out, _ = three_epochs
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["global_step"] for r in rows if r["kind"] == "step"] == list(range(1, 10))
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1, 2, 3]
    csv = (out / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("epoch,train_loss,train_acc") and len(csv) == 4


def test_curves_have_whole_epoch_ticks():
    rows = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "train_acc": 0.5,
             "val_acc": 0.4} for e in (1, 2)]
    for axis in curves_figure(rows).axes:
        ticks = [t for t in axis.get_xticks() if 0.5 <= t <= 2.5]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_progress_off_a_terminal_prints_plain_lines():
    import io
    stream = io.StringIO()
    progress = Progress(True, 3, 0, "epoch 1", interval=0.0, stream=stream)
    for _ in range(3):
        progress.update(loss="0.5")
    progress.close()
    assert stream.getvalue().splitlines() == [f"epoch 1 step {i}/3: loss 0.5" for i in (1, 2, 3)]


def test_a_piped_run_has_no_progress_bar_redraws(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "archdsl", "train", TINY, "--data", "shapes:64", "--epochs", "1",
         "--batch-size", "32", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "\r" not in completed.stdout + completed.stderr
    assert "parameters" in completed.stdout and "global batch 32" in completed.stdout


def test_tensorboard_event_files_are_written_and_readable(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "run"
    train(TrainConfig(TINY, epochs=2, log=("tensorboard",), out=str(out), **QUICK))
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"epoch/val_acc", "epoch/train_loss", "step/loss"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("epoch/val_acc")] == [1, 2]
    assert len(events.Scalars("step/loss")) == 6


# ---- eval and run ---------------------------------------------------------------------------------


def test_eval_reports_top5_per_class_and_a_confusion_matrix(three_epochs, tmp_path, capsys):
    out, _ = three_epochs
    png = tmp_path / "confusion.png"
    assert main(["eval", TINY, "--weights", str(out / "best.pt"), "--data", "shapes:96",
                 "--confusion", str(png)]) == 0
    text = capsys.readouterr().out
    assert "top-5" in text and "per class: circle" in text
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_run_with_torchvision_weights_uses_imagenet_preprocessing_and_labels(tmp_path, capsys):
    spec = str(ROOT / "specs" / "squeezenet1_1.arch")
    torch.manual_seed(0)
    model = archdsl.load(spec).eval()
    weights = tmp_path / "squeezenet1_1-b8a52dc0.pth"  # torchvision's file name pattern
    torch.save(model.state_dict(), weights)
    labels = tmp_path / "imagenet_classes.txt"
    labels.write_text("".join(f"thing number {i}\n" for i in range(1000)))
    assert main(["run", spec, "--weights", str(weights), str(PHOTO), "--top-k", "2",
                 "--labels", str(labels)]) == 0
    lines = capsys.readouterr().out.splitlines()
    x = transforms.normalise(transforms.view(_pixels(PHOTO), (224, 224), transforms.IMAGENET)[None],
                             transforms.IMAGENET)
    with torch.no_grad():
        expected = model(x).softmax(1)[0].topk(2)
    assert lines[1].split()[0] == f"{expected.values[0].item():.1%}"
    assert lines[1].endswith(f"thing number {expected.indices[0].item()}")
    assert main(["run", spec, "--weights", str(weights), str(PHOTO), "--labels",
                 str(tmp_path / "missing.txt")]) == 2


def test_bad_recipe_values_are_usage_errors(tmp_path, capsys):
    for flags, message in ((["--ema", "1.5"], "--ema must be in [0, 1), not 1.5"),
                           (["--label-smoothing", "-1"], "--label-smoothing must be in [0, 1)"),
                           (["--early-stop", "-2"], "--early-stop must be at least 0"),
                           (["--data", "waves", "--augment", "basic"], "as signal")):
        code = main(["train", TINY, *flags, "--out", str(tmp_path / "x"), "--quiet"])
        assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_fine_tuning_starts_from_pretrained_weights_with_a_new_head(tmp_path, capsys):
    spec = tmp_path / "net.arch"
    spec.write_text("network net(classes = 1000) { input image: 3 x 16 x 16; body: conv(4, 3); "
                    "relu; global_avgpool; flatten; fc: linear(classes) }")
    torch.manual_seed(7)
    pretrained = archdsl.load(spec).state_dict()
    torch.save(pretrained, tmp_path / "net-0123abcd.pth")
    out = tmp_path / "run"
    assert main(["train", str(spec), "--init", str(tmp_path / "net-0123abcd.pth"), "--data",
                 "shapes:64", "--batch-size", "32", "--epochs", "1", "--lr", "1e-12",
                 "--out", str(out)]) == 0
    assert "initialised from" in capsys.readouterr().out
    tuned = load_checkpoint(out / "best.pt")["model"]
    torch.testing.assert_close(tuned["body.weight"], pretrained["body.weight"])  # kept
    assert tuned["fc.weight"].shape == (6, 4)  # a new head for the data's six classes


def test_warm_up_ramps_to_the_peak_and_the_schedule_still_ends_at_zero():
    from archdsl.runtime.recipes import scheduler
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([weight], lr=1.0)
    schedule = scheduler(opt, "cosine", total_steps=20, warmup_steps=5)
    rates = []
    for _ in range(20):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert rates[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert rates[5] == pytest.approx(1.0) and rates[5:] == sorted(rates[5:], reverse=True)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
