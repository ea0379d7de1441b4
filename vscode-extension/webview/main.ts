/** The chat panel's page. Talks to the host only through the typed message map. */
import type { MessageView, PendingRequest, Sampling, TurnResult, ViewState } from "./types";
import { WebviewEndpoint } from "../src/chat/messenger";
import { escapeHtml, renderMarkdown } from "./markdown";

declare function acquireVsCodeApi(): { postMessage(msg: unknown): void };

const vscode = acquireVsCodeApi();
const endpoint = new WebviewEndpoint((msg) => vscode.postMessage(msg));
window.addEventListener("message", (event) => endpoint.handle(event.data));

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const messagesEl = $<HTMLDivElement>("messages");
const input = $<HTMLTextAreaElement>("input");
const sendButton = $<HTMLButtonElement>("send");
const stopButton = $<HTMLButtonElement>("stop");
const presetSelect = $<HTMLSelectElement>("preset");
const titleEl = $<HTMLSpanElement>("title");
const noticeEl = $<HTMLDivElement>("notice");
const attachmentsEl = $<HTMLDivElement>("attachments");
const settingsEl = $<HTMLDetailsElement>("settings");
const developerEl = $<HTMLDetailsElement>("developer");
const statusEl = $<HTMLDivElement>("status");

let state: ViewState | undefined;
let current: PendingRequest<TurnResult> | undefined;
/** Code blocks of every rendered message, by message id. */
const codeBlocks = new Map<string, string[]>();
let editing: string | undefined;

function setStatus(text: string): void {
  statusEl.textContent = text;
}

function statsText(m: MessageView): string {
  const s = m.stats;
  if (!s) return m.incomplete ? "stopped" : "";
  const parts: string[] = [];
  if (s.tokensPerS) parts.push(`${s.tokensPerS.toFixed(1)} tok/s`);
  if (s.completionTokens !== undefined) parts.push(`${s.completionTokens} tokens`);
  if (s.ttftMs !== undefined) parts.push(`first token ${Math.round(s.ttftMs)} ms`);
  if (state?.mode !== "user" && s.promptTokens !== undefined) parts.push(`prompt ${s.promptTokens} tokens`);
  if (s.stopReason && s.stopReason !== "eos" && s.stopReason !== "stop") parts.push(`stop: ${s.stopReason}`);
  if (m.incomplete) parts.push("incomplete");
  return parts.join(" · ");
}

function button(label: string, action: string, id: string, title: string, extra = ""): string {
  return `<button type="button" class="link" data-action="${action}" data-id="${escapeHtml(id)}" title="${escapeHtml(title)}" ${extra}>${label}</button>`;
}

function renderMessage(m: MessageView): string {
  const rendered = renderMarkdown(m.content || (m.streaming ? "" : m.incomplete ? "*(stopped)*" : ""));
  codeBlocks.set(m.id, rendered.codeBlocks);
  const busy = !!state?.generating || !!current;
  const nav =
    m.siblingCount > 1
      ? `<span class="branch-nav" aria-label="branch ${m.siblingIndex + 1} of ${m.siblingCount}">` +
        button("‹", "prev", m.id, "Previous version", m.siblingIndex === 0 || busy ? "disabled" : "") +
        `<span class="branch-pos">${m.siblingIndex + 1}/${m.siblingCount}</span>` +
        button("›", "next", m.id, "Next version", m.siblingIndex >= m.siblingCount - 1 || busy ? "disabled" : "") +
        `</span>`
      : "";
  const actions: string[] = [];
  if (!m.streaming && !busy) {
    if (m.role === "user") actions.push(button("Edit", "edit", m.id, "Edit this message (a new branch)"));
    if (m.role === "assistant") actions.push(button("Regenerate", "regenerate", m.id, "Answer again (a new branch)"));
    actions.push(button("Branch", "branch", m.id, "Branch into a new chat from here"));
    if (state?.mode === "developer") actions.push(button("Prompt", "prompt", m.id, "Show the exact prompt"));
  }
  const thinking = m.thinking
    ? `<details class="thinking"><summary>Thinking</summary><div class="markdown">${renderMarkdown(m.thinking).html}</div></details>`
    : "";
  const attachments = m.attachments.length
    ? `<div class="chips">${m.attachments.map((a) => `<span class="chip">${escapeHtml(a)}</span>`).join("")}</div>`
    : "";
  const body =
    editing === m.id
      ? `<textarea class="edit-input" data-id="${escapeHtml(m.id)}" aria-label="Edit message">${escapeHtml(m.content)}</textarea>` +
        `<div class="row">${button("Save &amp; submit", "save-edit", m.id, "Send the edited message")}${button("Cancel", "cancel-edit", m.id, "Cancel")}</div>`
      : `<div class="markdown content">${rendered.html}${m.streaming ? '<span class="cursor"></span>' : ""}</div>`;
  const stats = m.role === "assistant" ? `<span class="stats">${escapeHtml(statsText(m))}</span>` : "";
  return (
    `<div class="message ${m.role}${m.streaming ? " streaming" : ""}" data-id="${escapeHtml(m.id)}" tabindex="0" ` +
    `aria-label="${m.role === "user" ? "You" : "Assistant"}">` +
    `<div class="role">${m.role === "user" ? "You" : "Assistant"}</div>` +
    thinking + attachments + body +
    `<div class="meta">${nav}${stats}<span class="actions">${actions.join("")}</span></div></div>`
  );
}

function renderMessages(): void {
  if (!state) return;
  const stick = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 40;
  codeBlocks.clear();
  messagesEl.innerHTML = state.messages.length
    ? state.messages.filter((m) => m.role !== "system").map(renderMessage).join("")
    : `<div class="empty">Ask about your code. Attach the selection or a file with the buttons below.</div>`;
  if (stick) messagesEl.scrollTop = messagesEl.scrollHeight;
}

function renderSettings(): void {
  if (!state) return;
  settingsEl.hidden = state.mode === "user";
  developerEl.hidden = state.mode !== "developer";
  const eff: Sampling = { ...state.sampling, ...state.samplingOverride };
  for (const key of ["temperature", "topP", "topK", "minP", "repeatPenalty", "maxTokens"] as const) {
    const el = document.getElementById(`s-${key}`) as HTMLInputElement | null;
    if (el && document.activeElement !== el) el.value = eff[key] !== undefined ? String(eff[key]) : "";
  }
  const sys = $<HTMLTextAreaElement>("s-system");
  if (document.activeElement !== sys) sys.value = state.systemPrompt;
  $<HTMLSpanElement>("s-context").textContent = state.contextLength ? String(state.contextLength) : "–";
  if (state.mode === "developer") {
    $<HTMLPreElement>("engine-stats").textContent = state.engineStats ? JSON.stringify(state.engineStats, null, 2) : "–";
  }
}

function render(): void {
  if (!state) return;
  titleEl.textContent = state.chat?.title ?? "New chat";
  const options = state.presets
    .map((p) => `<option value="${escapeHtml(p.id)}" title="${escapeHtml(p.description)}">${escapeHtml(p.name)}</option>`)
    .join("");
  if (presetSelect.dataset.options !== options) {
    presetSelect.innerHTML = options;
    presetSelect.dataset.options = options;
  }
  presetSelect.value = state.presetId ?? "";
  noticeEl.hidden = !state.notice;
  noticeEl.textContent = state.notice ?? "";
  attachmentsEl.innerHTML = state.attachments
    .map(
      (a, i) =>
        `<span class="chip" title="${escapeHtml(a.uri)}">${escapeHtml(a.label)}` +
        `<button type="button" class="chip-remove" data-action="remove-attachment" data-index="${i}" aria-label="Remove ${escapeHtml(a.label)}">×</button></span>`,
    )
    .join("");
  if (state.placeholder) input.placeholder = state.placeholder;
  renderMessages();
  renderSettings();
  updateBusy();
}

function updateBusy(): void {
  const busy = !!current || !!state?.generating;
  sendButton.hidden = busy;
  stopButton.hidden = !busy;
  document.body.classList.toggle("busy", busy);
}

/** Run a streaming turn (send, regenerate, edit): optimistic bubbles, chunks, then the state. */
function streamTurn(start: () => PendingRequest<TurnResult>, optimisticUser?: string): void {
  if (!state || current) return;
  if (optimisticUser !== undefined) {
    state.messages.push({
      id: "pending-user", role: "user", content: optimisticUser, thinking: "", incomplete: false, stats: null,
      siblingIndex: 0, siblingCount: 1, attachments: state.attachments.map((a) => a.label),
    });
  }
  const answer: MessageView = {
    id: "pending-answer", role: "assistant", content: "", thinking: "", incomplete: false, stats: null,
    siblingIndex: 0, siblingCount: 1, attachments: [], streaming: true,
  };
  state.messages.push(answer);
  let frame = 0;
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(() => ((frame = 0), renderMessages()));
  };
  current = start();
  setStatus("Generating…");
  updateBusy();
  renderMessages();
  current.result
    .then((result) => setStatus(result.incomplete ? "Stopped." : "Done."))
    .catch((err: Error) => {
      answer.streaming = false;
      setStatus(`Error: ${err.message}`);
      showError(err.message);
    })
    .finally(() => {
      current = undefined;
      updateBusy();
      renderMessages();
    });
  // Chunks arrive through the request's onChunk (wired in start()).
  streamTarget = { answer, schedule };
}

let streamTarget: { answer: MessageView; schedule(): void } | undefined;
function onChunk(chunk: { messageId: string; delta: string; thinking: string }): void {
  if (!streamTarget) return;
  streamTarget.answer.content += chunk.delta;
  streamTarget.answer.thinking += chunk.thinking;
  streamTarget.schedule();
}

function showError(message: string): void {
  noticeEl.hidden = false;
  noticeEl.classList.add("error");
  noticeEl.textContent = message;
}

function send(): void {
  const content = input.value.trim();
  if ((!content && !state?.attachments.length) || current) return;
  input.value = "";
  noticeEl.classList.remove("error");
  streamTurn(() => endpoint.request("send", { content }, onChunk), content);
}

function stop(): void {
  current?.abort();
  setStatus("Stopping…");
}

sendButton.addEventListener("click", send);
stopButton.addEventListener("click", stop);
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    send();
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && current) {
    e.preventDefault();
    stop();
  }
});
$("attach-selection").addEventListener("click", () => void endpoint.request("attach", { kind: "selection" }).result);
$("attach-file").addEventListener("click", () => void endpoint.request("attach", { kind: "file" }).result);
$("new-chat").addEventListener("click", () => void endpoint.request("newChat", {}).result);
presetSelect.addEventListener("change", () => {
  void endpoint.request("selectPreset", { presetId: presetSelect.value }).result.catch((e: Error) => showError(e.message));
});
settingsEl.addEventListener("change", (e) => {
  const target = e.target as HTMLInputElement | HTMLTextAreaElement;
  if (target.id === "s-system") {
    const value = target.value.trim();
    void endpoint.request("setSystemPrompt", { systemPrompt: value ? target.value : null }).result;
    return;
  }
  // This chat's overrides: every field whose value differs from the preset's.
  const sampling: Sampling = {};
  for (const key of ["temperature", "topP", "topK", "minP", "repeatPenalty", "maxTokens"] as const) {
    const el = document.getElementById(`s-${key}`) as HTMLInputElement | null;
    if (el && el.value !== "" && Number(el.value) !== state?.sampling[key]) sampling[key] = Number(el.value);
  }
  void endpoint.request("setSampling", { sampling }).result;
});
$("show-logs").addEventListener("click", () => void endpoint.request("showLogs", {}).result);
$("show-prompt").addEventListener("click", () => showPrompt(null));

function showPrompt(messageId: string | null): void {
  developerEl.open = true;
  const pre = $<HTMLPreElement>("prompt");
  pre.textContent = "…";
  endpoint
    .request("renderPrompt", { messageId })
    .result.then((p) => {
      $<HTMLSpanElement>("prompt-tokens").textContent =
        `${p.tokens} tokens of ${p.contextLength} (budget ${p.budgetTokens})${p.notice ? " · " + p.notice : ""}`;
      pre.textContent = p.text;
    })
    .catch((e: Error) => (pre.textContent = e.message));
}

messagesEl.addEventListener("click", (e) => {
  const target = (e.target as HTMLElement).closest("button") as HTMLButtonElement | null;
  if (!target || target.disabled) return;
  const action = target.dataset.action;
  const id = target.dataset.id ?? "";
  if (target.classList.contains("code-action")) {
    const messageId = (target.closest(".message") as HTMLElement | null)?.dataset.id ?? "";
    const code = codeBlocks.get(messageId)?.[Number(target.dataset.codeIndex)] ?? "";
    if (action === "copy") {
      void endpoint.request("copy", { text: code }).result.then(() => {
        target.textContent = "Copied";
        setTimeout(() => (target.textContent = "Copy"), 1500);
      });
    } else if (action === "insert" || action === "replace") {
      void endpoint.request("insertCode", { code, mode: action }).result.catch((err: Error) => showError(err.message));
    }
    return;
  }
  switch (action) {
    case "prev":
    case "next":
      void endpoint.request("switchBranch", { messageId: id, offset: action === "prev" ? -1 : 1 }).result
        .catch((err: Error) => showError(err.message));
      break;
    case "regenerate":
      truncateAfter(id, true);
      streamTurn(() => endpoint.request("regenerate", { messageId: id }, onChunk));
      break;
    case "edit":
      editing = id;
      renderMessages();
      (messagesEl.querySelector(".edit-input") as HTMLTextAreaElement | null)?.focus();
      break;
    case "cancel-edit":
      editing = undefined;
      renderMessages();
      break;
    case "save-edit": {
      const area = messagesEl.querySelector(".edit-input") as HTMLTextAreaElement | null;
      const content = area?.value ?? "";
      editing = undefined;
      truncateAfter(id, false);
      streamTurn(() => endpoint.request("edit", { messageId: id, content }, onChunk), content);
      break;
    }
    case "branch":
      void endpoint.request("branchChat", { messageId: id }).result.catch((err: Error) => showError(err.message));
      break;
    case "prompt":
      showPrompt(id);
      break;
  }
});

messagesEl.addEventListener("keydown", (e) => {
  const area = e.target as HTMLElement;
  if (area.classList.contains("edit-input")) {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      (messagesEl.querySelector('[data-action="save-edit"]') as HTMLButtonElement | null)?.click();
    } else if (e.key === "Escape") {
      e.stopPropagation();
      editing = undefined;
      renderMessages();
    }
  }
});

attachmentsEl.addEventListener("click", (e) => {
  const target = (e.target as HTMLElement).closest("button") as HTMLButtonElement | null;
  if (target?.dataset.action === "remove-attachment") {
    void endpoint.request("removeAttachment", { index: Number(target.dataset.index) }).result;
  }
});

/** Before a regenerate/edit: drop the messages the new branch replaces from the view. */
function truncateAfter(messageId: string, keepIt: boolean): void {
  if (!state) return;
  const index = state.messages.findIndex((m) => m.id === messageId);
  if (index < 0) return;
  const target = state.messages[index];
  // Regenerating an answer keeps its user message; regenerating from a user message keeps it.
  const keep = keepIt && target.role === "user" ? index + 1 : index;
  state.messages = state.messages.slice(0, keep);
}

endpoint.on("state", (next) => {
  // The host sends no state while an answer streams, except the final one just before `done`.
  state = next;
  render();
});
endpoint.on("focusInput", ({ text }) => {
  if (text !== undefined) input.value = text;
  input.focus();
});
endpoint.on("error", ({ message }) => showError(message));

endpoint
  .request("ready", {})
  .result.then((initial) => {
    state = initial;
    render();
    input.focus();
  })
  .catch((err: Error) => showError(err.message));
endpoint.on("submit", ({ content }) => {
  input.value = content;
  send();
});
