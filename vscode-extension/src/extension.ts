/** Entry point: wires the client, the status bar, the chat panel, the chat list and commands. */
import * as vscode from "vscode";
import { ChatViewProvider } from "./chat/ChatViewProvider";
import { errorMessage, ServerClient } from "./client";
import { Commands, OUTPUT_CHANNEL, Views } from "./constants";
import { chooseModel } from "./models";
import { activePresetName, createFromCurrent, editWorkspacePreset, importPreset, presetCommand, switchPreset } from "./presets";
import { showMenu, StatusBar } from "./status";
import { registerChatListCommands } from "./tree/commands";
import { ChatTreeProvider, Node } from "./tree/ChatTree";

const AUTO_COMPLETIONS_KEY = "openLlm.automaticCompletions";

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel(OUTPUT_CHANNEL, { log: true });
  const completionsOn = () => context.globalState.get<boolean>(AUTO_COMPLETIONS_KEY, true);

  let chat: ChatViewProvider | undefined;
  const client = new ServerClient(output, {
    automaticCompletions: completionsOn,
    startChat: async (request) => {
      try {
        await chat?.startFromCodeAction(request);
      } catch (err) {
        void vscode.window.showErrorMessage(`Open LLM: ${errorMessage(err)}`);
      }
    },
  });
  chat = new ChatViewProvider(context.extensionUri, client, output, context.workspaceState);
  const status = new StatusBar(client, completionsOn);
  const tree = new ChatTreeProvider(client, context.workspaceState);
  const treeView = vscode.window.createTreeView<Node>(Views.chatList, { treeDataProvider: tree, showCollapseAll: true });

  const refreshPreset = async () => status.setPreset(await activePresetName(client));
  context.subscriptions.push(
    output,
    client,
    status,
    chat,
    tree,
    treeView,
    vscode.window.registerWebviewViewProvider(Views.chat, chat, { webviewOptions: { retainContextWhenHidden: true } }),
    client.onState((state) => {
      if (state === "running") {
        void refreshPreset();
        void chat?.onServerReady();
        tree.refresh();
      }
    }),
    client.onPresetsChanged(() => void refreshPreset()),
    client.onChatChanged(() => tree.refresh()),
    chat.onDidChangeChats(() => tree.refresh()),
    vscode.commands.registerCommand(Commands.restartServer, () => client.restart()),
    vscode.commands.registerCommand(Commands.showLogs, () => output.show()),
    vscode.commands.registerCommand(Commands.showMenu, () => showMenu(completionsOn())),
    vscode.commands.registerCommand(Commands.completionTrigger, () =>
      vscode.commands.executeCommand("editor.action.inlineSuggest.trigger"),
    ),
    vscode.commands.registerCommand(Commands.completionToggle, async () => {
      const on = !completionsOn();
      await context.globalState.update(AUTO_COMPLETIONS_KEY, on);
      status.render();
      void vscode.window.setStatusBarMessage(`Open LLM: automatic completions ${on ? "on" : "off"}`, 3000);
    }),
    vscode.commands.registerCommand(Commands.chatOpen, () => chat?.reveal()),
    vscode.commands.registerCommand(Commands.chatNew, () => chat?.newChat()),
    vscode.commands.registerCommand(Commands.chatAttachSelection, () => chat?.attachSelection()),
    vscode.commands.registerCommand(Commands.chatAttachFile, (uri?: vscode.Uri) => chat?.attachFile(uri)),
    vscode.commands.registerCommand(Commands.presetsSwitch, presetCommand(client, switchPreset)),
    vscode.commands.registerCommand(Commands.presetsCreateFromCurrent, presetCommand(client, createFromCurrent)),
    vscode.commands.registerCommand(Commands.presetsEditWorkspace, presetCommand(client, editWorkspacePreset)),
    vscode.commands.registerCommand(Commands.presetsImport, presetCommand(client, importPreset)),
    vscode.commands.registerCommand(Commands.modelsChoose, presetCommand(client, chooseModel)),
    ...registerChatListCommands(client, tree, treeView, chat),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration("openLlm.server")) {
        const choice = await vscode.window.showInformationMessage(
          "Open LLM: the server command changed. Restart the server?",
          "Restart",
        );
        if (choice === "Restart") await client.restart();
      }
    }),
  );
  await client.start();
}

export function deactivate(): void {
  // Disposables (the client first) are disposed by VS Code.
}
