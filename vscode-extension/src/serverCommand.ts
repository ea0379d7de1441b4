/**
 * Choosing how to start the language server (pure: the probes are passed in, so it is tested
 * without VS Code). Order: the `openLlm.server.command` setting, `open-llm-lsp` on PATH, the
 * Python extension's interpreter with `-m lsp_server`, `python3 -m lsp_server`.
 */

export interface ServerCommand {
  command: string;
  args: string[];
  /** Where it came from, for the logs and the error message. */
  source: "setting" | "path" | "pythonExtension" | "python3";
}

export interface Probes {
  /** Absolute path of an executable on PATH, or undefined. */
  which(name: string): Promise<string | undefined>;
  /** The Python extension's interpreter (command + args), or undefined when not installed. */
  pythonExtensionInterpreter(): Promise<string[] | undefined>;
  /** True when `python -c "import lsp_server"` succeeds. */
  hasServerModule(python: string[]): Promise<boolean>;
}

export interface Resolution {
  command?: ServerCommand;
  /** Every candidate tried, with why it was rejected (for the error message). */
  tried: string[];
}

export const SERVER_EXECUTABLE = "open-llm-lsp";
export const SERVER_MODULE = "lsp_server";

export async function resolveServerCommand(
  setting: { command: string; args: string[] },
  probes: Probes,
): Promise<Resolution> {
  const tried: string[] = [];
  const configured = setting.command.trim();
  if (configured) {
    // An explicit setting is used as is: a wrong path fails loudly at start, naming it.
    return { command: { command: configured, args: setting.args, source: "setting" }, tried };
  }
  const onPath = await probes.which(SERVER_EXECUTABLE);
  if (onPath) return { command: { command: onPath, args: [], source: "path" }, tried };
  tried.push(`\`${SERVER_EXECUTABLE}\` is not on PATH`);

  const interpreter = await probes.pythonExtensionInterpreter();
  if (interpreter && interpreter.length > 0) {
    if (await probes.hasServerModule(interpreter)) {
      const [command, ...rest] = interpreter;
      return {
        command: { command, args: [...rest, "-m", SERVER_MODULE], source: "pythonExtension" },
        tried,
      };
    }
    tried.push(`the Python extension's interpreter (${interpreter.join(" ")}) has no \`${SERVER_MODULE}\``);
  } else {
    tried.push("no interpreter from the Python extension");
  }

  const python3 = await probes.which("python3");
  if (python3 && (await probes.hasServerModule([python3]))) {
    return { command: { command: python3, args: ["-m", SERVER_MODULE], source: "python3" }, tried };
  }
  tried.push(python3 ? `\`${python3}\` has no \`${SERVER_MODULE}\`` : "`python3` is not on PATH");
  return { tried };
}

/** The message shown when no way to start the server was found, with the fix. */
export function notFoundMessage(tried: string[]): string {
  return (
    "Open LLM: the language server was not found (" +
    tried.join("; ") +
    "). Install it with `pip install open-llm-lsp` (or `pip install .` in its repository), " +
    "or set `openLlm.server.command` to the `open-llm-lsp` executable."
  );
}
