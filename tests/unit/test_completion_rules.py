"""Completion windows, extra context, prompt layout, stop and clean-up rules (pure)."""

from __future__ import annotations

import re

from lsp_server.completion.cleanup import ResultCache, StopRules, clean
from lsp_server.completion.context import Chunk, ChunkRing, cursor_window
from lsp_server.completion.options import CompletionOptions
from lsp_server.completion.planner import plan_completion
from lsp_server.completion.prompt import (
    FimTokens,
    build_prompt,
    build_text_prompt,
    estimate_tokens,
)
from lsp_server.core.secrets import is_secret
from lsp_server.engine.base import ModelInfo

SOURCE = (
    "import os\n\n\ndef area(w, h):\n    return w * h\n\n\ndef main():\n    x = \n    print(x)\n"
)


def fake_tokenize(text: str) -> list[int]:
    """One token per character (ord), enough to check layouts and budgets."""
    return [ord(c) for c in text]


def test_window_splits_around_the_cursor() -> None:
    w = cursor_window(SOURCE, 8, 8, path="m.py", language="python", align_lines=1)
    assert w.line_prefix == "    x = "
    assert w.line_suffix == ""
    assert w.before.endswith("def main():\n")
    assert w.after == "\n    print(x)\n"
    assert w.indent == 4


def test_window_start_is_aligned_to_line_blocks() -> None:
    text = "\n".join(f"line {i}" for i in range(300))
    starts = {
        cursor_window(text, row, 0, lines_before=64, align_lines=16).first_line
        for row in range(208, 224)
    }
    assert len(starts) == 1  # moving the cursor within a block keeps the prompt start
    w = cursor_window(text, 210, 0, lines_before=64, align_lines=16)
    assert w.first_line % 16 == 0 and w.first_line <= 210 - 64


def test_secret_files_are_recognised() -> None:
    for path in (
        "/p/.env",
        "/p/.env.local",
        "/p/id_rsa",
        "/p/server.pem",
        "/p/aws_credentials",
        "/p/config/secrets.yaml",
        "/p/.npmrc",
    ):
        assert is_secret(path), path
    for path in ("/p/main.py", "/p/env.py", "/p/README.md"):
        assert not is_secret(path), path


def test_ring_keeps_order_evicts_duplicates_and_secrets() -> None:
    ring = ChunkRing(capacity=3, chunk_lines=8)
    assert ring.add_file("/p/a.py", "a = 1\nb = 2\n")
    assert not ring.add_file("/p/.env", "TOKEN=abc\n")
    assert ring.add_file("/p/b.py", "c = 3\n")
    assert not ring.add_file("/p/a.py", "a = 1\nb = 2\n")  # same text: keeps its place
    assert [c.path for c in ring.chunks()] == ["/p/a.py", "/p/b.py"]
    ring.add_file("/p/x.py", "".join(f"v{i} = {i}\n" for i in range(7)))
    assert [c.path for c in ring.chunks()] == ["/p/a.py", "/p/b.py", "/p/x.py"]
    near = "".join(f"v{i} = {i}\n" for i in range(7)).replace("v6 = 6", "v6 = 6  # note")
    assert ring.add_file("/p/c.py", near.replace("v0 = 0\n", "v0 = 0\n"))
    assert "/p/x.py" in [c.path for c in ring.chunks()]  # 6/8 lines shared: kept
    ring2 = ChunkRing(capacity=4, chunk_lines=40)
    body = "".join(f"w{i} = {i}\n" for i in range(30))
    ring2.add_file("/p/one.py", body)
    ring2.add_file("/p/two.py", body + "extra = 1\n")  # 30/31 lines shared: near-duplicate
    assert [c.path for c in ring2.chunks()] == ["/p/two.py"]
    ring.add_file("/p/c.py", "c = 9\n")
    ring.add_file("/p/d.py", "d = 4\n")
    ring.add_file("/p/e.py", "e = 5\n")
    assert [c.path for c in ring.chunks()][-2:] == ["/p/d.py", "/p/e.py"]
    assert len(ring.chunks()) == 3
    assert "/p/d.py" not in [c.path for c in ring.chunks(exclude_path="/p/d.py")]


def test_fim_layout_puts_typing_after_the_middle_token() -> None:
    ring = ChunkRing()
    ring.add_file("other.py", "def helper():\n    pass\n")
    w = cursor_window(SOURCE, 8, 8, path="m.py", language="python", align_lines=1)
    fim = FimTokens(pre=1, suf=2, mid=3)
    layout = build_prompt(w, ring.chunks(), fim, fake_tokenize, bos=0)
    names = [name for name, _, _ in layout.parts]
    assert names == ["bos", "extra:other.py", "prefix", "suffix", "middle", "typed"]
    toks = layout.tokens
    pre, suf, mid = (layout.span(n) for n in ("prefix", "suffix", "middle"))
    assert toks[pre[0]] == 1 and toks[suf[0]] == 2 and toks[mid[0]] == 3
    typed = layout.span("typed")
    assert "".join(map(chr, toks[typed[0] : typed[1]])) == "    x = "
    assert layout.mode == "fim-psm"


def test_repo_level_and_suffix_first_layouts() -> None:
    ring = ChunkRing()
    ring.add_file("other.py", "X = 1\n")
    w = cursor_window(SOURCE, 8, 8, path="m.py", language="python")
    repo = FimTokens(pre=1, suf=2, mid=3, rep=4, sep=5)
    layout = build_prompt(w, ring.chunks(), repo, fake_tokenize, project="demo")
    names = [n for n, _, _ in layout.parts]
    assert names == ["repo", "extra:other.py", "file", "prefix", "suffix", "middle", "typed"]
    extra = layout.span("extra:other.py")
    assert layout.tokens[extra[0]] == 5  # <fim_sep> before each file
    assert layout.tokens[layout.span("repo")[0]] == 4
    assert layout.mode == "fim-psm+repo"
    spm = build_prompt(w, [], FimTokens(pre=1, suf=2, mid=3), fake_tokenize, suffix_first=True)
    assert [n for n, _, _ in spm.parts] == ["suffix", "prefix", "middle", "typed"]


def test_prefix_only_layout_for_models_without_fim() -> None:
    w = cursor_window(SOURCE, 8, 8, path="m.py", language="python")
    layout = build_prompt(w, [], FimTokens(), fake_tokenize)
    text = "".join(map(chr, layout.tokens))
    assert text.startswith("# m.py\n")
    assert text.endswith("def main():\n    x = ")
    assert "print(x)" not in text  # no suffix without FIM
    assert layout.mode == "prefix"


def test_budget_drops_whole_line_blocks_from_the_top() -> None:
    text = "".join(f"value_{i} = {i}\n" for i in range(200)) + "x = "
    w = cursor_window(text, 200, 4, lines_before=256, align_lines=1)
    layout = build_prompt(w, [], FimTokens(), fake_tokenize, window_tokens=400, align_lines=8)
    start, end = layout.span("prefix")
    assert end - start <= 300
    body = "".join(map(chr, layout.tokens[start:end]))
    assert body.startswith("value_") and body.endswith("value_199 = 199\n")


def test_stop_rules_dedent_and_repeat_of_following_code() -> None:
    w = cursor_window(SOURCE, 8, 8, path="m.py", language="python")
    rules = StopRules(w)
    assert rules.check("1") is None
    text = "1\n    y = 2\nprint('done')\n"
    cut = rules.check(text)
    assert cut is not None and text[:cut] == "1\n    y = 2"
    text = "1\n    print(x)\n"
    cut = rules.check(text)
    assert cut is not None and text[:cut] == "1"


def test_mid_line_completion_stops_at_end_of_line() -> None:
    w = cursor_window("foo(a, )\n", 0, 7)
    assert StopRules(w).mid_line is False  # only ")" right of the cursor: not mid-line text
    w2 = cursor_window("total = compute(values) + offset\n", 0, 8)
    text = "compute(values)\nmore"
    assert StopRules(w2).check(text) == len("compute(values)")


def test_clean_trims_suffix_overlap_and_empties() -> None:
    w = cursor_window("result = foo()\n", 0, 13)  # cursor inside "foo()"
    assert clean(")", w) is None  # all of it is already there
    assert clean("x, y)", w) == "x, y"
    assert clean("x,\n    y)", w) == "x,\n    y"  # multi-line is fine before a closer
    mid = cursor_window("total =  + offset\n", 0, 8)  # cursor before " + offset"
    assert clean("compute(values)\nnext_line()", mid) == "compute(values)"
    same = cursor_window("total = compute(values) + offset\n", 0, 8)
    assert clean("compute(values)", same) is None  # only repeats the text right of the cursor
    w2 = cursor_window(SOURCE, 8, 8)
    assert clean("   \n  ", w2) is None
    assert clean("42   \n\n", w2) == "42"
    assert clean("42\n    print(x)\n", w2) == "42"


def test_result_cache_serves_typing_along_a_suggestion() -> None:
    cache = ResultCache(capacity=2)
    cache.put("u", "x = ", "\n", "compute(1)")
    assert cache.get("u", "x = com", "\n") == "pute(1)"
    assert cache.get("u", "x = cox", "\n") is None
    assert cache.get("u", "x = compute(1)", "\n") is None  # fully typed
    assert cache.get("other", "x = com", "\n") is None
    assert cache.hits == 1
    cache.put("u", "a", "", "1")
    cache.put("u", "b", "", "2")
    assert cache.get("u", "x = c", "\n") is None  # evicted (capacity 2)


# --- the planner: one sizing path for token and text engines ---


class _Vocab:
    """Four characters a token (like the text estimate), ids that keep the text."""

    def __init__(self, fim: dict[str, int] | None = None) -> None:
        self._fim = fim or {}

    @property
    def fim(self) -> dict[str, int]:
        return self._fim

    def tokenize_code(self, text: str) -> list[int]:
        return [1000 + i for i in range(len(estimate_tokens(text)))]

    def code_bos(self) -> int | None:
        return 1

    def render(self, tokens: list[int]) -> str:
        return ""


class _Engine:
    def __init__(self, vocab: _Vocab | None) -> None:
        self.vocabulary = vocab
        self.accepts_tokens = vocab is not None
        self.info = ModelInfo("m", "", "", 0, "", 0, 4096, 4096, "", False)


LONG = "".join(f"value_{i:03d} = {i}\n" for i in range(300)) + "x = " + "\nprint(x)\n" * 80


def test_token_and_text_plans_cut_the_same_lines() -> None:
    w = cursor_window(LONG, 300, 4, path="m.py", language="python", align_lines=1)
    ring = ChunkRing(chunk_lines=8)
    for i in range(6):
        ring.add_file(f"lib{i}.py", "".join(f"def f{i}_{j}(): pass\n" for j in range(8)))
    options = CompletionOptions(window_tokens=400, extra_tokens=100, align_lines=8)
    tokens = plan_completion(_Engine(_Vocab()), w, ring.chunks(), options)
    text = plan_completion(_Engine(None), w, ring.chunks(), options)
    assert tokens.layout is not None and text.layout is None
    assert tokens.request.tokens == tokens.layout.tokens and text.request.tokens is None
    # Same budgets, same cuts: the text prefix has as many (estimated) tokens as the token one.
    start, end = tokens.layout.span("prefix")
    assert len(estimate_tokens(text.request.before)) == end - start <= 300
    assert text.request.before.startswith("value_") and text.request.before.endswith("299\n")
    first = text.request.before.split("\n")[0]
    assert (
        re.fullmatch(r"value_(\d{3}) = (\d+)", first) and (int(first[6:9]) - w.first_line) % 8 == 0
    )
    assert len(estimate_tokens(text.request.suffix)) <= 100
    kept = [n for n, _, _ in tokens.layout.parts if n.startswith("extra:")]
    assert [f"extra:{p}" for p, _ in text.request.extra] == kept  # newest chunks, same ones
    assert 0 < len(kept) < 6
    assert text.request.prompt.startswith(f"# {text.request.extra[0][0]}\n")
    assert text.request.prompt.endswith("# m.py\n" + text.request.before + "x = ")
    for plan in (tokens, text):
        assert plan.request.max_tokens == 48 and plan.request.reuse_chunks == 24
        assert plan.request.sampling.temperature == 0


def test_planner_uses_the_vocabularys_fim_tokens_and_order() -> None:
    w = cursor_window(SOURCE, 8, 8, path="m.py", language="python")
    fim = {"pre": 1, "suf": 2, "mid": 3}
    psm = plan_completion(_Engine(_Vocab(fim)), w, [], CompletionOptions())
    spm = plan_completion(_Engine(_Vocab(fim)), w, [], CompletionOptions(fim_order="spm"))
    assert psm.mode == "fim-psm" and spm.mode == "fim-spm"
    assert psm.request.tokens is not None and psm.request.tokens[0] == 1  # BOS
    off = plan_completion(_Engine(_Vocab(fim)), w, [], CompletionOptions(extra_context=False))
    assert off.layout is not None and not any(
        n.startswith("extra:") for n, _, _ in off.layout.parts
    )


def test_text_prompt_puts_other_files_and_the_path_in_comments() -> None:
    w = cursor_window("def add(a, b):\n    return ", 1, 11, path="src/calc.py", language="python")
    chunk = Chunk("src/util.py", "def sub(a, b):\n    return a - b\n\n")
    text = build_text_prompt(w, [chunk])
    assert text.prompt == (
        "# src/util.py\ndef sub(a, b):\n    return a - b\n\n"
        "# src/calc.py\ndef add(a, b):\n    return "
    )
    assert (text.before, text.typed) == ("def add(a, b):\n", "    return ")
    assert text.extra == [("src/util.py", chunk.text)]
    bare = cursor_window("let x = 1", 0, 9, language="javascript")
    assert build_text_prompt(bare, []).prompt == "let x = 1"
    js = cursor_window("let x = 1", 0, 9, path="a.js", language="javascript")
    assert build_text_prompt(js, []).prompt == "// a.js\nlet x = 1"
