"""Process-wide llama.cpp set-up and small native helpers, apart from the model and context.

llama.cpp is initialised once per process, its log lines go to Python logging (never
to stdout, which belongs to the protocol) and can be captured while loading to explain
a failure; the sampler chain is built from :class:`~lsp_server.engine.base.SamplingParams`.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_cpp as ll

from lsp_server.engine.base import SamplingParams

native_log = logging.getLogger("lsp_server.llama_cpp")

_capture = threading.local()
_LEVELS = {
    2: logging.ERROR,
    3: logging.WARNING,
    4: logging.INFO,
    1: logging.DEBUG,
    5: logging.DEBUG,
}


@ll.llama_log_callback  # type: ignore[misc]
def _on_native_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    message = text.decode("utf-8", errors="replace").rstrip("\n")
    lines: list[str] | None = getattr(_capture, "lines", None)
    if lines is not None:
        lines.append(message)
    if message:
        native_log.log(min(_LEVELS.get(level, logging.DEBUG), logging.DEBUG), "%s", message)


_backend_ready = False
_backend_lock = threading.Lock()


def init_backend() -> None:
    """Initialise llama.cpp once and route its logs to Python logging (stderr)."""
    global _backend_ready
    with _backend_lock:
        if _backend_ready:
            return
        ll.llama_log_set(_on_native_log, ctypes.c_void_p(0))
        ll.llama_backend_init()
        _backend_ready = True


@contextmanager
def capture_native_logs() -> Iterator[list[str]]:
    """Collect llama.cpp log lines emitted by this thread inside the block."""
    lines: list[str] = []
    _capture.lines = lines
    try:
        yield lines
    finally:
        _capture.lines = None


def supports_gpu_offload() -> bool:
    """Whether this llama-cpp-python build can offload layers to a GPU."""
    try:
        return bool(ll.llama_supports_gpu_offload())
    except Exception:  # pragma: no cover - depends on the build
        return False


def build_sampler(s: SamplingParams, n_vocab: int) -> Any:
    """A llama.cpp sampler chain for ``s`` (free it with ``llama_sampler_free``)."""
    chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    add = ll.llama_sampler_chain_add
    if s.repeat_penalty != 1.0 or s.presence_penalty or s.frequency_penalty:
        add(
            chain,
            ll.llama_sampler_init_penalties(
                n_vocab, s.repeat_last_n, s.repeat_penalty, s.frequency_penalty, s.presence_penalty
            ),
        )
    if s.temperature <= 0:
        add(chain, ll.llama_sampler_init_greedy())
        return chain
    if s.top_k > 0:
        add(chain, ll.llama_sampler_init_top_k(s.top_k))
    if s.top_p < 1.0:
        add(chain, ll.llama_sampler_init_top_p(s.top_p, 1))
    if s.min_p > 0:
        add(chain, ll.llama_sampler_init_min_p(s.min_p, 1))
    add(chain, ll.llama_sampler_init_temp(s.temperature))
    seed = s.seed if s.seed is not None and s.seed >= 0 else 0xFFFFFFFF  # LLAMA_DEFAULT_SEED
    add(chain, ll.llama_sampler_init_dist(seed))
    return chain
