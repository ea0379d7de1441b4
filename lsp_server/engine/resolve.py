"""Turn an ``openLlm.model`` value into a local GGUF file, without touching the network.

Accepted forms: empty (the bundled model of the role), a path to a ``.gguf`` file,
or a Hugging Face reference ``owner/repo``, ``owner/repo:QUANT`` or
``owner/repo:file.gguf`` that is already in the local Hugging Face cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lsp_server.core.errors import ModelNotFound

HF_REF = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?::(?P<sel>.+))?$")
PREFERRED_QUANTS = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q8_0", "Q6_K", "Q5_K_S", "Q3_K_M")


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference and the local file it points at."""

    spec: str
    path: Path
    source: str  # "bundled", "path" or "huggingface"
    bundled: bool = False


def resolve_model(spec: str, role: str = "chat") -> ResolvedModel:
    """Resolve ``spec`` for ``role``; raise :class:`ModelNotFound` with a fix when missing."""
    spec = spec.strip()
    if not spec:
        return _bundled(role)
    match = HF_REF.match(spec)
    hf_file = match is not None and match.group("sel") is not None  # owner/repo:file.gguf
    looks_like_path = (
        (spec.lower().endswith(".gguf") and not hf_file)
        or spec.startswith(("/", "~", ".", "\\"))
        or re.match(r"^[A-Za-z]:[\\/]", spec) is not None
    )
    if looks_like_path or match is None:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelNotFound(
                f"model file not found: {path}. Check openLlm.model (a .gguf path, or a "
                "Hugging Face owner/repo[:QUANT] already downloaded).",
                data={"spec": spec},
            )
        return ResolvedModel(spec, path.resolve(), "path")
    return _from_hf_cache(spec, match.group("repo"), match.group("sel"))


def _bundled(role: str) -> ResolvedModel:
    from lsp_server.models import bundled

    path = bundled.bundled_gemma_path() if role == "completion" else bundled.bundled_smollm2_path()
    return ResolvedModel("", path, "bundled", bundled=True)


def _from_hf_cache(spec: str, repo: str, selector: str | None) -> ResolvedModel:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ModelNotFound(f"huggingface_hub is not installed, cannot resolve {spec}") from exc
    try:
        folder = Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError) as exc:
        raise ModelNotFound(
            f"{repo} is not in the local Hugging Face cache. Download it first "
            f"(`open-llm-lsp models download {spec}`), or set openLlm.model to a .gguf path.",
            data={"spec": spec},
        ) from exc
    files = sorted(p for p in folder.rglob("*.gguf") if "mmproj" not in p.name.lower())
    if not files:
        raise ModelNotFound(f"{repo} is cached but holds no .gguf file", data={"spec": spec})
    chosen = _choose(files, selector)
    if chosen is None:
        names = ", ".join(p.name for p in files)
        raise ModelNotFound(
            f"{repo} has no cached file matching '{selector}'. Cached: {names}",
            data={"spec": spec, "files": [p.name for p in files]},
        )
    return ResolvedModel(spec, chosen, "huggingface")


def _norm(text: str) -> str:
    return re.sub(r"[-_.]", "", text.lower())


def _choose(files: list[Path], selector: str | None) -> Path | None:
    first_shards = [
        p for p in files if not re.search(r"-\d{5}-of-\d{5}", p.name) or "-00001-of-" in p.name
    ]
    if selector:
        if selector.lower().endswith(".gguf"):
            return next((p for p in files if p.name == selector or str(p).endswith(selector)), None)
        want = _norm(selector)
        hits = [p for p in first_shards if want in _norm(p.stem)]
        return hits[0] if hits else None
    if len(first_shards) == 1:
        return first_shards[0]
    for quant in PREFERRED_QUANTS:
        for p in first_shards:
            if _norm(quant) in _norm(p.stem):
                return p
    return first_shards[0] if first_shards else None
