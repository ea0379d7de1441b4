"""The preset data model: validated pydantic models with camelCase names on the wire.

A preset bundles a system prompt, sampling settings, an optional context length and model
reference, and optional overrides for inline completion. Unknown keys are errors so that a
typo in a hand-written preset file (``"temprature"``) is reported instead of ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator
from pydantic.alias_generators import to_camel

SCHEMA_VERSION: Literal[1] = 1
"""The only ``schemaVersion`` this package reads and writes."""

DEFAULT_PRESET_ID = "coding-assistant"
"""The preset that is active in a folder until the user selects another."""

ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
"""A preset id is a lowercase slug: letters, digits and single hyphens."""

ID_MAX_LENGTH = 64

_ID_RE = re.compile(ID_PATTERN)
_HF_RE = re.compile(
    r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)(?::(?P<file>\S+))?$"
)
_DRIVE_RE = re.compile(r"^[A-Za-z]:[\\/]")

StrictFloat = Annotated[float, Strict()]
StrictInt = Annotated[int, Strict()]
StrictStr = Annotated[str, Strict()]
StopString = Annotated[str, Strict(), Field(min_length=1, max_length=200)]
Tag = Annotated[str, Strict(), Field(min_length=1, max_length=32)]


def slugify(text: str, *, fallback: str = "preset") -> str:
    """Turn free text into a valid preset id.

    :param text: any text, e.g. a preset name ("Code Reviewer (strict)").
    :param fallback: returned when nothing usable is left.
    :returns: a lowercase slug such as ``"code-reviewer-strict"``.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    slug = slug[:ID_MAX_LENGTH].rstrip("-")
    return slug or fallback


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference.

    ``kind`` is ``"path"`` (a local ``.gguf`` file, possibly relative or starting with ``~``),
    ``"huggingface"`` (``owner/repo`` plus an optional file name or quantization after ``:``)
    or ``"url"`` (an ``http(s)://`` address; never allowed in workspace presets).
    """

    kind: Literal["path", "huggingface", "url"]
    raw: str
    path: str | None = None
    repo: str | None = None
    file: str | None = None


def parse_model_ref(raw: str) -> ModelRef:
    """Parse a preset's ``model`` value.

    :param raw: a ``.gguf`` path, ``owner/repo[:file-or-quant]``, or an ``http(s)://`` URL.
    :returns: the parsed reference.
    :raises ValueError: when the text is none of those forms.
    """
    text = raw.strip()
    if not text:
        raise ValueError("the model reference is empty")
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        return ModelRef(kind="url", raw=text)
    if "://" in text:
        parsed = urlparse(text)
        if parsed.scheme.lower() != "file":
            raise ValueError(f"unsupported scheme {parsed.scheme!r} in model reference")
        path = url2pathname(parsed.path)
        return _path_ref(text, path)
    if _DRIVE_RE.match(text) or text.startswith(("/", "~", ".", "\\")):
        return _path_ref(text, text)
    match = _HF_RE.match(text)
    if match and (match.group("file") or not lowered.endswith(".gguf")):
        return ModelRef(
            kind="huggingface", raw=text, repo=match.group("repo"), file=match.group("file")
        )
    if lowered.endswith(".gguf"):
        return _path_ref(text, text)
    raise ValueError(
        "expected a local .gguf path or a Hugging Face reference 'owner/repo[:file-or-quant]'"
    )


def _path_ref(raw: str, path: str) -> ModelRef:
    if not path.lower().endswith(".gguf"):
        raise ValueError("a local model path must point at a .gguf file")
    return ModelRef(kind="path", raw=raw, path=path)


class _WireModel(BaseModel):
    """Shared configuration: camelCase aliases, no unknown keys, no NaN, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        allow_inf_nan=False,
        frozen=True,
    )


class Sampling(_WireModel):
    """How tokens are sampled; the defaults suit code (low temperature)."""

    temperature: StrictFloat = Field(
        default=0.2,
        ge=0.0,
        le=2.0,
        description="Randomness of sampling: 0 is (almost) deterministic, 1 is the model's "
        "natural distribution, above 1 is more random. Keep it low (0-0.4) for code.",
    )
    top_p: StrictFloat = Field(
        default=0.95,
        ge=0.0,
        le=1.0,
        description="Nucleus sampling: keep the smallest set of tokens whose probabilities add "
        "up to this value. 1 disables it.",
    )
    top_k: StrictInt = Field(
        default=40,
        ge=0,
        le=1000,
        description="Keep only the k most likely tokens before sampling. 0 disables it.",
    )
    min_p: StrictFloat = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Drop tokens whose probability is below this fraction of the most likely "
        "token's probability. 0 disables it.",
    )
    repeat_penalty: StrictFloat = Field(
        default=1.1,
        ge=0.5,
        le=2.0,
        description="Penalty for repeating recent tokens: 1 disables it, 1.05-1.15 curbs "
        "loops in small models; high values hurt code, which repeats itself legitimately.",
    )
    presence_penalty: StrictFloat = Field(
        default=0.0,
        ge=-2.0,
        le=2.0,
        description="Penalty for any token that already appeared (encourages new topics). "
        "0 disables it.",
    )
    frequency_penalty: StrictFloat = Field(
        default=0.0,
        ge=-2.0,
        le=2.0,
        description="Penalty proportional to how often a token already appeared. 0 disables it.",
    )
    seed: StrictInt | None = Field(
        default=None,
        ge=0,
        le=4_294_967_295,
        description="Random seed for reproducible output; null picks a new random seed for "
        "every request.",
    )
    max_tokens: StrictInt = Field(
        default=1024,
        ge=1,
        le=32768,
        description="Maximum number of tokens to generate for one chat answer.",
    )
    stop: tuple[StopString, ...] = Field(
        default=(),
        max_length=32,
        description="Extra strings that end generation when the model produces them (the "
        "model's own end-of-turn token always does).",
    )


class CompletionOverrides(_WireModel):
    """Overrides for inline (ghost text) completion; null keeps the server's setting."""

    max_tokens: StrictInt | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Maximum number of tokens for one inline completion.",
    )
    lines_before: StrictInt | None = Field(
        default=None,
        ge=0,
        le=10000,
        description="How many lines before the cursor are sent to the model as context.",
    )
    lines_after: StrictInt | None = Field(
        default=None,
        ge=0,
        le=10000,
        description="How many lines after the cursor are sent to the model as context.",
    )
    time_budget_ms: StrictInt | None = Field(
        default=None,
        ge=50,
        le=60000,
        description="Give up on a completion that takes longer than this many milliseconds.",
    )


class Preset(_WireModel):
    """A named bundle of system prompt, sampling settings and optional model choice."""

    schema_ref: StrictStr | None = Field(
        default=None,
        alias="$schema",
        description="Optional path or URL of presets/schema.json, for editor validation and "
        "completion. Ignored by the server.",
    )
    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION,
        description="Version of the preset format. Only 1 exists.",
    )
    id: StrictStr = Field(
        min_length=1,
        max_length=ID_MAX_LENGTH,
        json_schema_extra={"pattern": ID_PATTERN},
        description='Stable identifier: a lowercase slug such as "code-reviewer". A preset '
        "with the same id in a higher layer (user, then workspace) overrides this one.",
    )
    name: StrictStr = Field(
        min_length=1,
        max_length=80,
        description="Name shown in the preset picker. Unique among presets.",
    )
    description: StrictStr = Field(
        default="",
        max_length=500,
        description="One or two sentences on what the preset is for.",
    )
    system_prompt: StrictStr = Field(
        default="",
        max_length=20000,
        description="Instructions given to the model before the conversation. Keep it short "
        "and direct: small models follow short prompts best.",
    )
    sampling: Sampling = Field(
        default_factory=Sampling,
        description="Sampling settings for chat answers.",
    )
    context_length: StrictInt | None = Field(
        default=None,
        ge=128,
        le=1_048_576,
        description="Context window in tokens to load the model with; null lets the server "
        "choose from the model and the available memory.",
    )
    model: StrictStr | None = Field(
        default=None,
        max_length=1000,
        description="Model to use with this preset: a local .gguf path (relative paths are "
        "relative to the workspace folder) or a Hugging Face reference "
        '"owner/repo[:file-or-quant]" resolved from the local cache. Null keeps the '
        "current model.",
    )
    completion: CompletionOverrides | None = Field(
        default=None,
        description="Overrides for inline completion while this preset is active.",
    )
    tags: tuple[Tag, ...] = Field(
        default=(),
        max_length=16,
        description='Free-form labels for filtering, e.g. "review", "docs".',
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(
                "id must be a lowercase slug of letters, digits and single hyphens, "
                'e.g. "my-preset"'
            )
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("name must not be blank")
        return stripped

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parse_model_ref(value)
        return value.strip()

    def model_ref(self) -> ModelRef | None:
        """Return the parsed ``model`` reference, or None when the preset keeps the model."""
        return parse_model_ref(self.model) if self.model is not None else None

    def to_dict(self) -> dict[str, Any]:
        """Return the preset as a plain JSON-ready dict with camelCase keys (no ``$schema``)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"schema_ref"})

    def snapshot(self) -> dict[str, Any]:
        """Return an independent plain-dict copy to store with a chat.

        Later edits to the preset (or its file) never change a snapshot; rebuild the preset
        from it with :meth:`from_snapshot`.
        """
        return self.to_dict()

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> Preset:
        """Rebuild a preset from :meth:`snapshot` output.

        :param data: a dict produced by :meth:`snapshot` (or :meth:`to_dict`).
        """
        return cls.model_validate(data)

    def to_file_dict(self) -> dict[str, Any]:
        """Return the dict written to a preset file (keeps ``$schema``, drops null fields)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
