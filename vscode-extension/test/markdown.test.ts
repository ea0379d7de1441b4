import assert from "node:assert/strict";
import { test } from "node:test";
import { highlightMarks, renderMarkdown } from "../webview/markdown";

/** Any element with an event-handler attribute, or a tag that runs or loads something. */
const DANGEROUS =
  /<(script|iframe|object|embed|img|svg|math|style|link|meta|base|form)\b|<[a-z][^>]*\son[a-z]+\s*=|(href|src|action)\s*=\s*["']?\s*(javascript|vbscript|data):/i;

const ATTACKS = [
  "<script>alert(1)</script>",
  "Hello <img src=x onerror=alert(1)> world",
  '<svg onload="alert(1)"><circle/></svg>',
  '<a href="javascript:alert(1)">click</a>',
  "[click](javascript:alert(1))",
  "[click](  JaVaScRiPt:alert(1))",
  "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
  "![x](https://example.com/pixel.png)",
  '<iframe src="https://example.com"></iframe>',
  "<style>body{display:none}</style>",
  "```html\n</code></pre><script>alert(1)</script>\n```",
  "`<img src=x onerror=alert(1)>`",
  '<div onmouseover="alert(1)">hover</div>',
  "<<script>script>alert(1)<</script>/script>",
  '<a href="#" onclick="alert(1)">x</a>',
];

for (const attack of ATTACKS) {
  test(`model output never becomes live HTML: ${JSON.stringify(attack).slice(0, 60)}`, () => {
    const { html } = renderMarkdown(attack);
    assert.doesNotMatch(html, DANGEROUS, html);
  });
}

test("raw HTML is shown as text", () => {
  const { html } = renderMarkdown("<script>alert(1)</script>");
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
});

test("safe links are kept, with rel=noopener", () => {
  const { html } = renderMarkdown("[docs](https://docs.python.org/3/)");
  assert.match(html, /<a href="https:\/\/docs.python.org\/3\/" rel="noopener noreferrer">docs<\/a>/);
});

test("code blocks are highlighted, keep their raw text and get Copy / Insert / Replace", () => {
  const code = 'def f(x):\n    return "<b>" + x\n';
  const { html, codeBlocks } = renderMarkdown("Here:\n\n```python\n" + code + "```\n\nand\n\n```\nplain\n```\n");
  assert.deepEqual(codeBlocks, [code, "plain\n"]);
  assert.match(html, /<span class="hljs-keyword">def<\/span>/);
  assert.match(html, /&lt;b&gt;/);
  for (const action of ["copy", "insert", "replace"]) {
    assert.equal(html.split(`data-action="${action}"`).length - 1, 2, action);
  }
});

test("an unterminated fence (still streaming) renders as a code block", () => {
  const { html, codeBlocks } = renderMarkdown("```js\nconst a = 1;\n");
  assert.equal(codeBlocks.length, 1);
  assert.match(html, /class="code-block"/);
});

test("search marks become <mark> and the rest is escaped", () => {
  assert.equal(highlightMarks("a «fib» <b>"), "a <mark>fib</mark> &lt;b&gt;");
});
