/**
 * The model picker: the models on this machine with how they fit (Full GPU / Partial GPU /
 * CPU / Won't fit), the curated catalogue with this machine's verdict, size and license; for a
 * catalogue model the fit table of its files, the license dialog, and a cancellable download
 * with progress. Servers without `openLlm/models/*` get a local-file picker instead.
 */
import * as vscode from "vscode";
import { errorMessage, isMethodNotFound, ServerClient } from "./client";
import { Methods, SECTION } from "./constants";
import { CatalogView, fitRows, LocalModelView, readModelList, readRecommend } from "./modelFormat";

type Pick = vscode.QuickPickItem & { local?: LocalModelView; catalog?: CatalogView; action?: "file" | "hf" };

export async function chooseModel(client: ServerClient): Promise<void> {
  let listed: unknown;
  try {
    listed = await client.request<unknown>(Methods.modelsList, {});
  } catch (err) {
    if (!isMethodNotFound(err)) throw err;
    return chooseLocalModel();
  }
  const { local, catalog } = readModelList(listed);
  const quickPick = vscode.window.createQuickPick<Pick>();
  quickPick.title = "Choose the chat model: how it fits this machine · quantization · size · license";
  quickPick.matchOnDescription = true;
  quickPick.busy = true;
  const build = (fits: Map<string, string>, rec?: ReturnType<typeof readRecommend>): Pick[] => {
    const items: Pick[] = [{ label: "On this machine", kind: vscode.QuickPickItemKind.Separator }];
    for (const m of local) {
      items.push({
        label: `$(check) ${m.name}`,
        description: [fits.get(m.path) ?? "…", m.description].join(" · "),
        local: m,
      });
    }
    for (const role of ["chat", "completion"]) {
      const entries = catalog.filter((c) => c.role === role);
      if (!entries.length) continue;
      items.push({ label: `Catalogue: ${role} models (download)`, kind: vscode.QuickPickItemKind.Separator });
      for (const c of entries) {
        const v = rec?.verdicts.get(`${role}:${c.id}`);
        const star = rec?.picks.has(`${role}:${c.id}`) ? "$(star-full) " : "";
        items.push({
          label: `${star}${c.cached ? "$(check)" : "$(cloud-download)"} ${c.name}`,
          description: [v ? `${v.verdict}` : "", c.description].filter(Boolean).join(" · "),
          detail: [v?.reason, c.notes].filter(Boolean).join(" — ") || undefined,
          catalog: c,
        });
      }
    }
    items.push({ label: "Other", kind: vscode.QuickPickItemKind.Separator });
    items.push({ label: "$(file) Choose a .gguf file…", action: "file" });
    items.push({ label: "$(cloud) A Hugging Face model in the local cache…", action: "hf" });
    return items;
  };
  const fits = new Map<string, string>();
  quickPick.items = build(fits);
  quickPick.show();
  // Fill in the fit of each local file and the catalogue verdicts (no network for either).
  const fitRequests = local.map(async (m) => {
    if (!m.path) return;
    try {
      const { rows } = fitRows(await client.request<unknown>(Methods.modelsFit, { path: m.path }));
      fits.set(m.path, rows.find((r) => r.chosen)?.fit ?? rows[0]?.fit ?? "?");
    } catch (err) {
      fits.set(m.path, `fit unknown (${errorMessage(err)})`);
    }
  });
  const recommend = client.request<unknown>(Methods.modelsRecommend, {}).then(readRecommend, () => undefined);
  void Promise.all([Promise.all(fitRequests), recommend]).then(async ([, rec]) => {
    const active = quickPick.activeItems;
    quickPick.items = build(fits, rec);
    quickPick.activeItems = active;
    quickPick.busy = false;
  });
  const pick = await new Promise<Pick | undefined>((resolve) => {
    quickPick.onDidAccept(() => resolve(quickPick.selectedItems[0]));
    quickPick.onDidHide(() => resolve(undefined));
  });
  quickPick.dispose();
  if (!pick) return;
  if (pick.action) return chooseLocalModel(pick.action);
  if (pick.local) return selectModel(client, pick.local.spec);
  if (pick.catalog) return chooseFromFitTable(client, pick.catalog);
}

async function chooseFromFitTable(client: ServerClient, entry: CatalogView): Promise<void> {
  let table: ReturnType<typeof fitRows>;
  try {
    table = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Reading ${entry.repo} (a few MB)…` },
      async () => fitRows(await client.request<unknown>(Methods.modelsFit, { repo: entry.repo })),
    );
  } catch (err) {
    void vscode.window.showErrorMessage(`Open LLM: could not read ${entry.repo}: ${errorMessage(err)}`);
    return;
  }
  const pick = await vscode.window.showQuickPick(
    table.rows.map((row) => ({
      label: `${row.chosen ? "$(star-full) " : ""}${row.quant}`,
      description: [row.fit, row.size, entry.license.name].filter(Boolean).join(" · "),
      detail: row.reason || undefined,
      row,
    })),
    { title: `${entry.name}: which file fits this machine`, placeHolder: table.message },
  );
  if (!pick) return;
  let acceptLicense = false;
  if (entry.license.restricted && !entry.license.accepted) {
    const accept = "Accept and download";
    const choice = await vscode.window.showWarningMessage(
      `${entry.name} is distributed under the ${entry.license.name}, which you must accept to download and use it.`,
      { modal: true, detail: entry.license.url ? `Read it at ${entry.license.url}` : undefined },
      accept,
    );
    if (choice !== accept) return;
    acceptLicense = true;
  }
  await download(client, `${entry.repo}:${pick.row.quant}`, acceptLicense);
}

async function selectModel(client: ServerClient, spec: string): Promise<void> {
  try {
    await client.request(Methods.modelsSelect, { role: "chat", model: spec });
  } catch (err) {
    if (!isMethodNotFound(err)) throw err;
    await setModel(spec);
  }
}

async function setModel(value: string): Promise<void> {
  await vscode.workspace.getConfiguration(SECTION).update("model", value, vscode.ConfigurationTarget.Global);
}

async function chooseLocalModel(preset?: "file" | "hf" | "bundled"): Promise<void> {
  const current = vscode.workspace.getConfiguration(SECTION).get<string>("model", "");
  let id = preset;
  if (!id) {
    const pick = await vscode.window.showQuickPick(
      [
        { label: "$(file) Choose a .gguf file…", id: "file" as const },
        { label: "$(cloud) Hugging Face model in the local cache…", description: "owner/repo:QUANT", id: "hf" as const },
        { label: "$(package) Bundled demo model", description: "SmolLM2-135M", id: "bundled" as const },
      ],
      { title: "Choose the chat model", placeHolder: `Current: ${current || "bundled demo model"}` },
    );
    id = pick?.id;
  }
  if (!id) return;
  if (id === "bundled") return setModel("");
  if (id === "file") {
    const uri = await vscode.window.showOpenDialog({ filters: { "GGUF models": ["gguf"] }, canSelectMany: false });
    if (uri?.[0]) await setModel(uri[0].fsPath);
    return;
  }
  const ref = await vscode.window.showInputBox({
    title: "Hugging Face model",
    prompt: "owner/repo with an optional :QUANT or :file, already downloaded to the Hugging Face cache",
    placeHolder: "bartowski/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M",
    value: current,
  });
  if (ref !== undefined) await setModel(ref.trim());
}

async function download(client: ServerClient, spec: string, acceptLicense: boolean): Promise<void> {
  const downloadId = `vscode-${Date.now()}`;
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Downloading ${spec}`, cancellable: true },
    async (progress, token) => {
      let last = 0;
      const sub = client.onModelsProgress((p) => {
        if (p.downloadId !== undefined && p.downloadId !== downloadId) return;
        const percent = typeof p.percent === "number" ? p.percent : undefined;
        if (percent !== undefined && percent > last) {
          const speed = typeof p.bytesPerSecond === "number" ? ` · ${(p.bytesPerSecond / 1048576).toFixed(1)} MiB/s` : "";
          progress.report({ increment: percent - last, message: `${Math.round(percent)}%${speed}` });
          last = percent;
        }
      });
      token.onCancellationRequested(() => client.notify(Methods.modelsCancelDownload, { downloadId }));
      try {
        await client.request(Methods.modelsDownload, { model: spec, downloadId, acceptLicense, select: "chat" });
        void vscode.window.showInformationMessage(`Open LLM: ${spec} downloaded and selected for chat.`);
      } catch (err) {
        if (token.isCancellationRequested) {
          void vscode.window.showInformationMessage("Download cancelled (the partial file is kept to resume).");
        } else {
          void vscode.window.showErrorMessage(`Open LLM: download failed: ${errorMessage(err)}`);
        }
      } finally {
        sub.dispose();
      }
    },
  );
}
