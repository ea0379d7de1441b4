"""Inline completion end to end: real server, real models, real cache counts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from tests.fim_model import SMOLLM2_FIM, SMOLLM2_REPO, write_fim_copy
from tests.lsp.conftest import CAPS, request, wait_state

PY = "".join(f"def helper_{i}(value):\n    return value * {i}\n\n\n" for i in range(30))
PY += "def area(width, height):\n    return "
INLINE_CAPS = types.ClientCapabilities(
    window=CAPS.window,
    workspace=CAPS.workspace,
    text_document=types.TextDocumentClientCapabilities(
        inline_completion=types.InlineCompletionClientCapabilities(),
        completion=types.CompletionClientCapabilities(),
    ),
)
COUNTER = iter(range(10_000))


def open_doc(client: LanguageClient, path: Path, text: str, language: str = "python") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )
    return uri


def insert(client: LanguageClient, uri: str, line: int, col: int, text: str) -> None:
    pos = types.Position(line=line, character=col)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=next(COUNTER) + 2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=pos, end=pos), text=text
                )
            ],
        )
    )


def end_of(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


async def inline(
    client: LanguageClient,
    uri: str,
    pos: types.Position,
    kind: types.InlineCompletionTriggerKind = types.InlineCompletionTriggerKind.Invoked,
) -> types.InlineCompletionList | None:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos,
            context=types.InlineCompletionContext(trigger_kind=kind),
        )
    )
    assert result is None or isinstance(result, types.InlineCompletionList)
    return result


async def warmed_up(client: LanguageClient, before: int) -> dict[str, Any]:
    """Wait until more than ``before`` warm-ups finished; return the completion status."""
    for _ in range(300):
        status: dict[str, Any] = (await request(client, "openLlm/status"))["completion"]
        if status["warmups"] > before:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"no warm-up after {before}: {status}")


async def last_stats(client: LanguageClient) -> dict[str, Any]:
    return (await request(client, "openLlm/status"))["completion"]["last"]


async def test_ghost_text_and_cache_reuse(client: LanguageClient, tmp_path: Path) -> None:
    status = await wait_state(client, "ready")
    assert status["roles"]["completion"]["model"]["architecture"] == "gemma3"
    uri = open_doc(client, tmp_path / "shapes.py", PY)
    result = await inline(client, uri, end_of(PY))
    assert result is not None and len(result.items) == 1
    item = result.items[0]
    assert isinstance(item.insert_text, str) and item.insert_text.strip()
    assert item.range is not None and item.range.start == end_of(PY)
    first = await last_stats(client)
    assert first["mode"] == "prefix" and first["promptTokens"] > 500

    # Typing one character costs a handful of tokens, not the whole prompt.
    insert(client, uri, end_of(PY).line, end_of(PY).character, "w")
    text = PY + "w"
    await inline(client, uri, end_of(text))
    after_edit = await last_stats(client)
    assert after_edit["evaluatedTokens"] <= 8, after_edit
    assert after_edit["reusedTokens"] >= after_edit["promptTokens"] - 8


async def test_typing_along_a_suggestion_is_served_from_cache(
    client: LanguageClient, tmp_path: Path
) -> None:
    await wait_state(client, "ready")
    text = "def greet(name):\n    return "
    uri = open_doc(client, tmp_path / "greet.py", text)
    result = await inline(client, uri, end_of(text))
    assert result is not None and result.items
    suggestion = result.items[0].insert_text
    assert isinstance(suggestion, str) and len(suggestion) >= 2
    before = (await request(client, "openLlm/status"))["completion"]
    insert(client, uri, 1, len("    return "), suggestion[0])
    again = await inline(client, uri, types.Position(line=1, character=len("    return ") + 1))
    assert again is not None and again.items[0].insert_text == suggestion[1:]
    after = (await request(client, "openLlm/status"))["completion"]
    assert after["cacheHits"] == before["cacheHits"] + 1
    assert after["requests"] == before["requests"]  # no inference at all


async def test_newer_request_supersedes_the_one_in_flight(
    client: LanguageClient, tmp_path: Path
) -> None:
    await wait_state(client, "ready")
    text = PY.replace("def area", "def volume")
    uri = open_doc(client, tmp_path / "superseded.py", text)
    before = (await request(client, "openLlm/status"))["completion"]
    first = asyncio.ensure_future(inline(client, uri, end_of(text)))
    await asyncio.sleep(0.05)
    insert(client, uri, end_of(text).line, end_of(text).character, "x")
    second = await inline(client, uri, end_of(text + "x"))
    with pytest.raises(JsonRpcException) as info:
        await first
    assert info.value.code == -32800  # RequestCancelled
    assert second is not None
    after = (await request(client, "openLlm/status"))["completion"]
    assert after["cancelled"] == before["cancelled"] + 1


async def test_extra_context_from_other_files_but_never_secrets(
    client: LanguageClient, tmp_path: Path
) -> None:
    await wait_state(client, "ready")
    open_doc(client, tmp_path / "ctx" / "models.py", "class Invoice:\n    total_cents: int\n")
    open_doc(client, tmp_path / "ctx" / ".env", "API_TOKEN=sk-very-secret-123\n", "dotenv")
    open_doc(client, tmp_path / "ctx" / "id_rsa", "-----BEGIN KEY-----\nabc\n", "plaintext")
    text = "def bill(invoice):\n    return "
    uri = open_doc(client, tmp_path / "ctx" / "billing.py", text)
    await inline(client, uri, end_of(text))
    prompt = await request(client, "openLlm/completion/lastPrompt")
    assert "class Invoice" in prompt["text"]
    assert "sk-very-secret" not in prompt["text"] and "BEGIN KEY" not in prompt["text"]
    names = [p["name"] for p in prompt["parts"]]
    extra = next(
        i for i, n in enumerate(names) if n.startswith("extra:") and n.endswith("models.py")
    )
    assert extra < names.index("prefix")
    assert not any(n.endswith((".env", "id_rsa")) for n in names)


async def test_completion_fallback_without_inline_capability(
    client: LanguageClient, tmp_path: Path
) -> None:
    await wait_state(client, "ready")
    text = "def add(a, b):\n    return "
    uri = open_doc(client, tmp_path / "fallback.py", text)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=end_of(text),
            context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
        )
    )
    assert isinstance(result, types.CompletionList) and len(result.items) == 1
    item = result.items[0]
    assert item.label_details is not None and item.label_details.description == "Open LLM"
    assert item.text_edit is not None and item.text_edit.new_text.strip()
    assert item.sort_text == "\u0000"
    # This client did not say it renders Markdown: the documentation is a plain string.
    assert item.documentation == item.text_edit.new_text


async def test_automatic_trigger_skips_busy_lines(client: LanguageClient, tmp_path: Path) -> None:
    await wait_state(client, "ready")
    text = "x = compute(alpha, beta, gamma)\n"
    uri = open_doc(client, tmp_path / "busy.py", text)
    before = (await request(client, "openLlm/status"))["completion"]["requests"]
    result = await inline(
        client,
        uri,
        types.Position(line=0, character=4),
        types.InlineCompletionTriggerKind.Automatic,
    )
    assert result is not None and not result.items
    assert (await request(client, "openLlm/status"))["completion"]["requests"] == before


async def init(
    client: LanguageClient,
    options: dict[str, Any],
    root: Path,
    caps: types.ClientCapabilities = INLINE_CAPS,
) -> None:
    options = {**options, "models": {"acceptedLicenses": ["gemma"]}}  # the bundled model's terms
    client.set_configuration(options, section="openLlm")
    await client.initialize_session(
        types.InitializeParams(
            capabilities=caps,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        )
    )
    status = await wait_state(client, "ready", "error")
    assert status["state"] == "ready", status


async def test_disabled_by_settings(fresh: LanguageClient, tmp_path: Path) -> None:
    await init(
        fresh, {"completion": {"enabled": False}, "engine": {"contextLength": 1024}}, tmp_path
    )
    uri = open_doc(fresh, tmp_path / "off.py", "x = ")
    result = await inline(fresh, uri, types.Position(line=0, character=4))
    assert result is not None and not result.items
    status = await request(fresh, "openLlm/status")
    assert status["roles"]["completion"]["state"] == "disabled"
    fresh.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={
                "openLlm": {
                    "completion": {"enabled": True, "disabledLanguages": ["python"]},
                    "engine": {"contextLength": 1024},
                    "models": {"acceptedLicenses": ["gemma"]},
                }
            }
        )
    )
    await asyncio.sleep(0.5)
    await wait_state(fresh, "ready")
    result = await inline(fresh, uri, types.Position(line=0, character=4))
    assert result is not None and not result.items
    md = open_doc(fresh, tmp_path / "notes.md", "# Notes\n\nThe ", "markdown")
    result = await inline(fresh, md, types.Position(line=2, character=4))
    assert result is not None and len(result.items) == 1  # other languages still complete


@pytest.fixture(scope="session")
def fim_models(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fim")
    return {
        "psm": write_fim_copy(smollm2_path, folder / "fim-psm.gguf", SMOLLM2_FIM),
        "repo": write_fim_copy(
            smollm2_path, folder / "fim-repo.gguf", {**SMOLLM2_FIM, **SMOLLM2_REPO}
        ),
    }


async def test_fim_layout_and_chunk_reuse(
    fresh: LanguageClient, tmp_path: Path, fim_models: dict[str, Path]
) -> None:
    await init(
        fresh,
        {
            "completion": {"model": str(fim_models["psm"]), "warmup": False},
            "engine": {"contextLength": 1024},
        },
        tmp_path,
    )
    open_doc(fresh, tmp_path / "lib.py", "CONSTANT = 42\n")
    text = PY + "\n\nvalue = area(2, 3)\n"
    uri = open_doc(fresh, tmp_path / "main.py", text)
    cursor = types.Position(line=PY.count("\n"), character=len("    return "))
    await inline(fresh, uri, cursor)
    prompt = await request(fresh, "openLlm/completion/lastPrompt")
    assert prompt["mode"] == "fim-psm"
    names = [p["name"] for p in prompt["parts"]]
    order = [names.index(n) for n in ("extra:lib.py", "prefix", "suffix", "middle", "typed")]
    assert order == sorted(order)
    spans = {p["name"]: p for p in prompt["parts"]}
    toks = prompt["tokens"]
    assert toks[spans["prefix"]["start"]] == SMOLLM2_FIM["pre"]
    assert toks[spans["suffix"]["start"]] == SMOLLM2_FIM["suf"]
    assert toks[spans["middle"]["start"]] == SMOLLM2_FIM["mid"]
    assert "value = area(2, 3)" in prompt["text"].split("<issue_start>")[0]  # suffix before mid

    # An edit 100 lines above the cursor: chunk reuse keeps most of the prompt.
    insert(fresh, uri, 3, 0, "# a comment added far above the cursor\n")
    cursor = types.Position(line=cursor.line + 1, character=cursor.character)
    await inline(fresh, uri, cursor)
    stats = await last_stats(fresh)
    assert stats["evaluatedTokens"] < stats["promptTokens"] * 0.2, stats
    assert stats["reusedTokens"] > stats["promptTokens"] * 0.8, stats


async def test_repo_level_fim_layout(
    fresh: LanguageClient, tmp_path: Path, fim_models: dict[str, Path]
) -> None:
    await init(
        fresh,
        {
            "completion": {"model": str(fim_models["repo"]), "warmup": False},
            "engine": {"contextLength": 1024},
        },
        tmp_path,
    )
    open_doc(fresh, tmp_path / "pkg" / "util.py", "def twice(x):\n    return 2 * x\n")
    text = "from pkg.util import twice\n\nprint(twice("
    uri = open_doc(fresh, tmp_path / "app.py", text)
    await inline(fresh, uri, end_of(text))
    prompt = await request(fresh, "openLlm/completion/lastPrompt")
    assert prompt["mode"] == "fim-psm+repo"
    spans = {p["name"]: p for p in prompt["parts"]}
    toks = prompt["tokens"]
    assert toks[spans["repo"]["start"]] == SMOLLM2_REPO["rep"]
    assert toks[spans["extra:pkg/util.py"]["start"]] == SMOLLM2_REPO["sep"]
    assert toks[spans["file"]["start"]] == SMOLLM2_REPO["sep"]
    assert "app.py" in prompt["text"] and "pkg/util.py" in prompt["text"]


async def test_completion_preempts_a_running_chat_answer(
    client: LanguageClient, tmp_path: Path
) -> None:
    await wait_state(client, "ready")
    text = "def square(n):\n    return "
    uri = open_doc(client, tmp_path / "preempt.py", text)
    deltas = client.custom["openLlm/generateDelta"]  # type: ignore[attr-defined]
    chat = asyncio.ensure_future(
        request(
            client,
            "openLlm/generate",
            {
                "prompt": "Count from one to two hundred: one, two, three,",
                "maxTokens": 200,
                "temperature": 0,
                "requestId": "t-preempt",
            },
        )
    )
    for _ in range(600):
        if any(d["requestId"] == "t-preempt" for d in deltas):
            break
        await asyncio.sleep(0.05)
    result = await inline(client, uri, end_of(text))
    assert result is not None and result.items
    assert not chat.done()  # the completion did not wait for the 200-token answer
    streamed_before = sum(1 for d in deltas if d["requestId"] == "t-preempt")
    answer = await chat
    assert answer["stats"]["stopReason"] in ("length", "eos")  # not cancelled
    # The chat resumed after the completion and kept generating.
    assert answer["stats"]["generatedTokens"] > streamed_before
    assert sum(1 for d in deltas if d["requestId"] == "t-preempt") > streamed_before


async def test_idle_warm_up_evaluates_new_context_in_advance(
    fresh: LanguageClient, tmp_path: Path
) -> None:
    await init(fresh, {"engine": {"contextLength": 1024}}, tmp_path)
    text = "def total(items):\n    return "
    uri = open_doc(fresh, tmp_path / "warm.py", text)
    await inline(fresh, uri, end_of(text))  # the document and cursor a warm-up prepares
    before = (await request(fresh, "openLlm/status"))["completion"]["warmups"]
    open_doc(
        fresh,
        tmp_path / "catalog.py",
        "".join(f"ITEM_{i} = {i}  # catalogue entry\n" for i in range(60)),
    )
    status = await warmed_up(fresh, before)
    insert(fresh, uri, end_of(text).line, end_of(text).character, "zq")
    await inline(fresh, uri, end_of(text + "zq"))
    after = (await request(fresh, "openLlm/status"))["completion"]
    assert after["requests"] == status["requests"] + 1  # real inference, not the result cache
    stats = after["last"]
    # The new context chunk (hundreds of tokens) was evaluated during the warm-up, so this
    # request only pays for the typed characters around the cursor.
    prompt = await request(fresh, "openLlm/completion/lastPrompt")
    assert "ITEM_59" in prompt["text"]
    assert stats["evaluatedTokens"] <= 16, stats
    assert stats["reusedTokens"] >= stats["promptTokens"] - 16, stats


WARM = "".join(f"def scale_{i}(x):\n    return x * {i}\n\n\n" for i in range(6))
WARM += "def total(items):\n    return \n\n\nprint(total([1, 2]))\n"


async def test_the_warm_up_evaluates_at_the_last_cursor(
    fresh: LanguageClient, tmp_path: Path
) -> None:
    """After a generated suggestion the document's cursor is kept: a warm-up triggered by
    new context prepares the prompt there, not at the top of the file."""
    await init(fresh, {"engine": {"contextLength": 1024}}, tmp_path)
    uri = open_doc(fresh, tmp_path / "cart.py", WARM)
    cursor = types.Position(line=WARM.count("\n", 0, WARM.index("    return \n")), character=11)
    result = await inline(fresh, uri, cursor)  # generates: replaces the last stats
    assert result is not None
    status = (await request(fresh, "openLlm/status"))["completion"]
    assert status["last"]["generatedTokens"] > 0
    before = status["warmups"]
    open_doc(fresh, tmp_path / "prices.py", "".join(f"PRICE_{i} = {i}\n" for i in range(40)))
    status = await warmed_up(fresh, before)
    warm = await request(fresh, "openLlm/completion/lastPrompt", {"warmup": True})
    up_to_cursor = WARM[: WARM.index("    return \n") + len("    return ")]
    assert warm["mode"] == "prefix" and "PRICE_39" in warm["text"]
    assert warm["text"].endswith(up_to_cursor), warm["text"][-200:]
    names = [p["name"] for p in warm["parts"]]
    assert names[-2:] == ["prefix", "typed"]
    last = await request(fresh, "openLlm/completion/lastPrompt")
    assert last["text"] != warm["text"]  # the completion's own prompt is kept apart


async def test_a_remote_engine_never_receives_a_secret_file(
    fresh: LanguageClient, tmp_path: Path
) -> None:
    from tests.fake_openai_server import PIECES, FakeOpenAI

    server = FakeOpenAI().start()  # on 127.0.0.1
    try:
        remote = {
            "url": server.url,
            "healthIntervalS": 0,
            "completion": {"enabled": True, "timeoutMs": 20_000},
        }
        options = {
            "remote": remote,
            "engine": {"contextLength": 512},
            "completion": {"maxTokens": 8},
            "models": {"acceptedLicenses": ["gemma"]},
        }
        await fresh.initialize_session(
            types.InitializeParams(
                capabilities=INLINE_CAPS,
                root_uri=tmp_path.as_uri(),
                initialization_options={"openLlm": options},
            )
        )
        for _ in range(600):
            status = await request(fresh, "openLlm/status")
            if status["roles"]["completion"]["state"] in ("ready", "error"):
                break
            await asyncio.sleep(0.1)
        assert status["backends"]["completion"] == "remote", status
        secret = "API_TOKEN=sk-do-not-send-42\nOTHER="
        for name, language in ((".env", "dotenv"), ("deploy.pem", "plaintext")):
            uri = open_doc(fresh, tmp_path / name, secret, language)
            result = await inline(fresh, uri, end_of(secret))
            assert result is not None and not result.items
        completion = (await request(fresh, "openLlm/status"))["completion"]
        assert completion["skipped"] == 2 and completion["requests"] == 0
        assert completion["lastSkip"] == "secret file: not sent to a remote server"
        text = "def add(a, b):\n    return "
        uri = open_doc(fresh, tmp_path / "calc.py", text)
        result = await inline(fresh, uri, end_of(text))
        assert result is not None and result.items
        assert result.items[0].insert_text == "".join(PIECES)
        completion = (await request(fresh, "openLlm/status"))["completion"]
        assert completion["requests"] == 1 and completion["last"]["mode"] == "remote-suffix"
        bodies = [str(r["body"]) for r in server.requests]
        assert any("def add(a, b)" in b for b in bodies)  # the normal file was sent ...
        assert not any("sk-do-not-send" in b for b in bodies)  # ... the secrets never
    finally:
        server.stop()
