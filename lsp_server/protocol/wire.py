"""The one place that turns domain records into the client's camelCase JSON.

Domain packages (storage, chat, ...) return plain dataclasses with snake_case fields and
never spell a wire name; handlers pass what they return through :func:`to_wire`.

- A dataclass becomes a dict keyed by :func:`camel` of its field names, in field order.
- Lists and tuples become lists; dict keys are kept as they are (a dict already holds
  JSON, e.g. a stored preset snapshot), their values converted.
- Field metadata shapes the JSON where a record's shape is not the wire's:
  ``{"flatten": True}`` merges a nested record's (or dict's) keys into the parent, and
  ``{"omit_none": True}`` leaves the field out while its value is None.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["camel", "to_wire"]


def camel(name: str) -> str:
    """Return the camelCase form of a snake_case name (``tokens_per_s`` → ``tokensPerS``)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_wire(value: Any) -> Any:
    """Return ``value`` as JSON-ready data with camelCase keys for every record field."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None and f.metadata.get("omit_none"):
                continue
            converted = to_wire(item)
            if f.metadata.get("flatten") and isinstance(converted, dict):
                out.update(converted)
            else:
                out[camel(f.name)] = converted
        return out
    if isinstance(value, list | tuple):
        return [to_wire(item) for item in value]
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    return value
