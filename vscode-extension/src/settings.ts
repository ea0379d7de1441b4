import * as vscode from "vscode";
import { SECTION } from "./constants";

/** Keys of the `openLlm` section that the extension owns; the server never sees them. */
export const CLIENT_ONLY_KEYS = ["server", "ui", "trace"] as const;

export type UiMode = "user" | "powerUser" | "developer";

export interface ServerSetting {
  command: string;
  args: string[];
  env: Record<string, string>;
}

export function serverSetting(): ServerSetting {
  const cfg = vscode.workspace.getConfiguration(SECTION);
  return {
    command: cfg.get<string>("server.command", ""),
    args: cfg.get<string[]>("server.args", []),
    env: cfg.get<Record<string, string>>("server.env", {}),
  };
}

export function uiMode(): UiMode {
  const mode = vscode.workspace.getConfiguration(SECTION).get<string>("ui.mode", "user");
  return mode === "powerUser" || mode === "developer" ? mode : "user";
}

/** The section as the server should see it: a copy without the client-only keys. */
export function forServer(section: unknown): unknown {
  if (!section || typeof section !== "object" || Array.isArray(section)) return section;
  const copy: Record<string, unknown> = { ...(section as Record<string, unknown>) };
  for (const key of CLIENT_ONLY_KEYS) delete copy[key];
  return copy;
}
