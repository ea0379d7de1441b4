/**
 * The LanguageClient: how the server is started, its middleware, typed requests and events.
 * Everything else talks to the server through {@link ServerClient}.
 */
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { promisify } from "node:util";
import * as vscode from "vscode";
import {
  CancellationToken,
  LanguageClient,
  LanguageClientOptions,
  ResponseError,
  ServerOptions,
  State,
} from "vscode-languageclient/node";
import { CHAT_START_COMMAND, ErrorCodes, Methods, SECTION } from "./constants";
import type { ChatDelta, ChatStartRequest, Status } from "./protocol";
import { notFoundMessage, Probes, resolveServerCommand, ServerCommand } from "./serverCommand";
import { CLIENT_ONLY_KEYS, forServer, serverSetting } from "./settings";

const run = promisify(execFile);

/** `openLlm/models/downloadProgress`. */
export interface DownloadProgress {
  downloadId?: string;
  percent?: number;
  bytesPerSecond?: number;
}

/** True when the server answered "method not found" (a feature it does not have yet). */
export function isMethodNotFound(err: unknown): boolean {
  return err instanceof ResponseError && err.code === ErrorCodes.methodNotFound;
}

export function errorMessage(err: unknown): string {
  if (err instanceof ResponseError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

const probes: Probes = {
  async which(name) {
    try {
      const { stdout } = await run("sh", ["-c", `command -v ${name}`], { timeout: 5000 });
      return stdout.trim() || undefined;
    } catch {
      return undefined;
    }
  },
  async pythonExtensionInterpreter() {
    const ext = vscode.extensions.getExtension("ms-python.python");
    if (!ext) return undefined;
    try {
      const api = ext.isActive ? ext.exports : await ext.activate();
      const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
      const envPath = api?.environments?.getActiveEnvironmentPath?.(resource);
      if (envPath) {
        const env = await api.environments.resolveEnvironment(envPath);
        const exe = env?.executable?.uri?.fsPath ?? envPath.path;
        if (exe) return [exe];
      }
      const details = api?.settings?.getExecutionDetails?.(resource);
      return details?.execCommand;
    } catch {
      return undefined;
    }
  },
  async hasServerModule(python) {
    const [cmd, ...args] = python;
    try {
      // From a neutral folder: `-c` would otherwise import from the current directory.
      await run(cmd, [...args, "-c", "import lsp_server"], { timeout: 20000, cwd: tmpdir() });
      return true;
    } catch {
      return false;
    }
  },
};

export interface ClientHooks {
  /** Automatic inline completions on? (Explicit triggers always complete.) */
  automaticCompletions(): boolean;
  /** Run a code action's chat request in the chat panel. */
  startChat(request: ChatStartRequest): Promise<void>;
}

export class ServerClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<void> | undefined;
  private readonly statusEmitter = new vscode.EventEmitter<Status>();
  private readonly deltaEmitter = new vscode.EventEmitter<ChatDelta>();
  private readonly chatChangedEmitter = new vscode.EventEmitter<unknown>();
  private readonly presetsChangedEmitter = new vscode.EventEmitter<unknown>();
  private readonly modelsProgressEmitter = new vscode.EventEmitter<DownloadProgress>();
  private readonly stateEmitter = new vscode.EventEmitter<"starting" | "running" | "stopped" | "failed">();
  private readonly notificationDisposables: vscode.Disposable[] = [];
  lastStatus: Status | undefined;
  command: ServerCommand | undefined;

  /** `openLlm/statusChanged` (and the first `openLlm/status`). */
  readonly onStatus = this.statusEmitter.event;
  /** `openLlm/chat/delta`. */
  readonly onChatDelta = this.deltaEmitter.event;
  /** `openLlm/chat/changed`. */
  readonly onChatChanged = this.chatChangedEmitter.event;
  /** `openLlm/presets/changed`. */
  readonly onPresetsChanged = this.presetsChangedEmitter.event;
  readonly onState = this.stateEmitter.event;
  /** `openLlm/models/downloadProgress`. */
  readonly onModelsProgress = this.modelsProgressEmitter.event;

  constructor(
    private readonly output: vscode.LogOutputChannel,
    private readonly hooks: ClientHooks,
  ) {}

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  async start(): Promise<void> {
    if (!this.starting) this.starting = this.doStart().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.stateEmitter.fire("starting");
    const setting = serverSetting();
    const resolution = await resolveServerCommand(setting, probes);
    if (!resolution.command) {
      const message = notFoundMessage(resolution.tried);
      this.output.error(message);
      this.stateEmitter.fire("failed");
      void vscode.window
        .showErrorMessage(message, "Open Settings", "Show Logs")
        .then((choice) => {
          if (choice === "Open Settings")
            void vscode.commands.executeCommand("workbench.action.openSettings", "openLlm.server");
          else if (choice === "Show Logs") this.output.show();
        });
      return;
    }
    this.command = resolution.command;
    const { command, args } = resolution.command;
    this.output.info(`starting the server (${resolution.command.source}): ${[command, ...args].join(" ")}`);
    // stdio without `transport`: TransportKind.stdio would append `--stdio` to the arguments.
    const serverOptions: ServerOptions = {
      command,
      args,
      options: { env: { ...process.env, ...setting.env } },
    };
    const hooks = this.hooks;
    const clientOptions: LanguageClientOptions = {
      // Without a documentSelector no inline completion provider is registered at all.
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      outputChannel: this.output,
      traceOutputChannel: this.output,
      initializationOptions: { [SECTION]: forServer(vscode.workspace.getConfiguration().get(SECTION)) },
      middleware: {
        workspace: {
          configuration: async (params, token, next) => {
            const result = await next(params, token);
            if (!Array.isArray(result)) return result;
            return result.map((value, i) => {
              const section = params.items[i]?.section;
              if (section === SECTION) return forServer(value);
              if (section && CLIENT_ONLY_KEYS.some((k) => section === `${SECTION}.${k}`)) return null;
              return value;
            });
          },
        },
        provideInlineCompletionItems: (document, position, context, token: CancellationToken, next) => {
          if (context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic && !hooks.automaticCompletions()) {
            return undefined;
          }
          return next(document, position, context, token);
        },
        executeCommand: async (command, args, next) => {
          if (command === CHAT_START_COMMAND && args[0]) {
            await hooks.startChat(args[0] as ChatStartRequest);
            return undefined;
          }
          return next(command, args);
        },
      },
      initializationFailedHandler: (error) => {
        this.output.error(`initialize failed: ${errorMessage(error)}`);
        return false;
      },
    };
    const client = new LanguageClient("openLlm", "Open LLM", serverOptions, clientOptions);
    this.client = client;
    this.notificationDisposables.push(
      client.onNotification(Methods.statusChanged, (status: Status) => this.setStatus(status)),
      client.onNotification(Methods.chatDelta, (delta: ChatDelta) => this.deltaEmitter.fire(delta)),
      client.onNotification(Methods.chatChanged, (p: unknown) => this.chatChangedEmitter.fire(p)),
      client.onNotification(Methods.presetsChanged, (p: unknown) => this.presetsChangedEmitter.fire(p)),
      client.onNotification(Methods.modelsDownloadProgress, (p: DownloadProgress) =>
        this.modelsProgressEmitter.fire(p),
      ),
      client.onDidChangeState((e) => {
        if (e.newState === State.Stopped) this.stateEmitter.fire("stopped");
      }),
    );
    try {
      await client.start();
    } catch (err) {
      this.stateEmitter.fire("failed");
      const message =
        `Open LLM: the language server could not start (${[command, ...args].join(" ")}): ` +
        `${errorMessage(err)}. Check \`openLlm.server.command\` or run \`pip install open-llm-lsp\`.`;
      this.output.error(message);
      void vscode.window.showErrorMessage(message, "Show Logs").then((c) => c && this.output.show());
      return;
    }
    this.stateEmitter.fire("running");
    // Settings changes make the server pull `workspace/configuration` again (through the
    // middleware above, which leaves out the client's own keys).
    this.notificationDisposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        // (The server only reloads what actually changed.)
        if (e.affectsConfiguration(SECTION)) {
          void client.sendNotification("workspace/didChangeConfiguration", { settings: null });
        }
      }),
    );
    try {
      this.setStatus(await client.sendRequest<Status>(Methods.status, {}));
    } catch (err) {
      this.output.warn(`openLlm/status failed: ${errorMessage(err)}`);
    }
  }

  private setStatus(status: Status): void {
    this.lastStatus = status;
    this.statusEmitter.fire(status);
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.notificationDisposables.splice(0).forEach((d) => d.dispose());
    if (client) {
      try {
        await client.stop(5000);
      } catch (err) {
        this.output.warn(`stopping the server: ${errorMessage(err)}`);
      }
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** A custom request; throws a ResponseError from the server, or when it is not running. */
  async request<R>(method: string, params: object = {}, token?: vscode.CancellationToken): Promise<R> {
    if (this.starting) await this.starting;
    const client = this.client;
    if (!client || client.state !== State.Running) {
      throw new Error("the Open LLM language server is not running (see Open LLM: Show Logs)");
    }
    return token ? client.sendRequest<R>(method, params, token) : client.sendRequest<R>(method, params);
  }

  notify(method: string, params: object): void {
    void this.client?.sendNotification(method, params);
  }

  dispose(): void {
    void this.stop();
    this.statusEmitter.dispose();
    this.deltaEmitter.dispose();
    this.chatChangedEmitter.dispose();
    this.presetsChangedEmitter.dispose();
    this.modelsProgressEmitter.dispose();
    this.stateEmitter.dispose();
  }
}
