/** The chat panel's HTML: a strict Content Security Policy with a per-load nonce. */

export function nonce(): string {
  const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  let out = "";
  for (let i = 0; i < 32; i++) out += chars.charAt(Math.floor(Math.random() * chars.length));
  return out;
}

export function chatHtml(opts: { cspSource: string; scriptUri: string; styleUri: string; nonce: string }): string {
  const csp = [
    "default-src 'none'",
    `style-src ${opts.cspSource}`,
    `script-src 'nonce-${opts.nonce}'`,
    `font-src ${opts.cspSource}`,
    "img-src 'none'",
    "connect-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
  ].join("; ");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${opts.styleUri}">
<title>Open LLM Chat</title>
</head>
<body>
<header>
  <span id="title">New chat</span>
  <label for="preset" class="visually-hidden" hidden>Preset</label>
  <select id="preset" title="Preset (system prompt and sampling) of this workspace" aria-label="Preset"></select>
  <button type="button" id="new-chat" class="secondary" title="New chat">New</button>
</header>
<details id="settings" class="panel" hidden>
  <summary>Preset settings for this chat</summary>
  <div class="grid">
    <label for="s-temperature">Temperature</label><input id="s-temperature" type="number" min="0" max="2" step="0.05">
    <label for="s-topP">Top P</label><input id="s-topP" type="number" min="0" max="1" step="0.01">
    <label for="s-topK">Top K</label><input id="s-topK" type="number" min="0" max="1000" step="1">
    <label for="s-minP">Min P</label><input id="s-minP" type="number" min="0" max="1" step="0.01">
    <label for="s-repeatPenalty">Repeat penalty</label><input id="s-repeatPenalty" type="number" min="0.5" max="2" step="0.01">
    <label for="s-maxTokens">Max tokens</label><input id="s-maxTokens" type="number" min="1" max="32768" step="1">
    <span>Context length</span><span id="s-context">–</span>
  </div>
  <label for="s-system">System prompt (this chat)</label>
  <textarea id="s-system" rows="3"></textarea>
</details>
<details id="developer" class="panel" hidden>
  <summary>Developer</summary>
  <div class="row"><button type="button" id="show-prompt" class="secondary">Show next prompt</button>
  <button type="button" id="show-logs" class="secondary">Server log</button><span id="prompt-tokens"></span></div>
  <pre id="prompt" class="dev" aria-label="Rendered prompt"></pre>
  <div>Engine stats (last answer)</div><pre id="engine-stats" class="dev"></pre>
</details>
<div id="messages" role="log" aria-live="polite" aria-label="Messages"></div>
<div id="notice" role="status" hidden></div>
<footer>
  <div id="attachments" class="chips" aria-label="Attachments"></div>
  <textarea id="input" rows="3" aria-label="Message" placeholder="Ask about your code (Enter to send, Shift+Enter for a new line, Esc to stop)"></textarea>
  <div class="row">
    <button type="button" id="attach-selection" class="secondary" title="Attach the editor's selection">+ Selection</button>
    <button type="button" id="attach-file" class="secondary" title="Attach the current file">+ File</button>
    <span class="spacer"></span><span id="status" aria-live="polite"></span>
    <button type="button" id="stop" class="secondary" hidden title="Stop (Esc)">Stop</button>
    <button type="button" id="send" title="Send (Enter)">Send</button>
  </div>
</footer>
<script nonce="${opts.nonce}" src="${opts.scriptUri}"></script>
</body>
</html>`;
}
