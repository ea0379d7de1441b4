"""The local engine completes code from the planner's token prompt (real SmolLM2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lsp_server.completion.context import cursor_window
from lsp_server.completion.options import CompletionOptions
from lsp_server.completion.planner import plan_completion
from lsp_server.core.errors import InvalidParams
from lsp_server.engine.base import CancelToken, InfillRequest, ModelInfo
from lsp_server.engine.local import LocalEngine
from lsp_server.engine.worker import EngineWorker

CODE = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return "


@pytest.fixture()
def engine(llama_model: Any, context: Any) -> Iterator[LocalEngine]:
    worker = EngineWorker()
    info = ModelInfo("smollm2", "", "llama", 0, "", 0, context.n_ctx, 8192, "", True)
    yield LocalEngine(llama_model, context, worker, info)
    worker.stop()


async def test_infill_runs_the_planned_tokens(engine: LocalEngine) -> None:
    assert engine.accepts_tokens and engine.keeps_kv_cache and engine.in_process
    window = cursor_window(CODE, 5, 11, path="calc.py", language="python")
    plan = plan_completion(engine, window, [], CompletionOptions(max_tokens=6))
    assert plan.mode == "prefix" and plan.request.tokens is not None
    assert engine.vocabulary.render(plan.request.tokens).endswith(CODE)
    result = await engine.infill(plan.request, CancelToken())
    assert result.stats.prompt_tokens == len(plan.request.tokens)
    assert 0 < result.stats.generated_tokens <= 6
    again = await engine.infill(plan.request, CancelToken())  # the KV cache holds it now
    assert again.stats.evaluated_tokens <= 1 and again.text == result.text
    await engine.clear_cache()
    cold = await engine.infill(plan.request, CancelToken())
    assert cold.stats.evaluated_tokens == len(plan.request.tokens)
    assert await engine.completion_api() == "tokens"


async def test_infill_without_tokens_is_a_clear_error(engine: LocalEngine) -> None:
    with pytest.raises(InvalidParams, match="token prompt"):
        await engine.infill(InfillRequest(before="x", typed="", suffix=""), CancelToken())


async def test_a_remote_engine_gets_the_planned_text_and_its_own_timeout() -> None:
    import time

    from lsp_server.engine.remote import RemoteConfig, RemoteEngine, RemoteError
    from tests.fake_openai_server import PIECES, FakeOpenAI

    server = FakeOpenAI(suffix=False).start()
    try:
        config = RemoteConfig(url=server.url, completion_api="prefix", completion_timeout_s=0.5)
        engine = RemoteEngine(config, "completion")
        window = cursor_window(CODE, 5, 11, path="calc.py", language="python")
        plan = plan_completion(engine, window, [], CompletionOptions(max_tokens=6))
        assert plan.layout is None and plan.request.tokens is None
        assert plan.request.timeout_s is None  # the engine's own setting applies
        result = await engine.infill(plan.request, CancelToken())
        assert result.text == "".join(PIECES)
        body = [r["body"] for r in server.requests if r["path"] == "/v1/completions"][-1]
        assert body["prompt"] == "# calc.py\n" + CODE and body["max_tokens"] == 6
        server.mode = "stall"  # headers, then nothing: the configured 0.5 s applies
        start = time.monotonic()
        with pytest.raises(RemoteError) as info:
            await engine.infill(plan.request, CancelToken())
        assert info.value.reason == "timeout" and time.monotonic() - start < 3
        await engine.aclose()
    finally:
        server.stop()
