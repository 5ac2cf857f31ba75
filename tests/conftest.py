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
