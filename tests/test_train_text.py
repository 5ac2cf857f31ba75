"""Language models train on byte-level text (`--data text[:FILE]`): windows of bytes
labelled with the next byte, per-token loss and perplexity, and `generate --text` from
the checkpoint."""
from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from archdsl.cli import main  # noqa: E402
from archdsl.ops.shapes import Shape  # noqa: E402
from archdsl.runtime.data import DataError, open_source, shipped_text, text_splits  # noqa: E402
from archdsl.runtime.runlog import read_epochs  # noqa: E402

from conftest import ROOT  # noqa: E402

GPT2 = str(ROOT / "specs" / "gpt2.arch")
TINY_GPT = ["--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=2",
            "--set", "n_positions=32", "--set", "L=32", "--set", "embd_pdrop=0",
            "--set", "attn_pdrop=0", "--set", "resid_pdrop=0"]


def ids(length: int) -> Shape:
    return Shape((length,), "L", "int")


def test_windows_are_labelled_with_the_next_byte_and_the_last_tenth_is_held_out(tmp_path):
    text = bytes(range(256)) * 4  # 1024 bytes: 922 to train on, 102 held out
    path = tmp_path / "t.txt"
    path.write_bytes(text)
    train, val = text_splits(path, ids(10))
    assert (len(train), len(val)) == ((922 - 1) // 10, (102 - 1) // 10)
    x, y = train.load([0, 3])
    assert x.dtype == torch.long and x.shape == (2, 10)
    assert x[1].tolist() == list(text[30:40]) and y[1].tolist() == list(text[31:41])
    x, y = val.load([0])
    assert x[0].tolist() == list(text[922:932]) and y[0].tolist() == list(text[923:933])
    assert train.tokens and train.preprocess is None


def test_the_shipped_text_is_the_default():
    train, val = open_source("text", ids(64), 0)
    first, _ = train.load([0])
    assert bytes(first[0].tolist()) == shipped_text().read_bytes()[:64]
    assert bytes(first[0].tolist()).startswith(b"First Citizen:")
    assert len(train) > 10 * len(val) // 2


def test_text_data_refuses_what_it_cannot_feed(tmp_path):
    with pytest.raises(DataError, match="`L as token_ids`"):
        open_source("text", Shape((3, 32, 32)), 0)
    with pytest.raises(DataError, match="does not exist"):
        open_source(f"text:{tmp_path / 'missing.txt'}", ids(8), 0)
    (tmp_path / "short.txt").write_text("to be or not to be")
    with pytest.raises(DataError, match="too few"):
        open_source(f"text:{tmp_path / 'short.txt'}", ids(8), 0)
    with pytest.raises(DataError, match="--data text"):  # token ids and an image source
        open_source("shapes", ids(8), 0)


def test_a_tiny_gpt_learns_the_text_and_generates_from_its_checkpoint(tmp_path, capsys):
    corpus = tmp_path / "play.txt"
    corpus.write_bytes(shipped_text().read_bytes()[:40_000])
    out = tmp_path / "run"
    assert main(["train", GPT2, *TINY_GPT, "--data", f"text:{corpus}", "--epochs", "3",
                 "--batch-size", "16", "--optimizer", "adamw", "--lr", "3e-3",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "vocab_size = 256, the byte values of text" in printed
    assert "perplexity" in printed and "tokens/s" in printed
    epochs = read_epochs(out / "metrics.jsonl")
    assert epochs[-1]["val_ppl"] == pytest.approx(math.exp(epochs[-1]["val_loss"]))
    assert epochs[-1]["val_ppl"] < epochs[0]["val_ppl"] < 256  # better than chance, and learning
    assert main(["eval", GPT2, "--weights", str(out / "best.pt"), "--data",
                 f"text:{corpus}"]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["generate", GPT2, "--weights", str(out / "best.pt"), "--text", "ROMEO:",
                 "--max-new-tokens", "20", "--temperature", "0.8", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.encode()) >= len("ROMEO:") + 1


def test_a_text_prompt_needs_a_byte_level_model(capsys):
    code = main(["generate", str(ROOT / "tests" / "data" / "tiny_llama.arch"), "--set",
                 "vocab=128", "--text", "hé"])  # é is two bytes past 127
    assert code == 2
    assert "--text is for byte-level models" in capsys.readouterr().err


def test_an_output_that_is_not_next_byte_logits_is_refused(tmp_path, capsys):
    code = main(["train", GPT2, *TINY_GPT, "--set", "vocab_size=100", "--data", "text",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    assert "must give 32 x V next-token logits with V at least 256" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_small_gpt_learns_shakespeare_in_a_few_cpu_minutes(tmp_path, capsys):
    """The README's figure, smaller: 4 layers of 128 on 64-byte windows of the shipped
    text, 6 epochs (about 70 s on 2 cores), reach a validation perplexity below 9 (8.10
    measured; chance: 256; a unigram model of the text: about 27)."""
    out = tmp_path / "run"
    assert main(["train", GPT2, "--data", "text", "--set", "n_layer=4", "--set", "n_embd=128",
                 "--set", "n_head=4", "--set", "n_positions=64", "--set", "L=64",
                 "--set", "embd_pdrop=0", "--set", "attn_pdrop=0", "--set", "resid_pdrop=0",
                 "--epochs", "6", "--batch-size", "32", "--optimizer", "adamw", "--lr", "2e-3",
                 "--best-metric", "val_loss", "--out", str(out), "--quiet"]) == 0
    best = min(row["val_ppl"] for row in read_epochs(out / "metrics.jsonl"))
    assert best < 9.0, best
