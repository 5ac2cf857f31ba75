"""Shared test helpers: paths, the reference figures, and golden files.

Golden files are re-recorded with ARCHDSL_UPDATE_GOLDEN=1, never by hand.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.arch"))
# Parameter and MAC totals of torchvision's models (copied from the project's reference
# figures, measured with FlopCounterMode; see its "_about").
REFERENCE = ROOT / "tests" / "data" / "torchvision_reference.json"
UPDATE = os.environ.get("ARCHDSL_UPDATE_GOLDEN") == "1"
os.environ["ARCHDSL_LINT"] = "1"  # the IR's invariants are checked after every pass


HF_ORACLE = ROOT / "tests" / "data" / "hf_oracle.json"


def hf_settings(name: str) -> dict:
    """The parameters of specs/NAME.arch for the small configuration transformers'
    model was recorded at in tests/data/hf_oracle.json: its config keys, its rope
    parameters flattened."""
    config = dict(json.loads(HF_ORACLE.read_text())["models"][name]["config"])
    if name == "ddpm_unet":
        return _unet_settings(config)
    rope = config.pop("rope_parameters", None) or {}
    for key in ("rope_scaling", "hidden_act", "activation_function"):
        config.pop(key, None)
    if name == "bert":  # BertModel has no head to tie
        config.pop("tie_word_embeddings")
    for key in ("rope_theta", "factor", "low_freq_factor", "high_freq_factor",
                "original_max_position_embeddings"):
        if key in rope:
            config[key] = rope[key]
    return {k: v for k, v in config.items() if v is not None}


# What specs/ddpm_unet.arch builds of diffusers' UNet2DModel config: these keys as they
# are (an oracle recorded with other values would need another spec).
UNET_FIXED = {"center_input_sample": False, "time_embedding_type": "positional",
              "time_embedding_dim": None, "mid_block_type": "UNetMidBlock2D",
              "mid_block_scale_factor": 1, "downsample_type": "conv", "upsample_type": "conv",
              "dropout": 0.0, "act_fn": "silu", "attn_norm_num_groups": None,
              "resnet_time_scale_shift": "default", "add_attention": True,
              "class_embed_type": None, "num_class_embeds": None, "num_train_timesteps": None}


def _unet_settings(config: dict) -> dict:
    for key, value in UNET_FIXED.items():
        assert config.pop(key) == value, f"the spec builds UNet2DModel with {key} = {value!r}"
    head_dim = config.pop("attention_head_dim")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()} | {
        "attention_head_dim": head_dim or 0}  # 0: diffusers' None, one head


# Settings under which tests build and run a shipped spec whose defaults are too large
# for a test (the language models' published sizes: up to 46.7 billion parameters).
BUILD_SETTINGS = {"unet": {"width": 8},  # 572x572 tiles take 150 GMACs each
                  **{name: hf_settings(name) | {"L": 16}
                     for name in ("gpt2", "llama", "qwen3", "mixtral", "mamba", "bert")},
                  "ddpm_unet": hf_settings("ddpm_unet")}


def check_golden(path: Path, actual: str) -> None:
    """Compare `actual` with the golden file at `path` (or record it when updating)."""
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"missing golden file {path.relative_to(ROOT)}; "
                        "record it with ARCHDSL_UPDATE_GOLDEN=1")
        path.write_text(actual)
        return
    expected = path.read_text()
    assert actual == expected, f"{path.relative_to(ROOT)} differs; if the change is intended, " \
                               "re-record with ARCHDSL_UPDATE_GOLDEN=1"


@pytest.fixture
def in_root(monkeypatch):
    """Run with the repository as working directory, so rendered paths are stable."""
    monkeypatch.chdir(ROOT)
    return ROOT


@pytest.fixture(scope="session")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())["models"]
