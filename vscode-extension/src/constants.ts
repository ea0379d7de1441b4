/** Custom LSP method names, mirrored from lsp_server/protocol/methods.py (a test checks it). */
export const Methods = {
  status: "openLlm/status",
  statusChanged: "openLlm/statusChanged",
  generate: "openLlm/generate",
  generateDelta: "openLlm/generateDelta",
  cancel: "openLlm/cancel",
  completionClearCache: "openLlm/completion/clearCache",
  completionLastPrompt: "openLlm/completion/lastPrompt",

  presetsList: "openLlm/presets/list",
  presetsGet: "openLlm/presets/get",
  presetsCreate: "openLlm/presets/create",
  presetsUpdate: "openLlm/presets/update",
  presetsDuplicate: "openLlm/presets/duplicate",
  presetsDelete: "openLlm/presets/delete",
  presetsSelect: "openLlm/presets/select",
  presetsActive: "openLlm/presets/active",
  presetsExport: "openLlm/presets/export",
  presetsImport: "openLlm/presets/import",
  presetsChanged: "openLlm/presets/changed",

  chatCreate: "openLlm/chat/create",
  chatList: "openLlm/chat/list",
  chatGet: "openLlm/chat/get",
  chatRename: "openLlm/chat/rename",
  chatUpdate: "openLlm/chat/update",
  chatDuplicate: "openLlm/chat/duplicate",
  chatDelete: "openLlm/chat/delete",
  chatClearAll: "openLlm/chat/clearAll",
  chatRestore: "openLlm/chat/restore",
  chatEmptyTrash: "openLlm/chat/emptyTrash",
  chatSearch: "openLlm/chat/search",
  chatFolderList: "openLlm/chat/folder/list",
  chatFolderCreate: "openLlm/chat/folder/create",
  chatFolderRename: "openLlm/chat/folder/rename",
  chatFolderDelete: "openLlm/chat/folder/delete",
  chatMove: "openLlm/chat/move",
  chatPin: "openLlm/chat/pin",
  chatUnpin: "openLlm/chat/unpin",
  chatBranch: "openLlm/chat/branch",
  chatEdit: "openLlm/chat/edit",
  chatRegenerate: "openLlm/chat/regenerate",
  chatSwitchBranch: "openLlm/chat/switchBranch",
  chatExport: "openLlm/chat/export",
  chatImport: "openLlm/chat/import",
  chatSend: "openLlm/chat/send",
  chatCancel: "openLlm/chat/cancel",
  chatRenderPrompt: "openLlm/chat/renderPrompt",
  chatDelta: "openLlm/chat/delta",
  chatChanged: "openLlm/chat/changed",

  // Being built on the server side: every use degrades when the server lacks them.
  hardware: "openLlm/hardware",
  modelsList: "openLlm/models/list",
  modelsFit: "openLlm/models/fit",
  modelsRecommend: "openLlm/models/recommend",
  modelsDownload: "openLlm/models/download",
  modelsCancelDownload: "openLlm/models/cancelDownload",
  modelsSelect: "openLlm/models/select",
  modelsAcceptLicense: "openLlm/models/acceptLicense",
  modelsDownloadProgress: "openLlm/models/downloadProgress",
} as const;

/** The server's command that code actions carry; the client runs it with its chat panel. */
export const CHAT_START_COMMAND = "openLlm.chat.start";

/** JSON-RPC error codes of docs/protocol.md. */
export const ErrorCodes = {
  methodNotFound: -32601,
  invalidParams: -32602,
  cancelled: -32800,
  modelNotReady: -32006,
  notFound: -32010,
  conflict: -32011,
  storage: -32012,
  refused: -32013,
} as const;

/** Commands contributed in package.json. */
export const Commands = {
  restartServer: "openLlm.restartServer",
  showLogs: "openLlm.showLogs",
  showMenu: "openLlm.showMenu",
  completionTrigger: "openLlm.completion.trigger",
  completionToggle: "openLlm.completion.toggle",
  chatOpen: "openLlm.chat.open",
  chatNew: "openLlm.chat.new",
  chatAttachSelection: "openLlm.chat.attachSelection",
  chatAttachFile: "openLlm.chat.attachFile",
  chatsRefresh: "openLlm.chats.refresh",
  chatsSearch: "openLlm.chats.search",
  chatsClearSearch: "openLlm.chats.clearSearch",
  chatsSort: "openLlm.chats.sort",
  chatsNewFolder: "openLlm.chats.newFolder",
  chatsClearAll: "openLlm.chats.clearAll",
  chatsEmptyTrash: "openLlm.chats.emptyTrash",
  chatsOpen: "openLlm.chats.open",
  chatsRename: "openLlm.chats.rename",
  chatsDuplicate: "openLlm.chats.duplicate",
  chatsPin: "openLlm.chats.pin",
  chatsUnpin: "openLlm.chats.unpin",
  chatsMove: "openLlm.chats.move",
  chatsExport: "openLlm.chats.export",
  chatsDelete: "openLlm.chats.delete",
  chatsRestore: "openLlm.chats.restore",
  chatsRenameFolder: "openLlm.chats.renameFolder",
  chatsDeleteFolder: "openLlm.chats.deleteFolder",
  presetsSwitch: "openLlm.presets.switch",
  presetsCreateFromCurrent: "openLlm.presets.createFromCurrent",
  presetsEditWorkspace: "openLlm.presets.editWorkspace",
  presetsImport: "openLlm.presets.import",
  modelsChoose: "openLlm.models.choose",
} as const;

export const Views = {
  container: "openLlm",
  chat: "openLlm.chatView",
  chatList: "openLlm.chatList",
} as const;

export const SECTION = "openLlm";
export const OUTPUT_CHANNEL = "Open LLM";
