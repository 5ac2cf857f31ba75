"""The editor support: what to show at a position (archdsl.tools.editor, tested
directly), and `archdsl lsp` end to end, as a process spoken to in JSON-RPC."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from archdsl.tools import editor

from conftest import ROOT

RESNET50 = ROOT / "specs" / "resnet50.arch"
STD_RESNET = ROOT / "archdsl" / "stdlib" / "resnet.arch"


def line_of(text: str, needle: str) -> tuple[int, int]:
    """0-based (line, column) of the first occurrence of `needle`."""
    before = text[:text.index(needle)]
    return before.count("\n"), len(before) - (before.rfind("\n") + 1)


# ---- what to show at a position ------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet50():
    return editor.analyse(RESNET50.read_text(), str(RESNET50))


def test_hover_shows_a_layers_shape_parameters_and_macs(resnet50):
    line, column = line_of(resnet50.text, "conv1:")
    found = editor.hover(resnet50, line, column)
    assert found.text.startswith("**conv1** `conv(64, 7, stride = 2, pad = 3, bias = false)`")
    assert "output `64x112x112` · 9,408 params · 118.01M MACs" in found.text  # 64*3*7*7
    assert found.place.start == (line, 4)


def test_hover_on_a_block_call_sums_what_the_block_makes(resnet50):
    line, column = line_of(resnet50.text, "bottleneck(64)")
    text = editor.hover(resnet50, line, column).text
    # layer1 of torchvision's resnet50: 3 bottlenecks and one projection
    assert "output `256x56x56` · 215,808 params" in text and "32 layers" in text


def test_hover_inside_a_block_counts_every_use():
    std = editor.analyse(STD_RESNET.read_text(), str(STD_RESNET))
    assert editor.hover(std, *line_of(std.text, "conv1: conv(width, 1")) is None  # no network
    spec = ("import std.resnet\nnetwork t {\n    input x: 64 x 8 x 8\n"
            "    bottleneck(16)\n    bottleneck(32, stride = 2)\n}\n")
    doc = editor.analyse(spec, str(ROOT / "t.arch"))
    assert "output `128x4x4`" in editor.hover(doc, 4, 6).text


def test_hover_on_a_layer_name_gives_its_signature(resnet50):
    line, column = line_of(resnet50.text, "maxpool(3")
    text = editor.hover(resnet50, line, column + 2).text
    assert "`maxpool(kernel, stride = kernel, pad = 0, dilation = 1, ceil_mode = false)`" in text


def test_definition_of_blocks_imports_and_labels(resnet50):
    line, column = line_of(resnet50.text, "bottleneck(64)")
    found = editor.definition(resnet50, line, column + 3)
    assert Path(found.path) == STD_RESNET.resolve()
    assert STD_RESNET.read_text().splitlines()[found.start[0]].startswith("block bottleneck(")
    imported = editor.definition(resnet50, *line_of(resnet50.text, "import std.resnet"))
    assert Path(imported.path) == STD_RESNET.resolve()
    spec = "network t {\n    input x: 3 x 8 x 8\n    a: relu\n    b: sigmoid\n    add(a, b)\n}\n"
    doc = editor.analyse(spec, "t.arch")
    assert editor.definition(doc, 4, 11).start == (3, 4)
    assert editor.definition(doc, 4, 8).start == (2, 4)


def test_completion_offers_layers_blocks_and_keyword_arguments(resnet50):
    line, column = line_of(resnet50.text, "stride = 2, pad = 3")
    items = editor.completions(resnet50, line, column)
    labels = [item.label for item in items]
    assert labels[:2] == ["channels =", "kernel ="]  # conv's arguments first
    assert {"conv", "batchnorm", "bottleneck", "repeat"} <= set(labels)
    conv = next(item for item in items if item.label == "conv")
    assert conv.detail.startswith("conv(channels, kernel, stride = 1")
    shipped = sorted(p.stem for p in (ROOT / "archdsl" / "stdlib").glob("*.arch"))
    assert [i.label for i in editor.completions(editor.analyse("import std.", "t.arch"), 0, 11)] \
        == shipped and "resnet" in shipped


def test_completion_keeps_the_blocks_of_the_last_version_that_compiled(resnet50):
    broken = editor.analyse(resnet50.text.replace("maxpool:", "maxpool: conv(", 1), str(RESNET50))
    assert broken.result.program is None
    line = line_of(resnet50.text, "bn1:")[0]  # a line of the network's body
    labels = {item.label for item in editor.completions(broken, line, 4, resnet50)}
    assert "bottleneck" in labels


def test_symbols_are_definitions_with_their_labels(resnet50):
    (network,) = editor.symbols(resnet50)
    assert (network.name, network.kind) == ("resnet50", "network")
    assert [c.name for c in network.children] == ["conv1", "bn1", "relu", "maxpool", "layer1",
                                                  "layer2", "layer3", "layer4", "avgpool", "fc"]


def test_problems_point_into_the_document_with_related_places():
    spec = "network t {\n    input x: 3 x 8 x 8\n    a: conv(4, 3)\n    add(a, x)\n}\n"
    (problem,) = editor.problems(editor.analyse(spec, "t.arch"))
    assert problem.code.startswith("E03") and problem.place.path == str(Path("t.arch").resolve())
    assert problem.related and all(r.message for r in problem.related)


def test_a_document_that_does_not_parse_still_gets_answers(resnet50):
    broken = editor.analyse("import std.resnet\nnetwork t {\n    conv(3,\n}\n", "t.arch")
    (problem,) = editor.problems(broken)
    assert problem.code == "E0100" and problem.place.start == (3, 0)
    assert editor.hover(broken, 2, 5) is None and editor.definition(broken, 2, 5) is None
    assert editor.symbols(broken) == []
    labels = {item.label for item in editor.completions(broken, 2, 9)}
    assert {"channels =", "conv", "relu"} <= labels and "bottleneck" not in labels


def test_an_error_in_an_imported_file_is_shown_at_the_import(tmp_path):
    (tmp_path / "lib.arch").write_text("block b {\n    conv(\n}\n")
    spec = tmp_path / "net.arch"
    spec.write_text('import "lib.arch"\nnetwork t {\n    input x: 3 x 8 x 8\n    relu\n}\n')
    (problem,) = editor.problems(editor.analyse(spec.read_text(), str(spec)))
    assert problem.place.path == str(spec.resolve()) and problem.place.start == (0, 0)
    assert "lib.arch" in problem.message
    assert any(Path(r.place.path) == (tmp_path / "lib.arch").resolve() for r in problem.related)


# ---- the server, end to end ----------------------------------------------------------------


class Client:
    """JSON-RPC over the server's standard input and output, Content-Length framed."""

    def __init__(self, process):
        self.process, self.next_id = process, 0
        self.messages: queue.Queue = queue.Queue()
        self.seen: list[dict] = []  # every message from the server, in order
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        stream = self.process.stdout
        while True:
            headers = {}
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            message = json.loads(stream.read(int(headers["content-length"])))
            self.seen.append(message)
            self.messages.put(message)

    def send(self, message: dict) -> None:
        self.send_bytes(frame(json.dumps({"jsonrpc": "2.0", **message}).encode()))

    def send_bytes(self, data: bytes) -> None:
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def request(self, method: str, params: dict, timeout: float = 60):
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        reply = self.reply(self.next_id, timeout)
        assert "error" not in reply, reply
        return reply["result"]

    def reply(self, id, timeout: float = 60) -> dict:
        return self.wait(lambda m: m.get("id") == id and "method" not in m, timeout)

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def wait(self, wanted, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the server did not answer within {timeout} s") from None
            if wanted(message):
                return message


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def start_server(cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "archdsl", "lsp"], cwd=cwd,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})


@contextmanager
def initialized_server(cwd: Path):
    """A client of a server that has been initialized; the server is killed afterwards."""
    pytest.importorskip("pygls")
    process = start_server(cwd)
    client = Client(process)
    try:
        client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        client.notify("initialized", {})
        yield client
    finally:
        process.kill()
        process.wait()


def test_the_server_over_json_rpc(tmp_path):
    pytest.importorskip("pygls")
    spec = tmp_path / "net.arch"
    text = RESNET50.read_text()
    spec.write_text(text)
    uri = spec.as_uri()
    process = start_server(tmp_path)
    client = Client(process)
    try:
        capabilities = client.request("initialize", {"processId": None, "rootUri": None,
                                                     "capabilities": {}})["capabilities"]
        assert capabilities["hoverProvider"] and capabilities["definitionProvider"]
        assert capabilities["documentFormattingProvider"]
        client.notify("initialized", {})
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "arch", "version": 1, "text": text}})
        published = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")
        assert published["params"]["diagnostics"] == []

        line, column = line_of(text, "linear(classes)")
        client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"range": {"start": {"line": line, "character": column},
                                          "end": {"line": line, "character": column + 6}},
                                "text": "conv"}]})  # fc: conv(classes), no kernel size
        published = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                                and m["params"].get("version") == 2)
        (problem,) = published["params"]["diagnostics"]
        assert problem["code"] == "E0203" and "kernel" in problem["message"]
        assert problem["range"]["start"]["line"] == line
        assert problem["source"] == "archdsl"

        position = dict(zip(("line", "character"), line_of(text, "conv1:")))
        shown = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                      "position": position})
        assert "9,408 params" in shown["contents"]["value"]

        line, column = line_of(text, "bottleneck(64)")
        where = client.request("textDocument/definition", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": column + 2}})
        assert where["uri"].endswith("/archdsl/stdlib/resnet.arch")

        line, column = line_of(text, "pad = 3")
        offered = client.request("textDocument/completion", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": column}})
        labels = {item["label"] for item in offered["items"]}
        assert {"stride =", "conv", "bottleneck"} <= labels

        symbols = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
        assert symbols[0]["name"] == "resnet50" and len(symbols[0]["children"]) == 10

        messy = "network t {\ninput x: 3 x 8 x 8\n  c:conv(4,3)\n}\n"
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 3},
                                                 "contentChanges": [{"text": messy}]})
        edits = client.request("textDocument/formatting", {
            "textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": True}})
        assert edits[0]["newText"] == "network t {\n    input x: 3 x 8 x 8\n    c: conv(4, 3)\n}\n"

        assert client.request("shutdown", None) is None
        client.notify("exit", None)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


SMALL = "network t {\n    input x: 3 x 8 x 8\n    c: conv(4, 3)\n}\n"
SMALL_HOVER = {"line": 2, "character": 4}  # on `c:`, whose conv has 112 parameters

# What a broken or hostile client may send. After each, the next request must be answered.
MALFORMED_FRAMES = {
    "a length that is not a number": b"Content-Length: abc\r\n\r\n{}",
    "a negative length": b"Content-Length: -5\r\n\r\n{}",
    "no length": b"Content-Type: application/vscode-jsonrpc\r\n\r\n{}",
    "a length too long": b"Content-Length: 400\r\n\r\n{}",
    "a length too short": b"Content-Length: 9\r\n\r\n{\"jsonrpc\": \"2.0\", \"method\": \"x\"}",
    "a length past any message": b"Content-Length: 99999999999999999999\r\n\r\n{}",
    "no blank line after the headers": b"Content-Length: 2\r\n{}",
    "a header line that is no header": b"Content-Length: 2\r\n{ oops }\r\n\r\n{}",
    "bytes that are no header": b"hello",
    "a body that is not JSON": frame(b"{not json"),
    "a body that is not UTF-8": frame(b'"\xff\xfe"'),
    "JSON nested too deep": frame(b"[" * 100_000 + b"]" * 100_000),
    "JSON that is not an object": frame(b"[1, 2, 3]"),
    "an object that is not JSON-RPC": frame(b'{"hello": "world"}'),
    "a notification with bad params": frame(
        b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": 5}'),
}
# Requests the server cannot take: each is answered with an error, so no client waits on it.
BAD_REQUESTS = {
    "another JSON-RPC version": ({"jsonrpc": "1.0", "method": "textDocument/hover",
                                  "params": {}}, -32600),
    "params of the wrong type": ({"jsonrpc": "2.0", "method": "textDocument/hover",
                                  "params": "x"}, -32602),
    "no params where they are needed": ({"jsonrpc": "2.0", "method": "textDocument/hover"},
                                        -32602),
}


def test_a_malformed_message_is_skipped_and_the_next_request_answered(tmp_path):
    uri = (tmp_path / "t.arch").as_uri()
    with initialized_server(tmp_path) as client:
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": "arch", "version": 1, "text": SMALL}})
        hover = {"textDocument": {"uri": uri}, "position": SMALL_HOVER}
        for name, data in MALFORMED_FRAMES.items():
            client.send_bytes(data)
            try:
                shown = client.request("textDocument/hover", hover, timeout=10)
            except AssertionError:
                pytest.fail(f"no answer after {name}")
            assert "112 params" in shown["contents"]["value"], name
        for name, (message, code) in BAD_REQUESTS.items():
            client.send_bytes(frame(json.dumps({"id": name, **message}).encode()))
            assert client.reply(name, timeout=10)["error"]["code"] == code, name
        assert "112 params" in client.request("textDocument/hover", hover)["contents"]["value"]
        assert client.request("shutdown", None) is None
        client.send({"id": "late", "method": "textDocument/hover", "params": hover})
        assert client.reply("late", timeout=10)["error"]["code"] == -32600


def test_frames_are_cut_the_same_however_the_bytes_arrive():
    """Pipes deliver what they like: a message in pieces, or several in one read."""
    pytest.importorskip("pygls")
    from archdsl.tools import lsp
    good = [json.dumps({"jsonrpc": "2.0", "id": i, "method": "m", "params": {"text": "a\n" * i}})
            .encode() for i in range(3)]
    malformed = [data for name, data in MALFORMED_FRAMES.items() if "deep" not in name]
    stream = b"".join([frame(good[0]), *malformed, frame(good[1]),
                       b"Content-Type: application/vscode-jsonrpc\r\n" + frame(good[2])])
    expected = lsp.Frames().feed(stream)
    assert [body for body in expected if body in good] == good
    for size in (1, 2, 7, 64, 1000):
        frames = lsp.Frames()
        pieces = [frames.feed(stream[at:at + size]) for at in range(0, len(stream), size)]
        assert [body for piece in pieces for body in piece] == expected, size


def resnets(count: int, broken: int | None = None) -> str:
    """`count` copies of ResNet-50, about 550 characters each; in copy `broken` the last
    layer is a conv without a kernel size."""
    text = RESNET50.read_text()
    network = text[text.index("network"):]
    copies = [network.replace("resnet50(", f"resnet50_{i}(") for i in range(count)]
    if broken is not None:
        copies[broken] = copies[broken].replace("linear(classes)", "conv(classes)")
    return "import std.resnet\n" + "".join(copies)


def test_requests_are_answered_while_a_large_document_is_checked(tmp_path):
    small, large = (tmp_path / "small.arch").as_uri(), (tmp_path / "large.arch").as_uri()
    text = resnets(3700)
    assert len(text) > 2_000_000  # compiling it takes a minute
    with initialized_server(tmp_path) as client:
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": small, "languageId": "arch", "version": 1, "text": SMALL}})
        client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": large, "languageId": "arch", "version": 1, "text": text}})
        start = time.monotonic()
        shown = client.request("textDocument/hover", {
            "textDocument": {"uri": small}, "position": SMALL_HOVER}, timeout=5)
        assert "112 params" in shown["contents"]["value"]
        line = text.count("\n") - 3  # in the last network, before `flatten`
        offered = client.request("textDocument/completion", {
            "textDocument": {"uri": large}, "position": {"line": line, "character": 4}},
            timeout=5)
        assert {"conv", "relu", "repeat"} <= {item["label"] for item in offered["items"]}
        assert client.request("shutdown", None, timeout=5) is None
        assert time.monotonic() - start < 5
        assert not any(m.get("method") == "textDocument/publishDiagnostics"
                       and m["params"]["uri"] == large for m in client.seen)
        client.notify("exit", None)  # the compile under way does not hold the process
        assert client.process.wait(timeout=10) == 0


def test_of_rapid_edits_only_the_last_gets_its_diagnostics(tmp_path):
    """Versions 1 to 6 arrive while version 1 is compiled; each has an error on its own
    line. Only version 6 is compiled next, and only its diagnostics are published."""
    uri = (tmp_path / "edited.arch").as_uri()
    versions = {v: resnets(40, broken=v) for v in range(1, 7)}
    edits = [{"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "arch", "version": 1, "text": versions[1]}}}]
    edits += [{"method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": v}, "contentChanges": [{"text": versions[v]}]}}
        for v in range(2, 7)]
    with initialized_server(tmp_path) as client:
        client.send_bytes(b"".join(frame(json.dumps({"jsonrpc": "2.0", **e}).encode())
                                   for e in edits))
        published = client.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                                and m["params"]["version"] == 6, timeout=30)
        (problem,) = published["params"]["diagnostics"]
        assert problem["range"]["start"]["line"] == line_of(versions[6], "conv(classes)")[0]
        assert client.request("shutdown", None) is None
    assert [m["params"]["version"] for m in client.seen
            if m.get("method") == "textDocument/publishDiagnostics"] == [6]


def test_lsp_without_pygls_names_the_extra(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "pygls").mkdir()
    (blocker / "pygls" / "__init__.py").write_text("raise ImportError('no pygls', name='pygls')\n")
    done = subprocess.run([sys.executable, "-m", "archdsl", "lsp"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60,
                          env={**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"})
    assert done.returncode == 2 and "pip install archdsl[lsp]" in done.stderr
