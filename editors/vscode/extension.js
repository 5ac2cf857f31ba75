// The VS Code client for archdsl: starts `archdsl lsp` (the command is the setting
// `archdsl.server.command`) and hands it every .arch file. Colours come from the grammar
// in syntaxes/, which works without the server.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace
    .getConfiguration("archdsl")
    .get("server.command", ["archdsl", "lsp"]);
  const serverOptions = { command, args, transport: TransportKind.stdio };
  const clientOptions = { documentSelector: [{ scheme: "file", language: "arch" }] };
  client = new LanguageClient("archdsl", "archdsl language server", serverOptions, clientOptions);
  context.subscriptions.push({ dispose: () => client && client.stop() });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
