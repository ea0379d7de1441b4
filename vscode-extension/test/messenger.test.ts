import assert from "node:assert/strict";
import { test } from "node:test";
import { parseToHost, ToHost, ToWebview, ViewState } from "../src/chat/messages";
import { HostEndpoint, WebviewEndpoint } from "../src/chat/messenger";

function pair() {
  const toHost: ToHost[] = [];
  const toWebview: ToWebview[] = [];
  const host = new HostEndpoint((m) => toWebview.push(JSON.parse(JSON.stringify(m))));
  const web = new WebviewEndpoint((m) => toHost.push(JSON.parse(JSON.stringify(m))));
  /** Deliver every queued message both ways until quiet. */
  const flush = async () => {
    for (let i = 0; i < 20; i++) {
      while (toHost.length) void host.handle(toHost.shift());
      while (toWebview.length) web.handle(toWebview.shift());
      await new Promise((r) => setImmediate(r));
    }
  };
  return { host, web, toHost, toWebview, flush };
}

const STATE = { mode: "user", messages: [] } as unknown as ViewState;

test("events wait for the ready handshake, then arrive in order", async () => {
  const { host, web, flush } = pair();
  const seen: string[] = [];
  web.on("focusInput", ({ text }) => seen.push(`focus:${text}`));
  web.on("state", () => seen.push("state"));
  host.on("ready", async () => STATE);
  host.event("focusInput", { text: "early" });
  await flush();
  assert.deepEqual(seen, []);
  const ready = web.request("ready", {});
  await flush();
  assert.deepEqual(await ready.result, STATE);
  assert.deepEqual(seen, ["focus:early"]);
  host.event("state", STATE);
  await flush();
  assert.deepEqual(seen, ["focus:early", "state"]);
});

test("a streaming request delivers chunks, then the result with done", async () => {
  const { host, web, flush } = pair();
  host.on("send", async ({ content }, ctx) => {
    ctx.chunk({ messageId: "m", delta: content.toUpperCase(), thinking: "" });
    ctx.chunk({ messageId: "m", delta: "!", thinking: "" });
    return { messageId: "m", incomplete: false, notice: null };
  });
  const chunks: string[] = [];
  const pending = web.request("send", { content: "hi" }, (c) => chunks.push(c.delta));
  await flush();
  assert.deepEqual(chunks, ["HI", "!"]);
  assert.deepEqual(await pending.result, { messageId: "m", incomplete: false, notice: null });
});

test("abort reaches the handler's signal; errors reject the request", async () => {
  const { host, web, flush } = pair();
  let aborted = false;
  host.on("send", (_p, ctx) =>
    new Promise((resolve) => {
      ctx.signal.addEventListener("abort", () => {
        aborted = true;
        resolve({ messageId: "m", incomplete: true, notice: null });
      });
    }),
  );
  host.on("copy", async () => {
    throw new Error("clipboard unavailable");
  });
  const pending = web.request("send", { content: "x" });
  const failing = web.request("copy", { text: "x" });
  const failed = assert.rejects(failing.result, /clipboard unavailable/);
  void flush();
  await new Promise((r) => setTimeout(r, 10));
  pending.abort();
  await flush();
  assert.equal(aborted, true);
  assert.equal((await pending.result).incomplete, true);
  await failed;
});

test("a reloaded webview (a new ready) aborts what the old page started", async () => {
  const { host, web, flush } = pair();
  let aborted = false;
  host.on("ready", async () => STATE);
  host.on("send", (_p, ctx) => new Promise((resolve) => ctx.signal.addEventListener("abort", () => {
    aborted = true;
    resolve({ messageId: "", incomplete: true, notice: null });
  })));
  web.request("send", { content: "x" });
  await flush();
  web.request("ready", {});
  await flush();
  assert.equal(aborted, true);
});

test("messages from the page are validated", () => {
  assert.equal(parseToHost(null), undefined);
  assert.equal(parseToHost("ready"), undefined);
  assert.equal(parseToHost({ kind: "request", id: 1, name: "eval", params: {} }), undefined);
  assert.equal(parseToHost({ kind: "request", id: "1", name: "ready", params: {} }), undefined);
  assert.equal(parseToHost({ kind: "request", id: 1, name: "send", params: [] }), undefined);
  assert.deepEqual(parseToHost({ kind: "abort", id: 3 }), { kind: "abort", id: 3 });
  assert.deepEqual(parseToHost({ kind: "request", id: 2, name: "ready" }), {
    kind: "request", id: 2, name: "ready", params: {},
  });
});

test("an unknown request name gets an error response, not silence", async () => {
  const toWebview: ToWebview[] = [];
  const host = new HostEndpoint((m) => toWebview.push(m));
  await host.handle({ kind: "request", id: 9, name: "copy", params: {} });
  assert.deepEqual(toWebview, [{ kind: "response", id: 9, done: true, error: "unknown request copy" }]);
});
