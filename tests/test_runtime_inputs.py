"""Files the runtime reads that it did not write as they are: checkpoints changed in their
structure, and images too large, damaged or not images at all. Each is refused with the
runtime's own error, naming the file and what is wrong, never a KeyError deep inside."""
from __future__ import annotations

import io
import struct
import zlib

import pytest

torch = pytest.importorskip("torch")

from archdsl.cli import main  # noqa: E402
from archdsl.runtime.checkpoint import CheckpointError, load_checkpoint, load_weights, pack  # noqa: E402
from archdsl.runtime.train import TrainConfig, train  # noqa: E402

from conftest import ROOT  # noqa: E402

TINY = str(ROOT / "tests" / "data" / "tiny_classifier.arch")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished one-epoch run: checkpoint.pt, best.pt, last.pt, model.pt."""
    out = tmp_path_factory.mktemp("inputs") / "run"
    train(TrainConfig(TINY, data="shapes:64", epochs=1, batch_size=32, out=str(out),
                      progress=False))
    return out


# ---- checkpoints ---------------------------------------------------------------------------

# One value of each kind a torch.load(weights_only=True) can give back.
WRONG = (None, 7, 2.5, "x", [1], {1: "x"}, torch.zeros(2))
# The other kinds of value that writers give some places: None for no preprocessing
# recorded, no EMA or no best epoch yet; a ratio or None (stretch) for `resize`.
ALSO = {("preprocess",): (type(None),), ("ema",): (type(None),), ("best", "value"): (type(None),),
        ("preprocess", "resize"): (type(None), int, float)}
# Dicts whose entries are open: a state_dict without one of the network's tensors is
# refused when the model is built (it does not fit), a run option missing from `config`
# takes its default and one of another type is compared with the command line's like any
# other (tests/test_train.py), and GradScaler's and LambdaLR's extras are optional.
OPEN = {"model", "config", "scaler"}
OPTIONAL = {("scheduler", key) for key in ("_step_count", "_last_lr", "_is_initial",
                                           "_get_lr_called_within_step", "verbose")} | \
    {("metrics", key) for key in ("global_step", "val_top5", "lr", "images_per_s", "seconds")}


def mutations(state: dict):
    """(what changed, state) for each structural change: every key deleted, every value
    replaced by one of each other kind, at the top level and one level down."""
    for key, value in state.items():
        yield f"without {key}", {k: v for k, v in state.items() if k != key}
        for wrong in _other_kinds(value, (key,)):
            yield f"{key} = {wrong!r}", {**state, key: wrong}
        if isinstance(value, dict) and key != "config":
            for inner, item in value.items():
                if key not in OPEN and (key, inner) not in OPTIONAL:
                    yield f"without {key}.{inner}", {**state, key: {k: v for k, v in value.items()
                                                                   if k != inner}}
                for wrong in _other_kinds(item, (key, inner)):
                    yield f"{key}.{inner} = {wrong!r}", {**state, key: {**value, inner: wrong}}


def _other_kinds(value, where: tuple):
    for wrong in WRONG:
        same = type(wrong) is type(value) or (isinstance(value, float) and type(wrong) is int)
        if not same and not isinstance(wrong, ALSO.get(where, ())):
            yield wrong


@pytest.mark.parametrize("name", ["checkpoint.pt", "best.pt"])
def test_the_checkpoints_a_run_writes_load(run, name):
    state = load_checkpoint(run / name)
    weights, trained = load_weights(run / name)
    assert state["kind"] == ("training" if name == "checkpoint.pt" else "weights")
    assert weights.keys() == state["model"].keys() and trained["spec"] == state["spec"]


@pytest.mark.parametrize("name", ["checkpoint.pt", "best.pt"])
def test_every_structural_change_to_a_checkpoint_is_a_checkpoint_error(run, name, tmp_path):
    state = load_checkpoint(run / name)
    changed = tmp_path / name
    accepted, other = [], []
    for what, mutated in mutations(state):
        changed.write_bytes(pack(mutated))
        for reader in (load_checkpoint, load_weights):
            try:
                reader(changed)
                accepted.append(f"{reader.__name__}: {what}")
            except CheckpointError as error:
                assert str(error).startswith(f"{changed} is not laid out"), str(error)
            except Exception as error:
                other.append(f"{reader.__name__}: {what}: {type(error).__name__}: {error}")
    assert not other, "\n".join(other)
    assert not accepted, "\n".join(accepted)


def test_a_checkpoint_error_says_where_and_what(run, tmp_path):
    state = load_checkpoint(run / "checkpoint.pt")
    changed = tmp_path / "changed.pt"
    cases = {"spec": ({**state, "spec": "resnet18.arch"}, "`spec` should be a dict, not a str"),
             "history": ({**state, "history": "1,2"}, "`history` should be a list, not a str"),
             "position": ({**state, "position": {"epoch": 1, "step": 0}},
                          "`position.global_step` is missing"),
             "model": ({**state, "model": [1]}, "`model` should be a dict, not a list"),
             "kind": ({**state, "kind": "optimizer"}, "`kind` is 'optimizer', not one of")}
    for what, (mutated, message) in cases.items():
        changed.write_bytes(pack(mutated))
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(changed)
        assert str(caught.value).startswith(str(changed)) and message in str(caught.value), what


def test_a_checkpoint_from_before_kinds_still_loads(run, tmp_path):
    state = load_checkpoint(run / "checkpoint.pt")
    older = {k: v for k, v in state.items() if k not in ("kind", "preprocess", "best", "ema")}
    older["history"] = [{k: v for k, v in row.items() if k != "global_step"}
                        for row in state["history"]]
    path = tmp_path / "older.pt"
    path.write_bytes(pack(older))
    assert load_checkpoint(path)["position"] == state["position"]
    path.write_bytes(pack({**older, "preprocess": state["preprocess"]}))  # kind deleted
    with pytest.raises(CheckpointError, match="`kind` is missing"):
        load_checkpoint(path)


def test_a_run_with_ema_must_carry_its_averaged_weights(run, tmp_path):
    state = load_checkpoint(run / "checkpoint.pt")
    path = tmp_path / "ema.pt"
    path.write_bytes(pack({**state, "config": {**state["config"], "ema": 0.999}}))
    with pytest.raises(CheckpointError, match="`ema` is None, but `config.ema` is 0.999"):
        load_checkpoint(path)


@pytest.mark.parametrize("saved", [[1, 2], {"fc.weight": [1.0]}, {0: torch.zeros(1)}, "weights"])
def test_a_weights_file_that_is_not_a_state_dict_is_refused(tmp_path, saved):
    path = tmp_path / "model.pt"
    torch.save(saved, path)
    with pytest.raises(CheckpointError, match="neither an archdsl checkpoint nor a state_dict"):
        load_weights(path)


def test_init_from_a_file_that_is_not_a_state_dict_is_exit_2(tmp_path, capsys):
    torch.save([1, 2], tmp_path / "odd.pt")
    code = main(["train", TINY, "--data", "shapes:64", "--epochs", "1", "--init",
                 str(tmp_path / "odd.pt"), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "odd.pt is neither an archdsl checkpoint nor a state_dict" in err, err


# ---- images -------------------------------------------------------------------------------


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` pixels (its CRC made to match)."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.new("1", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's first fields, after its tag
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def classify(run, image, capsys) -> tuple[int, str]:
    code = main(["run", TINY, "--weights", str(run / "best.pt"), str(image)])
    return code, capsys.readouterr().err


def test_an_image_too_large_to_decode_is_one_line_and_exit_2(run, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(20000, 20000))
    assert len(bomb.read_bytes()) < 100
    code, err = classify(run, bomb, capsys)
    lines = [line for line in err.splitlines() if line.startswith("archdsl")]
    assert code == 2 and len(lines) == 1, err
    assert f"cannot read image {bomb}: it is too large to decode (400,000,000 pixels" in lines[0]


def _noise_png() -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("kind, contents, reason", [
    ("truncated", lambda: _noise_png()[:6000], "image file is truncated"),
    ("text", lambda: b"hello, not an image\n", "not an image file Pillow knows"),
    ("bad_header", lambda: b"P6\n40\xb8\xed\x0fB255\n" + bytes(64), "invalid literal"),
    ("folder", None, "Is a directory"),
    ("missing", False, "No such file or directory"),
])
def test_an_unreadable_image_is_one_line_and_exit_2(run, tmp_path, capsys, kind, contents, reason):
    path = tmp_path / f"{kind}.{'ppm' if kind == 'bad_header' else 'png'}"
    if contents is None:
        path.mkdir()
    elif contents:
        path.write_bytes(contents())
    code, err = classify(run, path, capsys)
    assert code == 2 and err.startswith(f"archdsl: error: cannot read image {path}: {reason}"), err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err
