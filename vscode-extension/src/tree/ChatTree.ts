/** The chat list (a tree view): folders, pinned first, sort modes, search, trash. */
import * as vscode from "vscode";
import { errorMessage, ServerClient } from "../client";
import { Commands, Methods } from "../constants";
import type { Chat, ChatFolder, SearchHit } from "../protocol";
import { plainSnippet, relativeTime } from "./format";

export type SortMode = "updated" | "created" | "title";

export type Node =
  | { kind: "folder"; folder: ChatFolder }
  | { kind: "chat"; chat: Chat }
  | { kind: "trash"; count: number }
  | { kind: "trashed"; chat: Chat }
  | { kind: "hit"; hit: SearchHit }
  | { kind: "message"; text: string };

export class ChatTreeProvider implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private query: string | undefined;
  private hits: SearchHit[] = [];
  private chats: Chat[] = [];
  private trashed: Chat[] = [];
  private folders: ChatFolder[] = [];
  private loaded = false;

  constructor(
    private readonly client: ServerClient,
    private readonly memento: vscode.Memento,
  ) {}

  get sort(): SortMode {
    return this.memento.get<SortMode>("openLlm.chats.sort", "updated");
  }

  async setSort(sort: SortMode): Promise<void> {
    await this.memento.update("openLlm.chats.sort", sort);
    this.refresh();
  }

  refresh(): void {
    this.loaded = false;
    this.emitter.fire(undefined);
  }

  async search(query: string | undefined): Promise<void> {
    this.query = query?.trim() || undefined;
    this.hits = [];
    if (this.query) {
      try {
        const result = await this.client.request<{ hits: SearchHit[] }>(Methods.chatSearch, { query: this.query, limit: 50 });
        this.hits = result.hits;
      } catch (err) {
        void vscode.window.showErrorMessage(`Open LLM: search failed: ${errorMessage(err)}`);
      }
    }
    await vscode.commands.executeCommand("setContext", "openLlm.chats.searching", !!this.query);
    this.emitter.fire(undefined);
  }

  private async load(): Promise<void> {
    const sort = this.sort;
    const [list, trash, folders] = await Promise.all([
      this.client.request<{ items: Chat[] }>(Methods.chatList, { sort, limit: 1000 }),
      this.client.request<{ items: Chat[]; total: number }>(Methods.chatList, { trash: true, limit: 1000 }),
      this.client.request<{ folders: ChatFolder[] }>(Methods.chatFolderList, {}),
    ]);
    this.chats = list.items;
    this.trashed = trash.items;
    this.folders = [...folders.folders].sort((a, b) => a.name.localeCompare(b.name));
    this.loaded = true;
  }

  async getChildren(node?: Node): Promise<Node[]> {
    if (!this.client.running) return [{ kind: "message", text: "The language server is not running." }];
    if (!node && this.query) {
      if (!this.hits.length) return [{ kind: "message", text: `No chat matches “${this.query}”.` }];
      return this.hits.map((hit) => ({ kind: "hit", hit }));
    }
    if (!node || !this.loaded) {
      try {
        if (!this.loaded) await this.load();
      } catch (err) {
        return [{ kind: "message", text: `Could not list chats: ${errorMessage(err)}` }];
      }
    }
    if (!node) {
      const nodes: Node[] = [];
      // Pinned chats first (the server lists them first), then folders, then the rest.
      const loose = this.chats.filter((c) => !c.folderId);
      nodes.push(...loose.filter((c) => c.pinned).map((chat): Node => ({ kind: "chat", chat })));
      nodes.push(...this.folders.map((folder): Node => ({ kind: "folder", folder })));
      nodes.push(...loose.filter((c) => !c.pinned).map((chat): Node => ({ kind: "chat", chat })));
      if (this.trashed.length) nodes.push({ kind: "trash", count: this.trashed.length });
      if (!nodes.length) nodes.push({ kind: "message", text: "No chats yet. Ask something in the chat panel." });
      return nodes;
    }
    if (node.kind === "folder") {
      return this.chats.filter((c) => c.folderId === node.folder.id).map((chat) => ({ kind: "chat", chat }));
    }
    if (node.kind === "trash") return this.trashed.map((chat) => ({ kind: "trashed", chat }));
    return [];
  }

  getTreeItem(node: Node): vscode.TreeItem {
    switch (node.kind) {
      case "folder": {
        const item = new vscode.TreeItem(node.folder.name, vscode.TreeItemCollapsibleState.Expanded);
        item.id = `folder:${node.folder.id}`;
        item.iconPath = new vscode.ThemeIcon("folder");
        item.contextValue = "folder";
        item.description = `${node.folder.chatCount}`;
        return item;
      }
      case "chat": {
        const chat = node.chat;
        const item = new vscode.TreeItem(chat.title, vscode.TreeItemCollapsibleState.None);
        item.id = `chat:${chat.id}`;
        item.iconPath = new vscode.ThemeIcon(chat.pinned ? "pinned" : "comment");
        item.description = `${relativeTime(chat.updatedAt)} · ${chat.messageCount}`;
        item.tooltip = `${chat.title}\n${chat.messageCount} messages · updated ${new Date(chat.updatedAt).toLocaleString()}`;
        item.contextValue = chat.pinned ? "chat.pinned" : "chat";
        item.command = { command: Commands.chatsOpen, title: "Open", arguments: [node] };
        item.accessibilityInformation = { label: `Chat ${chat.title}` };
        return item;
      }
      case "trash": {
        const item = new vscode.TreeItem(`Trash (${node.count})`, vscode.TreeItemCollapsibleState.Collapsed);
        item.id = "trash";
        item.iconPath = new vscode.ThemeIcon("trash");
        item.contextValue = "trash";
        return item;
      }
      case "trashed": {
        const item = new vscode.TreeItem(node.chat.title, vscode.TreeItemCollapsibleState.None);
        item.id = `trashed:${node.chat.id}`;
        item.iconPath = new vscode.ThemeIcon("comment-discussion");
        item.description = node.chat.deletedAt ? `deleted ${relativeTime(node.chat.deletedAt)}` : "";
        item.contextValue = "trashed";
        return item;
      }
      case "hit": {
        const item = new vscode.TreeItem(node.hit.chatTitle, vscode.TreeItemCollapsibleState.None);
        item.id = `hit:${node.hit.chatId}:${node.hit.messageId ?? ""}`;
        item.iconPath = new vscode.ThemeIcon("search");
        item.description = plainSnippet(node.hit.snippet);
        item.tooltip = plainSnippet(node.hit.snippet);
        item.contextValue = "chat";
        item.command = { command: Commands.chatsOpen, title: "Open", arguments: [node] };
        return item;
      }
      case "message":
        return new vscode.TreeItem(node.text, vscode.TreeItemCollapsibleState.None);
    }
  }

  dispose(): void {
    this.emitter.dispose();
  }
}

/** The chat id of a tree node (chat, search hit or trashed chat). */
export function chatIdOf(node: Node | undefined): string | undefined {
  if (!node) return undefined;
  if (node.kind === "chat" || node.kind === "trashed") return node.chat.id;
  if (node.kind === "hit") return node.hit.chatId;
  return undefined;
}

export function chatTitleOf(node: Node | undefined): string {
  if (!node) return "";
  if (node.kind === "chat" || node.kind === "trashed") return node.chat.title;
  if (node.kind === "hit") return node.hit.chatTitle;
  return "";
}
