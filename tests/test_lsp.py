"""The editor support: what to show at a position (archdsl.tools.editor, tested
directly), and `archdsl lsp` end to end, as a process spoken to in JSON-RPC."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
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
    assert [i.label for i in editor.completions(editor.analyse("import std.", "t.arch"), 0, 11)] \
        == ["inception", "resnet", "vgg"]


def test_completion_keeps_the_blocks_of_the_last_version_that_compiled(resnet50):
    broken = editor.analyse(resnet50.text.replace("layer1:", "layer1: conv(", 1), str(RESNET50))
    assert broken.result.program is None
    labels = {item.label for item in editor.completions(broken, 10, 4, resnet50)}
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
            self.messages.put(json.loads(stream.read(int(headers["content-length"]))))

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def request(self, method: str, params: dict):
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        reply = self.wait(lambda m: m.get("id") == self.next_id and "method" not in m)
        assert "error" not in reply, reply
        return reply["result"]

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def wait(self, wanted, timeout: float = 60):
        while True:
            message = self.messages.get(timeout=timeout)
            if wanted(message):
                return message


def test_the_server_over_json_rpc(tmp_path):
    pytest.importorskip("pygls")
    spec = tmp_path / "net.arch"
    text = RESNET50.read_text()
    spec.write_text(text)
    uri = spec.as_uri()
    process = subprocess.Popen([sys.executable, "-m", "archdsl", "lsp"], cwd=tmp_path,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
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

        line, column = line_of(text, "fc:      linear(classes)")
        client.notify("textDocument/didChange", {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [{"range": {"start": {"line": line, "character": column + 9},
                                          "end": {"line": line, "character": column + 15}},
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


def test_lsp_without_pygls_names_the_extra(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "pygls").mkdir()
    (blocker / "pygls" / "__init__.py").write_text("raise ImportError('no pygls', name='pygls')\n")
    done = subprocess.run([sys.executable, "-m", "archdsl", "lsp"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60,
                          env={**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"})
    assert done.returncode == 2 and "pip install archdsl[lsp]" in done.stderr
