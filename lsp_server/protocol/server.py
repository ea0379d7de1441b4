"""The language server object: pygls wiring, shared state and the request policy.

:class:`OpenLlmProtocol` makes sure every request gets an answer: custom
``openLlm/*`` params arrive as plain JSON (validated by pydantic in the handler),
and a standard request whose params cannot be parsed is answered with
InvalidParams instead of being dropped.

It is also the one door for text the editor shows: every ``window/showMessage``,
``window/showMessageRequest``, ``window/logMessage``, ``$/progress`` title and message,
the status text of ``openLlm/status`` / ``openLlm/statusChanged`` and the message of
every error answer goes through :mod:`lsp_server.core.sanitize`, whoever sends it
(features, logging, pygls itself).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import attrs
from lsprotocol import types
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, LanguageServerProtocol

from lsp_server import __version__
from lsp_server.config.settings import Settings
from lsp_server.core.errors import InvalidParams, OpenLlmError
from lsp_server.core.sanitize import LOG_LIMIT, clean_status, clean_text
from lsp_server.engine.manager import EngineManager
from lsp_server.protocol import methods
from lsp_server.protocol.errors import to_jsonrpc

log = logging.getLogger(__name__)

P = TypeVar("P", bound=BaseModel)
S = TypeVar("S")


class Params(BaseModel):
    """Base for custom request params: camelCase on the wire, unknown keys rejected."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Unparseable:
    """A request whose params failed to deserialize: answered with InvalidParams."""

    jsonrpc = "2.0"

    def __init__(self, msg_id: Any, method: str, detail: str) -> None:
        self.id = msg_id
        self.method = method
        self.detail = detail


def clean_outgoing(method: str, params: Any) -> Any:
    """``params`` of a message to the client with its user-visible text sanitized.

    Covers ``window/showMessage``, ``window/showMessageRequest`` (message and action
    titles), ``window/logMessage`` (longer limit), ``$/progress`` (title and message) and
    ``openLlm/statusChanged`` (status text); anything else is returned unchanged.
    """
    if method in (types.WINDOW_SHOW_MESSAGE, types.WINDOW_LOG_MESSAGE):
        limit = LOG_LIMIT if method == types.WINDOW_LOG_MESSAGE else None
        return _evolve(params, message=limit)
    if method == types.WINDOW_SHOW_MESSAGE_REQUEST:
        params = _evolve(params, message=None)
        actions = getattr(params, "actions", None)
        if actions and attrs.has(type(params)):
            cleaned = [_evolve(a, title=None) for a in actions]
            params = attrs.evolve(params, actions=cleaned)
        return params
    if method == types.PROGRESS:
        value = getattr(params, "value", None)
        if value is not None and attrs.has(type(params)):
            return attrs.evolve(params, value=_evolve(value, title=None, message=None))
        return params
    if method == methods.STATUS_CHANGED:
        return clean_status(params)
    return params


def _evolve(obj: Any, **fields: int | None) -> Any:
    """``obj`` (an lsprotocol object or a dict) with the string ``fields`` cleaned; the
    value of each keyword is the length limit (None: the message limit)."""
    changes: dict[str, str] = {}
    for name, limit in fields.items():
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if isinstance(value, str):
            changes[name] = clean_text(value) if limit is None else clean_text(value, limit)
    if not changes:
        return obj
    if isinstance(obj, dict):
        return {**obj, **changes}
    if attrs.has(type(obj)):
        return attrs.evolve(obj, **changes)
    return obj


def clean_error(error: JsonRpcException) -> JsonRpcException:
    """``error`` with its message sanitized (editors show error answers to users)."""
    error.message = clean_text(error.message, LOG_LIMIT)
    return error


class OpenLlmProtocol(LanguageServerProtocol):
    """pygls protocol that hands custom params over as raw JSON, answers bad params, and
    sanitizes every user-visible text it sends (:func:`clean_outgoing`)."""

    def notify(self, method: str, params: Any | None = None) -> None:
        super().notify(method, clean_outgoing(method, params))

    def send_request(
        self,
        method: str,
        params: Any | None = None,
        callback: Callable[[Any], None] | None = None,
        msg_id: Any = None,
    ) -> Future[Any]:
        return super().send_request(method, clean_outgoing(method, params), callback, msg_id)

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" not in data:
            return data
        method = data.get("method")
        if isinstance(method, str) and method.startswith(methods.PREFIX):
            if "id" in data:
                return JsonRPCRequestMessage(
                    id=data["id"], method=method, jsonrpc=data["jsonrpc"], params=data.get("params")
                )
            return JsonRPCNotification(
                method=method, jsonrpc=data["jsonrpc"], params=data.get("params")
            )
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "id" in data and isinstance(method, str):
                cause = exc.__cause__ or exc
                return _Unparseable(data["id"], method, str(cause).splitlines()[0])
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Unparseable):
            log.warning("invalid params for %s: %s", message.method, message.detail)
            error = JsonRpcInvalidParams(
                message=f"invalid params for {message.method}: {message.detail}"
            )
            self._send_response(message.id, None, clean_error(error).to_response_error())
            return
        super().handle_message(message)


class OpenLlmServer(LanguageServer):
    """The Open LLM language server: settings, engines and background tasks."""

    def __init__(self) -> None:
        super().__init__(
            "open-llm-lsp",
            __version__,
            protocol_cls=OpenLlmProtocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.settings = Settings()
        self.settings_problems: list[str] = []
        self.engines: EngineManager | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.announced_demo = False
        self.initial_options: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop serving the client (set at initialize)."""
        self.streams: dict[str, Callable[[], None]] = {}
        """Cancel callbacks of streaming requests, by client-chosen ``requestId``."""
        self.document_listeners: list[Any] = []
        """Subscribers to document events (see ``features/documents.py``)."""
        self._presets: Any = None
        self.completion_providers: list[Any] = []
        """Asked in order by ``textDocument/completion`` (see ``features/completion.py``)."""
        self.settings_transformers: list[Callable[[OpenLlmServer, Settings], Settings]] = []
        """Applied to validated settings before engines load (e.g. the active preset)."""
        self.raw_settings: Any = None
        """The last settings object received from the client (before validation)."""
        self.status_builder: Callable[[], dict[str, Any]] | None = None
        """Builds the full ``openLlm/status`` object (set by ``features/status.py``)."""
        self._feature_states: dict[type[Any], Any] = {}

    def add_state(self, state: S) -> S:
        """Keep a feature's state object (built in its ``register``), found by its type."""
        if type(state) in self._feature_states:
            raise RuntimeError(f"{type(state).__name__} is registered twice")
        self._feature_states[type(state)] = state
        return state

    def state(self, kind: type[S]) -> S:
        """Return the state object of type ``kind`` that a feature registered."""
        found: S = self._feature_states[kind]
        return found

    def run_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keep a reference, and log its failure."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    def notify(self, method: str, params: Any) -> None:
        """Send a notification to the client."""
        self.protocol.notify(method, params)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        """Show a message the user can act on (window/showMessage; sanitized on the way out)."""
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))

    def manager(self) -> EngineManager:
        """Return the engine manager, created on first use (needs the running loop)."""
        if self.engines is None:
            self.engines = EngineManager(on_status=self._status_changed)
        return self.engines

    def presets(self) -> Any:
        """Return the :class:`~lsp_server.presets.PresetManager`, created on first use."""
        if self._presets is None:
            from lsp_server.presets import PresetManager

            self._presets = PresetManager()
            self._apply_preset_policy()
        return self._presets

    def _apply_preset_policy(self) -> None:
        if self._presets is not None:
            self._presets.set_policy(
                [str(p) for p in self.settings.presets.model_folders],
                allow_workspace_model_paths=self.settings.presets.allow_workspace_model_paths,
            )

    def folder_uris(self) -> list[str]:
        """Return the open workspace folders' URIs (the root URI when there are none)."""
        try:
            folders = list(self.workspace.folders.values())
        except RuntimeError:  # before initialize
            return []
        if folders:
            return [f.uri for f in folders]
        root = self.workspace.root_uri
        return [root] if root else []

    def folder_for(self, uri: str | None) -> str | None:
        """Return the workspace folder containing ``uri`` (longest match), or the first one."""
        folders = self.folder_uris()
        if uri:
            matches = [f for f in folders if uri.startswith(f.rstrip("/") + "/") or uri == f]
            if matches:
                return max(matches, key=len)
        return folders[0] if folders else None

    def _status_changed(self, status: dict[str, Any]) -> None:
        if self.status_builder is not None:
            status = self.status_builder()  # the full object, as openLlm/status returns
        self.notify(methods.STATUS_CHANGED, status)


def custom_request(
    server: OpenLlmServer, method: str, params_model: type[P] | None = None
) -> Callable[[Callable[[OpenLlmServer, P], Awaitable[Any]]], Any]:
    """Register an async handler for a custom request with validated params.

    The handler receives a ``params_model`` instance (or ``None`` when no model is
    given). Invalid params and :class:`OpenLlmError` become JSON-RPC errors (their
    message sanitized); the ``openLlm/status`` result has its text sanitized.
    """

    def decorator(fn: Callable[[OpenLlmServer, P], Awaitable[Any]]) -> Any:
        @functools.wraps(fn)
        async def handler(ls: OpenLlmServer, raw: Any) -> Any:
            try:
                params: Any = None
                if params_model is not None:
                    params = _validate(params_model, raw, method)
                result = await fn(ls, params)
            except OpenLlmError as exc:
                raise clean_error(to_jsonrpc(exc)) from exc
            return clean_status(result) if method == methods.STATUS else result

        server.feature(method)(handler)
        return handler

    return decorator


def _validate(model: type[P], raw: Any, method: str) -> P:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParams(f"{method}: params must be an object, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidParams(f"{method}: {problems}") from exc
