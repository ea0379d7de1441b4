"""The curated model catalogue as data: ``catalog.json`` and its typed loader.

``catalog.json`` (packaged beside this module) lists the completion and chat models that
``recommend`` chooses from: for each, where it is (``repo``), what it is (role, family,
license id, parameters in billions, quality ``tier`` within its role), its architecture
numbers from the model's ``config.json`` (``layers``, hidden size ``embd``, ``vocab``,
``kv_heads``, ``head_dim``, training ``context``) so memory can be estimated without
reading a header, and the sizes of its common quantizations as published (approximate,
in bytes).

:func:`load_catalog` validates the file strictly (types, no unknown keys, positive
numbers, unique ids, file names that name their quantization) and raises
:class:`CatalogError` naming the entry and the field at fault. :func:`catalog` returns
the packaged catalogue, read once.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, with_config

from lsp_server.core.errors import OpenLlmError
from lsp_server.models.quant import QUANTS, parse_quant

__all__ = [
    "CATALOG_PATH",
    "CatalogError",
    "CatalogFile",
    "CatalogModel",
    "Role",
    "catalog",
    "load_catalog",
]

Role = Literal["completion", "chat"]
#: The packaged catalogue.
CATALOG_PATH = Path(__file__).resolve().with_name("catalog.json")
#: The format version this loader reads.
VERSION = 1

_Positive = Annotated[int, Field(gt=0)]
_STRICT = ConfigDict(strict=True, extra="forbid")


class CatalogError(OpenLlmError):
    """The catalogue file is missing, not JSON, or an entry is invalid."""


@with_config(_STRICT)
@dataclass(frozen=True)
class CatalogFile:
    """One quantization of a catalogue model."""

    quant: str
    file: str
    size: _Positive  # bytes, as published (approximate)


@with_config(_STRICT)
@dataclass(frozen=True)
class CatalogModel:
    """A recommended model: where it is, what it is, how big, under which license."""

    id: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    repo: Annotated[str, Field(pattern=r"^[^/\s]+/[^/\s]+$")]
    role: Role
    family: Annotated[str, Field(min_length=1)]
    license: Annotated[str, Field(min_length=1)]  # a license id (``apache-2.0``, ``gemma``...)
    parameters: Annotated[float, Field(gt=0)]  # billions
    tier: Annotated[int, Field(ge=0)]  # quality within its role: higher is better
    layers: _Positive
    embd: _Positive
    vocab: _Positive
    kv_heads: _Positive
    head_dim: _Positive
    context: _Positive
    files: Annotated[tuple[CatalogFile, ...], Field(min_length=1)]
    fim: bool = False
    gated: bool = False  # the Hub asks for a token with access granted
    notes: str = ""

    @property
    def size_class(self) -> str:
        """``tiny`` (< 1B), ``small`` (< 4.5B), ``medium`` (< 10B), ``large`` (< 20B), ``xl``."""
        p = self.parameters
        if p < 1:
            return "tiny"
        if p < 4.5:
            return "small"
        if p < 10:
            return "medium"
        return "large" if p < 20 else "xl"

    def spec(self, quant: str) -> str:
        """The ``openLlm.model`` value for one quantization: ``owner/repo:QUANT``."""
        return f"{self.repo}:{quant}"


_MODEL = TypeAdapter(CatalogModel)


def _where(path: str, index: int, raw: Any) -> str:
    name = raw.get("id") if isinstance(raw, dict) else None
    return f"{path}: model #{index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")


def _check(model: CatalogModel) -> str | None:
    """What is wrong with a well-typed entry beyond its types, or None."""
    for f in model.files:
        if f.quant not in QUANTS:
            return f"files: {f.quant!r} is not a known quantization"
        if not f.file.endswith(".gguf"):
            return f"files: {f.file!r} is not a .gguf file"
        if parse_quant(f.file) != f.quant:
            return f"files: {f.file!r} does not name its quantization {f.quant!r}"
    quants = [f.quant for f in model.files]
    if len(set(quants)) != len(quants):
        return "files: a quantization is listed twice"
    return None


def load_catalog(path: str | os.PathLike[str] = CATALOG_PATH) -> tuple[CatalogModel, ...]:
    """Read and validate a catalogue file.

    :param path: the JSON file (default: the packaged ``catalog.json``).
    :raises CatalogError: the file cannot be read, is not JSON of the expected shape, or
        an entry is invalid; the message names the entry (number and id) and the field.
    """
    where = os.fspath(path)
    try:
        text = Path(where).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"the model catalogue {where} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"the model catalogue {where} is not valid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogError(f'{where}: expected an object with a "models" list')
    if data.get("version") != VERSION:
        raise CatalogError(
            f"{where}: version {data.get('version')!r} is not supported (expected {VERSION})"
        )
    if set(data) - {"version", "models"}:
        unknown = ", ".join(sorted(set(data) - {"version", "models"}))
        raise CatalogError(f"{where}: unknown top-level keys: {unknown}")
    models: list[CatalogModel] = []
    ids: set[str] = set()
    repos: set[tuple[str, str]] = set()
    for i, raw in enumerate(data["models"]):
        try:
            # JSON mode: strict types as JSON has them (arrays for tuples, no "1" for 1).
            model = _MODEL.validate_json(json.dumps(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            at = ".".join(str(part) for part in err["loc"]) or "entry"
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise CatalogError(f"{_where(where, i, raw)}: {at}: {err['msg']}{more}") from None
        problem = _check(model)
        if problem is None and model.id in ids:
            problem = "id: the same id appears earlier"
        if problem is None and (model.repo.lower(), model.role) in repos:
            problem = f"repo: {model.repo} is listed twice for the {model.role} role"
        if problem is not None:
            raise CatalogError(f"{_where(where, i, raw)}: {problem}")
        ids.add(model.id)
        repos.add((model.repo.lower(), model.role))
        models.append(model)
    return tuple(models)


@functools.cache
def catalog() -> tuple[CatalogModel, ...]:
    """The packaged catalogue (``catalog.json``), read and validated once."""
    return load_catalog(CATALOG_PATH)
