"""Completion prompts sized in tokens: the token layout from the model's own FIM tokens,
and the same cuts as text for engines that tokenize on their side.

Stable parts come first so the KV cache keeps them; what the user is typing
comes last, so a keystroke costs a few tokens:

- FIM, prefix-suffix-middle (default):
  ``[extra] <fim_pre> before <fim_suf> line_suffix+after <fim_mid> line_prefix``
- FIM, suffix first (Codestral-style):
  ``[extra] <fim_suf> ... <fim_pre> before <fim_mid> line_prefix``
- repo-level extra context when the vocabulary has ``fim_rep``/``fim_sep``:
  ``<fim_rep>project\\n <fim_sep>path\\ncontent ... <fim_sep>current/path\\n``
- no FIM tokens (e.g. SmolLM2, Gemma 3 base): prefix only, with file-path headers as
  comments: ``// path\\ncontent\\n\\n // current/path\\n before line_prefix``. Quality is
  lower: the model cannot see the text after the cursor.

Budgets are applied here only: :func:`fit_head` (3/4 of ``window_tokens`` before the
cursor, dropping aligned line blocks from the top), :func:`fit_tail` (1/4 after it) and
:func:`fit_chunks` (``extra_tokens`` of other files, newest kept), with the model's own
tokenizer for token prompts and :func:`estimate_tokens` for text ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lsp_server.completion.context import Chunk, CursorWindow

Tokenize = Callable[[str], list[int]]
CHARS_PER_TOKEN = 4
"""The estimate for text sent to engines that tokenize on their side."""

LINE_COMMENTS = {
    "python": "#",
    "ruby": "#",
    "shell": "#",
    "shellscript": "#",
    "bash": "#",
    "sh": "#",
    "perl": "#",
    "r": "#",
    "yaml": "#",
    "toml": "#",
    "dockerfile": "#",
    "makefile": "#",
    "lua": "--",
    "sql": "--",
    "haskell": "--",
    "elm": "--",
    "lisp": ";",
    "clojure": ";",
    "scheme": ";",
    "erlang": "%",
    "latex": "%",
    "tex": "%",
    "matlab": "%",
    "vim": '"',
}


def comment_prefix(language: str) -> str:
    """Return the line-comment marker of ``language`` (``//`` by default)."""
    return LINE_COMMENTS.get(language.lower(), "//")


@dataclass(frozen=True)
class FimTokens:
    """FIM special token ids reported by the vocabulary (None when absent)."""

    pre: int | None = None
    suf: int | None = None
    mid: int | None = None
    rep: int | None = None
    sep: int | None = None

    @classmethod
    def from_ids(cls, ids: dict[str, int]) -> FimTokens:
        """Build from ``llama_vocab_fim_*`` results (missing ids are absent)."""
        return cls(*(ids.get(k) for k in ("pre", "suf", "mid", "rep", "sep")))

    @property
    def has_fim(self) -> bool:
        """Whether prefix, suffix and middle tokens all exist."""
        return None not in (self.pre, self.suf, self.mid)

    @property
    def repo_level(self) -> bool:
        """Whether the repo-level layout (``fim_rep``/``fim_sep``) is available."""
        return self.has_fim and self.rep is not None and self.sep is not None


@dataclass
class PromptLayout:
    """The tokens of a completion prompt and where each part starts (for tests and logs)."""

    tokens: list[int] = field(default_factory=list)
    parts: list[tuple[str, int, int]] = field(default_factory=list)
    mode: str = "prefix"

    def add(self, name: str, tokens: list[int]) -> None:
        """Append ``tokens`` as part ``name``."""
        start = len(self.tokens)
        self.tokens.extend(tokens)
        self.parts.append((name, start, len(self.tokens)))

    def span(self, name: str) -> tuple[int, int] | None:
        """Return the ``[start, end)`` of the first part called ``name``."""
        for part, start, end in self.parts:
            if part == name:
                return start, end
        return None


@dataclass(frozen=True)
class Fitted:
    """A piece of text cut to a token budget, and its tokens."""

    text: str
    tokens: list[int]


def estimate_tokens(text: str) -> list[int]:
    """Placeholder tokens, one per ``CHARS_PER_TOKEN`` characters: sizes text for engines
    that tokenize on their side (the ids mean nothing)."""
    return [0] * -(-len(text) // CHARS_PER_TOKEN)


def fit_head(tokenize: Tokenize, text: str, budget: int, align: int) -> Fitted:
    """``text`` with whole blocks of ``align`` lines dropped from the top to fit ``budget``.

    A last block still too long keeps its tail: exactly ``budget`` tokens, and the
    matching share of the text.
    """
    tokens = tokenize(text)
    if len(tokens) <= budget:
        return Fitted(text, tokens)
    lines = text.split("\n")
    step = max(1, align)
    drop = step
    kept = text
    while drop < len(lines):
        kept = "\n".join(lines[drop:])
        tokens = tokenize(kept)
        if len(tokens) <= budget:
            return Fitted(kept, tokens)
        drop += step
    if budget <= 0:
        return Fitted("", [])
    share = len(kept) * budget // len(tokens)
    return Fitted(kept[len(kept) - share :], tokens[-budget:])


def fit_tail(tokenize: Tokenize, text: str, budget: int) -> Fitted:
    """``text`` with lines dropped from the bottom to fit ``budget``."""
    tokens = tokenize(text)
    if len(tokens) <= budget:
        return Fitted(text, tokens)
    lines = text.split("\n")
    while lines and len(tokens) > budget:
        lines = lines[: max(0, len(lines) - max(1, len(lines) // 8))]
        tokens = tokenize("\n".join(lines))
    return Fitted("\n".join(lines), tokens)


def fit_chunks(
    chunks: list[Chunk], budget: int, measure: Callable[[Chunk], list[int]]
) -> list[tuple[Chunk, list[int]]]:
    """The newest ``chunks`` whose tokens (``measure``) fit ``budget``, oldest first."""
    kept: list[tuple[Chunk, list[int]]] = []
    used = 0
    for chunk in reversed(chunks):
        toks = measure(chunk)
        if used + len(toks) > budget:
            break
        kept.append((chunk, toks))
        used += len(toks)
    kept.reverse()
    return kept


def split_budget(window_tokens: int) -> tuple[int, int]:
    """The token budgets of the text before the cursor (3/4) and after it (1/4)."""
    before = window_tokens * 3 // 4
    return before, window_tokens - before


def build_prompt(
    window: CursorWindow,
    chunks: list[Chunk],
    fim: FimTokens,
    tokenize: Tokenize,
    *,
    bos: int | None = None,
    window_tokens: int = 1536,
    extra_tokens: int = 1024,
    align_lines: int = 16,
    suffix_first: bool = False,
    project: str = "project",
) -> PromptLayout:
    """Lay out the token prompt for ``window`` with ``chunks`` of extra context."""
    layout = PromptLayout(mode="prefix")
    if bos is not None and bos >= 0:
        layout.add("bos", [bos])
    prefix_budget, suffix_budget = split_budget(window_tokens)
    sep = fim.sep if fim.repo_level else None
    marker = comment_prefix(window.language)

    def measure(chunk: Chunk) -> list[int]:
        if sep is not None:
            return [sep, *tokenize(f"{chunk.path}\n{chunk.text}")]
        return tokenize(f"{marker} {chunk.path}\n{chunk.text}\n")

    # Extra context: newest chunks are kept when over budget, the order stays oldest-first.
    extra = fit_chunks(chunks, extra_tokens, measure)

    if fim.pre is not None and fim.suf is not None and fim.mid is not None:
        layout.mode = "fim-spm" if suffix_first else "fim-psm"
        if sep is not None and fim.rep is not None:
            layout.mode += "+repo"
            layout.add("repo", [fim.rep, *tokenize(f"{project}\n")])
        for chunk, toks in extra:
            layout.add(f"extra:{chunk.path}", toks)
        before = fit_head(tokenize, window.before, prefix_budget, align_lines).tokens
        after = fit_tail(tokenize, window.line_suffix + window.after, suffix_budget).tokens
        if sep is not None:
            layout.add("file", [sep, *tokenize(f"{window.path}\n")])
        parts = [("prefix", [fim.pre, *before]), ("suffix", [fim.suf, *after])]
        for name, toks in reversed(parts) if suffix_first else parts:
            layout.add(name, toks)
        layout.add("middle", [fim.mid])
        if window.line_prefix:
            layout.add("typed", tokenize(window.line_prefix))
        return layout

    for chunk, toks in extra:
        layout.add(f"extra:{chunk.path}", toks)
    if window.path:
        layout.add("file", tokenize(f"{marker} {window.path}\n"))
    layout.add("prefix", fit_head(tokenize, window.before, prefix_budget, align_lines).tokens)
    if window.line_prefix:
        layout.add("typed", tokenize(window.line_prefix))
    return layout


@dataclass(frozen=True)
class TextPrompt:
    """A completion for an engine that tokenizes on its side: the parts, fitted in tokens."""

    before: str
    typed: str
    suffix: str
    extra: list[tuple[str, str]]
    """``(path, text)`` chunks of other files, oldest first."""
    prompt: str
    """All of it as one prefix-only prompt: other files and the path as comments, then the
    code before the cursor (for endpoints that take no suffix)."""


def build_text_prompt(
    window: CursorWindow,
    chunks: list[Chunk],
    tokenize: Tokenize = estimate_tokens,
    *,
    window_tokens: int = 1536,
    extra_tokens: int = 1024,
    align_lines: int = 16,
) -> TextPrompt:
    """Fit ``window`` and ``chunks`` as text, with the budgets and cuts of :func:`build_prompt`."""
    prefix_budget, suffix_budget = split_budget(window_tokens)
    marker = comment_prefix(window.language)

    def header(path: str, text: str) -> str:
        return f"{marker} {path}\n{text.rstrip()}\n\n"

    extra = fit_chunks(chunks, extra_tokens, lambda c: tokenize(header(c.path, c.text)))
    before = fit_head(tokenize, window.before, prefix_budget, align_lines).text
    suffix = fit_tail(tokenize, window.line_suffix + window.after, suffix_budget).text
    parts = [header(chunk.path, chunk.text) for chunk, _ in extra]
    if window.path:
        parts.append(f"{marker} {window.path}\n")
    parts.append(before + window.line_prefix)
    return TextPrompt(
        before=before,
        typed=window.line_prefix,
        suffix=suffix,
        extra=[(chunk.path, chunk.text) for chunk, _ in extra],
        prompt="".join(parts),
    )
