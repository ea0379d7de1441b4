// Generate package.json's server settings (contributes.configuration, id "openLlm.server")
// from the language server's settings schema, so the Settings UI shows every server setting
// with its description and exact default.
//
//   node scripts/gen-config.mjs           rewrite package.json
//   node scripts/gen-config.mjs --check   exit 1 when package.json is stale (CI)
//
// The schema comes from `$PYTHON -c ...` (default: ../.venv/bin/python, else python3), or
// from a JSON file given with --schema FILE ({"schema": ..., "defaults": ...}).
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { toConfiguration } from "../src/configSchema.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const repo = join(root, "..");
const args = process.argv.slice(2);
const check = args.includes("--check");
const schemaArg = args.indexOf("--schema");

const PY_SNIPPET = [
  "import json",
  "from lsp_server.config.settings import Settings, settings_schema",
  "print(json.dumps({'schema': settings_schema(),",
  "  'defaults': Settings().model_dump(mode='json', by_alias=True)}))",
].join("\n");

function loadSchema() {
  if (schemaArg >= 0) return JSON.parse(readFileSync(args[schemaArg + 1], "utf8"));
  const venv = join(repo, ".venv/bin/python");
  const python = process.env.PYTHON || (existsSync(venv) ? venv : "python3");
  const out = execFileSync(python, ["-c", PY_SNIPPET], { cwd: repo, encoding: "utf8" });
  return JSON.parse(out);
}

const { schema, defaults } = loadSchema();
const properties = toConfiguration(schema, defaults);
const pkgPath = join(root, "package.json");
const text = readFileSync(pkgPath, "utf8");
const pkg = JSON.parse(text);
const section = pkg.contributes.configuration.find((c) => c.id === "openLlm.server");
if (!section) throw new Error('package.json has no configuration section with id "openLlm.server"');
section.properties = properties;
const updated = JSON.stringify(pkg, null, 2) + "\n";

if (check) {
  if (updated !== text) {
    console.error(
      "vscode-extension/package.json is out of date with the server's settings schema " +
        "(lsp_server/config/settings.py).\nRun: make vscode-config   (or: cd vscode-extension && npm run gen-config)",
    );
    process.exit(1);
  }
  console.log(`package.json configuration matches the settings schema (${Object.keys(properties).length} settings)`);
} else {
  writeFileSync(pkgPath, updated);
  console.log(`wrote ${Object.keys(properties).length} server settings into package.json`);
}
