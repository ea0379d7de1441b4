"""Typed errors shared by every domain package.

Domain code (engine, storage, presets, hardware, hub) raises subclasses of
:class:`OpenLlmError`. The protocol layer maps each ``kind`` to one JSON-RPC
error code (``lsp_server/protocol/errors.py``), so a client can tell a missing
model from an unknown chat id without parsing messages.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OpenLlmError(Exception):
    """Base class: a message a user can act on, plus optional structured data."""

    kind: ClassVar[str] = "internal"

    def __init__(self, message: str, *, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data or {}


class InvalidParams(OpenLlmError):
    """A request's parameters are malformed or out of range."""

    kind = "invalidParams"


class NotFound(OpenLlmError):
    """An id (chat, message, folder, preset, model) does not exist."""

    kind = "notFound"


class Conflict(OpenLlmError):
    """The request clashes with existing state (duplicate name, read-only item)."""

    kind = "conflict"


class StorageError(OpenLlmError):
    """The database or a file could not be read or written (disk full, read-only)."""

    kind = "storage"


class Refused(OpenLlmError):
    """A safety rule refused the request (e.g. a workspace preset pointing outside)."""

    kind = "refused"


class ModelNotFound(OpenLlmError):
    """The configured model file or Hugging Face reference is not available locally."""

    kind = "modelNotFound"


class ModelInvalid(OpenLlmError):
    """The file is not a GGUF model (wrong magic, unsupported GGUF version)."""

    kind = "modelInvalid"


class ModelCorrupt(OpenLlmError):
    """The GGUF file is truncated or its header/tensor table is inconsistent."""

    kind = "modelCorrupt"


class UnsupportedArchitecture(OpenLlmError):
    """llama.cpp cannot run this model's architecture."""

    kind = "unsupportedArchitecture"


class InsufficientMemory(OpenLlmError):
    """The model and its context would not fit in the memory available."""

    kind = "insufficientMemory"


class ModelNotReady(OpenLlmError):
    """No model is loaded: it is still loading or its load failed."""

    kind = "modelNotReady"


class LicenseNotAccepted(OpenLlmError):
    """The model's license (Gemma terms, Llama community license...) needs an explicit
    acceptance that was not given (``data`` names the ``license`` and how to accept it)."""

    kind = "licenseNotAccepted"


class HubUnavailable(OpenLlmError):
    """The Hugging Face Hub cannot be reached (offline, DNS, proxy); ``data.cached`` lists
    the models already on this machine."""

    kind = "hubUnavailable"


class AccessDenied(OpenLlmError):
    """The Hub refused access: a gated or private repository needs a token (``HF_TOKEN``
    or ``hf auth login``) with access granted on the model page."""

    kind = "accessDenied"


class Cancelled(OpenLlmError):
    """The request was cancelled by the client or superseded by a newer one."""

    kind = "cancelled"
