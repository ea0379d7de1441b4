/** Preset commands: switch, create from the current one, edit a workspace preset, import. */
import * as vscode from "vscode";
import { errorMessage, ServerClient } from "./client";
import { Methods } from "./constants";
import type { ActivePreset, PresetEntry, PresetList } from "./protocol";

const SOURCE_LABEL = { builtin: "built-in", user: "user", workspace: "workspace" } as const;

export async function activePresetName(client: ServerClient): Promise<string | undefined> {
  try {
    const active = await client.request<ActivePreset>(Methods.presetsActive, {});
    return active.entry?.name ?? active.presetId;
  } catch {
    return undefined;
  }
}

function visible(list: PresetList): PresetEntry[] {
  const seen = new Set<string>();
  return list.presets.filter((p) => !p.refused && !seen.has(p.id) && seen.add(p.id));
}

export async function switchPreset(client: ServerClient): Promise<void> {
  const [list, active] = await Promise.all([
    client.request<PresetList>(Methods.presetsList, {}),
    client.request<ActivePreset>(Methods.presetsActive, {}),
  ]);
  const items = visible(list).map((p) => ({
    label: p.id === active.presetId ? `$(check) ${p.name}` : p.name,
    description: `${p.id} · ${SOURCE_LABEL[p.source]}${p.preset.model ? ` · ${p.preset.model}` : ""}`,
    detail: p.description,
    id: p.id,
  }));
  const pick = await vscode.window.showQuickPick(items, {
    title: "Switch preset",
    placeHolder: `Current: ${active.entry?.name ?? active.presetId}`,
    matchOnDescription: true,
    matchOnDetail: true,
  });
  if (!pick) return;
  const result = await client.request<ActivePreset & { reloading?: boolean }>(Methods.presetsSelect, { id: pick.id });
  if (result.modelError) void vscode.window.showWarningMessage(`Open LLM: ${result.modelError.message}`);
}

async function askLayer(): Promise<"user" | "workspace" | undefined> {
  const items: (vscode.QuickPickItem & { layer: "user" | "workspace" })[] = [
    { label: "User", description: "your presets, in every project", layer: "user" },
  ];
  if (vscode.workspace.workspaceFolders?.length) {
    items.push({ label: "Workspace", description: ".openllm/presets/ in this project (share it with the team)", layer: "workspace" });
  }
  return (await vscode.window.showQuickPick(items, { title: "Save the preset in" }))?.layer;
}

function slug(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64) || "preset";
}

export async function createFromCurrent(client: ServerClient): Promise<void> {
  const active = await client.request<ActivePreset>(Methods.presetsActive, {});
  const name = await vscode.window.showInputBox({
    title: "New preset from the current one",
    prompt: `A copy of “${active.entry?.name ?? active.presetId}” (system prompt, sampling, model)`,
    value: `My ${active.entry?.name ?? active.presetId}`,
    validateInput: (v) => (v.trim() ? undefined : "The name cannot be empty."),
  });
  if (!name?.trim()) return;
  const layer = await askLayer();
  if (!layer) return;
  const entry = await client.request<PresetEntry>(Methods.presetsDuplicate, {
    id: active.presetId,
    newId: slug(name),
    name: name.trim(),
    layer,
  });
  const choice = await vscode.window.showInformationMessage(
    `Preset “${entry.name}” created.`,
    "Use it",
    ...(entry.path ? ["Edit"] : []),
  );
  if (choice === "Use it") await client.request(Methods.presetsSelect, { id: entry.id });
  if (choice === "Edit" && entry.path) await vscode.window.showTextDocument(vscode.Uri.file(entry.path));
}

export async function editWorkspacePreset(client: ServerClient): Promise<void> {
  if (!vscode.workspace.workspaceFolders?.length) {
    void vscode.window.showInformationMessage("Open LLM: open a folder to have workspace presets.");
    return;
  }
  const list = await client.request<PresetList>(Methods.presetsList, {});
  const workspace = list.presets.filter((p) => p.source === "workspace" && p.path);
  const items: (vscode.QuickPickItem & { path?: string })[] = workspace.map((p) => ({
    label: p.name,
    description: p.id + (p.refused ? " · refused: " + p.refused : ""),
    path: p.path ?? undefined,
  }));
  items.push({ label: "$(add) New workspace preset from the active one…" });
  const pick = await vscode.window.showQuickPick(items, { title: "Edit a workspace preset" });
  if (!pick) return;
  let path = pick.path;
  if (!path) {
    const active = await client.request<ActivePreset>(Methods.presetsActive, {});
    const name = await vscode.window.showInputBox({ title: "Name of the workspace preset", value: `${active.entry?.name ?? active.presetId} (project)` });
    if (!name?.trim()) return;
    const entry = await client.request<PresetEntry>(Methods.presetsDuplicate, {
      id: active.presetId, newId: slug(name), name: name.trim(), layer: "workspace",
    });
    path = entry.path ?? undefined;
  }
  // The server checks preset files as they are edited (diagnostics, key completion).
  if (path) await vscode.window.showTextDocument(vscode.Uri.file(path));
}

export async function importPreset(client: ServerClient): Promise<void> {
  const picked = await vscode.window.showOpenDialog({
    title: "Import an LM Studio preset or an Ollama Modelfile",
    canSelectMany: false,
    openLabel: "Import",
  });
  if (!picked?.[0]) return;
  const layer = await askLayer();
  if (!layer) return;
  const result = await client.request<{
    entry: PresetEntry | null; unmapped: string[]; warnings: string[]; sourceFormat: string;
  }>(Methods.presetsImport, { path: picked[0].fsPath, layer });
  const notes = [
    result.unmapped.length ? `Not imported: ${result.unmapped.join(", ")}.` : "",
    ...result.warnings,
  ].filter(Boolean);
  const name = result.entry?.name ?? "preset";
  const choice = await vscode.window.showInformationMessage(
    `Imported “${name}” (${result.sourceFormat}).${notes.length ? " " + notes.join(" ") : ""}`,
    "Use it",
  );
  if (choice === "Use it" && result.entry) await client.request(Methods.presetsSelect, { id: result.entry.id });
}

export function presetCommand(client: ServerClient, fn: (c: ServerClient) => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await fn(client);
    } catch (err) {
      void vscode.window.showErrorMessage(`Open LLM: ${errorMessage(err)}`);
    }
  };
}
