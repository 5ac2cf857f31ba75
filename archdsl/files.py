"""Writing output files so that none is ever half-written or destroyed.

* A regular file (or a path that does not exist yet) is written to a temporary file in
  the same directory, flushed to disk, then renamed over the target: readers see the old
  file or the new one, never a mix.
* A symbolic link is followed: what it points at is written, and the link stays a link.
* A device, FIFO or socket (`/dev/stdout`, `/dev/null`, a named pipe) is written
  through, never replaced.
* A directory of files (a build) is written into a fresh directory beside it that is
  then swapped in, so a reader, or a build killed half-way, sees the old set or the new
  set of files, never some of each.

Temporary names carry the writer's process id, so the leftovers of a killed writer are
recognised and removed by the next one. Every OSError names the file it was about.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` as described above; returns `path`.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> write_atomic(target, b"hello").read_bytes()
    b'hello'
    """
    path = Path(path)
    target = path.resolve()  # through symbolic links, to what they name
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise _named(error, path) from None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(path))
    try:
        if mode is not None and not stat.S_ISREG(mode):
            _write_through(target, data)  # a device or a pipe: never replace it
        else:
            _replace(target, data)
    except OSError as error:
        raise _named(error, path) from None
    return path


def write_directory(directory: Path, files: dict[str, bytes]) -> list[Path]:
    """Replace `directory` by one holding exactly `files` ({name: bytes}), all at once.

    An existing `directory` must hold only files that a previous write of the same kind
    could have made (`names`); anything else is refused with a FileExistsError, so that
    `-o .` never swaps away a working directory. Returns the written paths.
    """
    directory = Path(directory)
    target = directory.resolve()
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(directory))
    if target.is_dir():
        foreign = sorted(p.name for p in target.iterdir() if not _artifact(p, files))
        if foreign:
            raise FileExistsError(errno.EEXIST, "holds files that are not build outputs ("
                                  + ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                                  + "); choose a new or empty directory", str(directory))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target.parent, target.name)
        staging = Path(tempfile.mkdtemp(prefix=_prefix(target.name), suffix=".tmp",
                                        dir=target.parent))
        try:
            for name, data in files.items():
                _write_file(staging / name, data)
            _fsync_directory(staging)
            _swap_in(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # the old set, after the swap
        _fsync_directory(target.parent)
    except OSError as error:
        raise _named(error, directory) from None
    return [directory / name for name in files]


# Files a build directory may hold from earlier builds (a diagram that this build lacks).
ARTIFACT_SUFFIXES = (".pt", ".py", ".md", ".svg", ".dot")


def _artifact(path: Path, files: dict) -> bool:
    """A plain file that a write of `files` could have made."""
    return (path.is_file() and not path.is_symlink()
            and (path.name in files or path.name.endswith(ARTIFACT_SUFFIXES)))


# ---- pieces -------------------------------------------------------------------------------


def _prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def _replace(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target.parent, target.name)
    handle, temporary = tempfile.mkstemp(prefix=_prefix(target.name), suffix=".tmp",
                                         dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _write_through(target: Path, data: bytes) -> None:
    with open(target, "wb", buffering=0) as stream:
        view = memoryview(data)
        while view:
            view = view[stream.write(view):]


def _remove_stale(parent: Path, name: str) -> None:
    """Remove temporaries that writers of `name` left behind when they were killed."""
    for leftover in parent.glob(f".{_glob_escape(name)}.*.tmp"):
        pid = leftover.name[len(name) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _swap_in(staging: Path, target: Path) -> None:
    """Put `staging` at `target`; the old `target`, if any, ends up at `staging`."""
    if not target.exists():
        os.rename(staging, target)
    elif not _exchange(staging, target):
        old = staging.with_name(staging.name[:-len(".tmp")] + ".old.tmp")
        os.rename(target, old)  # a kill between these two renames leaves the old set here
        os.rename(staging, target)
        os.rename(old, staging)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux renameat2 RENAME_EXCHANGE); False if the
    system cannot."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_directory(path: Path) -> None:
    try:
        handle = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _named(error: OSError, path: Path) -> OSError:
    """The same error, naming `path` (a full disk says which file it could not write)."""
    if error.filename:
        return error
    return type(error)(error.errno, error.strerror or str(error), str(path))
