"""`archdsl lsp`: a Language Server over standard input and output, built on pygls.

Only the protocol lives here; what to show comes from archdsl.tools.editor. Documents are
compiled when opened and on every change (the same diagnostics as `archdsl check`); the
last version that compiled is kept so completion still knows the blocks mid-edit.
"""
from __future__ import annotations

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path

from .. import __version__
from ..diagnostics import SpecError
from . import editor
from .fmt import format_source

_SYMBOL_KINDS = {"network": types.SymbolKind.Class, "block": types.SymbolKind.Function,
                 "function": types.SymbolKind.Function, "label": types.SymbolKind.Field}
_COMPLETION_KINDS = {"layer": types.CompletionItemKind.Function,
                     "block": types.CompletionItemKind.Module,
                     "function": types.CompletionItemKind.Function,
                     "keyword": types.CompletionItemKind.Keyword,
                     "argument": types.CompletionItemKind.Property,
                     "module": types.CompletionItemKind.Module}


class ArchServer(LanguageServer):
    def __init__(self):
        super().__init__("archdsl", __version__)
        self.documents: dict[str, editor.Document] = {}  # uri -> the latest analysis
        self.compiled: dict[str, editor.Document] = {}  # uri -> the latest that compiled

    def analyse(self, uri: str) -> editor.Document:
        text_document = self.workspace.get_text_document(uri)
        doc = editor.analyse(text_document.source, text_document.path)
        self.documents[uri] = doc
        if doc.result.program is not None:
            self.compiled[uri] = doc
        return doc

    def document(self, uri: str) -> editor.Document:
        return self.documents.get(uri) or self.analyse(uri)


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


def publish(ls: ArchServer, uri: str, version: int | None = None) -> None:
    doc = ls.analyse(uri)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
        uri=uri, version=version, diagnostics=[_diagnostic(p) for p in editor.problems(doc)]))


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: ArchServer, params: types.DidOpenTextDocumentParams):
    publish(ls, params.text_document.uri, params.text_document.version)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: ArchServer, params: types.DidChangeTextDocumentParams):
    publish(ls, params.text_document.uri, params.text_document.version)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: ArchServer, params: types.DidCloseTextDocumentParams):
    uri = params.text_document.uri
    ls.documents.pop(uri, None)
    ls.compiled.pop(uri, None)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls: ArchServer, params: types.HoverParams):
    found = editor.hover(ls.document(params.text_document.uri), params.position.line,
                         params.position.character)
    if found is None:
        return None
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, found.text),
                       _range(found.place))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls: ArchServer, params: types.DefinitionParams):
    found = editor.definition(ls.document(params.text_document.uri), params.position.line,
                              params.position.character)
    return None if found is None or found.path.startswith("<") else _location(found)


@server.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=[".", "(", ","]))
def completion(ls: ArchServer, params: types.CompletionParams):
    uri = params.text_document.uri
    items = editor.completions(ls.document(uri), params.position.line,
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
def document_symbol(ls: ArchServer, params: types.DocumentSymbolParams):
    return [_symbol(s) for s in editor.symbols(ls.document(params.text_document.uri))]


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: ArchServer, params: types.DocumentFormattingParams):
    text_document = ls.workspace.get_text_document(params.text_document.uri)
    text = text_document.source
    try:
        formatted = format_source(text, text_document.path)
    except SpecError:  # a syntax error: nothing to format; the diagnostics say why
        return None
    if formatted == text:
        return []
    lines = text.split("\n")
    end = types.Position(len(lines) - 1, len(lines[-1]))
    return [types.TextEdit(types.Range(types.Position(0, 0), end), formatted)]


def serve() -> None:
    """Speak the protocol on standard input and output until the client says exit."""
    server.start_io()
