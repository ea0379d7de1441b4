"""Attached documents: read from the editor when open there, else from disk, then made
into the attachment records stored with a user message (``chat/attachments.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsp_server.chat.attachments import Attachment
from lsp_server.chat.records import AttachmentRef
from lsp_server.core.errors import InvalidParams, NotFound, StorageError
from lsp_server.core.uris import uri_to_path

MAX_FILE_BYTES = 4 * 1024 * 1024
"""Attached files larger than this are refused (attach a selection instead)."""

OpenDocument = Callable[[str], tuple[str, str] | None]
"""Return the text and language id of a document open in the editor, else None."""


def read_attachments(
    refs: list[AttachmentRef], folder_uri: str, open_document: OpenDocument
) -> list[dict[str, Any]]:
    """Resolve attachments to stored records holding the text they contribute.

    Paths shown to the model are relative to ``folder_uri`` when the file is inside it.
    """
    out = []
    for ref in refs:
        found = open_document(ref.uri)
        text, language = found if found is not None else (read_file(ref.uri), "")
        path = display_path(ref.uri, folder_uri)
        attachment = Attachment.make(ref.uri, path, text, rng=ref.range, language=language)
        out.append(attachment.to_dict())
    return out


def read_file(uri: str) -> str:
    """Read an attached file that is not open in the editor (size and binary checked)."""
    path = uri_to_path(uri)
    if path is None:
        raise InvalidParams(f"Cannot attach {uri}: not a local file.", data={"uri": uri})
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidParams(
                f"{file.name} is too large to attach ({size // 1024} KB): attach a "
                "selection instead.",
                data={"uri": uri, "sizeBytes": size},
            )
        data = file.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"Cannot attach {uri}: no such file.", data={"uri": uri}) from None
    except IsADirectoryError:
        raise InvalidParams(f"Cannot attach {uri}: it is a folder.", data={"uri": uri}) from None
    except OSError as exc:
        raise StorageError(f"Cannot read {uri}: {exc}", data={"uri": uri}) from exc
    if b"\x00" in data[:8192]:
        raise InvalidParams(f"Cannot attach {file.name}: it is a binary file.", data={"uri": uri})
    return data.decode("utf-8", errors="replace")


def display_path(uri: str, folder_uri: str) -> str:
    """A document's path relative to the workspace folder when inside it."""
    path = uri_to_path(uri)
    if path is None:
        return uri
    base = uri_to_path(folder_uri)  # None for a store that is no folder (no-workspace)
    if base:
        try:
            return Path(path).relative_to(base).as_posix()
        except ValueError:
            pass
    return Path(path).as_posix()
