"""Writing output files so that none is ever half-written or destroyed.

* A regular file (or a path that does not exist yet) is written to a temporary file in
  the same directory, flushed to disk, then renamed over the target: readers see the old
  file or the new one, never a mix.
* A symbolic link is followed: what it points at is written, and the link stays a link.
* A device, FIFO or socket (`/dev/stdout`, `/dev/null`, a named pipe) is written
  through, never replaced.
* A directory of files (a build, an exported package, a training run) carries a
  manifest, `.archdsl-manifest.json`, naming what archdsl wrote there. archdsl writes
  only into a directory that is new, empty, or its own with nothing else in it; any
  other is refused, so no file archdsl did not write is ever replaced or deleted. A new
  set of files is staged in a fresh directory beside the target that is then swapped
  in, so a reader, or a build killed half-way, sees the old set or the new set of
  files, never some of each.

Temporary names carry the writer's process id, so the leftovers of a killed writer are
recognised and removed by the next one. Every OSError names the file it was about.
"""
from __future__ import annotations

import errno
import json
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
    target = _resolved(path)  # through symbolic links, to what they name
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


MANIFEST = ".archdsl-manifest.json"  # in every directory archdsl writes: what it wrote


def write_directory(directory: Path, files: dict[str, bytes], kind: str = "build") -> list[Path]:
    """Make `directory` hold exactly `files` ({name: bytes}) and a manifest naming them.

    archdsl never deletes or overwrites a file it did not write: an existing `directory`
    must be empty, or hold only what the manifest of an earlier write lists; anything else
    is refused with a FileExistsError that names the foreign files. A new directory is
    staged beside the target and renamed in; one of archdsl's own is swapped as a whole,
    so a reader, or a write killed half-way, sees the old set or the new set. Returns the
    written paths.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "build"
    >>> [p.name for p in write_directory(out, {"model.py": b"# model"})]
    ['model.py']
    >>> sorted(p.name for p in out.iterdir())
    ['.archdsl-manifest.json', 'model.py']
    """
    directory = Path(directory)
    target = _resolved(directory)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(directory))
    manifest = _manifest_bytes(kind, files)
    try:
        if target.is_dir() and (_is_working_directory(target) or not any(target.iterdir())):
            _claim(target, directory)
            _write_in_place(target, files, manifest)
            return [directory / name for name in files]
        if target.is_dir():
            _claim(target, directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target.parent, target.name)
        staging = Path(tempfile.mkdtemp(prefix=_prefix(target.name), suffix=".tmp",
                                        dir=target.parent))
        try:
            for name, data in files.items():
                _write_file(staging / name, data)
            _write_file(staging / MANIFEST, manifest)
            _fsync_directory(staging)
            _swap_in(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # the old set, after the swap
        _fsync_directory(target.parent)
    except OSError as error:
        raise _named(error, directory) from None
    return [directory / name for name in files]


def owned_files(directory: Path) -> set[str] | None:
    """The names the manifest of `directory` says archdsl wrote there, or None when it
    has no readable manifest (archdsl did not write it)."""
    try:
        record = json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
        names = record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return set(names)


def claim_directory(directory: Path, kind: str, names=(), adopt: bool = False) -> None:
    """Make `directory` archdsl's, for a writer that adds files over time (a training
    run): it must not exist, be empty, or already carry a manifest; then its manifest
    lists `names` besides what it listed before. Refused with FileExistsError otherwise.
    `adopt` takes on a directory without a manifest whose entries are all in `names`
    (one that an archdsl before manifests wrote, known by what it holds)."""
    directory = Path(directory)
    target = _resolved(directory)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory; give a "
                                 "directory", str(directory))
    try:
        target.mkdir(parents=True, exist_ok=True)
        before = owned_files(target)
        entries = sorted(p.name for p in target.iterdir() if not _stale_temporary(p))
        if before is None and entries and not (adopt and set(entries) <= set(names)):
            raise _foreign(directory, entries, manifest=False)
        names = sorted(set(names) | (before or set()))
        write_atomic(target / MANIFEST, _manifest_bytes(kind, dict.fromkeys(names, b"")))
    except OSError as error:
        raise _named(error, directory) from None


def _claim(target: Path, directory: Path) -> None:
    """Refuse a directory that holds anything archdsl did not write there."""
    entries = [p for p in target.iterdir() if not _stale_temporary(p)]
    if not entries:
        return
    owned = owned_files(target)
    if owned is None:
        raise _foreign(directory, sorted(p.name for p in entries), manifest=False)
    foreign = sorted(p.name for p in entries if p.name != MANIFEST
                     and (p.name not in owned or p.is_symlink()
                          or not (p.is_file() or p.is_dir())))
    if foreign:
        raise _foreign(directory, foreign, manifest=True)


def _foreign(directory: Path, names: list[str], manifest: bool) -> FileExistsError:
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    why = ("holds files archdsl did not write" if manifest
           else "is not empty and archdsl did not write it")
    return FileExistsError(errno.EEXIST, f"{why} ({shown}); archdsl never replaces files it "
                           "did not write: choose a new or empty directory, or move those "
                           "files away", str(directory))


def _write_in_place(target: Path, files: dict[str, bytes], manifest: bytes) -> None:
    """Into an empty directory (or the working directory, which is never swapped away):
    the manifest first, so a write killed half-way leaves a directory that is still
    recognised as archdsl's; each file atomically; then what the old manifest listed and
    the new set lacks goes."""
    old = owned_files(target) or set()
    _replace(target / MANIFEST, _manifest_bytes("partial", dict.fromkeys(old | set(files), b"")))
    for name, data in files.items():
        _replace(target / name, data)
    for name in sorted(old - set(files)):
        (target / name).unlink(missing_ok=True)
    _replace(target / MANIFEST, manifest)


def _manifest_bytes(kind: str, files: dict) -> bytes:
    record = {"written_by": "archdsl", "kind": kind, "files": sorted(files)}
    return (json.dumps(record, indent=1) + "\n").encode()


def _is_working_directory(target: Path) -> bool:
    try:
        return Path.cwd().resolve() == target
    except OSError:
        return False


def _stale_temporary(path: Path) -> bool:
    """A temporary that a killed archdsl writer left (`.NAME.PID.xxxx.tmp`)."""
    parts = path.name.split(".")
    return (path.name.startswith(".") and path.name.endswith(".tmp") and len(parts) >= 4
            and parts[-3].isdigit() and not _alive(int(parts[-3])))


def _resolved(path: Path) -> Path:
    """`path` through its symbolic links; a loop of links is an OSError naming `path`."""
    try:
        return Path(path).resolve()
    except RuntimeError:  # Python < 3.13 reports a loop of links this way
        raise OSError(errno.ELOOP, "is a loop of symbolic links", str(path)) from None


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
    import ctypes  # here, not at the top: only a replaced directory needs it
    import ctypes.util
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
    """The same error, naming `path` (a full disk says which file it could not write):
    the file asked for, never one of the hidden temporaries written on the way."""
    if error.filename and not str(error.filename).endswith(".tmp"):
        return error
    return type(error)(error.errno, error.strerror or str(error), str(path))
