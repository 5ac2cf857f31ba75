"""Output files are never half-written, replaced when they are links or devices, or mixed
between two builds; errors name the file."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading

import pytest

from archdsl import files
from archdsl.files import write_atomic, write_directory

from conftest import ROOT


def test_a_symbolic_link_is_written_through_and_stays_a_link(tmp_path):
    (tmp_path / "real.svg").write_text("old")
    link = tmp_path / "link.svg"
    link.symlink_to("real.svg")
    write_atomic(link, b"new")
    assert link.is_symlink() and (tmp_path / "real.svg").read_text() == "new"


def test_a_device_is_written_through_not_replaced():
    write_atomic("/dev/null", b"data")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_atomic(fifo, b"through the pipe")
    reader.join(timeout=10)
    assert received == [b"through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_full_disk_names_the_file():
    with pytest.raises(OSError) as error:
        write_atomic("/dev/full", b"x" * 10)
    assert error.value.filename == "/dev/full" and "No space left" in error.value.strerror


def test_a_killed_writers_temporary_is_removed_by_the_next(tmp_path):
    stale = tmp_path / ".out.svg.999999999.abc.tmp"
    stale.write_text("half")
    write_atomic(tmp_path / "out.svg", b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.svg"]


def test_a_directory_is_replaced_as_a_whole(tmp_path):
    out = tmp_path / "build"
    write_directory(out, {"weights.pt": b"1", "stats.md": b"1", "diagram.svg": b"1"})
    write_directory(out, {"weights.pt": b"2", "stats.md": b"2"})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {"weights.pt": b"2", "stats.md": b"2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]


def test_a_write_that_fails_half_way_leaves_the_old_set(tmp_path, monkeypatch):
    out = tmp_path / "build"
    write_directory(out, {"weights.pt": b"old", "stats.md": b"old"})
    written = []

    def fail_second(path, data):
        if written:
            raise OSError(28, "No space left on device")
        written.append(path)
        path.write_bytes(data)
    monkeypatch.setattr(files, "_write_file", fail_second)
    with pytest.raises(OSError) as error:
        write_directory(out, {"weights.pt": b"new", "stats.md": b"new"})
    assert error.value.filename == str(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {"weights.pt": b"old", "stats.md": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]


def test_a_directory_with_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_directory(tmp_path, {"weights.pt": b"1"})
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_render_to_standard_output():
    done = subprocess.run([sys.executable, "-m", "archdsl", "render", "specs/resnet18.arch",
                           "-o", "-", "--format", "dot"], cwd=ROOT, capture_output=True)
    assert done.returncode == 0 and done.stdout.startswith(b"digraph resnet18")
    assert b"drew" not in done.stdout
