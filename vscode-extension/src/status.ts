/** The status bar item (model, preset, state, tokens/s) and its quick menu. */
import * as vscode from "vscode";
import type { ServerClient } from "./client";
import { Commands } from "./constants";
import { formatStatus } from "./statusText";

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("openLlm.status", vscode.StatusBarAlignment.Right, 100);
  private preset: string | undefined;
  private serverState: "starting" | "running" | "stopped" | "failed" = "starting";
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly client: ServerClient,
    private readonly completionsOn: () => boolean,
  ) {
    this.item.name = "Open LLM";
    this.item.command = Commands.showMenu;
    this.disposables.push(
      client.onStatus(() => this.render()),
      client.onState((state) => {
        this.serverState = state;
        this.render();
      }),
    );
    this.render();
    this.item.show();
  }

  setPreset(name: string | undefined): void {
    this.preset = name;
    this.render();
  }

  render(): void {
    const view = formatStatus(this.client.lastStatus, this.preset, this.completionsOn(), this.serverState);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor =
      view.state === "error" || view.state === "stopped"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : undefined;
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
    this.item.dispose();
  }
}

/** The menu behind the status bar item. */
export async function showMenu(completionsOn: boolean): Promise<void> {
  const items: (vscode.QuickPickItem & { command: string })[] = [
    { label: "$(comment-discussion) Open chat", command: Commands.chatOpen },
    { label: "$(settings) Switch preset…", command: Commands.presetsSwitch },
    { label: "$(database) Choose model…", command: Commands.modelsChoose },
    {
      label: completionsOn ? "$(circle-slash) Turn automatic completions off" : "$(check) Turn automatic completions on",
      command: Commands.completionToggle,
    },
    { label: "$(output) Show logs", command: Commands.showLogs },
    { label: "$(debug-restart) Restart server", command: Commands.restartServer },
  ];
  const choice = await vscode.window.showQuickPick(items, { title: "Open LLM", placeHolder: "Open LLM" });
  if (choice) await vscode.commands.executeCommand(choice.command);
}
