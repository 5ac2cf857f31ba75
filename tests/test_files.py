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
from archdsl.files import MANIFEST, write_atomic, write_directory

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
    assert contents(out) == {"weights.pt": b"2", "stats.md": b"2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]


def contents(directory) -> dict[str, bytes]:
    """A directory's files, its manifest aside."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != MANIFEST}


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
    assert contents(out) == {"weights.pt": b"old", "stats.md": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build"]


def test_a_directory_with_other_files_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_directory(tmp_path, {"weights.pt": b"1"})
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_files_archdsl_did_not_write_are_never_replaced(tmp_path):
    out = tmp_path / "mypkg"
    out.mkdir()
    mine = {"train.py": b"# mine", "README.md": b"mine", "weights_v1.pt": b"mine"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    with pytest.raises(FileExistsError) as error:
        write_directory(out, {"model.py": b"1", "weights.pt": b"1"})
    assert "archdsl did not write" in error.value.strerror and "train.py" in error.value.strerror
    assert contents(out) == mine


def test_a_file_added_to_archdsls_directory_is_kept_and_the_write_refused(tmp_path):
    out = tmp_path / "build"
    write_directory(out, {"weights.pt": b"1"})
    (out / "notes.md").write_text("mine")
    with pytest.raises(FileExistsError) as error:
        write_directory(out, {"weights.pt": b"2"})
    assert "notes.md" in error.value.strerror
    assert contents(out) == {"weights.pt": b"1", "notes.md": b"mine"}


def test_an_empty_directory_is_written_into_and_then_replaced_as_archdsls(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    write_directory(out, {"a.pt": b"1", "b.md": b"1"})
    write_directory(out, {"a.pt": b"2"})
    assert contents(out) == {"a.pt": b"2"}


def test_the_working_directory_is_written_in_place_never_swapped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_directory(tmp_path, {"a.pt": b"1", "b.md": b"1"})
    inode = tmp_path.stat().st_ino
    write_directory(tmp_path, {"a.pt": b"2"})
    assert tmp_path.stat().st_ino == inode and contents(tmp_path) == {"a.pt": b"2"}


def test_a_loop_of_links_is_named_not_an_internal_error(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OSError) as error:
        write_atomic(loop, b"x")
    assert error.value.filename == str(loop)
    done = subprocess.run([sys.executable, "-m", "archdsl", "build", "specs/m5.arch", "-o",
                           str(loop)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and str(loop) in done.stderr, done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_names_the_file_asked_for(tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as error:
            write_atomic(tmp_path / "out.svg", b"x")
    finally:
        tmp_path.chmod(0o755)
    assert error.value.filename == str(tmp_path / "out.svg")


def test_a_failing_temporary_is_reported_as_the_file_asked_for(tmp_path, monkeypatch):
    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(dir) + "/.out.svg.1.abc.tmp")
    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError) as error:
        write_atomic(tmp_path / "out.svg", b"x")
    assert error.value.filename == str(tmp_path / "out.svg")


@pytest.mark.parametrize("command", [["build", "specs/m5.arch"],
                                     ["export", "specs/m5.arch"]])
def test_build_and_export_refuse_a_folder_of_the_users_files(tmp_path, command):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "analysis.py").write_text("# mine")
    done = subprocess.run([sys.executable, "-m", "archdsl", command[0], str(ROOT / command[1]),
                           "-o", "."], cwd=scripts, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "analysis.py" in done.stderr and "archdsl did not write" in done.stderr
    assert sorted(p.name for p in scripts.iterdir()) == ["analysis.py"]
    done = subprocess.run([sys.executable, "-m", "archdsl", command[0], str(ROOT / command[1]),
                           "-o", "out"], cwd=scripts, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    again = subprocess.run([sys.executable, "-m", "archdsl", command[0], str(ROOT / command[1]),
                            "-o", "out"], cwd=scripts, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert (scripts / "out" / MANIFEST).is_file()


def test_render_to_standard_output():
    done = subprocess.run([sys.executable, "-m", "archdsl", "render", "specs/resnet18.arch",
                           "-o", "-", "--format", "dot"], cwd=ROOT, capture_output=True)
    assert done.returncode == 0 and done.stdout.startswith(b"digraph resnet18")
    assert b"drew" not in done.stdout
