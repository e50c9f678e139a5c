// Starts `specc lsp` (the command in the setting specc.server.command) for .spec files.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("specc").get("server.command", ["specc", "lsp"]);
  const server = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient("specc", "specc", server, {
    documentSelector: [{ scheme: "file", language: "spec" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.spec") },
  });
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
