/** Text of the status bar item (pure, unit-tested). */
import type { Status } from "./protocol";

export interface StatusView {
  text: string;
  tooltip: string;
  state: "loading" | "ready" | "error" | "idle" | "stopped";
}

export function shortModelName(status: Status | undefined): string {
  const model = status?.model ?? status?.roles?.chat?.model;
  if (!model) return "";
  return model.name || (model.path ? model.path.split(/[\\/]/).pop() ?? "" : "");
}

export function formatStatus(
  status: Status | undefined,
  preset: string | undefined,
  completionsOn: boolean,
  serverState: "starting" | "running" | "stopped" | "failed",
): StatusView {
  if (serverState === "failed" || serverState === "stopped") {
    return {
      text: "$(error) Open LLM: server not running",
      tooltip: "The Open LLM language server is not running. Click for the menu (Show Logs, Restart).",
      state: "stopped",
    };
  }
  if (!status || serverState === "starting") {
    return { text: "$(loading~spin) Open LLM: starting", tooltip: "Starting the language server…", state: "loading" };
  }
  const name = shortModelName(status) || "no model";
  const parts: string[] = [];
  let icon = "$(hubot)";
  let state: StatusView["state"] = "ready";
  if (status.state === "loading") {
    icon = "$(loading~spin)";
    state = "loading";
    parts.push(`Loading ${Math.round(status.progress ?? 0)}%`);
  } else if (status.state === "error") {
    icon = "$(error)";
    state = "error";
    parts.push("error");
  } else if (status.state === "idle") {
    state = "idle";
  }
  const text = [`${icon} ${name}`];
  if (preset) text.push(preset);
  text.push(...parts);
  if (state === "ready" && status.tokensPerSecond) text.push(`${status.tokensPerSecond.toFixed(1)} tok/s`);
  if (!completionsOn) text.push("$(circle-slash) completions");
  const tooltip = [
    `Open LLM ${status.version ?? ""}`.trim(),
    `Model: ${name}${status.model?.quantization ? ` (${status.model.quantization})` : ""}`,
    preset ? `Preset: ${preset}` : "",
    `State: ${status.state}${status.message ? ` — ${status.message}` : ""}`,
    status.tokensPerSecond ? `Last answer: ${status.tokensPerSecond.toFixed(1)} tokens/s` : "",
    `Automatic completions: ${completionsOn ? "on" : "off"}`,
    ...(status.settingsProblems ?? []).map((p) => `⚠ ${p}`),
    "Click for the menu",
  ].filter(Boolean);
  return { text: text.join(" · "), tooltip: tooltip.join("\n"), state };
}
