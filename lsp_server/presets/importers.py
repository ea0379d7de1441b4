"""Import presets from LM Studio preset files, Ollama Modelfiles and our own export format.

Every importer returns an :class:`ImportResult`: the preset, the source keys or directives
that have no equivalent here (never dropped silently), and warnings (values clamped into
range, references that could not be mapped).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from lsp_server.core.errors import InvalidParams
from lsp_server.presets.models import Preset, Sampling, parse_model_ref, slugify

logger = logging.getLogger(__name__)

ImportFormat = Literal["auto", "openllm", "lmstudio", "ollama"]

_MAX_IMPORT_BYTES = 1_000_000


@dataclass
class ImportResult:
    """What an import produced.

    :param preset: the imported preset (not saved yet).
    :param unmapped: source keys or directives with no equivalent, e.g. ``"TEMPLATE"``.
    :param warnings: sentences about values that were changed or could not be used.
    :param source_format: ``"openllm"``, ``"lmstudio"`` or ``"ollama"``.
    """

    preset: Preset
    unmapped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source_format: str = "openllm"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (camelCase keys)."""
        return {
            "preset": self.preset.to_dict(),
            "unmapped": list(self.unmapped),
            "warnings": list(self.warnings),
            "sourceFormat": self.source_format,
        }


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


_SAMPLING_LIMITS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "topP": (0.0, 1.0),
    "topK": (0, 1000),
    "minP": (0.0, 1.0),
    "repeatPenalty": (0.5, 2.0),
    "presencePenalty": (-2.0, 2.0),
    "frequencyPenalty": (-2.0, 2.0),
    "maxTokens": (1, 32768),
}
_INT_KEYS = {"topK", "maxTokens", "seed"}


class _Builder:
    """Collects mapped values, unmapped keys and warnings, then builds the preset."""

    def __init__(self, source_format: str) -> None:
        self.source_format = source_format
        self.data: dict[str, Any] = {}
        self.sampling: dict[str, Any] = {}
        self.unmapped: list[str] = []
        self.warnings: list[str] = []

    def number(self, source_key: str, value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(str(value).strip())
            except ValueError:
                self.warnings.append(f"{source_key}: {value!r} is not a number; ignored")
                self.unmapped.append(source_key)
                return None
        number = float(value)
        if not math.isfinite(number):
            self.warnings.append(f"{source_key}: {value!r} is not a finite number; ignored")
            self.unmapped.append(source_key)
            return None
        return number

    def set_sampling(self, key: str, source_key: str, value: Any) -> None:
        number = self.number(source_key, value)
        if number is None:
            return
        if key == "seed":
            self.sampling["seed"] = None if number < 0 else min(int(number), 4_294_967_295)
            return
        lo, hi = _SAMPLING_LIMITS[key]
        if key == "topK" and number < 0:
            number = 0  # llama.cpp and LM Studio use <= 0 (or -1) for "disabled"
        clamped = min(max(number, lo), hi)
        if clamped != number:
            self.warnings.append(
                f"{source_key}: {value} is outside {lo:g}..{hi:g}; using {clamped:g}"
            )
        self.sampling[key] = int(clamped) if key in _INT_KEYS else float(clamped)

    def set_max_tokens(self, source_key: str, value: Any) -> None:
        number = self.number(source_key, value)
        if number is None:
            return
        if number <= 0:
            self.warnings.append(
                f"{source_key}: {value} means unlimited here; keeping the "
                f"default of {Sampling().max_tokens} tokens"
            )
            return
        self.set_sampling("maxTokens", source_key, number)

    def set_context_length(self, source_key: str, value: Any) -> None:
        number = self.number(source_key, value)
        if number is None:
            return
        if number <= 0:
            return  # 0 means "the model's default", which is what null means here
        clamped = int(min(max(number, 128), 1_048_576))
        if clamped != number:
            self.warnings.append(f"{source_key}: {value} is out of range; using {clamped}")
        self.data["contextLength"] = clamped

    def add_stop(self, source_key: str, value: Any) -> None:
        values = value if isinstance(value, list) else [value]
        stops: list[str] = self.sampling.setdefault("stop", [])
        for item in values:
            if not isinstance(item, str) or not item:
                self.warnings.append(f"{source_key}: ignored stop string {item!r}")
                continue
            if item not in stops and len(stops) < 32:
                stops.append(item[:200])

    def build(self, name: str, preset_id: str | None, description: str) -> ImportResult:
        clean_name = (name.strip() or "Imported preset")[:80]
        data: dict[str, Any] = {
            "id": preset_id or slugify(clean_name, fallback="imported"),
            "name": clean_name,
            "description": description[:500],
            **self.data,
        }
        if self.sampling:
            data["sampling"] = self.sampling
        if "tags" not in data:
            data["tags"] = ["imported", self.source_format]
        try:
            preset = Preset.model_validate(data)
        except ValidationError as exc:
            raise InvalidParams(
                f"the imported preset is invalid: {exc.errors()[0]['msg']}",
                data={"errors": _errors(exc)},
            ) from exc
        return ImportResult(preset, self.unmapped, self.warnings, self.source_format)


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]


def _checkbox(value: Any) -> tuple[bool, Any]:
    """LM Studio stores optional numbers as ``{"checked": bool, "value": x}``."""
    if isinstance(value, dict) and "value" in value:
        return bool(value.get("checked", True)), value["value"]
    return True, value


# ---------------------------------------------------------------------------
# LM Studio
# ---------------------------------------------------------------------------


def _lms_checkbox(target: str, off_value: float | None) -> Callable[[_Builder, str, Any], None]:
    def apply(b: _Builder, key: str, value: Any) -> None:
        checked, number = _checkbox(value)
        if not checked:
            if off_value is not None:
                b.sampling[target] = off_value
            elif target == "seed":
                b.sampling["seed"] = None
            return
        if target == "maxTokens":
            b.set_max_tokens(key, number)
        else:
            b.set_sampling(target, key, number)

    return apply


def _lms_plain(target: str) -> Callable[[_Builder, str, Any], None]:
    def apply(b: _Builder, key: str, value: Any) -> None:
        _, number = _checkbox(value)
        b.set_sampling(target, key, number)

    return apply


def _lms_system_prompt(b: _Builder, key: str, value: Any) -> None:
    if isinstance(value, str):
        b.data["systemPrompt"] = value
    else:
        b.warnings.append(f"{key}: expected text; ignored")
        b.unmapped.append(key)


def _lms_stop(b: _Builder, key: str, value: Any) -> None:
    b.add_stop(key, value)


def _lms_context(b: _Builder, key: str, value: Any) -> None:
    _, number = _checkbox(value)
    b.set_context_length(key, number)


_LMS_FIELDS: dict[str, Callable[[_Builder, str, Any], None]] = {
    "llm.prediction.temperature": _lms_plain("temperature"),
    "llm.prediction.systemPrompt": _lms_system_prompt,
    "llm.prediction.topKSampling": _lms_plain("topK"),
    "llm.prediction.topPSampling": _lms_checkbox("topP", 1.0),
    "llm.prediction.minPSampling": _lms_checkbox("minP", 0.0),
    "llm.prediction.repeatPenalty": _lms_checkbox("repeatPenalty", 1.0),
    "llm.prediction.maxPredictedTokens": _lms_checkbox("maxTokens", None),
    "llm.prediction.stopStrings": _lms_stop,
    "llm.prediction.seed": _lms_checkbox("seed", None),
    "llm.prediction.llama.presencePenalty": _lms_checkbox("presencePenalty", 0.0),
    "llm.prediction.llama.frequencyPenalty": _lms_checkbox("frequencyPenalty", 0.0),
    "llm.load.contextLength": _lms_context,
    "llm.load.seed": _lms_checkbox("seed", None),
}

_LMS_META_KEYS = {"name", "identifier", "changed", "description", "$schema"}

_LMS_OLD_INFERENCE: dict[str, Callable[[_Builder, str, Any], None]] = {
    "temp": lambda b, k, v: b.set_sampling("temperature", k, v),
    "top_k": lambda b, k, v: b.set_sampling("topK", k, v),
    "top_p": lambda b, k, v: b.set_sampling("topP", k, v),
    "min_p": lambda b, k, v: b.set_sampling("minP", k, v),
    "repeat_penalty": lambda b, k, v: b.set_sampling("repeatPenalty", k, v),
    "presence_penalty": lambda b, k, v: b.set_sampling("presencePenalty", k, v),
    "frequency_penalty": lambda b, k, v: b.set_sampling("frequencyPenalty", k, v),
    "seed": lambda b, k, v: b.set_sampling("seed", k, v),
    "n_predict": lambda b, k, v: b.set_max_tokens(k, v),
    "antiprompt": lambda b, k, v: b.add_stop(k, v),
    "pre_prompt": _lms_system_prompt,
}


def _is_lmstudio(data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    if "inference_params" in data or "load_params" in data:
        return True
    return any(isinstance(v, dict) and isinstance(v.get("fields"), list) for v in data.values())


def import_lmstudio(text: str, *, preset_id: str | None = None) -> ImportResult:
    """Import an LM Studio preset (0.3+ ``fields`` lists, or the older flat 0.2 format).

    :param text: the preset file's JSON text.
    :param preset_id: the id to give the preset (default: from its identifier or name).
    :returns: the preset plus keys that do not map (e.g. ``llm.prediction.promptTemplate``).
    :raises InvalidParams: when the text is not an LM Studio preset.
    """
    data = _load_json(text, "LM Studio preset")
    if not _is_lmstudio(data):
        raise InvalidParams(
            'this is not an LM Studio preset: expected "operation"/"load" '
            'field lists or "inference_params"'
        )
    b = _Builder("lmstudio")
    if "inference_params" in data or "load_params" in data:
        _import_lmstudio_v2(data, b)
    else:
        for section, body in data.items():
            if section in _LMS_META_KEYS:
                continue
            fields = body.get("fields") if isinstance(body, dict) else None
            if not isinstance(fields, list):
                b.unmapped.append(section)
                continue
            for entry in fields:
                if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                    b.warnings.append(f"{section}: ignored a field without a key")
                    continue
                key = entry["key"]
                handler = _LMS_FIELDS.get(key)
                if handler is None:
                    b.unmapped.append(key)
                else:
                    handler(b, key, entry.get("value"))
    for key in data:
        if (
            key not in _LMS_META_KEYS
            and key not in ("inference_params", "load_params")
            and not (isinstance(data[key], dict) and "fields" in data[key])
            and key not in b.unmapped
        ):
            b.unmapped.append(key)
    name = data.get("name") if isinstance(data.get("name"), str) else ""
    identifier = data.get("identifier")
    if preset_id is None and isinstance(identifier, str) and identifier.strip():
        preset_id = slugify(re.split(r"[:/]", identifier)[-1], fallback="imported")
    if not name and isinstance(identifier, str):
        name = re.split(r"[:/]", identifier)[-1].replace("-", " ").replace("_", " ").strip()
    desc = data.get("description")
    description = desc if isinstance(desc, str) else "Imported from LM Studio."
    return b.build(str(name or "LM Studio preset"), preset_id, description)


def _import_lmstudio_v2(data: dict[str, Any], b: _Builder) -> None:
    inference = data.get("inference_params")
    if isinstance(inference, dict):
        for key, value in inference.items():
            handler = _LMS_OLD_INFERENCE.get(key)
            if handler is None:
                b.unmapped.append(f"inference_params.{key}")
            else:
                handler(b, f"inference_params.{key}", value)
    load = data.get("load_params")
    if isinstance(load, dict):
        for key, value in load.items():
            if key == "n_ctx":
                b.set_context_length("load_params.n_ctx", value)
            else:
                b.unmapped.append(f"load_params.{key}")


# ---------------------------------------------------------------------------
# Ollama Modelfile
# ---------------------------------------------------------------------------

_OLLAMA_PARAMS: dict[str, str] = {
    "temperature": "temperature",
    "top_k": "topK",
    "top_p": "topP",
    "min_p": "minP",
    "repeat_penalty": "repeatPenalty",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
}
_KNOWN_DIRECTIVES = {
    "FROM",
    "SYSTEM",
    "PARAMETER",
    "TEMPLATE",
    "ADAPTER",
    "LICENSE",
    "MESSAGE",
    "REQUIRES",
}


@dataclass(frozen=True)
class _Instruction:
    lineno: int
    name: str  # upper-case instruction, e.g. "PARAMETER"
    head: str  # PARAMETER's name or MESSAGE's role; "" for other instructions
    value: str  # the argument with quotes removed


def _modelfile_instructions(text: str) -> list[_Instruction]:
    """Split a Modelfile into instructions, reading quoted and triple-quoted arguments."""
    out: list[_Instruction] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        stripped = lines[i].strip()
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split(None, 1)
        name = parts[0].upper()
        arg = parts[1] if len(parts) > 1 else ""
        head = ""
        if name in ("PARAMETER", "MESSAGE"):
            sub = arg.split(None, 1)
            head = sub[0] if sub else ""
            arg = sub[1] if len(sub) > 1 else ""
        value, i = _modelfile_value(arg, lines, i)
        out.append(_Instruction(lineno, name, head, value))
    return out


def _modelfile_value(arg: str, lines: list[str], i: int) -> tuple[str, int]:
    """Read an argument: ``\"\"\"multi-line\"\"\"``, ``"quoted"`` or the rest of the line."""
    arg = arg.strip()
    if arg.startswith('"""'):
        body = arg[3:]
        if '"""' in body:
            return body[: body.index('"""')], i
        collected = [body]
        while i < len(lines):
            line = lines[i]
            i += 1
            if '"""' in line:
                collected.append(line[: line.index('"""')])
                break
            collected.append(line)
        return "\n".join(collected).strip("\n"), i
    if len(arg) >= 2 and arg.startswith('"') and arg.endswith('"'):
        try:
            decoded: str = json.loads(arg)
            return decoded, i
        except json.JSONDecodeError:
            return arg[1:-1], i
    return arg, i


def _ollama_from(b: _Builder, value: str, base_dir: Path | None) -> None:
    ref = value.strip()
    lowered = ref.lower()
    for prefix in ("hf.co/", "huggingface.co/", "https://huggingface.co/"):
        if lowered.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    else:
        if lowered.endswith(".gguf") or ref.startswith((".", "/", "~")):
            path = Path(ref).expanduser()
            if base_dir is not None and not path.is_absolute():
                path = (base_dir / path).resolve()
            ref = str(path)
        elif "/" not in ref:
            b.warnings.append(
                f'FROM {value}: "{value}" is an Ollama library model, which '
                "cannot be loaded here; pick a .gguf file or a Hugging Face "
                "repository for this preset"
            )
            b.unmapped.append(f"FROM {value}")
            return
    try:
        parse_model_ref(ref)
    except ValueError as exc:
        b.warnings.append(f"FROM {value}: {exc}")
        b.unmapped.append(f"FROM {value}")
        return
    b.data["model"] = ref


def _short(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


def import_modelfile(
    text: str,
    *,
    preset_id: str | None = None,
    name: str | None = None,
    base_dir: Path | None = None,
) -> ImportResult:
    """Import an Ollama Modelfile.

    FROM becomes the model reference (``.gguf`` paths and ``hf.co/owner/repo`` references;
    Ollama library names cannot be used and are reported), SYSTEM the system prompt and
    PARAMETER temperature/top_k/top_p/min_p/repeat_penalty/seed/num_predict/stop/num_ctx the
    matching settings. TEMPLATE, ADAPTER, LICENSE, MESSAGE and other parameters are listed in
    ``unmapped``.

    :param text: the Modelfile's text.
    :param preset_id: the id to give the preset (default: from the name).
    :param name: the preset name (default: "Imported Modelfile").
    :param base_dir: the Modelfile's folder; relative FROM paths are resolved against it.
    :raises InvalidParams: when the text has no Modelfile instructions.
    """
    b = _Builder("ollama")
    instructions = _modelfile_instructions(text)
    if not any(ins.name in _KNOWN_DIRECTIVES for ins in instructions):
        raise InvalidParams(
            "this is not an Ollama Modelfile: no FROM, SYSTEM or PARAMETER instructions found"
        )
    for ins in instructions:
        instruction, arg = ins.name, ins.value
        if instruction == "FROM":
            _ollama_from(b, arg, base_dir)
        elif instruction == "SYSTEM":
            b.data["systemPrompt"] = arg
        elif instruction == "PARAMETER":
            pname, pvalue = ins.head.lower(), arg
            source = f"PARAMETER {pname}"
            if pname in _OLLAMA_PARAMS:
                b.set_sampling(_OLLAMA_PARAMS[pname], source, pvalue)
            elif pname == "num_predict":
                b.set_max_tokens(source, pvalue)
            elif pname == "num_ctx":
                b.set_context_length(source, pvalue)
            elif pname == "stop":
                b.add_stop(source, pvalue)
            else:
                b.unmapped.append(f"{source} {_short(pvalue, 30)}".strip())
        elif instruction in ("TEMPLATE", "LICENSE"):
            b.unmapped.append(instruction)
        elif instruction in _KNOWN_DIRECTIVES:
            b.unmapped.append(" ".join(p for p in (instruction, ins.head, _short(arg)) if p))
        else:
            b.warnings.append(f"line {ins.lineno}: unknown instruction {instruction}")
            b.unmapped.append(f"{instruction} {_short(arg)}".strip())
    return b.build(name or "Imported Modelfile", preset_id, "Imported from an Ollama Modelfile.")


# ---------------------------------------------------------------------------
# Our own format, and format detection
# ---------------------------------------------------------------------------


def _load_json(text: str, what: str) -> Any:
    if len(text) > _MAX_IMPORT_BYTES:
        raise InvalidParams(f"the {what} is too large ({len(text)} characters)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidParams(
            f"the {what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc


def import_openllm(text: str, *, preset_id: str | None = None) -> ImportResult:
    """Import a preset exported by this server (see ``PresetManager.export``).

    :param text: the exported JSON text.
    :param preset_id: replace the preset's id with this one.
    :raises InvalidParams: when the JSON is invalid or does not validate as a preset.
    """
    data = _load_json(text, "preset")
    if not isinstance(data, dict):
        raise InvalidParams("a preset must be a JSON object")
    if preset_id is not None:
        data["id"] = preset_id
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidParams(
            f"invalid preset: {where}: {first['msg']}", data={"errors": _errors(exc)}
        ) from exc
    return ImportResult(preset, [], [], "openllm")


def detect_format(
    text: str, filename: str | None = None
) -> Literal["openllm", "lmstudio", "ollama"]:
    """Guess the format of an import file.

    :param text: the file's text.
    :param filename: its name, if known (``Modelfile`` and ``*.modelfile`` mean Ollama).
    :raises InvalidParams: when the format cannot be recognised.
    """
    if filename is not None:
        base = Path(filename).name.lower()
        if base == "modelfile" or base.endswith(".modelfile") or base.startswith("modelfile."):
            return "ollama"
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InvalidParams(
                f"the file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
            ) from exc
        if _is_lmstudio(data):
            return "lmstudio"
        if isinstance(data, dict):
            return "openllm"
        raise InvalidParams("unrecognised preset file: expected a JSON object")
    if re.search(r"^\s*(FROM|SYSTEM|PARAMETER)\s", stripped, re.IGNORECASE | re.MULTILINE):
        return "ollama"
    raise InvalidParams(
        "unrecognised preset file: expected an Open LLM LSP or LM Studio "
        "preset (JSON) or an Ollama Modelfile"
    )


def import_preset_text(
    text: str,
    *,
    format: ImportFormat = "auto",
    filename: str | None = None,
    preset_id: str | None = None,
    base_dir: Path | None = None,
) -> ImportResult:
    """Import a preset from text in any supported format.

    :param text: the file's text.
    :param format: ``"auto"`` (detect), ``"openllm"``, ``"lmstudio"`` or ``"ollama"``.
    :param filename: the file's name, used for detection and as the Modelfile preset's name.
    :param preset_id: the id to give the preset.
    :param base_dir: folder for resolving relative paths (Modelfile FROM).
    :raises InvalidParams: when the text cannot be imported.
    """
    text = text.lstrip("\ufeff")
    kind = detect_format(text, filename) if format == "auto" else format
    logger.info("importing a %s preset%s", kind, f" from {filename}" if filename else "")
    if kind == "lmstudio":
        return import_lmstudio(text, preset_id=preset_id)
    if kind == "ollama":
        name = None
        if filename:
            stem = Path(filename).stem
            if stem.lower() not in ("modelfile", ""):
                name = stem.replace("-", " ").replace("_", " ")
        return import_modelfile(text, preset_id=preset_id, name=name, base_dir=base_dir)
    if kind == "openllm":
        return import_openllm(text, preset_id=preset_id)
    raise InvalidParams(f"unknown import format {kind!r}")


def import_preset_file(
    path: Path, *, format: ImportFormat = "auto", preset_id: str | None = None
) -> ImportResult:
    """Read a file and import it (see :func:`import_preset_text`).

    :param path: the file to import.
    :param format: the format, or ``"auto"`` to detect it.
    :param preset_id: the id to give the preset.
    :raises InvalidParams: when the file cannot be read or imported.
    """
    try:
        if path.stat().st_size > _MAX_IMPORT_BYTES:
            raise InvalidParams(f"{path} is too large to be a preset")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParams(f"cannot read {path}: {exc}") from exc
    return import_preset_text(
        text, format=format, filename=path.name, preset_id=preset_id, base_dir=path.parent
    )
