"""Files are read safely, and what the server writes is private.

Attachments: a link out of the workspace (``notes.md -> ~/.ssh/id_rsa``) is neither read
nor stored; ``-> /dev/zero`` and a FIFO are refused at once (regular files only, read
with a bound); secret files are refused; Windows UNC and device paths are refused by
their text, before any file-system call. On disk: the data directory is ``0700`` and
chat databases (with ``-wal``/``-shm``) ``0600``.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from lsp_server.chat.attachments import read_attachment, refuse_unsafe_path_text
from lsp_server.core.errors import InvalidParams, NotFound, Refused
from tests.security.hostile import server

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links, FIFOs, modes")
SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- not-a-real-key-7f3a9c"


# --- paths refused by their text ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        r"\\host\share\notes.md",
        r"\\?\C:\Users\me\.ssh\id_rsa",
        r"\\.\PhysicalDrive0",
        r"\??\C:\x",
        "//host/share/notes.md",
        "//?/C:/x",
        "file://host/share/notes.md",
        "notes\x00.md",
    ],
)
def test_shares_and_device_paths_are_refused_by_their_text(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lsp_server.chat.attachments as attachments

    class NoFileSystem:
        """The attachments module's ``os``: any file-system use fails the test."""

        name, sep = os.name, os.sep

        def __getattr__(self, attr: str) -> Any:
            raise AssertionError(f"os.{attr} was used before the path was refused")

    monkeypatch.setattr(attachments, "os", NoFileSystem())
    with pytest.raises(Refused):
        read_attachment(path, roots=["/work"], secret_globs=[])


@pytest.mark.parametrize("name", ["CON", "nul.txt", "COM1", "lpt9.md", "C:/x/aux"])
def test_dos_device_names_are_refused_on_windows(name: str) -> None:
    with pytest.raises(Refused):
        refuse_unsafe_path_text(name, windows=True)
    refuse_unsafe_path_text(name, windows=False)  # ordinary names elsewhere


# --- reading files -------------------------------------------------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "repo"
    root.mkdir()
    outside = tmp_path / "home" / ".ssh"
    outside.mkdir(parents=True)
    key = outside / "id_rsa"
    key.write_text(SECRET)
    plain = tmp_path / "home" / "plan.txt"
    plain.write_text("outside, but asked for by name")
    (root / "ok.md").write_text("hello")
    (root / "notes.md").symlink_to(key)
    (root / "plan.md").symlink_to(plain)
    (root / "zero.md").symlink_to("/dev/zero")
    (root / "sub").mkdir()
    (root / "sub" / "inner.md").write_text("inner")
    (root / "alias.md").symlink_to(root / "sub" / "inner.md")
    (root / "linkdir").symlink_to(outside)
    os.mkfifo(root / "pipe.md")
    (root / ".env").write_text("TOKEN=abc")
    return {"root": root, "key": key, "plain": plain}


def _read(path: Path, root: Path, **kw: Any) -> str:
    text, _ = read_attachment(
        path.as_uri(), roots=[str(root)], secret_globs=[".env", "id_rsa*"], **kw
    )
    return text


@posix_only
def test_links_out_of_the_workspace_and_special_files_are_refused(
    workspace: dict[str, Path],
) -> None:
    root = workspace["root"]
    assert _read(root / "ok.md", root) == "hello"
    assert _read(root / "alias.md", root) == "inner"  # a link that stays inside is fine
    for name in ("notes.md", "plan.md", "linkdir/id_rsa", "zero.md", "pipe.md", ".env"):
        with pytest.raises(Refused):
            _read(root / name, root)
    with pytest.raises(NotFound):
        _read(root / "missing.md", root)
    with pytest.raises(InvalidParams, match="folder"):
        _read(root / "sub", root)
    # A file outside every workspace, asked for by its own name, is read (the editor
    # attached it); a secret one is not.
    assert _read(workspace["plain"], root) == "outside, but asked for by name"
    with pytest.raises(Refused):
        _read(workspace["key"], root)


@posix_only
def test_size_is_checked_on_the_open_file_and_read_with_a_bound(
    workspace: dict[str, Path],
) -> None:
    root = workspace["root"]
    big = root / "big.md"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(InvalidParams, match="too large"):
        _read(big, root, limit=4096)
    binary = root / "bin.md"
    binary.write_bytes(b"abc\x00def")
    with pytest.raises(InvalidParams, match="binary"):
        _read(binary, root)


@posix_only
def test_an_open_document_is_still_checked_against_the_secret_globs(tmp_path: Path) -> None:
    uri = (tmp_path / ".env").as_uri()
    with pytest.raises(Refused):
        read_attachment(uri, opened=("TOKEN=abc", "dotenv"), secret_globs=[".env"])
    assert read_attachment(
        (tmp_path / "a.py").as_uri(), opened=("x = 1", "python"), secret_globs=[".env"]
    ) == ("x = 1", "python")


# --- through the real server -----------------------------------------------------------------


def _stored_bytes(data_dir: Path) -> bytes:
    chats = data_dir / "chats"
    return b"".join(p.read_bytes() for p in chats.iterdir() if p.is_file())


@posix_only
@pytest.mark.model
async def test_attachments_over_lsp_refuse_links_and_store_no_secret(
    workspace: dict[str, Path], tmp_path: Path
) -> None:
    root = workspace["root"]
    options = {"completion": {"enabled": False}, "engine": {"contextLength": 1024}}
    async with server(tmp_path, options, folders=[root]) as s:
        await s.until(lambda st: st["roles"]["chat"]["state"] == "ready")
        chat = await s.request(
            "openLlm/chat/create", {"folderUri": root.as_uri(), "title": "attachments"}
        )
        for name in ("notes.md", "zero.md", "pipe.md", ".env", "linkdir/id_rsa"):
            err = await s.error(
                "openLlm/chat/send",
                {
                    "chatId": chat["id"],
                    "content": "What is in this file?",
                    "attachments": [{"uri": (root / name).as_uri()}],
                    "sampling": {"maxTokens": 1},
                },
            )
            assert err.code == -32013, (name, err)  # refused
        for share in ("file://host/share/notes.md", r"\\host\share\notes.md"):
            err = await s.error(
                "openLlm/chat/send",
                {"chatId": chat["id"], "content": "x", "attachments": [{"uri": share}]},
            )
            assert err.code == -32013, share
        ok = await s.request(
            "openLlm/chat/send",
            {
                "chatId": chat["id"],
                "content": "Summarize.",
                "attachments": [{"uri": (root / "ok.md").as_uri()}],
                "sampling": {"maxTokens": 1},
            },
        )
        assert ok["userMessage"]["attachments"][0]["content"] == "hello"
        stored = _stored_bytes(tmp_path / "data")
        assert b"hello" in stored  # the database (or its WAL) holds the chat...
        assert SECRET.encode() not in stored and b"TOKEN=abc" not in stored  # ...no secret


@posix_only
@pytest.mark.model
async def test_the_data_directory_and_chat_databases_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    old = os.umask(0o022)  # a usual umask: files would be 0644 by default
    try:
        options = {"completion": {"enabled": False}, "engine": {"contextLength": 1024}}
        data = tmp_path / "fresh" / "data"
        env = dict(os.environ, OPEN_LLM_LSP_DATA_DIR=str(data))
        async with server(tmp_path, options, folders=[folder], env=env) as s:
            await s.until(lambda st: st["roles"]["chat"]["state"] == "ready")
            chat = await s.request(
                "openLlm/chat/create", {"folderUri": folder.as_uri(), "title": "private"}
            )
            await s.request(
                "openLlm/chat/send",
                {"chatId": chat["id"], "content": "hi", "sampling": {"maxTokens": 1}},
            )
            databases = list((data / "chats").glob("*.sqlite3*"))
            assert any(p.name.endswith(".sqlite3") for p in databases)
            assert any(p.name.endswith("-wal") for p in databases)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in databases}
            assert set(modes.values()) == {0o600}, modes
            assert stat.S_IMODE(data.stat().st_mode) == 0o700
    finally:
        os.umask(old)
