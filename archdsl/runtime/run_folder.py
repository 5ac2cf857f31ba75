"""A training run's folder (--out): claiming it, holding its lock, finding the checkpoint
to resume, and writing its files, each atomically (write_atomic), so a run killed at any
moment leaves every file whole.

The folder is claimed as archdsl.files describes: it must be new, empty or a run's, and
its manifest names RUN_FILES. Rank 0 alone claims, locks and writes; every rank reads the
checkpoint it resumes from.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..files import claim_directory, owned_files, write_atomic
from .checkpoint import pack, serialise
from .config import TrainError
from .runlog import plot_metrics

CHECKPOINT = "checkpoint.pt"
# everything a run writes into its --out, listed in the directory's manifest
RUN_FILES = (CHECKPOINT, "model.pt", "best.pt", "last.pt", "metrics.jsonl", "metrics.csv",
             "curves.png", "tensorboard", ".lock")


class RunFolder:
    """OUT, the folder of one run, and the files `archdsl train` keeps there: checkpoint.pt
    (to resume), best.pt and last.pt (weights with what rebuilds the model), model.pt (the
    final state_dict) and curves.png (the metric files are runlog's)."""

    def __init__(self, out: Path):
        self.out = out
        self.checkpoint = out / CHECKPOINT
        self.held = None  # the open .lock while this process writes here

    def claim(self, resume: str | None, network: str) -> None:
        """--out must be new, empty or a run's: a folder of other files is refused before
        anything is written (a run of an archdsl without manifests is taken on when
        resumed). Then hold its lock for the rest of the run."""
        earlier = resume is not None and self.checkpoint.is_file() and owned_files(self.out) is None
        try:
            claim_directory(self.out, "training run", RUN_FILES, adopt=earlier)
        except FileExistsError as error:
            raise TrainError(f"--out {self.out}: {error.strerror}; a run's folder holds "
                             "only what `archdsl train` writes") from None
        except NotADirectoryError:
            raise TrainError(f"--out {self.out}: is a file, not a folder; give a folder "
                             f"for the run, e.g. --out runs/{network}") from None
        self.held = lock(self.out)

    def resume_path(self, resume: str | None) -> Path | None:
        """The checkpoint --resume names ("last": this folder's), or None for a new run,
        which may not start over a run's checkpoint."""
        if resume is None:
            if self.checkpoint.exists():
                raise TrainError(f"{self.out} already holds a run ({self.checkpoint}); "
                                 "continue it with --resume, or choose another --out")
            return None
        path = Path(resume) if resume != "last" else self.checkpoint
        if not path.is_file():
            raise TrainError(f"no checkpoint to resume at {path}")
        return path

    def write_checkpoint(self, state: dict) -> None:
        write_atomic(self.checkpoint, pack(state))

    def write_weights(self, name: str, state: dict) -> None:
        """best.pt or last.pt: a weights state (see snapshot.weights_state)."""
        write_atomic(self.out / name, pack(state))

    def write_final(self, weights: dict, history: list[dict]) -> None:
        """At the end of a run: model.pt, a plain state_dict, and the curves of its epochs."""
        write_atomic(self.out / "model.pt", serialise(weights))
        plot_metrics(history, self.out / "curves.png")

    def release(self) -> None:
        if self.held is not None:
            self.held.close()


def lock(out: Path):
    """Hold OUT/.lock for the run: a second `archdsl train` into the same --out stops at
    once instead of interleaving checkpoints and metrics. Returns the open file, whose
    closing releases the lock."""
    out.mkdir(parents=True, exist_ok=True)
    stream = open(out / ".lock", "a+")
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return stream
    try:
        fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        stream.seek(0)
        holder = stream.read().strip() or "another process"
        stream.close()
        raise TrainError(f"another `archdsl train` ({holder}) is writing to {out}; wait for it "
                         "to finish or choose another --out") from None
    stream.seek(0)
    stream.truncate()
    stream.write(f"pid {os.getpid()}")
    stream.flush()
    return stream
