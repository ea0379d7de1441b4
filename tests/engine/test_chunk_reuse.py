"""KV chunk reuse: text changed above the cursor does not force a full re-evaluation."""

from __future__ import annotations

from typing import Any

from lsp_server.engine.base import CancelToken, GenerationStats, SamplingParams

BODY = "".join(
    f"def helper_{i}(value):\n    total = value * {i}\n    return total + {i}\n\n"
    for i in range(40)
)


def tokens(model: Any, text: str) -> list[int]:
    return list(model.tokenize(text, add_bos=False, special=False))


def evaluate(context: Any, prompt: list[int], reuse: int) -> GenerationStats:
    stats = GenerationStats()
    context.evaluate_prompt(prompt, CancelToken(), stats, reuse_chunks=reuse)
    return stats


def test_insertion_above_keeps_the_rest(context: Any, llama_model: Any) -> None:
    head = tokens(llama_model, "import os\n\n")
    body = tokens(llama_model, BODY)
    evaluate(context, head + body, reuse=16)
    inserted = tokens(llama_model, "import sys  # a new line\n")
    prompt = head + inserted + body
    stats = evaluate(context, prompt, reuse=16)
    assert stats.prompt_tokens == len(prompt)
    # Only the inserted tokens (plus the always-fresh last token and a seam) are computed.
    assert stats.evaluated_tokens <= len(inserted) + 8
    assert stats.reused_tokens >= len(prompt) - len(inserted) - 8
    assert context.cached == prompt
    # The shifted cache is consistent: the same prompt again costs one token.
    again = evaluate(context, prompt, reuse=16)
    assert again.evaluated_tokens == 1


def test_deletion_above_shifts_back(context: Any, llama_model: Any) -> None:
    head = tokens(llama_model, "import os\nimport sys\nimport re\n\n")
    body = tokens(llama_model, BODY)
    evaluate(context, head + body, reuse=16)
    prompt = head[:3] + body
    stats = evaluate(context, prompt, reuse=16)
    assert stats.evaluated_tokens <= 8
    assert context.cached == prompt


def test_without_chunk_reuse_everything_after_the_edit_is_recomputed(
    context: Any, llama_model: Any
) -> None:
    head = tokens(llama_model, "import os\n\n")
    body = tokens(llama_model, BODY)
    evaluate(context, head + body, reuse=0)
    inserted = tokens(llama_model, "import sys\n")
    stats = evaluate(context, head + inserted + body, reuse=0)
    assert stats.evaluated_tokens >= len(body)


def test_generation_after_shift_stays_coherent(context: Any, llama_model: Any) -> None:
    body = tokens(llama_model, BODY)
    tail = tokens(llama_model, "def helper_40(value):\n    total = value *")
    evaluate(context, tokens(llama_model, "# utils\n") + body + tail, reuse=16)
    prompt = tokens(llama_model, "# utilities module\n") + body + tail
    result = context.generate(
        prompt,
        sampling=SamplingParams(temperature=0),
        max_tokens=3,
        stop=[],
        time_budget_s=None,
        on_delta=None,
        cancel=CancelToken(),
        reuse_chunks=16,
    )
    assert result.stats.evaluated_tokens < len(prompt) // 4
    assert "40" in result.text  # continues the obvious pattern
