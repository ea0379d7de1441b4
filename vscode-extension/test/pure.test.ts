import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { siblingsOf } from "../src/chat/branches";
import { toConfiguration } from "../src/configSchema.mjs";
import { fitLabel, fitRows, formatBytes, readModelList, readRecommend } from "../src/modelFormat";
import { notFoundMessage, Probes, resolveServerCommand } from "../src/serverCommand";
import { formatStatus } from "../src/statusText";
import { plainSnippet, relativeTime } from "../src/tree/format";

function probes(p: Partial<Probes> & { modules?: string[] }): Probes {
  return {
    which: p.which ?? (async () => undefined),
    pythonExtensionInterpreter: p.pythonExtensionInterpreter ?? (async () => undefined),
    hasServerModule: p.hasServerModule ?? (async (py) => (p.modules ?? []).includes(py[0])),
  };
}

test("server command: the setting wins", async () => {
  const r = await resolveServerCommand({ command: "/x/open-llm-lsp", args: ["-v"] }, probes({}));
  assert.deepEqual(r.command, { command: "/x/open-llm-lsp", args: ["-v"], source: "setting" });
});

test("server command: open-llm-lsp on PATH, then the Python extension, then python3", async () => {
  const onPath = await resolveServerCommand(
    { command: "", args: [] },
    probes({ which: async (n) => (n === "open-llm-lsp" ? "/bin/open-llm-lsp" : "/usr/bin/python3") }),
  );
  assert.equal(onPath.command?.source, "path");
  const ext = await resolveServerCommand(
    { command: "", args: [] },
    probes({
      which: async (n) => (n === "python3" ? "/usr/bin/python3" : undefined),
      pythonExtensionInterpreter: async () => ["/venv/bin/python"],
      modules: ["/venv/bin/python", "/usr/bin/python3"],
    }),
  );
  assert.deepEqual(ext.command, { command: "/venv/bin/python", args: ["-m", "lsp_server"], source: "pythonExtension" });
  const py3 = await resolveServerCommand(
    { command: "", args: [] },
    probes({
      which: async (n) => (n === "python3" ? "/usr/bin/python3" : undefined),
      pythonExtensionInterpreter: async () => ["/venv/bin/python"],
      modules: ["/usr/bin/python3"],
    }),
  );
  assert.deepEqual(py3.command, { command: "/usr/bin/python3", args: ["-m", "lsp_server"], source: "python3" });
});

test("server command: none found gives a message with the fix", async () => {
  const r = await resolveServerCommand({ command: " ", args: [] }, probes({ which: async (n) => (n === "python3" ? "/usr/bin/python3" : undefined) }));
  assert.equal(r.command, undefined);
  const msg = notFoundMessage(r.tried);
  assert.match(msg, /not on PATH/);
  assert.match(msg, /pip install open-llm-lsp/);
  assert.match(msg, /openLlm\.server\.command/);
});

test("configuration: nested settings flatten, anyOf and exact defaults, trust-sensitive ones are application-scoped", () => {
  const schema = {
    properties: {
      model: { type: "string", default: "", description: "Chat model." },
      engine: { $ref: "#/$defs/Engine" },
      presets: { $ref: "#/$defs/Presets" },
    },
    $defs: {
      Engine: {
        type: "object",
        properties: { threads: { anyOf: [{ type: "integer" }, { const: "auto", type: "string" }], default: "auto" } },
      },
      Presets: { type: "object", properties: { modelFolders: { type: "array", items: { type: "string" } } } },
    },
  };
  const props = toConfiguration(schema, { model: "", engine: { threads: "auto" }, presets: { modelFolders: [] } });
  assert.deepEqual(Object.keys(props), ["openLlm.model", "openLlm.engine.threads", "openLlm.presets.modelFolders"]);
  assert.deepEqual(props["openLlm.engine.threads"].type, ["integer", "string"]);
  assert.deepEqual(props["openLlm.engine.threads"].anyOf[1], { type: "string", enum: ["auto"] });
  assert.deepEqual(props["openLlm.presets.modelFolders"].default, []);
  assert.equal(props["openLlm.presets.modelFolders"].scope, "application");
  assert.equal(props["openLlm.model"].scope, undefined);
  assert.equal(props["openLlm.model"].markdownDescription, "Chat model.");
});

test("status bar text: loading with percent, ready with model, preset and tokens/s, errors", () => {
  const model = { name: "SmolLM2 135M Instruct" };
  assert.match(formatStatus({ state: "loading", progress: 42.4 }, "Coding assistant", true, "running").text, /Loading 42%/);
  const ready = formatStatus({ state: "ready", model, tokensPerSecond: 63.25 }, "Coding assistant", true, "running");
  assert.equal(ready.text, "$(hubot) SmolLM2 135M Instruct · Coding assistant · 63.3 tok/s");
  assert.match(formatStatus({ state: "error", model, message: "boom" }, undefined, true, "running").tooltip, /boom/);
  assert.match(formatStatus({ state: "ready", model }, undefined, false, "running").text, /circle-slash/);
  assert.match(formatStatus(undefined, undefined, true, "failed").text, /not running/);
});

test("small formatters", () => {
  assert.equal(formatBytes(98_000_000), "93 MB");
  assert.equal(formatBytes(1_500_000), "1.4 MB");
  assert.equal(formatBytes(undefined), "");
  assert.equal(fitLabel("full-gpu"), "Full GPU");
  assert.equal(fitLabel("wont-fit"), "Won't fit");
  const list = readModelList({
    models: [{ spec: "s", path: "/m/smol.gguf", name: "SmolLM2", quant: "Q4_1", parameters: 134515008, size: 98_000_000, license: { name: "Apache License 2.0", restricted: false } }],
    catalog: [{ id: "g", name: "Gemma 3 1B", repo: "google/gemma", role: "chat", parameters: 1, files: [{ size: 1e9 }], license: { id: "gemma", name: "Gemma Terms of Use", restricted: true, accepted: false } }],
  });
  assert.equal(list.local[0].description, "Q4_1 · 135M · 93 MB · Apache License 2.0");
  assert.deepEqual([list.catalog[0].license.restricted, list.catalog[0].license.accepted], [true, false]);
  const rec = readRecommend({ chat: { model: { id: "g" } }, considered: [{ role: "chat", id: "g", verdict: "fits", reason: "Q4_0 CPU" }] });
  assert.equal(rec.verdicts.get("chat:g")?.reason, "Q4_0 CPU");
  assert.ok(rec.picks.has("chat:g"));
  const { rows } = fitRows({ fit: { rows: [{ quant: "Q4_K_M", file: "f", size: 800_000_000, placement: "cpu", chosen: true }], message: "m" } });
  assert.deepEqual(rows, [{ quant: "Q4_K_M", file: "f", fit: "CPU", size: "763 MB", reason: "", chosen: true }]);
  assert.equal(plainSnippet("…the «fib» function\nreturns"), "…the fib function returns");
  assert.equal(relativeTime(1_000_000 - 5 * 60_000, 1_000_000), "5 min ago");
  assert.deepEqual(
    siblingsOf([{ id: "u", parentId: null }, { id: "a1", parentId: "u" }, { id: "x", parentId: "a1" }, { id: "a2", parentId: "u" }], "a2"),
    ["a1", "a2"],
  );
});

test("package.json: a workspace cannot enable a remote engine or loosen preset and license rules", () => {
  const pkg = JSON.parse(readFileSync(join(process.cwd(), "package.json"), "utf8"));  // npm runs here
  const props: Record<string, { scope?: string }> = Object.assign(
    {},
    ...pkg.contributes.configuration.map((section: { properties: object }) => section.properties),
  );
  const sensitive = Object.keys(props).filter((key) =>
    /^openLlm\.(remote\.|presets\.|models\.acceptedLicenses$)/.test(key),
  );
  assert.ok(sensitive.some((key) => key.startsWith("openLlm.remote.")));
  for (const key of sensitive) assert.equal(props[key].scope, "application", key);
});
