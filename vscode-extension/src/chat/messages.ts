/**
 * The typed message map between the chat webview and the extension host. Shared by both
 * sides (no `vscode` import). Requests go webview → host and are answered by id, possibly
 * with several `done: false` chunks first (streaming); the webview aborts one by id.
 * Events go host → webview; the host holds them until the webview's `ready` request.
 */

export type UiMode = "user" | "powerUser" | "developer";

export interface Sampling {
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  repeatPenalty?: number;
  maxTokens?: number;
}

export interface MessageStatsView {
  tokensPerS?: number;
  ttftMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  stopReason?: string;
  model?: string;
}

export interface MessageView {
  id: string;
  role: "user" | "assistant" | "system";
  content: string;
  thinking: string;
  incomplete: boolean;
  stats: MessageStatsView | null;
  siblingIndex: number;
  siblingCount: number;
  attachments: string[];
  /** Set while the answer streams. */
  streaming?: boolean;
}

export interface AttachmentView {
  label: string;
  uri: string;
}

export interface PresetView {
  id: string;
  name: string;
  description: string;
}

export interface ViewState {
  mode: UiMode;
  chat: { id: string; title: string } | null;
  messages: MessageView[];
  generating: boolean;
  presets: PresetView[];
  presetId: string | null;
  systemPrompt: string;
  attachments: AttachmentView[];
  /** The truncation notice of the last answer, when history was dropped. */
  notice: string | null;
  /** The preset's sampling (Power User and Developer modes) and this chat's overrides. */
  sampling: Sampling;
  samplingOverride: Sampling;
  contextLength: number | null;
  /** Developer mode: the engine's stats of the last answer (`openLlm/status`). */
  engineStats: Record<string, unknown> | null;
  /** Set when the chat panel should ask for a question (the code action "Ask"). */
  placeholder: string;
}

export interface TurnChunk {
  messageId: string;
  delta: string;
  thinking: string;
}

export interface TurnResult {
  messageId: string;
  incomplete: boolean;
  notice: string | null;
}

export interface PromptView {
  text: string;
  tokens: number;
  contextLength: number;
  budgetTokens: number;
  notice: string | null;
}

type Empty = Record<string, never>;

/** Webview → host requests: name → [params, result]. */
export interface HostRequests {
  ready: [Empty, ViewState];
  send: [{ content: string }, TurnResult];
  regenerate: [{ messageId: string }, TurnResult];
  edit: [{ messageId: string; content: string }, TurnResult];
  switchBranch: [{ messageId: string; offset: -1 | 1 }, null];
  branchChat: [{ messageId: string }, null];
  newChat: [Empty, null];
  selectPreset: [{ presetId: string }, null];
  setSampling: [{ sampling: Sampling }, null];
  setSystemPrompt: [{ systemPrompt: string | null }, null];
  attach: [{ kind: "selection" | "file" }, null];
  removeAttachment: [{ index: number }, null];
  copy: [{ text: string }, null];
  insertCode: [{ code: string; mode: "insert" | "replace" }, null];
  renderPrompt: [{ messageId: string | null }, PromptView];
  showLogs: [Empty, null];
}

/** Chunks streamed before the result, for the requests that stream. */
export interface HostChunks {
  send: TurnChunk;
  regenerate: TurnChunk;
  edit: TurnChunk;
}

/** Host → webview events. */
export interface WebviewEvents {
  state: ViewState;
  focusInput: { text?: string };
  /** Send this message as if typed (code actions: Explain, Write tests, Fix). */
  submit: { content: string };
  error: { message: string };
}

export type RequestName = keyof HostRequests;
export type ParamsOf<K extends RequestName> = HostRequests[K][0];
export type ResultOf<K extends RequestName> = HostRequests[K][1];
export type ChunkOf<K extends RequestName> = K extends keyof HostChunks ? HostChunks[K] : never;

/** Wire format. */
export type ToHost =
  | { kind: "request"; id: number; name: RequestName; params: unknown }
  | { kind: "abort"; id: number };

export type ToWebview =
  | { kind: "response"; id: number; done: false; chunk: unknown }
  | { kind: "response"; id: number; done: true; result?: unknown; error?: string }
  | { kind: "event"; name: keyof WebviewEvents; payload: unknown };

const REQUEST_NAMES: readonly RequestName[] = [
  "ready", "send", "regenerate", "edit", "switchBranch", "branchChat", "newChat",
  "selectPreset", "setSampling", "setSystemPrompt", "attach", "removeAttachment", "copy",
  "insertCode", "renderPrompt", "showLogs",
];

/** Validate a message from the webview (it is untrusted input: the page renders model output). */
export function parseToHost(raw: unknown): ToHost | undefined {
  if (!raw || typeof raw !== "object") return undefined;
  const msg = raw as Record<string, unknown>;
  if (typeof msg.id !== "number" || !Number.isInteger(msg.id)) return undefined;
  if (msg.kind === "abort") return { kind: "abort", id: msg.id };
  if (msg.kind !== "request" || typeof msg.name !== "string") return undefined;
  if (!(REQUEST_NAMES as readonly string[]).includes(msg.name)) return undefined;
  const params = msg.params ?? {};
  if (typeof params !== "object" || Array.isArray(params)) return undefined;
  return { kind: "request", id: msg.id, name: msg.name as RequestName, params };
}
