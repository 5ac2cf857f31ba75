"""Reading spec files: only regular files, of bounded size, as UTF-8 text.

`archdsl check /dev/zero` and `import "fifo"` must not read forever or block; a binary
file must give a located diagnostic, not a traceback.
"""
from __future__ import annotations

import os
import stat

from ..diagnostics import Diagnostic, Label, SpecError
from ..source import Source, Span

MAX_SOURCE_BYTES = 4 * 1024 * 1024  # far above any spec; stops `import "/dev/zero"` at once


class UnreadableSource(Exception):
    """A file that cannot be a spec: missing, not a regular file, too large, unreadable.
    str() says why, without the path (the caller names the file in its own words)."""


def read_source(path, shown_as: str | None = None) -> Source:
    """Read a spec file. Only regular files are opened (a FIFO or a device never blocks or
    floods), at most MAX_SOURCE_BYTES of them; a UTF-8 byte-order mark is dropped; text
    that is not UTF-8 raises SpecError with an E0104 diagnostic at the first bad byte.

    >>> import tempfile, os
    >>> handle, name = tempfile.mkstemp(suffix=".arch")
    >>> _ = os.write(handle, "\\ufeffnetwork t {}".encode()); os.close(handle)
    >>> read_source(name).text
    'network t {}'
    """
    data = _read_regular_file(str(path))
    shown = str(path) if shown_as is None else shown_as
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(_not_utf8(shown, data, error.start)) from None
    return Source(shown, text[1:] if text.startswith("\ufeff") else text)


def _read_regular_file(path: str) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        handle = os.open(path, flags)  # non-blocking: opening a FIFO does not wait for a writer
    except FileNotFoundError:
        raise UnreadableSource("no such file") from None
    except OSError as error:
        raise UnreadableSource(error.strerror or str(error)) from None
    try:
        info = os.fstat(handle)
        if stat.S_ISDIR(info.st_mode):
            raise UnreadableSource("is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableSource("is not a regular file (a device, pipe or socket)")
        chunks, size = [], 0
        while size <= MAX_SOURCE_BYTES:
            chunk = os.read(handle, min(1 << 20, MAX_SOURCE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SOURCE_BYTES:
            raise UnreadableSource(f"is larger than {MAX_SOURCE_BYTES // (1 << 20)} MiB, the most a "
                                   ".arch file may hold")
        return b"".join(chunks)
    except OSError as error:
        raise UnreadableSource(error.strerror or str(error)) from None
    finally:
        os.close(handle)


def _not_utf8(shown: str, data: bytes, bad: int) -> Diagnostic:
    prefix = data[:bad].decode("utf-8")
    offset = len(prefix) - (1 if prefix.startswith("\ufeff") else 0)
    text = data.decode("utf-8", errors="replace")
    source = Source(shown, text[1:] if text.startswith("\ufeff") else text)
    return Diagnostic("E0104", "the file is not UTF-8 text",
                      Label(Span(source, offset, offset + 1), f"byte 0x{data[bad]:02x} is not UTF-8"),
                      help="save the file as UTF-8 (archdsl specs are UTF-8 text)")
