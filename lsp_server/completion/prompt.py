"""Token layout of a completion prompt, from the model's own FIM tokens.

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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lsp_server.completion.context import Chunk, CursorWindow

Tokenize = Callable[[str], list[int]]

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


def _fit_before(tokenize: Tokenize, text: str, budget: int, align: int) -> list[int]:
    """Tokens of ``text`` with whole blocks of ``align`` lines dropped from the top to fit."""
    tokens = tokenize(text)
    if len(tokens) <= budget:
        return tokens
    lines = text.split("\n")
    step = max(1, align)
    drop = step
    while drop < len(lines):
        tokens = tokenize("\n".join(lines[drop:]))
        if len(tokens) <= budget:
            return tokens
        drop += step
    return tokens[-budget:] if budget > 0 else []


def _fit_after(tokenize: Tokenize, text: str, budget: int) -> list[int]:
    """Tokens of ``text`` with lines dropped from the bottom to fit."""
    tokens = tokenize(text)
    if len(tokens) <= budget:
        return tokens
    lines = text.split("\n")
    while lines and len(tokens) > budget:
        lines = lines[: max(0, len(lines) - max(1, len(lines) // 8))]
        tokens = tokenize("\n".join(lines))
    return tokens


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
    """Lay out the prompt for ``window`` with ``chunks`` of extra context."""
    layout = PromptLayout(mode="prefix")
    if bos is not None and bos >= 0:
        layout.add("bos", [bos])
    prefix_budget = window_tokens * 3 // 4
    suffix_budget = window_tokens - prefix_budget
    sep = fim.sep if fim.repo_level else None
    # Extra context: newest chunks are kept when over budget, the order stays oldest-first.
    extra: list[tuple[Chunk, list[int]]] = []
    used = 0
    for chunk in reversed(chunks):
        if sep is not None:
            toks = [sep, *tokenize(f"{chunk.path}\n{chunk.text}")]
        else:
            marker = comment_prefix(window.language)
            toks = tokenize(f"{marker} {chunk.path}\n{chunk.text}\n")
        if used + len(toks) > extra_tokens:
            break
        extra.append((chunk, toks))
        used += len(toks)
    extra.reverse()

    if fim.pre is not None and fim.suf is not None and fim.mid is not None:
        layout.mode = "fim-spm" if suffix_first else "fim-psm"
        if sep is not None and fim.rep is not None:
            layout.mode += "+repo"
            layout.add("repo", [fim.rep, *tokenize(f"{project}\n")])
        for chunk, toks in extra:
            layout.add(f"extra:{chunk.path}", toks)
        before = _fit_before(tokenize, window.before, prefix_budget, align_lines)
        after = _fit_after(tokenize, window.line_suffix + window.after, suffix_budget)
        if sep is not None:
            layout.add("file", [sep, *tokenize(f"{window.path}\n")])
        parts = [("prefix", [fim.pre, *before]), ("suffix", [fim.suf, *after])]
        for name, toks in reversed(parts) if suffix_first else parts:
            layout.add(name, toks)
        layout.add("middle", [fim.mid])
        if window.line_prefix:
            layout.add("typed", tokenize(window.line_prefix))
        return layout

    marker = comment_prefix(window.language)
    for chunk, toks in extra:
        layout.add(f"extra:{chunk.path}", toks)
    if window.path:
        layout.add("file", tokenize(f"{marker} {window.path}\n"))
    layout.add("prefix", _fit_before(tokenize, window.before, prefix_budget, align_lines))
    if window.line_prefix:
        layout.add("typed", tokenize(window.line_prefix))
    return layout
