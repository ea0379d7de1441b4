"""Custom LSP method names, defined once (mirrored in the editor clients)."""

PREFIX = "openLlm/"

STATUS = "openLlm/status"
"""Request: the model status (see docs/protocol.md)."""
STATUS_CHANGED = "openLlm/statusChanged"
"""Notification (server → client): the status changed; params are the new status."""
GENERATE = "openLlm/generate"
"""Request: stream a raw generation from the chat model."""
GENERATE_DELTA = "openLlm/generateDelta"
"""Notification (server → client): a piece of an ``openLlm/generate`` answer."""
CANCEL = "openLlm/cancel"
"""Notification or request: cancel a streaming request by its ``requestId``."""
