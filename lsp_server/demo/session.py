"""A scripted editor session: the README's ``make run``.

A real LSP client starts ``python -m lsp_server`` over stdio, initializes it the
way an editor does, opens a Python file, shows the model status, streams a
generation, then chats about the file (``openLlm/chat/send``: streamed and stored),
printing what an editor would show.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from lsp_server.demo.client import plain
from lsp_server.protocol import methods

SAMPLE = '''def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''


class Printer:
    """Writes what an editor would show, one labelled line at a time."""

    def __init__(self, out: Any = sys.stdout) -> None:
        self.out = out
        self.streaming = False

    def line(self, label: str, text: str) -> None:
        if self.streaming:
            self.out.write("\n")
            self.streaming = False
        self.out.write(f"[{label}] {text}\n")
        self.out.flush()

    def stream(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        self.streaming = True


def status_lines(status: dict[str, Any]) -> Iterable[str]:
    """Format ``openLlm/status`` the way a status bar and its tooltip would."""
    model = status.get("model") or {}
    yield f"state: {status.get('state')}  (server {status.get('version')})"
    if model:
        params = model.get("parameters", 0) / 1e6
        yield (
            f"model: {model.get('name')}  {model.get('architecture')}  {params:.0f}M params  "
            f"{model.get('quantization')}  license {model.get('license') or 'unknown'}"
        )
        yield (
            f"context: {model.get('contextLength')} tokens "
            f"(trained {model.get('trainedContextLength')})"
            f"  threads: {model.get('threads')}  gpu layers: {model.get('gpuLayers')}"
        )
        yield f"file: {model.get('path')}"
    if status.get("message"):
        yield f"error: {status['message']}"
    if status.get("tokensPerSecond"):
        yield f"last generation: {status['tokensPerSecond']} tokens/s"


async def run_session(settings: dict[str, Any] | None = None, out: Any = sys.stdout) -> int:
    """Drive one editor session against a fresh server process; return an exit code."""
    p = Printer(out)
    client = LanguageClient("open-llm-demo", "0.1")
    loaded = asyncio.Event()

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def show(_c: LanguageClient, params: types.ShowMessageParams) -> None:
        p.line("popup", params.message)

    @client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def ask(_c: LanguageClient, params: types.ShowMessageRequestParams) -> Any:
        # The bundled completion model is under the Gemma terms: the server asks once.
        p.line("license", params.message)
        titles = [action.title for action in params.actions or []]
        choice = "Accept" if "Accept" in titles else None
        p.line("license", f"answered {choice or 'nothing'}, as a user would")
        return types.MessageActionItem(title=choice) if choice else None

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def create(_c: LanguageClient, params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def progress(_c: LanguageClient, params: types.ProgressParams) -> None:
        value = plain(params.value)
        if value.get("kind") == "begin":
            p.line("progress", f"{value.get('title')}...")
        elif value.get("kind") == "end":
            p.line("progress", f"done ({value.get('message')})")

    @client.feature(types.WORKSPACE_CONFIGURATION)
    def configuration(_c: LanguageClient, params: types.ConfigurationParams) -> list[Any]:
        return [settings or {} for _ in params.items]

    @client.feature(methods.STATUS_CHANGED)
    def status_changed(_c: LanguageClient, params: Any) -> None:
        state = plain(params).get("state")
        if state in ("ready", "error"):
            loaded.set()

    @client.feature(methods.PRESETS_CHANGED)
    def presets_changed(_c: LanguageClient, params: Any) -> None:
        return None  # the status bar would refresh here

    @client.feature(methods.GENERATE_DELTA)
    def delta(_c: LanguageClient, params: Any) -> None:
        p.stream(plain(params)["delta"])

    @client.feature(methods.CHAT_DELTA)
    def chat_delta(_c: LanguageClient, params: Any) -> None:
        p.stream(plain(params)["delta"])

    @client.feature(methods.CHAT_CHANGED)
    def chat_changed(_c: LanguageClient, params: Any) -> None:
        return None

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def log_message(_c: LanguageClient, params: types.LogMessageParams) -> None:
        return None  # server logs: an editor shows them in its output panel

    env = dict(os.environ)
    await client.start_io(sys.executable, "-m", "lsp_server", env=env)
    workspace = Path(tempfile.mkdtemp(prefix="open-llm-demo-"))
    try:
        caps = types.ClientCapabilities(
            window=types.WindowClientCapabilities(
                work_done_progress=True,
                show_message=types.ShowMessageRequestClientCapabilities(),
            ),
            workspace=types.WorkspaceClientCapabilities(configuration=True),
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities()
            ),
        )
        result = await client.initialize_async(
            types.InitializeParams(
                capabilities=caps,
                process_id=os.getpid(),
                root_uri=workspace.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name="demo")],
            )
        )
        info = result.server_info
        p.line(
            "editor", f"connected to {info.name if info else '?'} {info.version if info else ''}"
        )
        client.initialized(types.InitializedParams())

        path = workspace / "fib.py"
        path.write_text(SAMPLE, encoding="utf-8")
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=path.as_uri(), language_id="python", version=1, text=SAMPLE
                )
            )
        )
        p.line("editor", f"opened {path.name}")

        await asyncio.wait_for(loaded.wait(), timeout=600)
        status = plain(await client.protocol.send_request_async(methods.STATUS, {}))
        for _ in range(3000):  # a license just accepted reloads the completion model
            if status.get("state") != "loading":
                break
            await asyncio.sleep(0.2)
            status = plain(await client.protocol.send_request_async(methods.STATUS, {}))
        for text in status_lines(status):
            p.line("status", text)
        if status.get("state") != "ready":
            return 1
        if await completion_session(client, p, workspace) != 0:
            return 1

        question = "Explain in one sentence what a Python generator is."
        p.line("chat", f"you: {question}")
        p.line("chat", "assistant (streaming):")
        started = time.perf_counter()
        answer = plain(
            await client.protocol.send_request_async(
                methods.GENERATE,
                {
                    "messages": [{"role": "user", "content": question}],
                    "maxTokens": 96,
                    "temperature": 0.2,
                    "requestId": "demo-1",
                },
            )
        )
        stats = answer["stats"]
        p.line(
            "stats",
            f"{stats['generatedTokens']} tokens, {stats['tokensPerS']:.1f} tokens/s, "
            f"first token {stats['firstTokenMs']:.0f} ms, prompt {stats['promptTokens']} tokens "
            f"({stats['reusedTokens']} reused), stop: {stats['stopReason']}  "
            f"[{time.perf_counter() - started:.1f} s]",
        )
        status = plain(await client.protocol.send_request_async(methods.STATUS, {}))
        p.line(
            "status",
            f"state: {status['state']}, last generation {status['tokensPerSecond']} tokens/s",
        )
        if not answer["text"].strip():
            return 1
        if await chat_session(client, p, workspace, path) != 0:
            return 1
        return await preset_session(client, p, workspace)
    finally:
        try:
            await asyncio.wait_for(client.shutdown_async(None), 30)
            client.exit(None)
        except Exception:
            pass
        await client.stop()  # type: ignore[no-untyped-call]


async def completion_session(client: LanguageClient, p: Printer, workspace: Path) -> int:
    """Ask for ghost text at the end of a function, then type along the suggestion."""
    text = "import math\n\n\ndef circle_area(radius):\n    return "
    path = workspace / "shapes.py"
    path.write_text(text, encoding="utf-8")
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    line, col = 4, len("    return ")

    async def ghost(column: int) -> str:
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=column),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
        )
        items = result.items if isinstance(result, types.InlineCompletionList) else result or []
        insert = items[0].insert_text if items else ""
        return insert if isinstance(insert, str) else insert.value

    started = time.perf_counter()
    suggestion = await ghost(col)
    status = plain(await client.protocol.send_request_async(methods.STATUS, {}))
    last = status["completion"]["last"]
    p.line("completion", f"{path.name}:{line + 1}: {text.splitlines()[-1]}|")
    p.line("ghost text", repr(suggestion))
    p.line(
        "stats",
        f"{last.get('mode')} prompt {last.get('promptTokens')} tokens, evaluated "
        f"{last.get('evaluatedTokens')}, generated {last.get('generatedTokens')}  "
        f"[{(time.perf_counter() - started) * 1000:.0f} ms]",
    )
    if not suggestion.strip():
        return 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=line, character=col),
                        end=types.Position(line=line, character=col),
                    ),
                    text=suggestion[0],
                )
            ],
        )
    )
    started = time.perf_counter()
    rest = await ghost(col + 1)
    status = plain(await client.protocol.send_request_async(methods.STATUS, {}))
    p.line(
        "ghost text",
        f"typed {suggestion[0]!r}: {rest!r} (cache hits {status['completion']['cacheHits']}, "
        f"no inference)  [{(time.perf_counter() - started) * 1000:.0f} ms]",
    )
    return 0


async def preset_session(client: LanguageClient, p: Printer, workspace: Path) -> int:
    """Switch the workspace's preset and show its effect on a chat answer."""

    async def call(method: str, params: dict[str, Any]) -> Any:
        return plain(await client.protocol.send_request_async(method, params))

    folder = workspace.as_uri()
    listing = await call(methods.PRESETS_LIST, {"folderUri": folder})
    names = ", ".join(e["preset"]["id"] for e in listing["presets"])
    p.line("presets", f"{len(listing['presets'])} presets: {names}")
    selected = await call(methods.PRESETS_SELECT, {"folderUri": folder, "id": "concise"})
    preset = selected["entry"]["preset"]
    p.line("presets", f"active: {preset['id']} ({preset['name']}): {preset['systemPrompt']!r}")
    chat = await call(methods.CHAT_CREATE, {"folderUri": folder})
    question = "What is a Python list?"
    p.line("chat", f"you: {question}")
    p.line("chat", "assistant (streaming, preset concise):")
    result = await call(
        methods.CHAT_SEND,
        {"chatId": chat["id"], "content": question, "sampling": {"maxTokens": 48}},
    )
    sampling = result["sampling"]
    p.line(
        "stats",
        f"preset {result['presetId']}: temperature {sampling.get('temperature')}, "
        f"maxTokens {sampling.get('maxTokens')}, {result['stats']['generatedTokens']} tokens",
    )
    await call(methods.PRESETS_SELECT, {"folderUri": folder, "id": "coding-assistant"})
    await call(methods.CHAT_DELETE, {"chatId": chat["id"]})
    await call(methods.CHAT_EMPTY_TRASH, {"folderUri": folder})
    p.line("presets", "switched back to coding-assistant")
    return 0 if result["text"].strip() else 1


async def chat_session(client: LanguageClient, p: Printer, workspace: Path, path: Path) -> int:
    """Chat about the open file through ``openLlm/chat/send``: streamed and stored."""

    async def call(method: str, params: dict[str, Any]) -> Any:
        return plain(await client.protocol.send_request_async(method, params))

    chat = await call(methods.CHAT_CREATE, {"folderUri": workspace.as_uri()})
    question = "What does this function return for n = 5?"
    p.line("chat", f"new chat in {workspace.name}; you: {question} (+ {path.name} attached)")
    p.line("chat", "assistant (streaming, stored as it streams):")
    started = time.perf_counter()
    result = await call(
        methods.CHAT_SEND,
        {
            "chatId": chat["id"],
            "content": question,
            "attachments": [{"uri": path.as_uri()}],
            "sampling": {"maxTokens": 64},
        },
    )
    stats = result["stats"]
    p.line(
        "stats",
        f"{stats['generatedTokens']} tokens, {stats['tokensPerS']:.1f} tokens/s, "
        f"first token {stats['firstTokenMs']:.0f} ms, prompt {stats['promptTokens']} tokens "
        f"({stats['reusedTokens']} reused), stop: {stats['stopReason']}, "
        f"preset {result['presetId']}  [{time.perf_counter() - started:.1f} s]",
    )
    stored = await call(methods.CHAT_GET, {"chatId": chat["id"]})
    p.line(
        "chat",
        f'stored: "{stored["chat"]["title"]}", {len(stored["messages"])} messages '
        f"(answer incomplete: {stored['messages'][-1]['incomplete']})",
    )
    await call(methods.CHAT_DELETE, {"chatId": chat["id"]})
    await call(methods.CHAT_EMPTY_TRASH, {"folderUri": workspace.as_uri()})
    return 0 if result["text"].strip() else 1


def main() -> int:
    """Run the scripted session (``open-llm-lsp demo``)."""
    return asyncio.run(run_session())
