"""The generation loop on the real bundled model: streaming, stops, cancel, reuse."""

from __future__ import annotations

from typing import Any

import pytest

from lsp_server.core.errors import Cancelled, InvalidParams
from lsp_server.engine.base import CancelToken, GenerationStats, SamplingParams

GREEDY = SamplingParams(temperature=0)
CODE = "def add(a, b):\n    return a + b\n\n\ndef multiply(a, b):\n"


def prompt(model: Any, text: str) -> list[int]:
    return list(model.tokenize(text, add_bos=True, special=True))


def run(context: Any, tokens: list[int], **kw: Any) -> Any:
    deltas: list[str] = []
    args: dict[str, Any] = {
        "sampling": GREEDY,
        "max_tokens": 16,
        "stop": [],
        "time_budget_s": None,
        "on_delta": deltas.append,
        "cancel": CancelToken(),
    }
    args.update(kw)
    result = context.generate(tokens, **args)
    return result, deltas


def test_streams_deltas_that_add_up_to_the_text(context: Any, llama_model: Any) -> None:
    result, deltas = run(context, prompt(llama_model, CODE), max_tokens=12)
    assert len(deltas) >= 2
    assert "".join(deltas) == result.text
    assert result.text.strip()
    stats = result.stats
    assert stats.generated_tokens == 12 and stats.stop_reason == "length"
    assert stats.prompt_tokens == len(prompt(llama_model, CODE))
    assert stats.tokens_per_s > 0 and stats.first_token_ms > 0


def test_greedy_is_deterministic(context: Any, llama_model: Any) -> None:
    first, _ = run(context, prompt(llama_model, CODE), max_tokens=10)
    context.clear()
    second, _ = run(context, prompt(llama_model, CODE), max_tokens=10)
    assert first.text == second.text


def test_max_tokens_is_exact(context: Any, llama_model: Any) -> None:
    result, _ = run(context, prompt(llama_model, CODE), max_tokens=3)
    assert result.stats.generated_tokens == 3


def test_stop_string_cuts_the_text(context: Any, llama_model: Any) -> None:
    free, _ = run(context, prompt(llama_model, CODE), max_tokens=24)
    assert len(free.text) > 4
    stop = free.text[2:4]  # a string the model will produce early
    result, deltas = run(context, prompt(llama_model, CODE), max_tokens=24, stop=[stop])
    assert result.stats.stop_reason == "stop"
    assert result.text == free.text[: free.text.index(stop)]
    assert stop not in "".join(deltas)


def test_cancel_mid_generation_stops_within_two_tokens(context: Any, llama_model: Any) -> None:
    cancel = CancelToken()
    seen: list[str] = []

    def on_delta(text: str) -> None:
        seen.append(text)
        if len(seen) == 3:
            cancel.cancel("test")

    stats = GenerationStats()
    with pytest.raises(Cancelled) as info:
        context.generate(
            prompt(llama_model, CODE),
            sampling=GREEDY,
            max_tokens=200,
            stop=[],
            time_budget_s=None,
            on_delta=on_delta,
            cancel=cancel,
            stats=stats,
        )
    assert stats.stop_reason == "cancelled"
    assert stats.generated_tokens <= 3 + 2
    partial = info.value.data["partial"]
    assert partial.text == "".join(seen)


class CancelAfterChecks(CancelToken):
    """Cancels itself at its n-th check: counts how often the engine looks."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.remaining = checks

    def raise_if_cancelled(self) -> None:
        self.remaining -= 1
        if self.remaining < 0:
            self.cancel("test")
        super().raise_if_cancelled()


def test_cancel_mid_prompt_stops_within_one_slice(context: Any, llama_model: Any) -> None:
    long_prompt = prompt(llama_model, CODE * 40)
    assert len(long_prompt) > 5 * context.n_batch
    stats = GenerationStats()
    with pytest.raises(Cancelled):
        context.generate(
            long_prompt,
            sampling=GREEDY,
            max_tokens=4,
            stop=[],
            time_budget_s=None,
            on_delta=None,
            cancel=CancelAfterChecks(2),
            stats=stats,
        )
    assert stats.prompt_slices == 2
    assert stats.evaluated_tokens == 2 * context.n_batch
    assert stats.generated_tokens == 0
    # The cache holds exactly what was evaluated, so the next request reuses it.
    assert len(context.cached) == 2 * context.n_batch
    result, _ = run(context, long_prompt, max_tokens=2)
    assert result.stats.reused_tokens == 2 * context.n_batch


def test_shared_prefix_evaluates_only_new_tokens(context: Any, llama_model: Any) -> None:
    base = prompt(llama_model, CODE)
    run(context, base, max_tokens=4)
    extended = base + list(
        llama_model.tokenize("    return a * b\n\ndef", add_bos=False, special=False)
    )
    result, _ = run(context, extended, max_tokens=4)
    stats = result.stats
    assert stats.reused_tokens == len(base)
    assert stats.evaluated_tokens == len(extended) - len(base)
    # The same prompt again re-evaluates only its last token (for fresh logits).
    again, _ = run(context, extended, max_tokens=4)
    assert again.stats.evaluated_tokens == 1


def test_prompt_longer_than_context_is_a_clear_error(context: Any, llama_model: Any) -> None:
    tokens = prompt(llama_model, CODE * 200)
    assert len(tokens) > context.n_ctx
    with pytest.raises(InvalidParams, match="contextLength"):
        run(context, tokens)


def test_chat_template_from_gguf_metadata(llama_model: Any) -> None:
    from lsp_server.engine.chat_template import render_chat

    template = llama_model.chat_template()
    assert template and "im_start" in template
    text = render_chat(template, [{"role": "user", "content": "hi"}])
    assert "<|im_start|>user\nhi<|im_end|>" in text
    assert text.rstrip().endswith("<|im_start|>assistant")


def test_fallback_template_without_metadata() -> None:
    from lsp_server.engine.chat_template import render_chat

    text = render_chat(None, [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert (
        text
        == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )


def test_penalties_and_sampling_chain_run(context: Any, llama_model: Any) -> None:
    sampling = SamplingParams(
        temperature=0.8,
        top_k=20,
        top_p=0.9,
        min_p=0.05,
        repeat_penalty=1.3,
        presence_penalty=0.5,
        frequency_penalty=0.5,
        seed=7,
    )
    first, _ = run(context, prompt(llama_model, CODE), max_tokens=12, sampling=sampling)
    context.clear()
    second, _ = run(context, prompt(llama_model, CODE), max_tokens=12, sampling=sampling)
    assert first.stats.generated_tokens == 12
    assert first.text == second.text  # a fixed seed reproduces the sample
