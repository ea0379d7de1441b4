/** Shapes of the server's custom results (docs/protocol.md); only what the client reads. */

export interface GenerationStats {
  promptTokens?: number;
  reusedTokens?: number;
  evaluatedTokens?: number;
  generatedTokens?: number;
  promptMs?: number;
  firstTokenMs?: number;
  generationMs?: number;
  tokensPerS?: number;
  stopReason?: string;
  model?: string;
  truncation?: Truncation | null;
}

export interface ModelInfo {
  name?: string;
  path?: string;
  architecture?: string;
  parameters?: number;
  quantization?: string;
  sizeBytes?: number;
  contextLength?: number;
  license?: string;
}

export interface RoleStatus {
  state: string;
  progress?: number;
  model?: ModelInfo | null;
  error?: { kind: string; message: string };
  lastStats?: GenerationStats | null;
}

export interface Status {
  version?: string;
  state: "loading" | "ready" | "error" | "idle" | string;
  progress?: number;
  message?: string;
  bundled?: boolean;
  tokensPerSecond?: number | null;
  settingsProblems?: string[];
  model?: ModelInfo | null;
  roles?: Record<string, RoleStatus>;
}

export interface Truncation {
  droppedTurns: number;
  droppedMessages: number;
  keptMessages?: number;
  notice?: string;
}

export interface Chat {
  id: string;
  title: string;
  folderId: string | null;
  pinned: boolean;
  createdAt: number;
  updatedAt: number;
  systemPrompt: string | null;
  model?: string | null;
  preset?: { id?: string; name?: string } | null;
  deletedAt: number | null;
  messageCount: number;
  workspaceFolder: string;
}

export interface Attachment {
  uri: string;
  path?: string;
  name?: string;
  language?: string;
  range?: LspRange | null;
  content?: string;
  truncated?: boolean;
}

export interface LspRange {
  start: { line: number; character: number };
  end: { line: number; character: number };
}

export interface MessageStats {
  promptTokens?: number;
  completionTokens?: number;
  ttftMs?: number;
  tokensPerS?: number;
  stopReason?: string;
  model?: string;
  truncation?: Truncation | null;
}

export interface Message {
  id: string;
  chatId: string;
  parentId: string | null;
  role: "user" | "assistant" | "system";
  content: string;
  thinking?: string;
  attachments?: Attachment[];
  createdAt: number;
  incomplete?: boolean;
  stats?: MessageStats | null;
  siblingCount?: number;
  siblingIndex?: number;
  /** Not sent by the server yet; computed from an export when missing. */
  siblingIds?: string[];
}

export interface ChatDetail {
  chat: Chat;
  messages: Message[];
  generating?: boolean;
}

export interface ChatFolder {
  id: string;
  name: string;
  createdAt: number;
  chatCount: number;
  workspaceFolder: string;
}

export interface SearchHit {
  chatId: string;
  chatTitle: string;
  titleHighlight?: string;
  messageId: string | null;
  role?: string | null;
  snippet: string;
  score?: number;
  workspaceFolder?: string;
}

export interface ChatDelta {
  chatId: string;
  messageId: string;
  requestId: string;
  delta: string;
  thinking: string;
  done: boolean;
  incomplete?: boolean;
  stats: (GenerationStats & { truncation?: Truncation | null }) | null;
}

export interface SendResult {
  chatId: string;
  requestId: string;
  title: string;
  userMessage: Message;
  message: Message;
  text: string;
  incomplete: boolean;
  stats: GenerationStats;
  presetId: string;
  truncation: Truncation | null;
  notice: string | null;
  saved?: boolean;
}

export interface Preset {
  id: string;
  name: string;
  description?: string;
  systemPrompt?: string;
  model?: string | null;
  contextLength?: number | null;
  sampling?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface PresetEntry {
  id: string;
  name: string;
  description?: string;
  source: "builtin" | "user" | "workspace";
  path: string | null;
  folderUri?: string | null;
  readOnly?: boolean;
  refused?: string | null;
  preset: Preset;
}

export interface PresetList {
  presets: PresetEntry[];
  problems: { path: string; message: string }[];
  active: { folderUri: string | null; presetId: string }[];
}

export interface ActivePreset {
  folderUri: string | null;
  presetId: string;
  fallback?: boolean;
  reason?: string | null;
  entry: PresetEntry;
  modelError?: { kind: string; message: string } | null;
}

/** Argument of the server's `openLlm.chat.start` command (code actions). */
export interface ChatStartRequest {
  action?: string;
  folderUri?: string;
  title?: string;
  content: string;
  attachments?: { uri: string; range?: LspRange }[];
  diagnostics?: unknown[];
  presetId?: string;
}

