// Bundle the extension (Node, CommonJS) and the chat webview (browser, IIFE) with esbuild.
//   node scripts/build.mjs            production bundles into dist/
//   node scripts/build.mjs --watch    rebuild on change
//   node scripts/build.mjs --tests    also bundle test/*.test.ts into out/test/ for `node --test`
import { build, context } from "esbuild";
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const watch = process.argv.includes("--watch");
const tests = process.argv.includes("--tests");

const extension = {
  entryPoints: [join(root, "src/extension.ts")],
  outfile: join(root, "dist/extension.js"),
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  external: ["vscode"],
  sourcemap: watch ? "inline" : false,
  minify: !watch,
  logLevel: "warning",
};

const webview = {
  entryPoints: [join(root, "webview/main.ts")],
  outfile: join(root, "dist/webview.js"),
  bundle: true,
  platform: "browser",
  format: "iife",
  target: "es2022",
  sourcemap: watch ? "inline" : false,
  minify: !watch,
  logLevel: "warning",
};

function copyAssets() {
  mkdirSync(join(root, "dist"), { recursive: true });
  copyFileSync(join(root, "webview/style.css"), join(root, "dist/webview.css"));
}

if (watch) {
  const contexts = await Promise.all([context(extension), context(webview)]);
  copyAssets();
  await Promise.all(contexts.map((c) => c.watch()));
  console.log("watching…");
} else {
  await Promise.all([build(extension), build(webview)]);
  copyAssets();
  if (tests) {
    rmSync(join(root, "out/test"), { recursive: true, force: true });
    const entryPoints = readdirSync(join(root, "test"))
      .filter((f) => f.endsWith(".test.ts"))
      .map((f) => join(root, "test", f));
    await build({
      entryPoints,
      outdir: join(root, "out/test"),
      outExtension: { ".js": ".cjs" },
      bundle: true,
      platform: "node",
      format: "cjs",
      target: "node20",
      external: ["vscode"],
      logLevel: "warning",
    });
  }
}
