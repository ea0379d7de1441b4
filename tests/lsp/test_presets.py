"""Presets over LSP, on real server processes: layers, selection, engine reload, preset-file
diagnostics and completion, import/export, safety rules and errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_server.demo.client import plain
from tests.lsp.conftest import CAPS, SERVER, request, wait_state

CHANGED = "openLlm/presets/changed"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def record_changes(client: LanguageClient) -> list[dict[str, Any]]:
    """Collect ``openLlm/presets/changed`` notifications."""
    changes: list[dict[str, Any]] = []

    def handler(ls: Any, params: Any) -> None:  # pygls passes the client as ``ls``
        changes.append(plain(params))

    client.feature(CHANGED)(handler)
    return changes


async def init(
    client: LanguageClient, folder: Path | None, options: dict[str, Any] | None = None
) -> None:
    await client.initialize_session(
        types.InitializeParams(
            capabilities=CAPS,
            initialization_options={"openLlm": options or {}},
            root_uri=folder.as_uri() if folder else None,
            workspace_folders=(
                [types.WorkspaceFolder(uri=folder.as_uri(), name=folder.name)] if folder else None
            ),
        )
    )


def make_workspace(root: Path, presets: dict[str, Any] | None = None) -> Path:
    """Create a workspace folder with ``.openllm/presets/<name>.json`` files."""
    root = root.resolve()
    folder = root / ".openllm" / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (presets or {}).items():
        text = content if isinstance(content, str) else json.dumps(content, indent=2)
        (folder / f"{name}.json").write_text(text, encoding="utf-8")
    return root


async def rpc_error(client: LanguageClient, method: str, params: Any) -> JsonRpcException:
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async(method, params)
    return info.value


def kind_of(exc: JsonRpcException) -> str | None:
    data = plain(exc.data)
    return data.get("kind") if isinstance(data, dict) else None


async def until(predicate: Any, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
def user_presets(isolated_data_dir: Path) -> Iterator[Path]:
    """The user presets folder; presets a test adds there are removed afterwards."""
    folder = isolated_data_dir / "presets"
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.iterdir())
    yield folder
    for path in set(folder.iterdir()) - before:
        path.unlink()


@asynccontextmanager
async def server() -> AsyncIterator[LanguageClient]:
    """A server process started by the test (two in a row for restarts)."""
    client = await ClientServerConfig(server_command=SERVER).start()
    assert isinstance(client, LanguageClient)
    try:
        yield client
    finally:
        await client.shutdown_session()
        await client.stop()


def open_doc(client: LanguageClient, path: Path, text: str, language: str = "json") -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )
    return uri


def cleared(client: LanguageClient, uri: str) -> bool:
    """True once the server published an empty list of diagnostics for ``uri``."""
    return uri in client.diagnostics and len(client.diagnostics[uri]) == 0


def by_id(listing: dict[str, Any], preset_id: str) -> list[dict[str, Any]]:
    return [e for e in listing["presets"] if e["id"] == preset_id]


# ---------------------------------------------------------------------------
# Layers and listing
# ---------------------------------------------------------------------------


async def test_list_and_layer_overrides(
    fresh: LanguageClient, tmp_path: Path, user_presets: Path
) -> None:
    (user_presets / "code-reviewer.json").write_text(
        json.dumps({"id": "code-reviewer", "name": "My reviewer", "systemPrompt": "User layer."})
    )
    ws = make_workspace(
        tmp_path / "ws",
        {
            "reviewer": {"id": "code-reviewer", "name": "Team reviewer", "systemPrompt": "Team."},
            "team-style": {"id": "team-style", "name": "Team style"},
            "broken": '{\n  "id": "broken",\n  "name": oops\n}\n',
        },
    )
    other = make_workspace(tmp_path / "other")
    await init(fresh, ws)

    listing = await request(fresh, "openLlm/presets/list", {})
    ids = [e["id"] for e in listing["presets"]]
    assert ids[0] == "coding-assistant"
    builtins = [e for e in listing["presets"] if e["source"] == "builtin"]
    assert len(builtins) >= 6 and all(e["readOnly"] for e in builtins)
    reviewers = {e["source"]: e for e in by_id(listing, "code-reviewer")}
    assert set(reviewers) == {"user", "workspace"}  # the built-in one is hidden
    user = reviewers["user"]
    assert user["name"] == "My reviewer" and user["readOnly"] is False
    assert [o["source"] for o in user["overrides"]] == ["builtin"]
    assert user["overriddenIn"] == [ws.as_uri()]
    team = reviewers["workspace"]
    assert team["name"] == "Team reviewer" and team["folderUri"] == ws.as_uri()
    assert [o["source"] for o in team["overrides"]] == ["user", "builtin"]
    assert by_id(listing, "team-style")[0]["source"] == "workspace"
    assert listing["active"] == [{"folderUri": ws.as_uri(), "presetId": "coding-assistant"}]
    problems = listing["problems"]
    assert len(problems) == 1 and problems[0]["path"].endswith("broken.json")
    assert problems[0]["line"] == 2 and "line 3" in problems[0]["message"]

    # get: the folder decides which layer wins.
    got = await request(fresh, "openLlm/presets/get", {"id": "code-reviewer"})
    assert got["source"] == "workspace" and got["preset"]["systemPrompt"] == "Team."
    got = await request(
        fresh, "openLlm/presets/get", {"id": "code-reviewer", "folderUri": other.as_uri()}
    )
    assert got["source"] == "user" and got["preset"]["systemPrompt"] == "User layer."
    err = await rpc_error(
        fresh, "openLlm/presets/get", {"id": "team-style", "folderUri": other.as_uri()}
    )
    assert err.code == -32010


# ---------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------


async def test_select_persists_across_a_restart(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws", {"team": {"id": "team", "name": "Team preset"}})
    async with server() as first:
        changes = record_changes(first)
        await init(first, ws)
        active = await request(first, "openLlm/presets/active", {})
        assert active["presetId"] == "coding-assistant" and active["requestedId"] is None
        result = await request(first, "openLlm/presets/select", {"id": "team"})
        assert result["presetId"] == "team" and result["appliesToEngine"] is True
        assert result["entry"]["source"] == "workspace" and result["modelError"] is None
        await until(lambda: {"folderUri": ws.as_uri(), "activeId": "team"} in changes)
    async with server() as second:
        await init(second, ws)
        active = await request(second, "openLlm/presets/active", {})
        assert active["presetId"] == "team" and active["requestedId"] == "team"
        assert active["fallback"] is False
        # The workspace preset disappears: the default is used, and the reason is given.
        (ws / ".openllm" / "presets" / "team.json").unlink()
        active = await request(second, "openLlm/presets/active", {})
        assert active["presetId"] == "coding-assistant" and active["fallback"] is True
        assert "team" in active["reason"]


async def test_active_preset_drives_the_engine(fresh: LanguageClient, tmp_path: Path) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        {
            "small": {"id": "small-context", "name": "Small context", "contextLength": 1024},
            "missing": {
                "id": "missing-model",
                "name": "Missing model",
                "model": "models/absent.gguf",
            },
        },
    )
    await init(fresh, ws, {"engine": {"contextLength": 2048, "batchSize": 64}})
    status = await wait_state(fresh, "ready", "error")
    assert status["state"] == "ready", status
    assert status["model"]["contextLength"] == 2048

    def loads() -> int:
        return sum(
            isinstance(r, types.WorkDoneProgressBegin) and r.title == "Loading model"
            for reports in fresh.progress_reports.values()
            for r in reports
        )

    before = loads()
    result = await request(fresh, "openLlm/presets/select", {"id": "small-context"})
    assert result["reloading"] is True and result["modelError"] is None
    status = await wait_state(fresh, "ready", "error")
    assert status["state"] == "ready" and status["model"]["contextLength"] == 1024
    await until(lambda: loads() > before)  # reloaded with $/progress

    # Editing the active preset reloads too.
    result = await request(
        fresh, "openLlm/presets/update", {"id": "small-context", "changes": {"contextLength": 1536}}
    )
    assert result["reloading"] is True
    status = await wait_state(fresh, "ready", "error")
    assert status["model"]["contextLength"] == 1536

    # A model that is not available locally: selected, with a clear message.
    result = await request(fresh, "openLlm/presets/select", {"id": "missing-model"})
    assert result["presetId"] == "missing-model"
    assert result["modelError"]["kind"] == "modelNotFound"
    assert "absent.gguf" in result["modelError"]["message"]
    status = await wait_state(fresh, "error")
    assert status["roles"]["chat"]["error"]["kind"] == "modelNotFound"
    assert str(ws / "models" / "absent.gguf") in status["message"]

    # Back to a preset without model or context: the user's settings apply again.
    result = await request(fresh, "openLlm/presets/select", {"id": "coding-assistant"})
    assert result["reloading"] is True
    status = await wait_state(fresh, "ready", "error")
    assert status["state"] == "ready" and status["model"]["contextLength"] == 2048


async def test_each_builtin_preset_runs_on_the_bundled_model(
    client: LanguageClient, tmp_path: Path
) -> None:
    await wait_state(client, "ready")
    folder = make_workspace(tmp_path / "ws").as_uri()  # not a workspace folder of this server
    listing = await request(client, "openLlm/presets/list", {"folderUri": folder})
    builtins = [e for e in listing["presets"] if e["source"] == "builtin"]
    assert len(builtins) >= 6
    for entry in builtins:
        selected = await request(
            client, "openLlm/presets/select", {"id": entry["id"], "folderUri": folder}
        )
        assert selected["presetId"] == entry["id"]
        assert selected["appliesToEngine"] is False and selected["reloading"] is False
        preset = selected["entry"]["preset"]
        sampling = preset["sampling"]
        result = await request(
            client,
            "openLlm/generate",
            {
                "messages": [
                    {"role": "system", "content": preset["systemPrompt"]},
                    {"role": "user", "content": "def add(a, b):\n    return a + b"},
                ],
                "maxTokens": min(sampling["maxTokens"], 16),
                "temperature": sampling["temperature"],
                "topK": sampling["topK"],
                "topP": sampling["topP"],
                "minP": sampling["minP"],
                "repeatPenalty": sampling["repeatPenalty"],
                "stop": sampling["stop"],
                "seed": 7,
            },
        )
        assert result["text"].strip(), entry["id"]
        assert 1 <= result["stats"]["generatedTokens"] <= 16
    active = await request(client, "openLlm/presets/active", {"folderUri": folder})
    assert active["presetId"] == builtins[-1]["id"]


# ---------------------------------------------------------------------------
# Preset files in the editor
# ---------------------------------------------------------------------------


async def test_diagnostics_on_workspace_preset_files(fresh: LanguageClient, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    await init(fresh, ws)
    presets = ws / ".openllm" / "presets"
    # Unknown key and out-of-range value; the emoji makes UTF-16 columns differ from code points.
    text = (
        '{\n  "id": "broken",\n  "name": "\U0001f600 Broken", "temprature": 0.5,\n'
        '  "sampling": {"temperature": 9}\n}\n'
    )
    uri = open_doc(fresh, presets / "broken.json", text)
    await until(lambda: len(fresh.diagnostics.get(uri, [])) == 2)
    unknown, out_of_range = sorted(fresh.diagnostics[uri], key=lambda d: d.range.start.line)
    assert unknown.range == types.Range(types.Position(2, 23), types.Position(2, 35))
    assert 'unknown key "temprature"' in unknown.message and unknown.code == "unknown-key"
    assert unknown.severity == types.DiagnosticSeverity.Error
    assert out_of_range.range == types.Range(types.Position(3, 30), types.Position(3, 31))
    assert "sampling.temperature" in out_of_range.message and "2" in out_of_range.message

    # Fixing the file clears the diagnostics.
    fixed = text.replace('"temprature": 0.5', '"tags": ["x"]').replace(": 9}", ": 0.5}")
    fresh.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=fixed)],
        )
    )
    await until(lambda: cleared(fresh, uri))

    # Invalid JSON, at the parser's position.
    bad_text = '{\n  "id": "bad",\n  "name": "\U0001f600" "x"\n}\n'
    bad_uri = open_doc(fresh, presets / "bad.json", bad_text)
    await until(lambda: len(fresh.diagnostics.get(bad_uri, [])) == 1)
    (bad,) = fresh.diagnostics[bad_uri]
    assert bad.code == "invalid-json" and bad.range.start == types.Position(2, 15)
    fresh.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=bad_uri))
    )
    await until(lambda: cleared(fresh, bad_uri))

    # Safety rules show up on the model value.
    remote = '{"id": "remote", "name": "Remote", "model": "https://example.com/m.gguf"}'
    remote_uri = open_doc(fresh, presets / "remote.json", remote)
    await until(lambda: len(fresh.diagnostics.get(remote_uri, [])) == 1)
    (refused,) = fresh.diagnostics[remote_uri]
    assert refused.code == "refused" and "remote address" in refused.message
    assert (refused.range.start.character, refused.range.end.character) == (44, 72)

    # Other JSON files are not preset files.
    other_uri = open_doc(fresh, ws / "package.json", '{"temprature": 1,')
    schema_uri = open_doc(fresh, presets / "schema.json", '{"type": 1,')
    await request(fresh, "openLlm/status")
    await asyncio.sleep(0.3)
    assert other_uri not in fresh.diagnostics and schema_uri not in fresh.diagnostics


async def test_key_completion_in_preset_files(fresh: LanguageClient, tmp_path: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    await init(fresh, ws)
    presets = ws / ".openllm" / "presets"
    text = '{\n  "id": "x",\n  "description": "\U0001f600", "sy\n'
    uri = open_doc(fresh, presets / "x.json", text)

    async def complete(doc: str, line: int, character: int) -> Any:
        return await fresh.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=doc),
                position=types.Position(line=line, character=character),
            )
        )

    # Cursor after "sy (UTF-16 column 26: the emoji counts twice).
    result = await complete(uri, 2, 26)
    assert isinstance(result, types.CompletionList)
    labels = [i.label for i in result.items]
    assert labels == ["systemPrompt"]
    (item,) = result.items
    assert item.kind == types.CompletionItemKind.Property
    assert isinstance(item.text_edit, types.TextEdit)
    assert item.text_edit.new_text == "systemPrompt"
    assert item.text_edit.range == types.Range(types.Position(2, 24), types.Position(2, 26))

    # Nested keys, without the ones already present; enum values after a key.
    nested = '{\n  "sampling": {"topK": 4, \n'
    nested_uri = open_doc(fresh, presets / "nested.json", nested)
    result = await complete(nested_uri, 1, len('  "sampling": {"topK": 4, '))
    nested_labels = {i.label for i in result.items}
    assert {"temperature", "maxTokens", "stop"} <= nested_labels
    assert "topK" not in nested_labels and "systemPrompt" not in nested_labels
    edit = next(i for i in result.items if i.label == "temperature").text_edit
    assert edit.new_text == '"temperature": '
    value_uri = open_doc(fresh, presets / "value.json", '{"schemaVersion": ')
    result = await complete(value_uri, 0, len('{"schemaVersion": '))
    assert [i.label for i in result.items] == ["1"]

    # Any other document is left to the other providers (no preset keys there).
    py_uri = open_doc(fresh, ws / "main.py", "x = {\n", language="python")
    try:
        result = await complete(py_uri, 1, 0)
    except JsonRpcException:  # the model's provider answered (e.g. no model loaded)
        result = None
    items = result.items if isinstance(result, types.CompletionList) else (result or [])
    assert not any(i.label == "systemPrompt" for i in items)


# ---------------------------------------------------------------------------
# Editing, import and export
# ---------------------------------------------------------------------------


LMSTUDIO = {
    "identifier": "@local:rust-helper",
    "name": "Rust helper",
    "operation": {
        "fields": [
            {"key": "llm.prediction.systemPrompt", "value": "You write idiomatic Rust."},
            {"key": "llm.prediction.temperature", "value": 0.3},
            {"key": "llm.prediction.topKSampling", "value": 50},
            {"key": "llm.prediction.promptTemplate", "value": {"type": "jinja"}},
            {"key": "llm.prediction.llama.cpuThreads", "value": 8},
        ]
    },
    "load": {
        "fields": [
            {"key": "llm.load.contextLength", "value": 8192},
            {"key": "llm.load.llama.acceleration.offloadRatio", "value": 1},
        ]
    },
}

MODELFILE = '''FROM hf.co/bartowski/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M
PARAMETER temperature 0.25
PARAMETER num_ctx 4096
PARAMETER mirostat 2
TEMPLATE """{{ .System }}"""
SYSTEM """You are a senior Go developer."""
ADAPTER ./lora.gguf
'''


async def test_import_and_export(fresh: LanguageClient, tmp_path: Path, user_presets: Path) -> None:
    ws = make_workspace(tmp_path / "ws")
    changes = record_changes(fresh)
    await init(fresh, ws)

    # LM Studio, as text + filename, into the user layer.
    text = json.dumps(LMSTUDIO)
    params = {"text": text, "filename": "rust-helper.preset.json"}
    result = await request(fresh, "openLlm/presets/import", params)
    assert result["sourceFormat"] == "lmstudio" and result["saved"] is True
    assert set(result["unmapped"]) == {
        "llm.prediction.promptTemplate",
        "llm.prediction.llama.cpuThreads",
        "llm.load.llama.acceleration.offloadRatio",
    }
    entry = result["entry"]
    assert entry["id"] == "rust-helper" and entry["source"] == "user"
    assert entry["preset"]["systemPrompt"] == "You write idiomatic Rust."
    assert entry["preset"]["contextLength"] == 8192
    assert (user_presets / "rust-helper.json").is_file()
    await until(lambda: any(c["folderUri"] == ws.as_uri() for c in changes))

    # Again: a taken id and name get a suffix, with warnings.
    again = await request(fresh, "openLlm/presets/import", params)
    assert again["entry"]["id"] == "rust-helper-2"
    assert any("taken" in w for w in again["warnings"])

    # Preview only: nothing written.
    preview = await request(
        fresh, "openLlm/presets/import", {**params, "id": "preview-only", "save": False}
    )
    assert preview["saved"] is False and preview["entry"] is None
    assert not (user_presets / "preview-only.json").exists()

    # An Ollama Modelfile by path, into the workspace layer.
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(MODELFILE, encoding="utf-8")
    result = await request(
        fresh,
        "openLlm/presets/import",
        {"path": str(modelfile), "layer": "workspace", "id": "go-dev"},
    )
    assert result["sourceFormat"] == "ollama"
    unmapped = result["unmapped"]
    assert "TEMPLATE" in unmapped and "PARAMETER mirostat 2" in unmapped
    assert any(u.startswith("ADAPTER") for u in unmapped)
    preset = result["entry"]["preset"]
    assert result["entry"]["source"] == "workspace"
    assert preset["model"] == "bartowski/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M"
    assert preset["systemPrompt"] == "You are a senior Go developer."
    assert preset["sampling"]["temperature"] == 0.25 and preset["contextLength"] == 4096
    assert (ws / ".openllm" / "presets" / "go-dev.json").is_file()

    # A Modelfile whose FROM points outside the workspace cannot become a workspace preset.
    outside = tmp_path / "elsewhere" / "model.gguf"
    err = await rpc_error(
        fresh,
        "openLlm/presets/import",
        {"text": f"FROM {outside}\nSYSTEM hi\n", "filename": "Modelfile", "layer": "workspace"},
    )
    assert err.code == -32013 and kind_of(err) == "refused" and "outside" in err.message

    # Export gives importable JSON, and can write a file.
    target = tmp_path / "out" / "rust.json"
    exported = await request(
        fresh, "openLlm/presets/export", {"id": "rust-helper", "path": str(target)}
    )
    data = json.loads(exported["text"])
    assert data["id"] == "rust-helper" and data["sampling"]["topK"] == 50
    assert json.loads(target.read_text(encoding="utf-8")) == data
    # Duplicate, update and delete a user preset.
    copy = await request(fresh, "openLlm/presets/duplicate", {"id": "rust-helper"})
    assert copy["id"] == "rust-helper-copy" and copy["name"] == "Copy of Rust helper"
    updated = await request(
        fresh,
        "openLlm/presets/update",
        {"id": "rust-helper-copy", "changes": {"sampling": {"temperature": 0.1}}},
    )
    assert updated["preset"]["sampling"]["temperature"] == 0.1
    assert updated["preset"]["sampling"]["topK"] == 50  # nested objects are merged
    assert updated["reloading"] is False  # not the active preset
    deleted = await request(fresh, "openLlm/presets/delete", {"id": "rust-helper-copy"})
    assert deleted["deleted"]["id"] == "rust-helper-copy"
    assert deleted["activeId"] == "coding-assistant"
    assert not (user_presets / "rust-helper-copy.json").exists()


async def test_safety_refusals(fresh: LanguageClient, tmp_path: Path) -> None:
    models = (tmp_path / "models").resolve()
    ws = make_workspace(
        tmp_path / "ws",
        {
            "remote": {"id": "remote", "name": "Remote", "model": "https://example.com/m.gguf"},
            "outside": {"id": "outside", "name": "Outside", "model": f"{models}/m.gguf"},
            "dotdot": {"id": "dotdot", "name": "Dot dot", "model": "../models/m.gguf"},
            "inside": {"id": "inside", "name": "Inside", "model": "models/m.gguf"},
        },
    )
    await init(fresh, ws)
    listing = await request(fresh, "openLlm/presets/list", {})
    refused = {e["id"]: e["refused"] for e in listing["presets"] if e["source"] == "workspace"}
    assert "remote address" in refused["remote"]
    assert "outside the workspace" in refused["outside"]
    assert "outside the workspace" in refused["dotdot"]
    assert refused["inside"] is None

    for preset_id in ("remote", "outside", "dotdot"):
        err = await rpc_error(fresh, "openLlm/presets/select", {"id": preset_id})
        assert err.code == -32013 and kind_of(err) == "refused"
        assert err.message == refused[preset_id]
    active = await request(fresh, "openLlm/presets/active", {})
    assert active["presetId"] == "coding-assistant"

    err = await rpc_error(
        fresh,
        "openLlm/presets/create",
        {
            "layer": "workspace",
            "preset": {"id": "sneaky", "name": "Sneaky", "model": "/etc/secret.gguf"},
        },
    )
    assert err.code == -32013 and "outside" in err.message
    assert not (ws / ".openllm" / "presets" / "sneaky.json").exists()
    err = await rpc_error(
        fresh,
        "openLlm/presets/update",
        {"id": "inside", "changes": {"model": "http://evil.example/m.gguf"}},
    )
    assert err.code == -32013

    # The user's model folders (a user-level setting) allow paths there; URLs stay refused.
    fresh.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"openLlm": {"presets": {"modelFolders": [str(models)]}}}
        )
    )

    async def refusals() -> dict[str, Any]:
        listing = await request(fresh, "openLlm/presets/list", {})
        return {e["id"]: e["refused"] for e in listing["presets"] if e["source"] == "workspace"}

    for _ in range(100):
        now = await refusals()
        if now["outside"] is None:
            break
        await asyncio.sleep(0.05)
    assert now["outside"] is None and now["dotdot"] is None
    assert now["remote"] is not None


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


async def test_clear_errors_and_the_server_keeps_answering(
    fresh: LanguageClient, tmp_path: Path, user_presets: Path
) -> None:
    ws = make_workspace(tmp_path / "ws")
    await init(fresh, ws)
    cases: list[tuple[str, Any, int, str]] = [
        ("openLlm/presets/get", {}, -32602, "id"),
        ("openLlm/presets/get", {"id": "concise", "bogus": 1}, -32602, "bogus"),
        ("openLlm/presets/list", [1], -32602, "must be an object"),
        ("openLlm/presets/import", {"text": "x", "path": "/x"}, -32602, "exactly one"),
        ("openLlm/presets/import", {"text": "hello world"}, -32602, "unrecognised"),
        (
            "openLlm/presets/create",
            {"preset": {"id": "hot", "name": "Hot", "sampling": {"temperature": 5}}},
            -32602,
            "sampling.temperature",
        ),
        ("openLlm/presets/create", {"preset": {"id": "Bad Id", "name": "B"}}, -32602, "id"),
        (
            "openLlm/presets/create",
            {"layer": "builtin", "preset": {"id": "b", "name": "B"}},
            -32602,
            "layer",
        ),
        ("openLlm/presets/get", {"id": "no-such-preset"}, -32010, "no-such-preset"),
        ("openLlm/presets/select", {"id": "no-such-preset"}, -32010, "no-such-preset"),
        ("openLlm/presets/delete", {"id": "no-such-preset"}, -32010, "no-such-preset"),
        ("openLlm/presets/update", {"id": "no-such-preset", "changes": {}}, -32010, "no-such"),
        ("openLlm/presets/export", {"id": "no-such-preset"}, -32010, "no-such-preset"),
        ("openLlm/presets/delete", {"id": "concise"}, -32011, "read-only"),
        (
            "openLlm/presets/update",
            {"id": "concise", "changes": {"name": "C"}},
            -32011,
            "read-only",
        ),
        (
            "openLlm/presets/create",
            {"preset": {"id": "dup", "name": "Code reviewer"}},
            -32011,
            "already exists",
        ),
    ]
    for method, params, code, fragment in cases:
        err = await rpc_error(fresh, method, params)
        assert (err.code, fragment in err.message) == (code, True), (method, params, err)

    created = await request(
        fresh, "openLlm/presets/create", {"preset": {"id": "mine", "name": "Mine"}}
    )
    assert created["source"] == "user" and (user_presets / "mine.json").is_file()
    err = await rpc_error(
        fresh, "openLlm/presets/create", {"preset": {"id": "mine", "name": "Other"}}
    )
    assert err.code == -32011 and kind_of(err) == "conflict"
    err = await rpc_error(
        fresh, "openLlm/presets/update", {"id": "mine", "changes": {"id": "other"}}
    )
    assert err.code == -32602
    await request(fresh, "openLlm/presets/delete", {"id": "mine"})

    listing = await request(fresh, "openLlm/presets/list", {})
    assert by_id(listing, "concise")
    status = await request(fresh, "openLlm/status")
    assert status["version"]
