/** Commands of the chat list: open, rename, duplicate, pin, move, export, delete, trash. */
import * as vscode from "vscode";
import { errorMessage, ServerClient } from "../client";
import { Commands, Methods } from "../constants";
import type { ChatViewProvider } from "../chat/ChatViewProvider";
import type { Chat, ChatFolder } from "../protocol";
import { ChatTreeProvider, chatIdOf, chatTitleOf, Node, SortMode } from "./ChatTree";

export function registerChatListCommands(
  client: ServerClient,
  tree: ChatTreeProvider,
  view: vscode.TreeView<Node>,
  chat: ChatViewProvider,
): vscode.Disposable[] {
  /** The node a command acts on: its argument (context menu), else the tree's selection. */
  const target = (node?: Node): Node | undefined => node ?? view.selection[0];
  const guarded =
    (fn: (node?: Node) => Promise<void>) =>
    async (node?: Node): Promise<void> => {
      try {
        await fn(target(node));
      } catch (err) {
        void vscode.window.showErrorMessage(`Open LLM: ${errorMessage(err)}`);
      } finally {
        tree.refresh();
      }
    };

  const cmds: [string, (node?: Node) => Promise<void>][] = [
    [Commands.chatsRefresh, async () => undefined],
    [
      Commands.chatsOpen,
      async (node) => {
        const id = chatIdOf(node);
        if (id) await chat.openChat(id);
      },
    ],
    [
      Commands.chatsRename,
      async (node) => {
        const id = chatIdOf(node);
        if (!id) return;
        const title = await vscode.window.showInputBox({
          title: "Rename chat",
          value: chatTitleOf(node),
          validateInput: (v) => (v.trim() ? undefined : "The title cannot be empty."),
        });
        if (title?.trim()) await client.request<Chat>(Methods.chatRename, { chatId: id, title: title.trim() });
        if (chat.currentChatId === id) await chat.openChat(id);
      },
    ],
    [
      Commands.chatsDuplicate,
      async (node) => {
        const id = chatIdOf(node);
        if (id) await client.request<Chat>(Methods.chatDuplicate, { chatId: id });
      },
    ],
    [
      Commands.chatsPin,
      async (node) => {
        const id = chatIdOf(node);
        if (id) await client.request<Chat>(Methods.chatPin, { chatId: id });
      },
    ],
    [
      Commands.chatsUnpin,
      async (node) => {
        const id = chatIdOf(node);
        if (id) await client.request<Chat>(Methods.chatUnpin, { chatId: id });
      },
    ],
    [
      Commands.chatsMove,
      async (node) => {
        const id = chatIdOf(node);
        if (!id) return;
        const { folders } = await client.request<{ folders: ChatFolder[] }>(Methods.chatFolderList, {});
        type Pick = vscode.QuickPickItem & { folderId: string | null | "new" };
        const items: Pick[] = [
          ...folders.map((f) => ({ label: `$(folder) ${f.name}`, folderId: f.id })),
          { label: "$(new-folder) New folder…", folderId: "new" },
          { label: "$(close) No folder", folderId: null },
        ];
        const pick = await vscode.window.showQuickPick(items, { title: "Move chat to folder" });
        if (!pick) return;
        let folderId = pick.folderId;
        if (folderId === "new") {
          const created = await createFolder(client);
          if (!created) return;
          folderId = created.id;
        }
        await client.request<Chat>(Methods.chatMove, { chatId: id, folderId });
      },
    ],
    [
      Commands.chatsExport,
      async (node) => {
        const id = chatIdOf(node);
        if (!id) return;
        const format = await vscode.window.showQuickPick(
          [
            { label: "Markdown", description: "the active branch", format: "markdown" as const },
            { label: "JSON", description: "every branch; imports back exactly", format: "json" as const },
          ],
          { title: "Export chat" },
        );
        if (!format) return;
        const result = await client.request<{ text: string }>(Methods.chatExport, { chatId: id, format: format.format });
        const safe = chatTitleOf(node).replace(/[^\w.-]+/g, "-").replace(/^-+|-+$/g, "") || "chat";
        const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
        const name = `${safe}.${format.format === "json" ? "json" : "md"}`;
        const uri = await vscode.window.showSaveDialog({
          title: "Export chat",
          defaultUri: folder ? vscode.Uri.joinPath(folder, name) : undefined,
          filters: format.format === "json" ? { JSON: ["json"] } : { Markdown: ["md"] },
        });
        if (!uri) return;
        await vscode.workspace.fs.writeFile(uri, new TextEncoder().encode(result.text));
        void vscode.window.showInformationMessage(`Exported to ${vscode.workspace.asRelativePath(uri)}.`);
      },
    ],
    [
      Commands.chatsDelete,
      async (node) => {
        const id = chatIdOf(node);
        if (!id) return;
        await client.request(Methods.chatDelete, { chatId: id });
        await chat.forget(id);
      },
    ],
    [
      Commands.chatsRestore,
      async (node) => {
        const id = chatIdOf(node);
        if (id) await client.request(Methods.chatRestore, { chatId: id });
      },
    ],
    [
      Commands.chatsClearAll,
      async () => {
        const answer = await vscode.window.showWarningMessage(
          "Move every chat of this workspace to the trash?",
          { modal: true, detail: "You can restore them from the Trash until it is emptied." },
          "Move to Trash",
        );
        if (answer !== "Move to Trash") return;
        const result = await client.request<{ trashed: number }>(Methods.chatClearAll, {});
        if (chat.currentChatId) await chat.forget(chat.currentChatId);
        void vscode.window.showInformationMessage(`${result.trashed} chats moved to the trash.`);
      },
    ],
    [
      Commands.chatsEmptyTrash,
      async () => {
        const answer = await vscode.window.showWarningMessage(
          "Delete the chats in the trash for good?",
          { modal: true, detail: "This cannot be undone." },
          "Delete",
        );
        if (answer === "Delete") await client.request(Methods.chatEmptyTrash, {});
      },
    ],
    [
      Commands.chatsNewFolder,
      async () => {
        await createFolder(client);
      },
    ],
    [
      Commands.chatsRenameFolder,
      async (node) => {
        if (node?.kind !== "folder") return;
        const name = await vscode.window.showInputBox({ title: "Rename folder", value: node.folder.name });
        if (name?.trim()) await client.request(Methods.chatFolderRename, { folderId: node.folder.id, name: name.trim() });
      },
    ],
    [
      Commands.chatsDeleteFolder,
      async (node) => {
        if (node?.kind !== "folder") return;
        await client.request(Methods.chatFolderDelete, { folderId: node.folder.id });
      },
    ],
    [
      Commands.chatsSearch,
      async () => {
        const query = await vscode.window.showInputBox({
          title: "Search chats",
          prompt: "Words to find in chat titles and messages (all of them)",
        });
        if (query !== undefined) await tree.search(query);
      },
    ],
    [Commands.chatsClearSearch, async () => tree.search(undefined)],
    [
      Commands.chatsSort,
      async () => {
        const current = tree.sort;
        const items: (vscode.QuickPickItem & { sort: SortMode })[] = [
          { label: "Last updated", sort: "updated" },
          { label: "Created", sort: "created" },
          { label: "Title", sort: "title" },
        ].map((i) => ({ ...i, description: i.sort === current ? "current" : undefined })) as never;
        const pick = await vscode.window.showQuickPick(items, { title: "Sort chats by" });
        if (pick) await tree.setSort(pick.sort);
      },
    ],
  ];
  return cmds.map(([id, fn]) => vscode.commands.registerCommand(id, guarded(fn)));
}

async function createFolder(client: ServerClient): Promise<ChatFolder | undefined> {
  const name = await vscode.window.showInputBox({
    title: "New chat folder",
    validateInput: (v) => (v.trim() ? undefined : "The name cannot be empty."),
  });
  if (!name?.trim()) return undefined;
  return client.request<ChatFolder>(Methods.chatFolderCreate, { name: name.trim() });
}
