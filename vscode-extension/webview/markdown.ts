/**
 * Markdown for model output: markdown-it with raw HTML off (any `<script>`, `<img onerror>`
 * or other tag in the text is shown as text, never parsed), no images (nothing is fetched),
 * safe link schemes only, and highlighted code blocks with their actions. Pure: unit-tested.
 */
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import csharp from "highlight.js/lib/languages/csharp";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import MarkdownIt from "markdown-it";

const LANGUAGES = {
  bash, c, cpp, csharp, css, go, java, javascript, json, markdown, python, rust, sql, typescript, xml, yaml,
};
for (const [name, lang] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, lang);
const ALIASES: Record<string, string> = {
  sh: "bash", shell: "bash", zsh: "bash", console: "bash", js: "javascript", jsx: "javascript",
  ts: "typescript", tsx: "typescript", py: "python", python3: "python", rs: "rust", "c++": "cpp",
  cs: "csharp", html: "xml", yml: "yaml", md: "markdown", golang: "go",
};

export interface Rendered {
  html: string;
  /** The raw text of each code block, by `data-code-index`. */
  codeBlocks: string[];
}

const SAFE_LINK = /^(https?:|mailto:|#)/i;

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

function highlight(code: string, info: string): string {
  const name = info.trim().split(/\s+/)[0]?.toLowerCase() ?? "";
  const lang = ALIASES[name] ?? name;
  if (lang && hljs.getLanguage(lang)) {
    try {
      return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
    } catch {
      /* fall through */
    }
  }
  return escapeHtml(code);
}

function createRenderer(blocks: { current: string[] }): MarkdownIt {
  const md = new MarkdownIt({ html: false, linkify: false, breaks: false, typographer: false });
  md.disable(["image"]);
  md.validateLink = (url: string) => SAFE_LINK.test(url.trim());
  md.renderer.rules.fence = (tokens, idx) => {
    const token = tokens[idx];
    const index = blocks.current.length;
    blocks.current.push(token.content);
    const lang = token.info.trim().split(/\s+/)[0] ?? "";
    const label = lang ? `<span class="code-lang">${escapeHtml(lang)}</span>` : "";
    return (
      `<div class="code-block" data-code-index="${index}">` +
      `<div class="code-toolbar">${label}` +
      `<button type="button" class="code-action" data-action="copy" data-code-index="${index}" title="Copy">Copy</button>` +
      `<button type="button" class="code-action" data-action="insert" data-code-index="${index}" title="Insert at the cursor">Insert</button>` +
      `<button type="button" class="code-action" data-action="replace" data-code-index="${index}" title="Replace the selection">Replace</button>` +
      `</div><pre><code class="hljs">${highlight(token.content, token.info)}</code></pre></div>`
    );
  };
  md.renderer.rules.code_block = md.renderer.rules.fence;
  // Links open through VS Code; rel keeps the page from being reachable by the target.
  const defaultLinkOpen =
    md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
  md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
    tokens[idx].attrSet("rel", "noopener noreferrer");
    return defaultLinkOpen(tokens, idx, options, env, self);
  };
  return md;
}

const state = { current: [] as string[] };
const renderer = createRenderer(state);

/** Render (possibly partial, streaming) Markdown to safe HTML. */
export function renderMarkdown(text: string): Rendered {
  state.current = [];
  // A fence still open while streaming renders as a code block all the same.
  const html = renderer.render(text);
  return { html, codeBlocks: state.current };
}

/** Search hits mark matches with « »: escape the rest and turn them into <mark>. */
export function highlightMarks(snippet: string): string {
  return escapeHtml(snippet).replace(/«/g, "<mark>").replace(/»/g, "</mark>");
}
