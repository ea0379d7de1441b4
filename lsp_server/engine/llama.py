"""llama.cpp through llama-cpp-python's low-level API: model, context and generation loop.

Nothing here is thread-safe: one engine thread owns each :class:`LlamaContext`
(see :mod:`lsp_server.engine.worker`). The loop evaluates the prompt in slices,
samples with llama.cpp's sampler chain, detokenizes incrementally, and checks a
:class:`~lsp_server.engine.base.CancelToken` between slices and between tokens.
The tokens held in the KV cache are tracked so a request sharing a prefix with
the previous one evaluates only what is new. Process-wide set-up (backend, native
logs) and the sampler chain are in :mod:`lsp_server.engine.native`.
"""

from __future__ import annotations

import codecs
import ctypes
import difflib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import llama_cpp as ll

from lsp_server.core.errors import (
    Cancelled,
    InvalidParams,
    ModelCorrupt,
    ModelNotReady,
    UnsupportedArchitecture,
)
from lsp_server.engine.base import (
    CancelToken,
    DeltaCallback,
    GenerationResult,
    GenerationStats,
    SamplingParams,
)
from lsp_server.engine.native import build_sampler, capture_native_logs, init_backend
from lsp_server.engine.stops import StopMatcher

log = logging.getLogger(__name__)

KV_TYPES = {"f16": ll.GGML_TYPE_F16, "q8_0": ll.GGML_TYPE_Q8_0, "q4_0": ll.GGML_TYPE_Q4_0, "f32": 0}
FLASH_ATTN = {"auto": -1, False: 0, True: 1}


class LlamaModel:
    """Weights of one GGUF file, loaded (memory-mapped) once and shared by contexts."""

    def __init__(
        self,
        path: Path,
        *,
        gpu_layers: int = 0,
        use_mmap: bool = True,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        init_backend()
        self.path = path
        params = ll.llama_model_default_params()
        params.n_gpu_layers = gpu_layers
        params.use_mmap = use_mmap

        def on_progress(value: float, _user: ctypes.c_void_p) -> bool:
            if progress is not None:
                try:
                    progress(float(value))
                except Exception:  # never let a callback error unwind through C
                    log.exception("progress callback failed")
            return True

        self._progress_cb = ll.llama_progress_callback(on_progress)
        params.progress_callback = self._progress_cb
        with capture_native_logs() as lines:
            model = ll.llama_model_load_from_file(str(path).encode("utf-8"), params)
        if not model:
            raise _load_error(path, lines)
        self.ptr = model
        vocab = ll.llama_model_get_vocab(model)
        if not vocab:
            raise ModelCorrupt(f"{path}: the model has no vocabulary")
        self.vocab = vocab
        self.n_vocab = int(ll.llama_vocab_n_tokens(vocab))
        self._pieces: dict[int, bytes] = {}
        self._buf = ctypes.create_string_buffer(256)

    # --- metadata ---
    def meta(self, key: str) -> str | None:
        """Return a GGUF metadata value as text, or None when absent."""
        buf = ctypes.create_string_buffer(4096)
        n = ll.llama_model_meta_val_str(self.ptr, key.encode(), buf, ctypes.sizeof(buf))
        if n < 0:
            return None
        if n >= ctypes.sizeof(buf):
            buf = ctypes.create_string_buffer(n + 1)
            ll.llama_model_meta_val_str(self.ptr, key.encode(), buf, ctypes.sizeof(buf))
        return buf.value.decode("utf-8", errors="replace")

    def description(self) -> str:
        """Return llama.cpp's one-line description (architecture, size, quant)."""
        buf = ctypes.create_string_buffer(256)
        ll.llama_model_desc(self.ptr, buf, ctypes.sizeof(buf))
        return buf.value.decode("utf-8", errors="replace")

    @property
    def n_params(self) -> int:
        """Number of parameters."""
        return int(ll.llama_model_n_params(self.ptr))

    @property
    def size_bytes(self) -> int:
        """Bytes of all tensors."""
        return int(ll.llama_model_size(self.ptr))

    @property
    def n_ctx_train(self) -> int:
        """Context length the model was trained with."""
        return int(ll.llama_model_n_ctx_train(self.ptr))

    def chat_template(self) -> str | None:
        """Return the model's default Jinja chat template, if it has one."""
        raw = ll.llama_model_chat_template(self.ptr, None)
        return raw.decode("utf-8", errors="replace") if raw else None

    def fim_tokens(self) -> dict[str, int]:
        """Return the FIM special tokens the vocabulary declares (pre/suf/mid/pad/rep/sep)."""
        found: dict[str, int] = {}
        for name in ("pre", "suf", "mid", "pad", "rep", "sep"):
            fn = getattr(ll, f"llama_vocab_fim_{name}", None)
            if fn is None:
                continue
            tok = int(fn(self.vocab))
            if tok >= 0:
                found[name] = tok
        return found

    def token_bos(self) -> int:
        """Return the beginning-of-sequence token id (-1 when none)."""
        return int(ll.llama_vocab_bos(self.vocab))

    # --- text ---
    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        """Tokenize ``text``; ``special`` parses control tokens such as ``<|im_start|>``."""
        data = text.encode("utf-8")
        cap = len(data) + 16
        arr = (ll.llama_token * cap)()
        n = ll.llama_tokenize(self.vocab, data, len(data), arr, cap, add_bos, special)
        if n < 0:
            cap = -n
            arr = (ll.llama_token * cap)()
            n = ll.llama_tokenize(self.vocab, data, len(data), arr, cap, add_bos, special)
        return list(arr[:n])

    def piece(self, token: int) -> bytes:
        """Return the bytes a token renders to (control tokens render as nothing)."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        n = ll.llama_token_to_piece(self.vocab, token, self._buf, len(self._buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            out = buf.raw[:n]
        else:
            out = self._buf.raw[:n]
        self._pieces[token] = out
        return out

    def piece_special(self, token: int) -> bytes:
        """Return a token's bytes with control tokens rendered (for showing prompts)."""
        buf = ctypes.create_string_buffer(256)
        n = ll.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[: max(0, n)]

    def detokenize(self, tokens: list[int]) -> str:
        """Return the text of ``tokens`` (control tokens omitted)."""
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    def is_eog(self, token: int) -> bool:
        """Whether ``token`` ends generation (EOS, EOT, ...)."""
        return bool(ll.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        """Free the weights."""
        if getattr(self, "ptr", None):
            ll.llama_model_free(self.ptr)
            self.ptr = None


def _load_error(path: Path, lines: list[str]) -> Exception:
    text = "\n".join(lines)
    tail = " | ".join(line for line in lines if line.strip())[-400:]
    if "unknown model architecture" in text:
        arch = text.split("unknown model architecture:", 1)[1].split("\n", 1)[0].strip(" '")
        return UnsupportedArchitecture(
            f"{path.name}: llama.cpp in this build cannot run the architecture '{arch}'. "
            "Choose a model of a supported architecture (llama, qwen2, gemma3, ...), "
            "or upgrade llama-cpp-python.",
            data={"architecture": arch},
        )
    return ModelCorrupt(
        f"{path.name}: llama.cpp could not load this file ({tail or 'no details'}). "
        "The file may be damaged: delete it and download it again.",
    )


class LlamaContext:
    """A llama.cpp context (KV cache) on one model, with the tokens it currently holds."""

    def __init__(
        self,
        model: LlamaModel,
        *,
        n_ctx: int,
        n_batch: int,
        threads: int,
        flash_attention: bool | str = "auto",
        kv_cache_type: str = "f16",
    ) -> None:
        self.model = model
        params = ll.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = 2  # sequence 1 is scratch space for evaluating gaps (chunk reuse)
        params.kv_unified = True
        params.n_threads = threads
        params.n_threads_batch = threads
        params.flash_attn_type = FLASH_ATTN[flash_attention]
        params.type_k = KV_TYPES[kv_cache_type]
        params.type_v = KV_TYPES[kv_cache_type]
        params.swa_full = True  # sliding-window models keep a full cache so it can be reused
        params.no_perf = True
        with capture_native_logs() as lines:
            ctx = ll.llama_init_from_model(model.ptr, params)
        if not ctx:
            raise ModelCorrupt(
                f"{model.path.name}: could not create a context of {n_ctx} tokens "
                f"({' | '.join(lines)[-300:]})"
            )
        self.ptr = ctx
        self.n_ctx = int(ll.llama_n_ctx(ctx))
        self.n_batch = n_batch
        self.threads = threads
        self.mem = ll.llama_get_memory(ctx)
        self.batch = ll.llama_batch_init(n_batch, 0, 1)
        self.cached: list[int] = []
        self.total_evaluated = 0
        """Tokens decoded by this context since creation (prompt and generated)."""

    # --- KV cache bookkeeping ---
    def clear(self) -> None:
        """Drop everything in the KV cache."""
        ll.llama_memory_clear(self.mem, True)
        self.cached = []

    def _truncate(self, n: int) -> int:
        """Keep only the first ``n`` cached tokens; return how many are kept."""
        if n >= len(self.cached):
            return len(self.cached)
        if n == 0 or not ll.llama_memory_seq_rm(self.mem, 0, n, -1):
            self.clear()
            return 0
        del self.cached[n:]
        return n

    def _decode(
        self,
        tokens: list[int],
        *,
        want_logits: bool,
        positions: list[int] | None = None,
        seq: int = 0,
    ) -> None:
        """Decode ``tokens`` (at most ``n_batch``) after the cache, or at ``positions``."""
        batch = self.batch
        start = len(self.cached)
        count = len(tokens)
        for i, tok in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = start + i if positions is None else positions[i]
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = False
        if want_logits:
            batch.logits[count - 1] = True
        batch.n_tokens = count
        rc = ll.llama_decode(self.ptr, batch)
        if rc != 0:
            if positions is not None:
                self.clear()
            else:
                # Re-sync with what llama.cpp kept before reporting.
                kept = int(ll.llama_memory_seq_pos_max(self.mem, 0)) + 1
                self.cached.extend(tokens)
                self._truncate(max(0, min(kept, len(self.cached))))
            raise InvalidParams(
                f"llama_decode failed (code {rc}): the context of {self.n_ctx} tokens is full "
                "or out of memory"
            )
        if positions is None:
            self.cached.extend(tokens)
        self.total_evaluated += count

    def evaluate_prompt(
        self,
        prompt: list[int],
        cancel: CancelToken,
        stats: GenerationStats,
        *,
        reuse_chunks: int = 0,
        between_slices: Callable[[], None] | None = None,
    ) -> None:
        """Bring the KV cache to ``prompt``, evaluating as little as possible.

        The longest common prefix is always reused. With ``reuse_chunks`` > 0, runs of at
        least that many cached tokens that reappear later in ``prompt`` (an edit above the
        cursor, a changed context chunk) are shifted to their new positions instead of
        being recomputed, as llama-server's ``--cache-reuse`` does, insertions included.
        The last prompt token is always evaluated so its logits are fresh. Raises
        :class:`Cancelled` between slices; the cache stays consistent.
        """
        if not prompt:
            raise InvalidParams("the prompt is empty")
        if not self.ptr:
            raise ModelNotReady("the model was unloaded (reloading or shutting down); try again")
        if len(prompt) >= self.n_ctx:
            raise InvalidParams(
                f"the prompt is {len(prompt)} tokens but the context holds {self.n_ctx}: "
                "shorten it or raise openLlm.engine.contextLength"
            )
        common = 0
        limit = min(len(self.cached), len(prompt) - 1)
        cached = self.cached
        while common < limit and cached[common] == prompt[common]:
            common += 1
        stats.prompt_tokens = len(prompt)
        if (
            reuse_chunks > 0
            and common < len(self.cached)
            and len(prompt) - 1 - common >= reuse_chunks
            and ll.llama_memory_can_shift(self.mem)
            and self._reuse_chunks(prompt, common, reuse_chunks, cancel, stats, between_slices)
        ):
            return
        kept = self._truncate(common)
        stats.reused_tokens = kept
        todo = prompt[kept:]
        step = self.n_batch
        for i in range(0, len(todo), step):
            if between_slices is not None and i > 0:
                between_slices()
            cancel.raise_if_cancelled()
            chunk = todo[i : i + step]
            self._decode(chunk, want_logits=i + step >= len(todo))
            stats.evaluated_tokens += len(chunk)
            stats.prompt_slices += 1

    def _reuse_chunks(
        self,
        prompt: list[int],
        common: int,
        min_chunk: int,
        cancel: CancelToken,
        stats: GenerationStats,
        between_slices: Callable[[], None] | None,
    ) -> bool:
        """Shift matching cached runs into place and evaluate only the gaps.

        Returns False (nothing changed) when no run of ``min_chunk`` tokens matches.
        """
        old = self.cached[common:]
        new = prompt[common : len(prompt) - 1]
        matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
        blocks = [b for b in matcher.get_matching_blocks() if b.size >= min_chunk]
        if not blocks:
            return False
        mem = self.mem
        # Drop every cached cell outside the kept runs.
        prev_end = 0
        for block in blocks:
            if block.a > prev_end:
                ll.llama_memory_seq_rm(mem, 0, common + prev_end, common + block.a)
            prev_end = block.a + block.size
        ll.llama_memory_seq_rm(mem, 0, common + prev_end, -1)
        # Move runs to their new positions: backward moves first (ascending), then forward
        # moves (descending), so a moved run never lands in a range still to be moved.
        backward = [b for b in blocks if b.b < b.a]
        forward = [b for b in blocks if b.b > b.a]
        for block in backward:
            p0 = common + block.a
            ll.llama_memory_seq_add(mem, 0, p0, p0 + block.size, block.b - block.a)
        for block in reversed(forward):
            p0 = common + block.a
            ll.llama_memory_seq_add(mem, 0, p0, p0 + block.size, block.b - block.a)
        covered = bytearray(len(prompt))
        covered[:common] = b"\x01" * common
        for block in blocks:
            start = common + block.b
            covered[start : start + block.size] = b"\x01" * block.size
        gaps = [i for i in range(len(prompt)) if not covered[i]]
        stats.reused_tokens = len(prompt) - len(gaps)
        # llama.cpp only appends to a sequence, so each run of missing positions is evaluated
        # in scratch sequence 1 (sharing the cells before it), then handed to sequence 0.
        runs: list[list[int]] = []
        for p in gaps:
            if runs and runs[-1][-1] == p - 1:
                runs[-1].append(p)
            else:
                runs.append([p])
        step = self.n_batch
        first_slice = True
        try:
            for run in runs:
                at_end = run[0] > int(ll.llama_memory_seq_pos_max(mem, 0))
                seq = 0 if at_end else 1
                if seq == 1:
                    ll.llama_memory_seq_rm(mem, 1, -1, -1)
                    ll.llama_memory_seq_cp(mem, 0, 1, -1, run[0])
                for i in range(0, len(run), step):
                    if between_slices is not None and not first_slice:
                        between_slices()
                    first_slice = False
                    cancel.raise_if_cancelled()
                    positions = run[i : i + step]
                    last = run is runs[-1] and i + step >= len(run)
                    self._decode(
                        [prompt[p] for p in positions],
                        want_logits=last,
                        positions=positions,
                        seq=seq,
                    )
                    stats.evaluated_tokens += len(positions)
                    stats.prompt_slices += 1
                    if seq == 1:
                        ll.llama_memory_seq_cp(mem, 1, 0, positions[0], positions[-1] + 1)
                    for p in positions:
                        covered[p] = 1
                if seq == 1:
                    ll.llama_memory_seq_rm(mem, 1, -1, -1)
        except BaseException:
            ll.llama_memory_seq_rm(mem, 1, -1, -1)
            # Keep only the hole-free prefix so the cache stays consistent.
            first_hole = covered.find(0)
            if first_hole < 0:
                first_hole = len(prompt)
            ll.llama_memory_seq_rm(mem, 0, first_hole, -1)
            self.cached = prompt[:first_hole]
            raise
        self.cached = list(prompt)
        return True

    def generate(
        self,
        prompt: list[int],
        *,
        sampling: SamplingParams,
        max_tokens: int,
        stop: list[str],
        time_budget_s: float | None,
        on_delta: DeltaCallback | None,
        cancel: CancelToken,
        stats: GenerationStats | None = None,
        reuse_chunks: int = 0,
        between_tokens: Callable[[], None] | None = None,
        stop_check: Callable[[str], int | None] | None = None,
    ) -> GenerationResult:
        """Evaluate ``prompt`` and sample up to ``max_tokens`` tokens, streaming text.

        ``between_tokens`` runs between prompt slices and between tokens (the engine
        thread uses it to serve higher-priority work). ``stop_check`` sees the whole text
        after each token and returns where to cut it to stop, or None to go on; use it
        without ``on_delta`` (text already streamed cannot be taken back).
        """
        stats = stats or GenerationStats()
        t0 = time.perf_counter()
        try:
            self.evaluate_prompt(
                prompt, cancel, stats, reuse_chunks=reuse_chunks, between_slices=between_tokens
            )
        except Cancelled:
            stats.stop_reason = "cancelled"
            stats.prompt_ms = (time.perf_counter() - t0) * 1000
            raise
        t_prompt = time.perf_counter()
        stats.prompt_ms = (t_prompt - t0) * 1000
        sampler = build_sampler(sampling, self.model.n_vocab)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(stop)
        text_parts: list[str] = []
        t_first = 0.0
        t_last = t_prompt
        reason = "length"
        try:
            for n in range(max_tokens):
                if between_tokens is not None and n > 0:
                    between_tokens()
                if cancel.cancelled:
                    reason = "cancelled"
                    break
                token = int(ll.llama_sampler_sample(sampler, self.ptr, -1))
                now = time.perf_counter()
                if n == 0:
                    t_first = now
                    stats.first_token_ms = (now - t0) * 1000
                t_last = now
                if self.model.is_eog(token):
                    reason = "eos"
                    break
                stats.generated_tokens += 1
                piece = decoder.decode(self.model.piece(token))
                emit, hit = stops.feed(piece)
                if emit:
                    text_parts.append(emit)
                    if on_delta is not None:
                        on_delta(emit)
                if hit:
                    reason = "stop"
                    break
                if stop_check is not None:
                    cut = stop_check("".join(text_parts))
                    if cut is not None:
                        joined = "".join(text_parts)[:cut]
                        text_parts = [joined]
                        reason = "stop"
                        break
                if time_budget_s is not None and now - t0 > time_budget_s:
                    reason = "time"
                    break
                if n + 1 >= max_tokens:
                    break
                if len(self.cached) + 1 >= self.n_ctx:
                    reason = "context"
                    break
                self._decode([token], want_logits=True)
            if reason != "stop":
                tail = stops.flush() + decoder.decode(b"", final=True)
                if tail:
                    text_parts.append(tail)
                    if on_delta is not None:
                        on_delta(tail)
        finally:
            ll.llama_sampler_free(sampler)
        stats.stop_reason = reason
        stats.generation_ms = (t_last - t_prompt) * 1000
        if stats.generated_tokens > 1 and t_last > t_first:
            stats.tokens_per_s = (stats.generated_tokens - 1) / (t_last - t_first)
        result = GenerationResult("".join(text_parts), stats)
        if reason == "cancelled":
            raise Cancelled(f"request {cancel.reason}", data={"partial": result})
        return result

    def close(self) -> None:
        """Free the context and its batch."""
        if getattr(self, "ptr", None):
            ll.llama_batch_free(self.batch)
            ll.llama_free(self.ptr)
            self.ptr = None
