"""Client-side helpers shared by the demo, the tests and the benchmarks."""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """Turn pygls' namedtuple params back into dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
