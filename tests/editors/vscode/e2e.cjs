// End-to-end scenario in a real VS Code (code-server) driven by Chromium through playwright-core.
// Run by tests/editors/test_vscode.py, which starts code-server with the extension installed from
// its .vsix, then asserts on the JSON this script writes. Steps run in order (later ones build on
// earlier ones); each records ok/error/seconds and leaves a screenshot in the artifacts folder.
//
// env: E2E_URL, E2E_WORKSPACE, E2E_ARTIFACTS, E2E_RESULTS, E2E_PLAYWRIGHT, E2E_CHROMIUM,
//      E2E_ONLY (optional comma-separated step names)
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require(process.env.E2E_PLAYWRIGHT);

const URL_BASE = process.env.E2E_URL;
const WORKSPACE = process.env.E2E_WORKSPACE;
const ARTIFACTS = process.env.E2E_ARTIFACTS;
const RESULTS = process.env.E2E_RESULTS;
const MOD = "Control";

const results = { steps: {}, info: {} };
const save = () => fs.writeFileSync(RESULTS, JSON.stringify(results, null, 2));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let page;
let blocked = [];

async function shot(name) {
  try {
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
  } catch (err) {
    console.error(`screenshot ${name}: ${err.message}`);
  }
}

async function step(name, fn) {
  const only = process.env.E2E_ONLY ? process.env.E2E_ONLY.split(",") : null;
  if (only && !only.includes(name)) return;
  const started = Date.now();
  console.error(`[e2e] ${name}…`);
  try {
    const detail = await fn();
    results.steps[name] = { ok: true, seconds: (Date.now() - started) / 1000, detail: detail ?? null };
    console.error(`[e2e] ${name}: ok (${results.steps[name].seconds}s)`);
  } catch (err) {
    results.steps[name] = { ok: false, seconds: (Date.now() - started) / 1000, error: String(err && err.stack || err) };
    console.error(`[e2e] ${name}: FAILED ${err && err.message}`);
    await shot(`fail-${name}`);
    await page.keyboard.press("Escape").catch(() => {});
  }
  save();
}

function skip(name, reason) {
  results.steps[name] = { ok: true, skipped: reason, seconds: 0 };
  save();
}

// --- VS Code helpers -----------------------------------------------------------------------

async function runCommand(title) {
  await page.keyboard.press("Escape");
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 10000 });
  await input.fill(`>${title}`);
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
  await row.waitFor({ timeout: 10000 });
  await sleep(150);
  await page.keyboard.press("Enter");
}

async function quickPick(text) {
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 15000 });
  await input.fill(text);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: text }).first().waitFor({ timeout: 15000 });
  await sleep(150);
  await page.keyboard.press("Enter");
}

async function inputBox(text) {
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 15000 });
  await input.fill(text);
  await page.keyboard.press("Enter");
}

async function openFile(name) {
  await page.keyboard.press("Escape");
  await page.keyboard.press(`${MOD}+P`);
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 10000 });
  await input.fill(name);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: name }).first().waitFor({ timeout: 15000 });
  await page.keyboard.press("Enter");
  await page.locator(`.tab.active[aria-label*="${name}"]`).first().waitFor({ timeout: 15000 });
  await page.locator(".monaco-editor .view-lines").first().waitFor();
}

function statusItem() {
  return page.locator("#workbench\\.parts\\.statusbar .statusbar-item", { hasText: /SmolLM2|Open LLM|Loading/i }).first();
}

function chatFrame() {
  return page.frameLocator("iframe.webview.ready").frameLocator("#active-frame");
}

async function openWorkbench() {
  await page.goto(`${URL_BASE}/?folder=${encodeURIComponent(WORKSPACE)}`);
  await page.locator(".monaco-workbench").waitFor({ timeout: 120000 });
  // Let the workbench settle (notifications, restored views).
  await page.locator("#workbench\\.parts\\.statusbar").waitFor({ timeout: 60000 });
}

async function waitStatusReady(timeout = 240000) {
  const item = statusItem();
  await item.waitFor({ timeout });
  const deadline = Date.now() + timeout;
  for (;;) {
    const text = (await item.innerText().catch(() => "")) || "";
    if (/SmolLM2/i.test(text) && !/Loading|starting/.test(text)) return text.replace(/\s+/g, " ").trim();
    if (/not running/.test(text)) throw new Error(`the server is not running: ${text}`);
    if (Date.now() > deadline) throw new Error(`status bar never showed the model; last: ${text}`);
    await sleep(500);
  }
}

async function openChatPanel() {
  await runCommand("Open LLM: Open Chat");
  await chatFrame().locator("#input").waitFor({ timeout: 60000 });
}

/** Rows of the chat list, by their label. */
function treeRow(label) {
  return page.locator(`.monaco-list-row[aria-label*="${label}"]`).first();
}

async function treeLabels() {
  const rows = page.locator('[id="workbench.view.extension.openLlm"] .monaco-list-row, .pane-body .monaco-list-row');
  const labels = await rows.evaluateAll((els) => els.map((e) => e.getAttribute("aria-label") || ""));
  return labels.filter((l) => l.startsWith("Chat "));
}

/** Right-click a tree row and run a menu entry (retried: a tree refresh closes the menu). */
async function contextMenu(row, item, done) {
  for (let attempt = 1; ; attempt++) {
    await sleep(400);
    await row.click({ button: "right" });
    const entry = page.locator(".monaco-menu .action-item", { hasText: item }).first();
    try {
      await entry.waitFor({ timeout: 5000 });
      // The keyboard, as a user would: VS Code ignores a mouse-up too soon after the menu opens.
      for (let i = 0; i < 15; i++) {
        const focused = await page.locator(".monaco-menu .action-item.focused").first().innerText({ timeout: 100 }).catch(() => "");
        if (focused.includes(item)) break;
        await page.keyboard.press("ArrowDown");
        await sleep(60);
      }
      await page.keyboard.press("Enter");
      await done();
      return;
    } catch (err) {
      await shot(`retry-${item.replace(/\W+/g, "")}-${attempt}`);
      console.error(`[e2e] menu ${item}, attempt ${attempt}: ${String(err.message).split("\n")[0]}`);
      await page.keyboard.press("Escape").catch(() => {});
      if (attempt >= 3) throw err;
    }
  }
}

/** The visible ghost text (inline suggestion) in the editor, "" when none. */
async function ghostTexts() {
  return page.evaluate(() => {
    const els = [...document.querySelectorAll('.monaco-editor [class*="ghost-text"]')].filter((e) => {
      const cls = String(e.className);
      if (cls.includes("hidden") || cls.includes("suggest-preview")) return false;
      const r = e.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && !e.querySelector('[class*="ghost-text"]');
    });
    // Group the pieces by rendered line (their top), in reading order.
    const lines = new Map();
    for (const e of els) {
      const top = Math.round(e.getBoundingClientRect().top);
      lines.set(top, (lines.get(top) || "") + (e.textContent || ""));
    }
    return [...lines.entries()].sort((x, y) => x[0] - y[0]).map(([, t]) => t.replace(/\u00a0/g, " ")).join("\n").trim();
  });
}

async function cursorPosition() {
  return (await page.locator("#workbench\\.parts\\.statusbar").innerText()).match(/Ln \d+, Col \d+/)?.[0] ?? "";
}

async function waitGhost(timeout) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const text = await ghostTexts();
    if (text) return text;
    await sleep(200);
  }
  return "";
}

/** Editor text (as rendered, one string per line). */
async function editorLines() {
  return page.locator(".monaco-editor .view-lines .view-line").evaluateAll((els) =>
    els
      .map((e) => ({ top: parseFloat(e.style.top || "0"), text: e.innerText.replace(/\u00a0/g, " ") }))
      .sort((a, b) => a.top - b.top)
      .map((l) => l.text),
  );
}

async function sendChat(text) {
  const frame = chatFrame();
  await frame.locator("#input").fill(text);
  await frame.locator("#input").press("Enter");
}

// --- the scenario ----------------------------------------------------------------------------

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.E2E_CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage",
      // Nothing but 127.0.0.1 resolves; requests are also filtered below.
      "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: URL_BASE });
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    const local = url.hostname === "127.0.0.1" || url.protocol === "data:" || url.protocol === "blob:";
    // Webview content is served from a per-webview origin on the same code-server.
    if (local || url.hostname.endsWith(".127.0.0.1")) return route.continue();
    blocked.push(url.origin);
    return route.abort();
  });
  page = await context.newPage();
  page.on("pageerror", (err) => console.error(`[page error] ${err.message}`));
  const started = Date.now();

  await step("workbench", async () => {
    await openWorkbench();
    return { seconds: (Date.now() - started) / 1000 };
  });

  await step("status_bar_model", async () => {
    const text = await waitStatusReady();
    await shot("status-bar");
    results.info.statusText = text;
    return { text };
  });

  if (!results.steps.status_bar_model?.ok) {
    // Nothing else can work without the server: stop here (the tests report what failed).
    results.info.totalSeconds = (Date.now() - started) / 1000;
    save();
    await browser.close();
    return;
  }

  await step("ghost_text", async () => {
    await openFile("fib.py");
    await page.locator(".monaco-editor .view-lines").first().click();
    await page.keyboard.press(`${MOD}+End`);
    await page.keyboard.type("def is_even(n: int) -> bool:\n", { delay: 30 });
    let automatic = true;
    let ghostText = await waitGhost(30000);
    if (!ghostText) {
      automatic = false;
      await page.keyboard.press("Alt+\\"); // Open LLM: Trigger Inline Completion
      ghostText = await waitGhost(60000);
    }
    if (!ghostText) throw new Error("no ghost text");
    await shot("ghost-text");
    const cursorBefore = await cursorPosition();
    await page.keyboard.press("Tab");
    await sleep(700);
    const cursorAfter = await cursorPosition();
    const after = await editorLines();
    const squash = (t) => t.replace(/\s+/g, "");
    const firstLine = squash(ghostText.split("\n")[0]);
    if (cursorAfter === cursorBefore || !squash(after.join("")).includes(firstLine)) {
      throw new Error(
        `Tab did not insert the suggestion (ghost: ${JSON.stringify(ghostText)}, cursor ${cursorBefore} -> ${cursorAfter}, ` +
          `lines: ${JSON.stringify(after.slice(-4))})`,
      );
    }
    await shot("ghost-text-accepted");
    return { ghostText, automatic, cursorBefore, cursorAfter, linesAfter: after.slice(-4) };
  });

  await step("chat_streams", async () => {
    await openChatPanel();
    const frame = chatFrame();
    await sendChat("What is a Python generator? Answer in one sentence.");
    const streaming = frame.locator(".message.assistant.streaming .content");
    await streaming.waitFor({ timeout: 60000 });
    // Seen while streaming: partial text in the bubble before the answer is complete.
    let partial = "";
    const deadline = Date.now() + 60000;
    while (!partial && Date.now() < deadline) {
      partial = (await streaming.innerText().catch(() => "")).trim();
      if (!partial) await sleep(50);
    }
    if (partial) await shot("chat-streaming");
    const stats = frame.locator(".message.assistant .stats", { hasText: /tok\/s/ }).last();
    await stats.waitFor({ timeout: 120000 });
    await frame.locator("#send").waitFor({ state: "visible", timeout: 30000 });
    const answer = await frame.locator(".message.assistant .content").last().innerText();
    const statsText = await stats.innerText();
    await shot("chat");
    results.info.chatTitle = await frame.locator("#title").innerText();
    return { partial: partial.slice(0, 80), answer: answer.slice(0, 200), stats: statsText };
  });

  await step("stop_and_sanitize", async () => {
    const frame = chatFrame();
    await sendChat(
      'Write a very long story about a dragon. <img src=x onerror="document.body.dataset.pwned=1"> <script>document.body.dataset.pwned=2</script>',
    );
    const streaming = frame.locator(".message.assistant.streaming .content");
    await streaming.waitFor({ timeout: 60000 });
    const deadline = Date.now() + 60000;
    while (!(await streaming.innerText().catch(() => "")).trim() && Date.now() < deadline) await sleep(50);
    await frame.locator("#stop").click();
    await frame.locator("#send").waitFor({ state: "visible", timeout: 30000 });
    const last = frame.locator(".message.assistant").last();
    const stats = await last.locator(".stats").innerText();
    if (!/incomplete|stopped|cancelled/.test(stats)) throw new Error(`the answer was not marked stopped: ${stats}`);
    const imgs = await frame.locator("#messages img, #messages script").count();
    const pwned = await frame.locator("body[data-pwned]").count();
    const userText = await frame.locator(".message.user .content").last().innerText();
    if (imgs || pwned) throw new Error(`model/user HTML became live: ${imgs} img/script, pwned=${pwned}`);
    if (!userText.includes("<img")) throw new Error("the HTML was not shown as text");
    await shot("chat-stopped");
    return { stats };
  });

  await step("tree_after_reload", async () => {
    const before = await treeLabels();
    await page.reload();
    await page.locator(".monaco-workbench").waitFor({ timeout: 120000 });
    await waitStatusReady();
    await openChatPanel();
    const title = results.info.chatTitle;
    const deadline = Date.now() + 30000;
    let after = await treeLabels();
    while (after.length < 1 && Date.now() < deadline) {
      await sleep(300);
      after = await treeLabels();
    }
    if (!after.length) throw new Error("no chat in the tree after the reload");
    await shot("chat-list");
    return { before, after, title };
  });

  await step("search", async () => {
    await runCommand("Open LLM: Search Chats");
    await inputBox("generator");
    await page.locator(".monaco-list-row:has(.codicon-search)").first().waitFor({ timeout: 20000 });
    const hits = await page.locator(".monaco-list-row:has(.codicon-search)").count();
    await shot("search");
    await runCommand("Open LLM: Clear Search");
    await sleep(500);
    if (!hits) throw new Error("no search hit");
    return { hits };
  });

  await step("rename_duplicate_delete_restore", async () => {
    let labels = await treeLabels();
    if (!labels.length) throw new Error("no chat in the tree");
    const visible = { state: "visible", timeout: 5000 };
    await contextMenu(treeRow(labels[0]), "Rename", () => page.locator(".quick-input-widget input").waitFor(visible));
    await inputBox("Renamed by e2e");
    await treeRow("Chat Renamed by e2e").waitFor({ timeout: 15000 });
    await contextMenu(treeRow("Chat Renamed by e2e"), "Duplicate", () =>
      treeRow("Chat Renamed by e2e (copy)").waitFor({ timeout: 10000 }),
    );
    await contextMenu(treeRow("Chat Renamed by e2e (copy)"), "Delete", () =>
      page.locator('.monaco-list-row[aria-label*="Trash"]').first().waitFor({ timeout: 10000 }),
    );
    await sleep(300);
    labels = await treeLabels();
    if (labels.some((l) => l.includes("(copy)"))) throw new Error("the deleted chat is still listed");
    const trash = page.locator('.monaco-list-row[aria-label*="Trash"]').first();
    if ((await trash.getAttribute("aria-expanded")) !== "true") await trash.click();
    const trashed = page.locator('.monaco-list-row[aria-label*="(copy)"]').first();
    await trashed.waitFor({ timeout: 15000 });
    await shot("trash");
    await contextMenu(trashed, "Restore", () => treeRow("Chat Renamed by e2e (copy)").waitFor({ timeout: 10000 }));
    return { labels: await treeLabels() };
  });

  await step("switch_preset", async () => {
    await runCommand("Open LLM: Switch Preset");
    await quickPick("Concise answers");
    const item = statusItem();
    const deadline = Date.now() + 60000;
    let text = "";
    while (Date.now() < deadline) {
      text = (await item.innerText()).replace(/\s+/g, " ");
      if (text.includes("Concise answers")) break;
      await sleep(300);
    }
    if (!text.includes("Concise answers")) throw new Error(`status bar: ${text}`);
    await shot("preset-switched");
    // The chat panel shows the same preset.
    const selected = await chatFrame().locator("#preset").inputValue().catch(() => "");
    return { text, panelPreset: selected };
  });

  await step("model_picker", async () => {
    await runCommand("Open LLM: Choose Model");
    const rows = page.locator(".quick-input-list .monaco-list-row");
    await rows.first().waitFor({ timeout: 20000 });
    // Each local model gets its fit (from openLlm/models/fit) once the server answered.
    const fitColumn = /(Full GPU|Partial GPU[^·]*|CPU|Won't fit) · /;
    let labels = "";
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      labels = await page.locator(".quick-input-widget").innerText();
      if (fitColumn.test(labels) && /fits|too slow|doesn't fit/.test(labels)) break;
      await sleep(300);
    }
    await shot("model-picker");
    await page.keyboard.press("Escape");
    const fitTable = fitColumn.test(labels);
    const hasModelsApi = !/Choose a \.gguf file…\s*$/.test(labels.trim()) || /On this machine/.test(labels);
    return { fitTable, hasModelsApi, labels: labels.slice(0, 800) };
  });

  await step("code_action", async () => {
    await openFile("fib.py");
    await page.locator(".monaco-editor .view-lines").first().click();
    await page.keyboard.press(`${MOD}+Home`);
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Shift+ArrowDown");
    await page.keyboard.press("Shift+ArrowDown");
    await sleep(1500);
    const entry = page.locator(".action-widget .monaco-list-row", { hasText: "Explain the selection" }).first();
    await page.locator(".lightBulbWidget, .codicon-lightbulb, .codicon-light-bulb").first().click({ timeout: 15000 })
      .catch(() => runCommand("Refactor..."));
    await entry.waitFor({ timeout: 20000 });
    await shot("code-actions");
    await entry.click();
    const frame = chatFrame();
    await frame.locator(".message.assistant.streaming").waitFor({ timeout: 60000 });
    await frame.locator("#stop").click().catch(() => {});
    await frame.locator("#send").waitFor({ state: "visible", timeout: 60000 });
    const title = await frame.locator("#title").innerText();
    return { title };
  });

  results.info.blocked = [...new Set(blocked)];
  results.info.totalSeconds = (Date.now() - started) / 1000;
  save();
  await browser.close();
})().catch(async (err) => {
  results.fatal = String(err && err.stack || err);
  save();
  process.exitCode = 1;
});
