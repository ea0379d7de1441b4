"""The server's settings: one fully defaulted pydantic model, section ``openLlm``.

Clients send camelCase keys (``engine.contextLength``). :func:`parse_settings` never
fails: a field with an invalid value keeps its default and one message names it.
The README settings table and the VS Code extension's configuration are generated
from :func:`settings_schema`, so they cannot drift from this file.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from lsp_server.core.sanitize import describe_key, describe_value
from lsp_server.core.secrets import DEFAULT_SECRET_GLOBS

SECTION = "openLlm"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
    )


class EngineSettings(_Model):
    """How llama.cpp runs the model in this process."""

    context_length: int = Field(
        4096,
        ge=0,
        le=1_048_576,
        description=(
            "Context window in tokens (prompt + answer). 0 uses the model's trained context. "
            "Larger contexts cost memory: the server estimates it before loading."
        ),
    )
    threads: int | Literal["auto"] = Field(
        "auto",
        description=(
            "CPU threads for inference. `auto` leaves a core for the editor (1 on 2 cores, "
            "cores-1 up to 8, cores-2 above): ggml threads spin, and oversubscribed cores "
            "slow generation to a crawl."
        ),
    )
    batch_size: int = Field(
        256,
        ge=8,
        le=8192,
        description=(
            "Prompt tokens evaluated per slice. Cancellation is checked between slices, "
            "so smaller slices stop sooner; larger ones evaluate long prompts a bit faster."
        ),
    )
    gpu_layers: int | Literal["auto"] = Field(
        "auto",
        description=(
            "Layers offloaded to the GPU: `auto` offloads all when this build supports a GPU, "
            "0 keeps everything on the CPU, -1 means all."
        ),
    )
    flash_attention: bool | Literal["auto"] = Field(
        "auto", description="Use flash attention: `auto` lets llama.cpp decide."
    )
    kv_cache_type: Literal["f16", "q8_0", "q4_0", "f32"] = Field(
        "f16",
        description=(
            "Element type of the KV cache. q8_0 halves its memory with little quality loss; "
            "quantized types need flash attention for the V cache."
        ),
    )
    use_mmap: bool = Field(
        True,
        description=(
            "Map the model file instead of reading it: editor windows running their own "
            "server share the weights through the page cache."
        ),
    )


class CompletionSettings(_Model):
    """Inline code completion (ghost text)."""

    enabled: bool = Field(True, description="Offer inline completions while typing.")
    model: str = Field(
        "",
        description=(
            "Completion model, same forms as `openLlm.model` (ideally a small FIM-trained code "
            "model). Empty: `openLlm.model` if set, else the bundled Gemma 3 270M."
        ),
    )
    context_length: int = Field(
        4096, ge=256, le=131_072, description="Context window of the completion model."
    )
    max_tokens: int = Field(
        48, ge=1, le=1024, description="Most tokens generated per suggestion (small on a CPU)."
    )
    time_budget_ms: int = Field(
        1000,
        ge=0,
        le=60_000,
        description="After this long, generation stops at the next newline (0: no budget).",
    )
    lines_before: int = Field(256, ge=0, le=10_000, description="Lines above the cursor used.")
    lines_after: int = Field(64, ge=0, le=10_000, description="Lines below the cursor used.")
    window_tokens: int = Field(
        1536,
        ge=64,
        le=65_536,
        description="Token budget of the local window (3/4 before the cursor, 1/4 after).",
    )
    align_lines: int = Field(
        16,
        ge=1,
        le=1024,
        description=(
            "The window starts on a multiple of this many lines, so small cursor moves keep "
            "the cached prompt."
        ),
    )
    extra_context: bool = Field(
        True, description="Use chunks of other open and recently edited files as context."
    )
    extra_chunks: int = Field(16, ge=0, le=128, description="Most extra-context chunks kept.")
    chunk_lines: int = Field(64, ge=4, le=1024, description="Lines per extra-context chunk.")
    extra_tokens: int = Field(
        1024, ge=0, le=65_536, description="Token budget of the extra context."
    )
    reuse_chunk_tokens: int = Field(
        24,
        ge=0,
        le=4096,
        description=(
            "Cached runs of at least this many tokens are shifted into place when text above "
            "them changed, instead of being recomputed (0: prefix reuse only)."
        ),
    )
    warmup: bool = Field(
        True,
        description=(
            "Evaluate new extra context in the background when the editor is idle, so the next "
            "keystroke only pays for what changed."
        ),
    )
    max_chars_right_of_cursor: int = Field(
        8,
        ge=0,
        le=10_000,
        description="Skip automatic completion when more characters sit right of the cursor.",
    )
    max_file_kb: int = Field(
        1024, ge=1, le=1_000_000, description="Skip automatic completion in larger files."
    )
    disabled_languages: list[str] = Field(
        default_factory=list,
        description="Language ids (e.g. `markdown`, `plaintext`) with no completion.",
    )
    exclude_globs: list[str] = Field(
        default_factory=list, description="Files (globs) with no completion."
    )
    secret_globs: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SECRET_GLOBS),
        description="Files never used as context (keys, credentials, `.env`).",
    )
    fim_order: Literal["auto", "psm", "spm"] = Field(
        "auto",
        description=(
            "FIM layout: prefix-suffix-middle, or suffix first (`spm`, for models trained that "
            "way such as Codestral). `auto` picks `spm` for Codestral models."
        ),
    )


class PresetSettings(_Model):
    """What workspace presets (files committed in a repository) may do."""

    allow_workspace_model_paths: bool = Field(
        False,
        description=(
            "Let workspace presets (`.openllm/presets/*.json` from a cloned repository) load "
            "model files outside the workspace and `openLlm.presets.modelFolders`. User-level "
            "setting: a workspace cannot turn it on for itself."
        ),
    )
    model_folders: list[str] = Field(
        default_factory=list,
        description="Folders whose model files workspace presets may reference.",
    )


class ModelSettings(_Model):
    """Finding, choosing and downloading models (``openLlm/models/*``)."""

    folders: list[str] = Field(
        default_factory=list,
        description=(
            "Extra folders searched (recursively) for `.gguf` files when listing models, "
            "besides the Hugging Face cache and LM Studio's models folders."
        ),
    )
    lm_studio: bool = Field(
        True,
        description=(
            "Also list the models in LM Studio's folders (`~/.lmstudio/models`, "
            "`~/.cache/lm-studio/models`)."
        ),
    )
    accepted_licenses: list[str] = Field(
        default_factory=list,
        description=(
            'License ids accepted up front, e.g. `["gemma"]` for the bundled completion model '
            "or `llama3.1`: models under them download and load without asking. Other "
            "restricted licenses are asked once and remembered. Put it in your user settings."
        ),
    )
    allow_unverified_downloads: bool = Field(
        False,
        description=(
            "Download files the Hugging Face Hub gives no checksum for (SHA-256 or git blob "
            "SHA-1), which cannot be verified; refused otherwise. User setting only: honoured "
            "from the editor's user configuration (initializationOptions), refused from a "
            "workspace."
        ),
    )
    headroom_gb: float = Field(
        1.0,
        ge=0,
        le=1024,
        description=(
            "Memory (GiB) left free for the OS, the editor and other programs when checking "
            "which models fit (`openLlm/models/fit`, `recommend`)."
        ),
    )


_USER_ONLY = (
    " User setting only: honoured from the editor's user configuration (initializationOptions), "
    "refused from a workspace."
)


class RemoteChatSettings(_Model):
    """The chat role on a remote server."""

    enabled: bool = Field(
        False,
        description="Answer chats on the remote server (`openLlm.remote.url`)." + _USER_ONLY,
    )
    url: str = Field("", description="Base URL for chat only; empty: `openLlm.remote.url`.")
    model: str = Field("", description="Model name for chat; empty: `openLlm.remote.model`.")
    api_key_env: str = Field(
        "", description="API key variable for chat; empty: `openLlm.remote.apiKeyEnv`."
    )


class RemoteCompletionSettings(_Model):
    """The inline-completion role on a remote server."""

    enabled: bool = Field(
        False,
        description=(
            "Serve inline completions from the remote server. Local completion is usually "
            "faster on a laptop; turn this on for a large code model on the team's GPU box."
            + _USER_ONLY
        ),
    )
    url: str = Field("", description="Base URL for completion only; empty: `openLlm.remote.url`.")
    model: str = Field("", description="Model name for completion; empty: `openLlm.remote.model`.")
    api_key_env: str = Field(
        "", description="API key variable for completion; empty: `openLlm.remote.apiKeyEnv`."
    )
    api: Literal["auto", "infill", "suffix", "prefix"] = Field(
        "auto",
        description=(
            "Completion endpoint: llama-server's `/infill`, `/v1/completions` with `suffix` "
            "(vLLM, Ollama with FIM models), or prefix-only `/v1/completions`. `auto` "
            "detects it once per server."
        ),
    )
    timeout_ms: int = Field(
        3000,
        ge=100,
        le=120_000,
        description="A remote completion that has produced nothing after this long fails.",
    )
    fallback_to_local: bool = Field(
        True,
        description=(
            "When the remote server is unreachable (refused, DNS, TLS, timeout, 502-504), "
            "complete with the local completion model until it is back (status shows "
            "`local-fallback`)."
        ),
    )


class RemoteSettings(_Model):
    """An OpenAI-compatible inference server shared by a team (see README, Running for a
    team). Honoured only from user-level settings."""

    url: str = Field(
        "",
        description=(
            "Base URL of the team's OpenAI-compatible server (llama-server, vLLM, Ollama, "
            "LM Studio), e.g. `http://gpu-box:8080`; `/v1` is added. Enable roles with "
            "`openLlm.remote.chat.enabled` and `openLlm.remote.completion.enabled`." + _USER_ONLY
        ),
    )
    model: str = Field(
        "",
        description="Model name on the server (as `/v1/models` lists it); empty: its first model.",
    )
    api_key_env: str = Field(
        "",
        description=(
            "Name of the environment variable holding the API key (e.g. `OPENLLM_API_KEY`), "
            "sent as a Bearer token. The key itself never goes in settings, logs or chats."
        ),
    )
    connect_timeout_ms: int = Field(
        5000, ge=100, le=120_000, description="Connecting to the server fails after this long."
    )
    read_timeout_ms: int = Field(
        120_000,
        ge=1000,
        le=3_600_000,
        description=(
            "Longest wait for the next piece of a streamed chat answer (the first one "
            "included) before it fails with a timeout; the partial answer is kept."
        ),
    )
    context_length: int = Field(
        0,
        ge=0,
        le=10_485_760,
        description=(
            "Context window of the remote model; 0: from the server's model info "
            "(llama-server, vLLM, LM Studio), else 4096."
        ),
    )
    health_interval_s: int = Field(
        30,
        ge=0,
        le=3600,
        description="Seconds between health and latency checks (0: only at start and on use).",
    )
    chat: RemoteChatSettings = Field(
        default_factory=RemoteChatSettings,  # type: ignore[arg-type]
        description="The chat role on the remote server.",
    )
    completion: RemoteCompletionSettings = Field(
        default_factory=RemoteCompletionSettings,  # type: ignore[arg-type]
        description="The completion role on the remote server.",
    )


class Settings(_Model):
    """Everything under the ``openLlm`` settings section."""

    model: str = Field(
        "",
        description=(
            "Chat model: a local `.gguf` path, or a Hugging Face `owner/repo` with an optional "
            "`:file` or `:QUANT` (e.g. `bartowski/Qwen2.5-Coder-1.5B-Instruct-GGUF:Q4_K_M`) "
            "already in the local Hugging Face cache. Empty uses the bundled SmolLM2-135M demo."
        ),
    )
    seed: int = Field(
        -1, ge=-1, le=2**32 - 1, description="Sampling seed; -1 picks a new one per request."
    )
    log_level: Literal["error", "warning", "info", "debug"] = Field(
        "info",
        description=(
            "Level of the server logs shown in the editor's output window (stderr follows the "
            "`-v` flag; `--log-file` always gets debug)."
        ),
    )
    engine: EngineSettings = Field(
        default_factory=EngineSettings,  # type: ignore[arg-type]
        description="llama.cpp engine options.",
    )
    completion: CompletionSettings = Field(
        default_factory=CompletionSettings,  # type: ignore[arg-type]
        description="Inline code completion.",
    )
    presets: PresetSettings = Field(
        default_factory=PresetSettings,  # type: ignore[arg-type]
        description="Preset safety options.",
    )
    models: ModelSettings = Field(
        default_factory=ModelSettings,  # type: ignore[arg-type]
        description="Finding, choosing and downloading models.",
    )
    remote: RemoteSettings = Field(
        default_factory=RemoteSettings,  # type: ignore[arg-type]
        description="A team's OpenAI-compatible inference server (user settings only).",
    )


def _field_path(raw: Any, loc: tuple[int | str, ...]) -> tuple[str, ...]:
    """Return the longest prefix of ``loc`` that names keys present in ``raw``."""
    path: list[str] = []
    node = raw
    for part in loc:
        if not isinstance(node, dict) or not isinstance(part, str) or part not in node:
            break
        path.append(part)
        node = node[part]
    return tuple(path)


def _lookup(raw: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        raw = raw[part]
    return raw


def parse_settings(raw: Any) -> tuple[Settings, list[str]]:
    """Validate client settings; return the settings and one message per rejected field.

    Invalid or unknown fields are dropped (so they keep their defaults); valid ones are kept.
    Messages name the key and describe a rejected value by type and size, never echo it
    (a workspace controls both).
    """
    if raw is None:
        return Settings(), []
    if not isinstance(raw, dict):
        got = type(raw).__name__
        return Settings(), [f"{SECTION}: expected an object, got {got}; using defaults"]
    data = copy.deepcopy(raw)
    problems: list[str] = []
    for _ in range(16):
        try:
            return Settings.model_validate(data), problems
        except ValidationError as exc:
            by_path: dict[tuple[str, ...], list[str]] = {}
            for err in exc.errors():
                path = _field_path(data, tuple(err["loc"]))
                if path:
                    kind = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
                    by_path.setdefault(path, []).append(kind)
            if not by_path:
                break
            for path, messages in by_path.items():
                value = _lookup(data, path)
                parent = _lookup(data, path[:-1])
                del parent[path[-1]]
                dotted = ".".join(describe_key(part) for part in path)  # never echo values
                if messages == ["unknown setting"]:
                    problems.append(f"{SECTION}.{dotted}: unknown setting, ignored")
                else:
                    reason = " or ".join(dict.fromkeys(messages))
                    problems.append(
                        f"{SECTION}.{dotted}: {reason} (got {describe_value(value)}); "
                        "using the default"
                    )
    return Settings(), [*problems, f"{SECTION}: settings could not be read; using defaults"]


def settings_schema() -> dict[str, Any]:
    """Return the JSON schema of :class:`Settings` with camelCase keys."""
    return Settings.model_json_schema(by_alias=True)


def flat_settings() -> list[tuple[str, Any, str, str]]:
    """Return ``(dotted key, default, type, description)`` for every leaf setting."""
    rows: list[tuple[str, Any, str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{field.alias or name}"
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, key + ".")
                continue
            default = field.get_default(call_default_factory=True)
            rows.append((key, default, _type_name(ann), field.description or ""))

    walk(Settings, f"{SECTION}.")
    return rows


def _type_name(ann: Any) -> str:
    text = repr(ann).replace("typing.", "")
    return text.replace("<class '", "").replace("'>", "")
