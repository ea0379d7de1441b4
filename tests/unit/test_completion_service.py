"""The completion service with fake engines and documents (protocol logic, no model).

The real server and models run the same paths in tests/lsp/test_inline_completion.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from lsp_server.completion.options import CompletionOptions
from lsp_server.completion.service import (
    SECRET_SKIP,
    CompletionRequest,
    CompletionService,
    Document,
)
from lsp_server.core.errors import Cancelled, OpenLlmError
from lsp_server.engine.base import (
    CancelToken,
    GenerationRequest,
    GenerationResult,
    GenerationStats,
    InfillRequest,
    ModelInfo,
)
from lsp_server.engine.remote import RemoteError

INFO = ModelInfo("fake", "", "fake", 0, "", 0, 4096, 4096, "", False)


class CharVocabulary:
    """One token per character (its code point); no FIM tokens."""

    @property
    def fim(self) -> dict[str, int]:
        return {}

    def tokenize_code(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def code_bos(self) -> int | None:
        return None

    def render(self, tokens: list[int]) -> str:
        return "".join(map(chr, tokens))


@dataclass
class FakeEngine:
    """Answers ``answer``; a token engine (in process, KV cache) unless ``remote``."""

    answer: str = "42"
    remote: bool = False
    fail: OpenLlmError | None = None
    block: bool = False
    infills: list[InfillRequest] = field(default_factory=list)
    warmups: list[GenerationRequest] = field(default_factory=list)
    info: ModelInfo = field(default_factory=lambda: INFO)
    last_stats: GenerationStats | None = None
    health_error: OpenLlmError | None = None

    @property
    def backend(self) -> str:
        return "remote" if self.remote else "local"

    @property
    def accepts_tokens(self) -> bool:
        return not self.remote

    @property
    def keeps_kv_cache(self) -> bool:
        return not self.remote

    @property
    def in_process(self) -> bool:
        return not self.remote

    @property
    def vocabulary(self) -> CharVocabulary | None:
        return None if self.remote else CharVocabulary()

    async def infill(self, request: InfillRequest, cancel: CancelToken) -> GenerationResult:
        self.infills.append(request)
        if self.fail is not None:
            raise self.fail
        if self.block:  # this call waits until it is cancelled
            self.block = False
            while not cancel.cancelled:
                await asyncio.sleep(0.01)
            cancel.raise_if_cancelled()
        prompt = len(request.tokens) if request.tokens is not None else 0
        return GenerationResult(self.answer, GenerationStats(prompt_tokens=prompt))

    async def generate(
        self, request: GenerationRequest, on_delta: Any, cancel: CancelToken
    ) -> GenerationResult:
        assert request.evaluate_only  # the service only warms up through generate
        self.warmups.append(request)
        return GenerationResult("", GenerationStats(stop_reason="warm"))

    async def completion_api(self) -> str:
        return "infill" if self.remote else "tokens"

    async def clear_cache(self) -> None:
        pass


class FakeEngines:
    def __init__(self, engine: FakeEngine, fallback: FakeEngine | None = None) -> None:
        self.current = engine
        self.fallback = fallback

    async def engine(self, role: str = "completion", timeout: float | None = None) -> Any:
        return self.current

    async def fall_back(self, role: str, error: OpenLlmError) -> Any:
        if self.fallback is None:
            raise error
        return self.fallback


class FakeDocuments:
    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}

    def open(self, uri: str, text: str, language: str = "python") -> None:
        self.docs[uri] = Document(text, language)

    def get(self, uri: str) -> Document | None:
        return self.docs.get(uri)

    def is_open(self, uri: str) -> bool:
        return uri in self.docs

    def root(self, uri: str) -> str | None:
        return "/ws"


def make(
    engine: FakeEngine, fallback: FakeEngine | None = None, **options: Any
) -> tuple[CompletionService, FakeDocuments, list[asyncio.Task[Any]]]:
    docs = FakeDocuments()
    tasks: list[asyncio.Task[Any]] = []

    def run_task(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        tasks.append(task)
        return task

    opts = CompletionOptions(**options)
    service = CompletionService(FakeEngines(engine, fallback), docs, lambda: opts, run_task)
    return service, docs, tasks


CODE = "import os\n\n\ndef area(w, h):\n    return w * h\n\n\ndef main():\n    x = \n    print(x)\n"


async def test_a_remote_engine_never_gets_a_secret_file() -> None:
    engine = FakeEngine(remote=True)
    service, docs, _ = make(engine)
    docs.open("file:///ws/.env", "API_TOKEN=", "dotenv")
    docs.open("file:///ws/config/secrets.py", "TOKEN = ")
    for uri in ("file:///ws/.env", "file:///ws/config/secrets.py"):
        outcome = await service.complete(CompletionRequest(uri, 0, 10, automatic=False))
        assert outcome.text is None and outcome.skipped == SECRET_SKIP
    assert engine.infills == []
    status = service.status()
    assert (status.skipped, status.last_skip, status.requests) == (2, SECRET_SKIP, 0)
    docs.open("file:///ws/main.py", CODE)
    outcome = await service.complete(CompletionRequest("file:///ws/main.py", 8, 8, False))
    assert outcome.text == "42" and outcome.mode == "remote-infill"
    assert len(engine.infills) == 1 and engine.infills[0].tokens is None


async def test_the_local_engine_completes_secret_files() -> None:
    engine = FakeEngine()
    service, docs, _ = make(engine)
    docs.open("file:///ws/.env", "API_TOKEN=", "dotenv")
    outcome = await service.complete(CompletionRequest("file:///ws/.env", 0, 10, False))
    assert outcome.text == "42" and outcome.mode == "prefix" and not outcome.skipped


async def test_custom_secret_globs_apply() -> None:
    engine = FakeEngine(remote=True)
    service, docs, _ = make(engine, secret_globs=("*.private.py",))
    docs.open("file:///ws/a.private.py", "x = ")
    docs.open("file:///ws/.env", "A=")  # no longer in the list
    skipped = await service.complete(CompletionRequest("file:///ws/a.private.py", 0, 4, False))
    served = await service.complete(CompletionRequest("file:///ws/.env", 0, 2, False))
    assert skipped.skipped == SECRET_SKIP and served.text == "42"


async def test_the_warm_up_evaluates_at_the_last_cursor_after_a_suggestion() -> None:
    engine = FakeEngine()
    service, docs, tasks = make(engine)
    uri = "file:///ws/main.py"
    docs.open(uri, CODE)
    outcome = await service.complete(CompletionRequest(uri, 8, 8, automatic=False))
    assert outcome.text == "42" and service.status().last is not None
    assert service.cursors[uri] == (8, 8)  # kept apart from the last stats
    docs.open("file:///ws/other.py", "def helper():\n    return 1\n")
    service.on_document("open", "file:///ws/other.py")
    await asyncio.gather(*tasks)
    assert len(engine.warmups) == 1 and service.status().warmups == 1
    warm = "".join(map(chr, engine.warmups[0].tokens or []))
    assert warm.endswith(CODE[: CODE.index("x = ") + 4])  # the text before the cursor
    assert "def helper()" in warm  # with the new context
    shown = service.last_prompt(warmup=True)
    assert shown is not None and shown.text == warm and shown.mode == "prefix"


async def test_closing_a_document_forgets_its_cursor() -> None:
    service, docs, _ = make(FakeEngine())
    docs.open("file:///ws/a.py", "x = 1\n")
    await service.complete(CompletionRequest("file:///ws/a.py", 0, 4, False))
    service.on_document("close", "file:///ws/a.py")
    assert "file:///ws/a.py" not in service.cursors


async def test_a_newer_request_supersedes_the_one_in_flight() -> None:
    engine = FakeEngine(block=True)
    service, docs, _ = make(engine)
    uri = "file:///ws/main.py"
    docs.open(uri, CODE)
    first = asyncio.ensure_future(service.complete(CompletionRequest(uri, 8, 8, False)))
    await asyncio.sleep(0.05)
    assert not first.done()
    second = await service.complete(CompletionRequest(uri, 8, 8, False))
    with pytest.raises(Cancelled):
        await first
    assert second.text == "42"
    status = service.status()
    assert (status.requests, status.cancelled) == (2, 1)


async def test_typing_along_a_suggestion_is_served_from_the_cache() -> None:
    engine = FakeEngine(answer="compute(1)")
    service, docs, _ = make(engine)
    uri = "file:///ws/c.py"
    docs.open(uri, "x = \n")
    assert (await service.complete(CompletionRequest(uri, 0, 4, False))).text == "compute(1)"
    docs.open(uri, "x = com\n")
    again = await service.complete(CompletionRequest(uri, 0, 7, False))
    assert again.text == "pute(1)" and again.cached
    status = service.status()
    assert (status.requests, status.cache_hits) == (1, 1)


async def test_an_unreachable_server_falls_back_to_the_local_engine() -> None:
    down = RemoteError("refused", reason="connectionRefused", url="http://x")
    remote = FakeEngine(remote=True, fail=down)
    local = FakeEngine(answer="local()")
    service, docs, _ = make(remote, fallback=local)
    docs.open("file:///ws/m.py", CODE)
    outcome = await service.complete(CompletionRequest("file:///ws/m.py", 8, 8, False))
    assert outcome.text == "local()" and outcome.mode == "prefix"
    assert len(remote.infills) == 1 and len(local.infills) == 1
    refused = RemoteError("no", reason="unauthorized", url="http://x")
    service2, docs2, _ = make(FakeEngine(remote=True, fail=refused), fallback=local)
    docs2.open("file:///ws/m.py", CODE)
    with pytest.raises(RemoteError):  # a refusal is not "down": no fallback
        await service2.complete(CompletionRequest("file:///ws/m.py", 8, 8, False))


async def test_skip_rules_are_counted() -> None:
    service, docs, _ = make(FakeEngine(), disabled_languages=("markdown",))
    docs.open("file:///ws/n.md", "# Notes\n", "markdown")
    docs.open("file:///ws/busy.py", "x = compute(alpha, beta, gamma)\n")
    md = await service.complete(CompletionRequest("file:///ws/n.md", 0, 2, False))
    busy = await service.complete(CompletionRequest("file:///ws/busy.py", 0, 4, True))
    assert md.skipped == "language markdown is disabled"
    assert busy.skipped == "too much text right of the cursor"
    status = service.status()
    assert (status.skipped, status.requests) == (2, 0)
    assert status.last_skip == "too much text right of the cursor"


async def test_a_selected_item_moves_the_cursor_after_its_text() -> None:
    engine = FakeEngine()
    service, docs, _ = make(engine)
    uri = "file:///ws/s.py"
    docs.open(uri, "value = ma\n")
    start = len("value = ")
    request = CompletionRequest(uri, 0, 10, False, replace=(start, start + 2, "math"))
    await service.complete(request)
    tokens = engine.infills[0].tokens or []
    assert "".join(map(chr, tokens)).endswith("value = math")


def test_options_defaults_are_the_settings_defaults() -> None:
    from lsp_server.config.settings import Settings
    from lsp_server.protocol.features.inline_completion import completion_options

    assert completion_options(Settings()) == CompletionOptions()
