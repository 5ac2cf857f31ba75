"""`archdsl lsp`: a Language Server over standard input and output, built on pygls.

Only the protocol lives here; what to show comes from archdsl.tools.editor. Documents are
compiled when opened and on every change (the same diagnostics as `archdsl check`); the
last version that compiled is kept so completion still knows the blocks mid-edit.

Compiling happens on a thread of its own, one document at a time, never on the message
loop: a large document can take a minute to compile, and hover, completion or shutdown
are answered meanwhile. An edit replaces a compile of the same document that has not
begun; one under way runs to its end, but only the diagnostics of a document's newest
text are ever published.

Messages are read here rather than by pygls, so that a malformed one (a header without a
usable Content-Length, a body that is not JSON, JSON that is not JSON-RPC) is logged and
skipped, and a request among them answered with an error, instead of ending the
conversation.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.exceptions import FeatureNotificationError, JsonRpcException, JsonRpcInvalidRequest
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path

from .. import __version__
from ..compile import Compilation
from ..diagnostics import SpecError
from ..source import Source
from . import editor
from .fmt import format_source

logger = logging.getLogger(__name__)

PATIENCE = 0.5  # seconds a request waits for the compile of a document's newest text

_SYMBOL_KINDS = {"network": types.SymbolKind.Class, "block": types.SymbolKind.Function,
                 "function": types.SymbolKind.Function, "label": types.SymbolKind.Field}
_COMPLETION_KINDS = {"layer": types.CompletionItemKind.Function,
                     "block": types.CompletionItemKind.Module,
                     "function": types.CompletionItemKind.Function,
                     "keyword": types.CompletionItemKind.Keyword,
                     "argument": types.CompletionItemKind.Property,
                     "module": types.CompletionItemKind.Module}


class Compiler:
    """The one thread that runs the front end, so that the message loop never does (and
    the front end never runs twice at once). Jobs run in the order given; a job submitted
    under the key of one still waiting replaces it, and the waiting one is cancelled, so
    a burst of edits compiles only the newest text.

    >>> compiler = Compiler()
    >>> compiler.submit("t.arch", len, "network").result()
    7
    """

    def __init__(self):
        self._waiting: dict[object, tuple[Future, Callable, tuple]] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, key: object, work: Callable, *args) -> Future:
        future: Future = Future()
        with self._wake:
            replaced = self._waiting.pop(key, None)
            self._waiting[key] = (future, work, args)
            self._wake.notify()
        if replaced is not None:
            replaced[0].cancel()
        if self._thread is None:
            # a daemon: a compile under way must not keep the process alive after `exit`
            self._thread = threading.Thread(target=self._run, name="compile", daemon=True)
            self._thread.start()
        return future

    def cancel(self, key: object) -> None:
        with self._wake:
            waiting = self._waiting.pop(key, None)
        if waiting is not None:
            waiting[0].cancel()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._waiting:
                    self._wake.wait()
                key = next(iter(self._waiting))
                future, work, args = self._waiting.pop(key)
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work(*args))
                except Exception as error:  # noqa: BLE001 (the waiting side reports it)
                    future.set_exception(error)


class ArchServer(LanguageServer):
    """The server's state: each document's texts by number (one per open or change), the
    newest analysis done, and the last that compiled."""

    def __init__(self):
        super().__init__("archdsl", __version__)
        self.compiler = Compiler()
        self.shut_down = False
        self.opened: set[str] = set()
        self.texts: dict[str, int] = {}  # uri -> the number of its newest text
        self.documents: dict[str, editor.Document] = {}  # uri -> the newest analysis done
        self.analysed: dict[str, int] = {}  # uri -> the number of the text it analysed
        self.compiled: dict[str, editor.Document] = {}  # uri -> the latest that compiled
        self._numbers = itertools.count(1)  # across documents, so a reopened one never reuses
        self._done = asyncio.Event()  # set, and replaced, whenever a compile finishes

    def check(self, uri: str) -> None:
        """Compile the document's text as it is now, on the compiler's thread; publish its
        diagnostics when done, unless a newer text has come meanwhile."""
        text_document = self.workspace.get_text_document(uri)
        text, version = text_document.source, text_document.version  # source may read a file
        number = self.texts[uri] = next(self._numbers)
        loop = asyncio.get_running_loop()
        compiling = self.compiler.submit(uri, editor.analyse, text, text_document.path)
        compiling.add_done_callback(
            lambda done: _call_on(loop, self._checked, uri, number, version, done))

    def _checked(self, uri: str, number: int, version: int | None, done: Future) -> None:
        try:
            if done.cancelled() or uri not in self.texts:
                return  # a newer text replaced it before it began, or the document closed
            if done.exception() is not None:  # a bug in archdsl, not in the document
                logger.error("compiling %s failed", uri, exc_info=done.exception())
                self.report_server_error(done.exception(), FeatureNotificationError)
                return
            self._keep(uri, number, done.result())
            if number == self.texts[uri] and uri in self.opened:
                self._publish(uri, version, self.documents[uri])
        finally:
            self._done.set()
            self._done = asyncio.Event()

    def _keep(self, uri: str, number: int, doc: editor.Document) -> None:
        self.documents[uri], self.analysed[uri] = doc, number
        if doc.result.program is not None:
            self.compiled[uri] = doc

    def _publish(self, uri: str, version: int | None, doc: editor.Document) -> None:
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=version, diagnostics=[_diagnostic(p) for p in editor.problems(doc)]))

    def forget(self, uri: str) -> None:
        self.compiler.cancel(uri)
        for known in (self.texts, self.documents, self.analysed, self.compiled):
            known.pop(uri, None)
        self.opened.discard(uri)

    async def current(self, uri: str) -> editor.Document | None:
        """The analysis of the document's text as it is now; None when it is not done
        within PATIENCE (a large document still compiling)."""
        await self._wait_for(uri)
        done = self.analysed.get(uri) == self.texts.get(uri)
        return self.documents.get(uri) if done else None

    async def newest(self, uri: str) -> editor.Document | None:
        """The analysis of the document's text as it is now, or else, past PATIENCE, the
        newest analysis done, of an earlier text (None if none is done)."""
        await self._wait_for(uri)
        return self.documents.get(uri)

    async def _wait_for(self, uri: str) -> None:
        if uri not in self.texts:
            self.check(uri)  # a document the client has not opened: compile its file
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE
        while self.analysed.get(uri) != self.texts.get(uri) and loop.time() < deadline:
            try:
                await asyncio.wait_for(self._done.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                return


def _call_on(loop: asyncio.AbstractEventLoop, callback: Callable, *args) -> None:
    """Run `callback(*args)` on the loop's thread, unless the loop has stopped."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: the server is exiting
        pass


server = ArchServer()


def _range(place: editor.Place) -> types.Range:
    return types.Range(types.Position(*place.start), types.Position(*place.end))


def _location(place: editor.Place) -> types.Location:
    uri = place.path if place.path.startswith("<") else from_fs_path(place.path)
    return types.Location(uri, _range(place))


def _diagnostic(problem: editor.Problem) -> types.Diagnostic:
    severity = types.DiagnosticSeverity.Error if problem.severity == "error" \
        else types.DiagnosticSeverity.Warning
    related = [types.DiagnosticRelatedInformation(_location(r.place), r.message)
               for r in problem.related if not r.place.path.startswith("<")]
    return types.Diagnostic(_range(problem.place), problem.message, severity=severity,
                            code=problem.code, source="archdsl",
                            related_information=related or None)


@server.feature(types.SHUTDOWN)
def shutdown(ls: ArchServer, params: None):
    ls.shut_down = True


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: ArchServer, params: types.DidOpenTextDocumentParams):
    ls.opened.add(params.text_document.uri)
    ls.check(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: ArchServer, params: types.DidChangeTextDocumentParams):
    ls.check(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: ArchServer, params: types.DidCloseTextDocumentParams):
    uri = params.text_document.uri
    ls.forget(uri)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: ArchServer, params: types.HoverParams):
    doc = await ls.current(params.text_document.uri)
    found = None if doc is None else editor.hover(doc, params.position.line,
                                                  params.position.character)
    if found is None:
        return None
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, found.text),
                       _range(found.place))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
async def definition(ls: ArchServer, params: types.DefinitionParams):
    doc = await ls.current(params.text_document.uri)
    found = None if doc is None else editor.definition(doc, params.position.line,
                                                       params.position.character)
    return None if found is None or found.path.startswith("<") else _location(found)


@server.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=[".", "(", ","]))
async def completion(ls: ArchServer, params: types.CompletionParams):
    uri = params.text_document.uri
    doc = await ls.newest(uri)
    # The text as it is now (right after a keystroke its compile may not be done), with
    # what the newest compile knows.
    text_document = ls.workspace.get_text_document(uri)
    text, path = text_document.source, text_document.path
    result = doc.result if doc is not None else Compilation(Source(path, text), None)
    items = editor.completions(editor.Document(text, path, result), params.position.line,
                               params.position.character, ls.compiled.get(uri))
    return types.CompletionList(is_incomplete=False, items=[
        types.CompletionItem(
            item.label, kind=_COMPLETION_KINDS[item.kind], detail=item.detail or None,
            documentation=types.MarkupContent(types.MarkupKind.Markdown, item.documentation)
            if item.documentation else None,
            insert_text=item.insert, sort_text=f"{0 if item.kind == 'argument' else 1}{item.label}")
        for item in items])


def _symbol(symbol: editor.Symbol) -> types.DocumentSymbol:
    return types.DocumentSymbol(symbol.name, _SYMBOL_KINDS[symbol.kind], _range(symbol.place),
                                _range(symbol.name_place),
                                children=[_symbol(c) for c in symbol.children])


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def document_symbol(ls: ArchServer, params: types.DocumentSymbolParams):
    doc = await ls.newest(params.text_document.uri)
    return [] if doc is None else [_symbol(s) for s in editor.symbols(doc)]


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
async def formatting(ls: ArchServer, params: types.DocumentFormattingParams):
    text_document = ls.workspace.get_text_document(params.text_document.uri)
    text = text_document.source
    try:
        formatted = await asyncio.wrap_future(
            ls.compiler.submit(object(), format_source, text, text_document.path))
    except SpecError:  # a syntax error: nothing to format; the diagnostics say why
        return None
    if formatted == text:
        return []
    lines = text.split("\n")
    end = types.Position(len(lines) - 1, len(lines[-1]))
    return [types.TextEdit(types.Range(types.Position(0, 0), end), formatted)]


# ---- reading messages ----------------------------------------------------------------------

# The header a message starts with. A JSON body cannot hold one: outside strings JSON has
# no words but true, false and null, and inside them no raw line break.
_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*(\d{1,10})[ \t]*\r?\n", re.IGNORECASE)
_OTHER_HEADER = re.compile(rb"[A-Za-z0-9-]+[ \t]*:[^\r\n]*\r?\n")  # Content-Type, say
_BLANK_LINE = re.compile(rb"\r?\n")
_HEADERS_OR_SPACE = re.compile(rb"(?:[A-Za-z0-9-]+[ \t]*:[^\r\n]*\r?\n|\s)*")
_LONGEST_HEADER = 256
MAX_BODY = 1 << 30


class Frames:
    """Cuts the bytes a client sends into message bodies: `Content-Length: n`, perhaps
    more headers, a blank line, then n bytes. What does not frame is logged and skipped
    up to the next Content-Length header: bytes before one, a header block with a line
    that is no header, a length over MAX_BODY, or a body that would run into the next
    header (its length too long). A length too short cuts the body short; it then fails
    as JSON, and its rest is skipped as bytes before the next header.

    >>> frames = Frames()
    >>> frames.feed(b'Content-Length: x\\r\\n\\r\\n{}Content-Length: 2\\r\\n\\r\\n{}')
    [b'{}']
    >>> frames.feed(b'Content-Length: 8\\r\\n\\r\\n{"a"')  # the rest has not arrived
    []
    >>> frames.feed(b': 1}')
    [b'{"a": 1}']
    """

    def __init__(self):
        self._buffer = bytearray()
        self._searched = 0  # how far the body being read is known to hold no header

    def feed(self, data: bytes) -> list[bytes]:
        """The bodies that `data` completes, in order."""
        self._buffer += data
        bodies = []
        while (body := self._next_body()) is not None:
            bodies.append(body)
        return bodies

    def _next_body(self) -> bytes | None:
        """The next body, once it has arrived whole; None while more bytes are needed."""
        while True:
            header = _LENGTH.search(self._buffer)
            if header is None:  # keep what may be the start of a header
                self._skip_stray(max(0, len(self._buffer) - _LONGEST_HEADER))
                return None
            length, header_size = int(header.group(1)), header.end() - header.start()
            self._skip_stray(header.start())
            start = self._body_start(header_size)
            if start is None:
                return None
            if start < 0:
                continue
            if length > MAX_BODY:
                self._drop(start, f"a Content-Length over {MAX_BODY}")
                continue
            found = _LENGTH.search(self._buffer, max(start, self._searched - _LONGEST_HEADER))
            if found is not None and found.start() < start + length:
                self._drop(found.start(), f"a body shorter than its Content-Length, {length}")
                continue
            if len(self._buffer) < start + length:
                self._searched = len(self._buffer)
                return None
            body = bytes(self._buffer[start:start + length])
            self._drop(start + length)
            return body

    def _body_start(self, at: int) -> int | None:
        """Where the body begins, past the headers after the Content-Length line at the
        buffer's start; None while the headers have not all arrived; -1 if they are
        malformed (and then skipped)."""
        while (line := _OTHER_HEADER.match(self._buffer, at)) is not None:
            if _LENGTH.match(self._buffer, at):  # the next message's: no blank line came
                break
            at = line.end()
        blank = _BLANK_LINE.match(self._buffer, at)
        if blank is not None:
            return blank.end()
        if b"\n" not in self._buffer[at:]:
            return None
        self._drop(at, "headers that do not end in a blank line")
        return -1

    def _skip_stray(self, size: int) -> None:
        if not _HEADERS_OR_SPACE.fullmatch(self._buffer, 0, size):
            self._drop(size, "bytes outside any message")
        else:
            self._drop(size)

    def _drop(self, size: int, why: str = "") -> None:
        if why:
            shown = bytes(self._buffer[:min(size, 80)])
            logger.warning("skipped %d bytes, %s: %r", size, why, shown)
        if size:
            del self._buffer[:size]
            self._searched = 0


def receive(ls: ArchServer, body: bytes) -> None:
    """Hand one message body to pygls. One that is not a JSON-RPC message is logged and
    dropped; if it is a request (it has a method and an id), it is answered with an error,
    so that the client does not wait for an answer forever. So is a request after
    shutdown (pygls would drop it)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, nested too deep
        logger.warning("skipped a message that is not JSON (%s): %r", error, body[:80])
        return
    try:
        message = _structure(ls, data)
    except JsonRpcException as error:
        logger.warning("skipped a message (%s): %r", error, body[:80])
        if isinstance(data, dict) and "method" in data and _is_id(data.get("id")):
            # pygls has no public way to answer with an error
            ls.protocol._send_response(data["id"], error=error.to_response_error())
        return
    try:
        ls.protocol.handle_message(message)
    except Exception:  # pygls answers requests itself; whatever escapes is only logged
        logger.exception("handling a message failed")


def _structure(ls: ArchServer, data: Any):
    """The message as pygls's classes, or a JsonRpcException saying what is wrong with it."""
    if not isinstance(data, dict) or data.get("jsonrpc") != "2.0":
        raise JsonRpcInvalidRequest('not a JSON object with "jsonrpc": "2.0"')
    if "method" in data:
        if not isinstance(data["method"], str):
            raise JsonRpcInvalidRequest("a method that is not a string")
        if "id" in data and not _is_id(data["id"]):
            raise JsonRpcInvalidRequest("an id that is neither a number nor a string")
        if "id" in data and ls.shut_down:
            raise JsonRpcInvalidRequest("a request after shutdown")
        data.setdefault("params", None)  # JSON-RPC lets a message leave them out
    elif "id" not in data or not ("result" in data or "error" in data):
        raise JsonRpcInvalidRequest("neither a request, a notification nor a response")
    return ls.protocol.structure_message(data)


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


async def _read_messages(stdin: BinaryIO) -> None:
    """The message loop: read what the client sends as it comes (a message may arrive in
    pieces, or several in one piece), and hand each message on as it completes."""
    loop = asyncio.get_running_loop()
    frames = Frames()
    while data := await loop.run_in_executor(server.thread_pool, stdin.read1, 1 << 16):
        for body in frames.feed(data):
            receive(server, body)


def serve() -> None:
    """Speak the protocol on standard input and output until the client says exit."""
    server.protocol.set_writer(StdoutWriter(sys.stdout.buffer))
    try:
        asyncio.run(_read_messages(sys.stdin.buffer))
    except BrokenPipeError:
        logger.error("the client has gone: its end of standard output is closed")
    except (KeyboardInterrupt, SystemExit):  # `exit` raises SystemExit to end the loop
        pass
    finally:
        server.shutdown()
