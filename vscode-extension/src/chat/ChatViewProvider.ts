/** The chat panel (a webview view): host side of the message map, talking to the server. */
import { randomUUID } from "node:crypto";
import * as vscode from "vscode";
import { errorMessage, ServerClient } from "../client";
import { Methods, Views } from "../constants";
import type {
  ActivePreset,
  ChatDelta,
  ChatDetail,
  ChatStartRequest,
  LspRange,
  Message,
  PresetList,
  SendResult,
  Status,
} from "../protocol";
import { uiMode } from "../settings";
import { chatHtml, nonce } from "./html";
import type { MessageView, PresetView, PromptView, Sampling, TurnChunk, TurnResult, ViewState } from "./messages";
import { HostEndpoint, RequestContext } from "./messenger";
import { siblingsOf } from "./branches";

const LAST_CHAT_KEY = "openLlm.chat.last";

interface PendingAttachment {
  uri: string;
  range?: LspRange;
  label: string;
}

interface ActiveTurn {
  requestId: string;
  chatId: string;
  ctx: RequestContext<"send" | "regenerate" | "edit">;
}

export class ChatViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private endpoint: HostEndpoint | undefined;
  private chatId: string | undefined;
  private detail: ChatDetail | undefined;
  private attachments: PendingAttachment[] = [];
  private samplingOverride: Sampling = {};
  private notice: string | null = null;
  private placeholder = "";
  private turn: ActiveTurn | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly changedEmitter = new vscode.EventEmitter<void>();
  /** Fired when this panel created, changed or retitled a chat (the chat list refreshes). */
  readonly onDidChangeChats = this.changedEmitter.event;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly client: ServerClient,
    private readonly output: vscode.LogOutputChannel,
    private readonly memento: vscode.Memento,
  ) {
    this.disposables.push(
      client.onChatDelta((delta) => this.onDelta(delta)),
      client.onPresetsChanged(() => void this.pushState()),
      client.onChatChanged((p) => {
        const changed = p as { chatId?: string };
        if (changed.chatId && changed.chatId === this.chatId) void this.refreshChat();
      }),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration("openLlm.ui.mode")) void this.pushState();
      }),
    );
  }

  get currentChatId(): string | undefined {
    return this.chatId;
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const dist = vscode.Uri.joinPath(this.extensionUri, "dist");
    view.webview.options = { enableScripts: true, localResourceRoots: [dist] };
    const endpoint = new HostEndpoint((msg) => void view.webview.postMessage(msg));
    this.endpoint?.reset();
    this.endpoint = endpoint;
    this.registerHandlers(endpoint);
    view.webview.onDidReceiveMessage((msg) => void endpoint.handle(msg), undefined, this.disposables);
    view.onDidDispose(() => {
      endpoint.reset();
      if (this.view === view) this.view = undefined;
    });
    view.webview.html = chatHtml({
      cspSource: view.webview.cspSource,
      scriptUri: view.webview.asWebviewUri(vscode.Uri.joinPath(dist, "webview.js")).toString(),
      styleUri: view.webview.asWebviewUri(vscode.Uri.joinPath(dist, "webview.css")).toString(),
      nonce: nonce(),
    });
  }

  /** Reveal the panel (it is created on first reveal). */
  async reveal(): Promise<void> {
    if (this.view) this.view.show(true);
    else await vscode.commands.executeCommand(`${Views.chat}.focus`);
  }

  async openChat(chatId: string): Promise<void> {
    this.chatId = chatId;
    this.notice = null;
    this.samplingOverride = {};
    await this.refreshChat();
    await this.reveal();
  }

  async newChat(): Promise<void> {
    this.chatId = undefined;
    void this.memento.update(LAST_CHAT_KEY, undefined);
    this.detail = undefined;
    this.notice = null;
    this.samplingOverride = {};
    this.placeholder = "";
    await this.pushState();
    await this.reveal();
    this.endpoint?.event("focusInput", {});
  }

  /** The server (re)started: show the last chat if the panel opened before it was ready. */
  async onServerReady(): Promise<void> {
    const last = this.memento.get<string>(LAST_CHAT_KEY);
    if (!this.chatId && last) {
      this.chatId = last;
      await this.refreshChat();
    } else {
      await this.pushState();
    }
  }

  /** Close the chat if it is the one shown (it was deleted). */
  async forget(chatId: string): Promise<void> {
    if (this.chatId === chatId) await this.newChat();
  }

  async attachSelection(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showInformationMessage("Open LLM: open a file and select code to attach.");
      return;
    }
    const sel = editor.selection;
    if (sel.isEmpty) return this.attachFile(editor.document.uri);
    const name = vscode.workspace.asRelativePath(editor.document.uri);
    this.attachments.push({
      uri: editor.document.uri.toString(),
      range: {
        start: { line: sel.start.line, character: sel.start.character },
        end: { line: sel.end.line, character: sel.end.character },
      },
      label: `${name}:${sel.start.line + 1}-${sel.end.line + 1}`,
    });
    await this.pushState();
    await this.reveal();
  }

  async attachFile(uri?: vscode.Uri): Promise<void> {
    const target = uri ?? vscode.window.activeTextEditor?.document.uri;
    if (!target) {
      const picked = await vscode.window.showOpenDialog({ canSelectMany: false, title: "Attach a file to the chat" });
      if (!picked?.[0]) return;
      return this.attachFile(picked[0]);
    }
    this.attachments.push({ uri: target.toString(), label: vscode.workspace.asRelativePath(target) });
    await this.pushState();
    await this.reveal();
  }

  /** A code action (Ask, Explain, Write tests, Fix): new chat, then ask or stream at once. */
  async startFromCodeAction(req: ChatStartRequest): Promise<void> {
    const chat = await this.client.request<{ id: string }>(Methods.chatCreate, {
      ...(req.title ? { title: req.title } : {}),
      ...(req.folderUri ? { folderUri: req.folderUri } : {}),
    });
    this.chatId = chat.id;
    this.detail = undefined;
    this.notice = null;
    this.attachments = (req.attachments ?? []).map((a) => ({
      uri: a.uri,
      range: a.range,
      label: attachmentLabel(a.uri, a.range),
    }));
    this.placeholder = req.content ? "" : `Ask about ${this.attachments[0]?.label ?? "the selection"}…`;
    this.changedEmitter.fire();
    await this.refreshChat();
    await this.reveal();
    if (req.content) this.endpoint?.event("submit", { content: req.content });
    else this.endpoint?.event("focusInput", {});
  }

  private registerHandlers(endpoint: HostEndpoint): void {
    endpoint.on("ready", async () => {
      // A new window (or a reload) shows the chat that was open last in this workspace.
      const last = this.memento.get<string>(LAST_CHAT_KEY);
      if (!this.chatId && last && this.client.running) {
        this.chatId = last;
        await this.refreshChat(false);
      }
      return this.buildState();
    });
    endpoint.on("send", async ({ content }, ctx) => {
      if (!this.chatId) {
        const chat = await this.client.request<{ id: string }>(Methods.chatCreate, {});
        this.chatId = chat.id;
        this.changedEmitter.fire();
      }
      const attachments = this.attachments.map((a) => ({ uri: a.uri, ...(a.range ? { range: a.range } : {}) }));
      this.attachments = [];
      this.placeholder = "";
      return this.runTurn(ctx, Methods.chatSend, { chatId: this.chatId, content, attachments });
    });
    endpoint.on("regenerate", async ({ messageId }, ctx) => this.runTurn(ctx, Methods.chatRegenerate, { messageId }));
    endpoint.on("edit", async ({ messageId, content }, ctx) =>
      this.runTurn(ctx, Methods.chatEdit, { messageId, content }),
    );
    endpoint.on("switchBranch", async ({ messageId, offset }) => {
      const message = this.detail?.messages.find((m) => m.id === messageId);
      if (!message || !this.chatId) return null;
      const siblings = message.siblingIds ?? (await this.siblingIds(message));
      const index = siblings.indexOf(messageId) + offset;
      if (index < 0 || index >= siblings.length) return null;
      this.detail = await this.client.request<ChatDetail>(Methods.chatSwitchBranch, { messageId: siblings[index] });
      await this.pushState();
      return null;
    });
    endpoint.on("branchChat", async ({ messageId }) => {
      const detail = await this.client.request<ChatDetail>(Methods.chatBranch, { messageId });
      this.changedEmitter.fire();
      await this.openChat(detail.chat.id);
      return null;
    });
    endpoint.on("newChat", async () => {
      await this.newChat();
      return null;
    });
    endpoint.on("selectPreset", async ({ presetId }) => {
      const result = await this.client.request<ActivePreset>(Methods.presetsSelect, { id: presetId });
      if (result.modelError) void vscode.window.showWarningMessage(`Open LLM: ${result.modelError.message}`);
      await this.pushState();
      return null;
    });
    endpoint.on("setSampling", async ({ sampling }) => {
      this.samplingOverride = sampling;
      await this.pushState();
      return null;
    });
    endpoint.on("setSystemPrompt", async ({ systemPrompt }) => {
      if (this.chatId) {
        await this.client.request(Methods.chatUpdate, { chatId: this.chatId, systemPrompt });
        await this.refreshChat();
      }
      return null;
    });
    endpoint.on("attach", async ({ kind }) => {
      if (kind === "selection") await this.attachSelection();
      else await this.attachFile();
      return null;
    });
    endpoint.on("removeAttachment", async ({ index }) => {
      this.attachments.splice(index, 1);
      await this.pushState();
      return null;
    });
    endpoint.on("copy", async ({ text }) => {
      await vscode.env.clipboard.writeText(text);
      return null;
    });
    endpoint.on("insertCode", async ({ code, mode }) => {
      const editor = vscode.window.visibleTextEditors.find((e) => e === vscode.window.activeTextEditor) ??
        vscode.window.visibleTextEditors[0];
      if (!editor) throw new Error("Open a file to insert the code into.");
      await editor.edit((edit) => {
        for (const sel of editor.selections) {
          if (mode === "replace" || !sel.isEmpty) edit.replace(sel, code);
          else edit.insert(sel.active, code);
        }
      });
      return null;
    });
    endpoint.on("renderPrompt", async ({ messageId }): Promise<PromptView> => {
      const params = messageId ? { messageId } : this.chatId ? { chatId: this.chatId } : undefined;
      if (!params) throw new Error("Start a chat first.");
      const p = await this.client.request<{
        text: string; tokens: number; contextLength: number; budgetTokens: number; notice: string | null;
      }>(Methods.chatRenderPrompt, { ...params, ...this.samplingParams() });
      return { text: p.text, tokens: p.tokens, contextLength: p.contextLength, budgetTokens: p.budgetTokens, notice: p.notice };
    });
    endpoint.on("showLogs", async () => {
      this.output.show(true);
      return null;
    });
  }

  private samplingParams(): { sampling?: Sampling } {
    return Object.keys(this.samplingOverride).length ? { sampling: this.samplingOverride } : {};
  }

  /** Stream one answer: deltas go to the webview as chunks, abort cancels on the server. */
  private async runTurn(
    ctx: RequestContext<"send" | "regenerate" | "edit">,
    method: string,
    params: Record<string, unknown>,
  ): Promise<TurnResult> {
    const requestId = `vscode-${randomUUID()}`;
    const chatId = this.chatId ?? "";
    this.turn = { requestId, chatId, ctx };
    const onAbort = () => this.client.notify(Methods.chatCancel, { requestId });
    ctx.signal.addEventListener("abort", onAbort);
    try {
      const result = await this.client.request<SendResult>(method, { ...params, requestId, ...this.samplingParams() });
      this.notice = result.notice ?? result.truncation?.notice ?? null;
      if (result.saved === false) this.notice = "The answer could not be saved (see the server's message).";
      return { messageId: result.message?.id ?? "", incomplete: result.incomplete, notice: this.notice };
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
      this.turn = undefined;
      this.changedEmitter.fire();
      await this.refreshChat();
    }
  }

  private onDelta(delta: ChatDelta): void {
    const turn = this.turn;
    if (!turn || delta.requestId !== turn.requestId) return;
    if (delta.delta || delta.thinking) {
      const chunk: TurnChunk = { messageId: delta.messageId, delta: delta.delta, thinking: delta.thinking };
      turn.ctx.chunk(chunk);
    }
  }

  private async siblingIds(message: Message): Promise<string[]> {
    const exported = await this.client.request<{ data: { messages: { id: string; parentId: string | null }[] } }>(
      Methods.chatExport,
      { chatId: message.chatId, format: "json" },
    );
    return siblingsOf(exported.data.messages, message.id);
  }

  private async refreshChat(push = true): Promise<void> {
    void this.memento.update(LAST_CHAT_KEY, this.chatId);
    if (this.chatId) {
      try {
        this.detail = await this.client.request<ChatDetail>(Methods.chatGet, { chatId: this.chatId });
      } catch (err) {
        this.output.warn(`chat ${this.chatId}: ${errorMessage(err)}`);
        this.chatId = undefined;
        this.detail = undefined;
        void this.memento.update(LAST_CHAT_KEY, undefined);
      }
    }
    if (push) await this.pushState();
  }

  private async pushState(): Promise<void> {
    if (!this.endpoint) return;
    if (this.turn) {
      // Never replace the view while an answer streams into it; sent when the turn ends.
      return;
    }
    try {
      this.endpoint.event("state", await this.buildState());
    } catch (err) {
      this.output.warn(`chat panel: ${errorMessage(err)}`);
    }
  }

  private async buildState(): Promise<ViewState> {
    const mode = uiMode();
    let presets: PresetView[] = [];
    let active: ActivePreset | undefined;
    if (this.client.running) {
      try {
        const [list, act] = await Promise.all([
          this.client.request<PresetList>(Methods.presetsList, {}),
          this.client.request<ActivePreset>(Methods.presetsActive, {}),
        ]);
        active = act;
        const seen = new Set<string>();
        for (const p of list.presets) {
          if (p.refused || seen.has(p.id)) continue;
          seen.add(p.id);
          presets.push({ id: p.id, name: p.name, description: p.description ?? "" });
        }
      } catch (err) {
        this.output.warn(`presets: ${errorMessage(err)}`);
      }
    }
    const preset = active?.entry?.preset;
    const status: Status | undefined = this.client.lastStatus;
    const messages: MessageView[] = (this.detail?.messages ?? []).map(toView);
    return {
      mode,
      chat: this.detail ? { id: this.detail.chat.id, title: this.detail.chat.title } : null,
      messages,
      generating: !!this.detail?.generating && !this.turn,
      presets,
      presetId: active?.presetId ?? null,
      systemPrompt: this.detail?.chat.systemPrompt ?? (typeof preset?.systemPrompt === "string" ? preset.systemPrompt : ""),
      attachments: this.attachments.map((a) => ({ label: a.label, uri: a.uri })),
      notice: this.notice,
      sampling: (preset?.sampling as Sampling | undefined) ?? {},
      samplingOverride: this.samplingOverride,
      contextLength: status?.model?.contextLength ?? null,
      engineStats: mode === "developer" ? ((status?.roles?.chat?.lastStats as Record<string, unknown>) ?? null) : null,
      placeholder: this.placeholder,
    };
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
    this.changedEmitter.dispose();
  }
}

function toView(m: Message): MessageView {
  return {
    id: m.id,
    role: m.role,
    content: m.content,
    thinking: m.thinking ?? "",
    incomplete: !!m.incomplete,
    stats: m.stats
      ? {
          tokensPerS: m.stats.tokensPerS,
          ttftMs: m.stats.ttftMs,
          promptTokens: m.stats.promptTokens,
          completionTokens: m.stats.completionTokens,
          stopReason: m.stats.stopReason,
          model: m.stats.model,
        }
      : null,
    siblingIndex: m.siblingIndex ?? 0,
    siblingCount: m.siblingCount ?? 1,
    attachments: (m.attachments ?? []).map((a) =>
      attachmentLabel(a.uri, a.range ?? undefined, a.path ?? a.name),
    ),
  };
}

function attachmentLabel(uri: string, range?: LspRange | null, path?: string): string {
  const name = path ?? vscode.workspace.asRelativePath(vscode.Uri.parse(uri));
  return range ? `${name}:${range.start.line + 1}-${range.end.line + 1}` : name;
}
