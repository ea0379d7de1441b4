"""Attached documents: read from the editor when open there, else from disk, then made
into the attachment records stored with a user message (``chat/attachments.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsp_server.chat.attachments import MAX_FILE_BYTES, Attachment, read_attachment
from lsp_server.chat.records import AttachmentRef
from lsp_server.core.uris import uri_to_path

__all__ = ["MAX_FILE_BYTES", "OpenDocument", "display_path", "read_attachments"]

OpenDocument = Callable[[str], tuple[str, str] | None]
"""Return the text and language id of a document open in the editor, else None."""


def read_attachments(
    refs: list[AttachmentRef],
    folder_uri: str,
    open_document: OpenDocument,
    *,
    roots: Sequence[str] = (),
    secret_globs: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Resolve attachments to stored records holding the text they contribute.

    Paths shown to the model are relative to ``folder_uri`` when the file is inside it.
    Files are read safely (:func:`~lsp_server.chat.attachments.read_attachment`): secrets
    (``secret_globs``), links out of the workspace folders ``roots``, shares, devices and
    anything but a regular file are refused.
    """
    out = []
    for ref in refs:
        text, language = read_attachment(
            ref.uri,
            opened=open_document(ref.uri),
            roots=roots,
            secret_globs=secret_globs,
            limit=MAX_FILE_BYTES,
        )
        path = display_path(ref.uri, folder_uri)
        attachment = Attachment.make(ref.uri, path, text, rng=ref.range, language=language)
        out.append(attachment.to_dict())
    return out


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
