"""One table from domain error kinds to JSON-RPC error codes.

Domain packages raise :class:`lsp_server.core.errors.OpenLlmError` subclasses; handlers
let them propagate and :func:`to_jsonrpc` turns them into a response error with a
stable ``code`` and ``data.kind`` (documented in docs/protocol.md).
"""

from __future__ import annotations

from pygls.exceptions import JsonRpcException

from lsp_server.core.errors import OpenLlmError

REQUEST_CANCELLED = -32800
INVALID_PARAMS = -32602

CODES: dict[str, int] = {
    "invalidParams": INVALID_PARAMS,
    "cancelled": REQUEST_CANCELLED,
    "internal": -32603,
    "modelNotFound": -32001,
    "modelInvalid": -32002,
    "modelCorrupt": -32003,
    "unsupportedArchitecture": -32004,
    "insufficientMemory": -32005,
    "modelNotReady": -32006,
    "licenseNotAccepted": -32007,
    "hubUnavailable": -32008,
    "accessDenied": -32009,
    "notFound": -32010,
    "conflict": -32011,
    "storage": -32012,
    "refused": -32013,
    "remoteError": -32014,
}
"""Error kind → JSON-RPC code. Codes in -32099..-32000 are ours; the rest are standard."""


def to_jsonrpc(exc: OpenLlmError) -> JsonRpcException:
    """Return the JSON-RPC exception pygls sends for ``exc``."""
    data = {"kind": exc.kind}
    data.update({k: v for k, v in exc.data.items() if _jsonable(v)})
    return JsonRpcException(message=exc.message, code=CODES.get(exc.kind, -32603), data=data)


def _jsonable(value: object) -> bool:
    return isinstance(value, (str, int, float, bool, list, dict, type(None)))
