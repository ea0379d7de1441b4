"""Shared pieces of the benchmarks: table and JSON output, the machine, a raw llama.cpp baseline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Print ``rows`` under ``header`` as an aligned text table."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(title)
    for n, row in enumerate(cells):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` (results, ratios, targets) to ``path`` if given."""
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {target}")


def machine() -> dict[str, Any]:
    """Describe this machine for a results file: CPU, cores, Python, llama-cpp-python."""
    import importlib.metadata
    import os
    import platform

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        llama_version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        llama_version = None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "llama_cpp_python": llama_version,
    }


def resolve_model(spec: str) -> Path:
    """``0.5b`` / ``1.5b`` (the pinned Qwen2.5-Coder packages) or a path to a GGUF file."""
    if spec in ("0.5b", "1.5b"):
        from lsp_server.core.errors import OpenLlmError
        from lsp_server.models.bundled import bundled_qwen_coder_path

        try:
            return bundled_qwen_coder_path(spec)  # type: ignore[arg-type]
        except OpenLlmError as exc:
            raise SystemExit(exc.message) from None
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SystemExit(f"no model file at {path}")
    return path


class RawModel:
    """A GGUF model driven through llama-cpp-python's low-level API only (the baseline).

    No ``Llama`` object, no engine of ours: load, tokenize, ``llama_decode`` in batches and
    the C greedy sampler, so a benchmark compares the language server with the bare library.
    """

    def __init__(
        self, path: Path, *, n_ctx: int, threads: int, n_batch: int = 512, flash_attn: bool = True
    ) -> None:
        import llama_cpp as ll
        import llama_cpp._logger as ll_logger

        ll_logger.set_verbose(False)
        ll.llama_backend_init()
        self.ll = ll
        self.path = path
        self.threads = threads
        self.n_batch = n_batch
        from llama_cpp._utils import suppress_stdout_stderr

        mparams = ll.llama_model_default_params()
        with suppress_stdout_stderr(disable=False):  # llama.cpp's load notes go to fd 2
            self.model = ll.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise SystemExit(f"llama.cpp cannot load {path}")
        cparams = ll.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.flash_attn_type = (
            ll.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        self.ctx = ll.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise SystemExit(f"llama.cpp cannot create a context for {path}")
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.batch = ll.llama_batch_init(n_batch, 0, 1)
        self.sampler = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        ll.llama_sampler_chain_add(self.sampler, ll.llama_sampler_init_greedy())

    def fim_tokens(self) -> tuple[int, int, int] | None:
        """Return the vocabulary's (prefix, suffix, middle) FIM token ids, or None."""
        ll = self.ll
        ids = (
            ll.llama_vocab_fim_pre(self.vocab),
            ll.llama_vocab_fim_suf(self.vocab),
            ll.llama_vocab_fim_mid(self.vocab),
        )
        return None if min(ids) < 0 else (int(ids[0]), int(ids[1]), int(ids[2]))

    def add_bos(self) -> list[int]:
        """Return ``[bos]`` when the vocabulary asks for one, else ``[]``."""
        ll = self.ll
        return [ll.llama_vocab_bos(self.vocab)] if ll.llama_vocab_get_add_bos(self.vocab) else []

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Tokenize ``text`` (no BOS; special-token spellings parsed only when ``special``)."""
        ll = self.ll
        raw = text.encode("utf-8")
        size = len(raw) + 16
        out = (ll.llama_token * size)()
        n = ll.llama_tokenize(self.vocab, raw, len(raw), out, size, False, special)
        if n < 0:
            size = -n
            out = (ll.llama_token * size)()
            n = ll.llama_tokenize(self.vocab, raw, len(raw), out, size, False, special)
        return list(out[:n])

    def piece(self, token: int) -> bytes:
        """Return the bytes of ``token`` (special tokens rendered)."""
        import ctypes

        buf = ctypes.create_string_buffer(64)
        n = self.ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        """True for end-of-generation tokens (EOS, EOT, FIM pad ...)."""
        return bool(self.ll.llama_vocab_is_eog(self.vocab, token))

    def clear(self) -> None:
        """Empty the KV cache (the next prompt is evaluated cold)."""
        self.ll.llama_memory_clear(self.ll.llama_get_memory(self.ctx), True)

    def _decode(self, tokens: list[int], pos: int, logits_last: bool) -> None:
        batch = self.batch
        for i, tok in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = pos + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = logits_last and i == len(tokens) - 1
        batch.n_tokens = len(tokens)
        if self.ll.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def evaluate(self, tokens: list[int]) -> None:
        """Evaluate ``tokens`` from position 0 (the caller cleared the cache)."""
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            self._decode(chunk, start, start + len(chunk) == len(tokens))

    def generate(
        self,
        prompt: list[int],
        max_tokens: int,
        stop: Callable[[bytes], bool] | None = None,
        on_token: Callable[[int], None] | None = None,
    ) -> list[int]:
        """Greedy: clear, evaluate ``prompt``, sample until EOG, ``max_tokens`` or ``stop``.

        :param stop: called with the bytes generated so far after each token.
        :param on_token: called with each sampled token (timing).
        """
        ll = self.ll
        self.clear()
        self.evaluate(prompt)
        pos = len(prompt)
        out: list[int] = []
        text = b""
        for _ in range(max_tokens):
            tok = ll.llama_sampler_sample(self.sampler, self.ctx, -1)
            if on_token is not None:
                on_token(tok)
            if self.is_eog(tok):
                break
            out.append(tok)
            text += self.piece(tok)
            if stop is not None and stop(text):
                break
            self._decode([tok], pos, True)
            pos += 1
        return out

    def close(self) -> None:
        """Free the sampler, batch, context and model."""
        ll = self.ll
        ll.llama_sampler_free(self.sampler)
        ll.llama_batch_free(self.batch)
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)
