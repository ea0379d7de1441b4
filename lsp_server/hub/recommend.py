"""The best pair of models for a machine: :func:`recommend`, over the curated catalogue.

The catalogue itself is data (:mod:`lsp_server.models.catalog`, ``catalog.json``):
completion models are FIM-trained code models (Qwen2.5-Coder) that see the code after the
cursor; chat models cover Gemma 3 (including the 27B QAT Q4_0 GGUF of the origin
tutorial), Llama 3.x, Mistral, DeepSeek and Qwen. Each entry carries its license id, its
architecture numbers (so memory can be estimated without reading a header) and the sizes
of its common quantizations as published, so :func:`recommend` never touches the network.
Here each entry becomes a :class:`CatalogEntry`, which adds what the hub knows: the
license's name and terms, the memory shape, and the files as :func:`fit` candidates.
``open-llm-lsp models fit OWNER/REPO`` reads the real files.

Choosing (pure, like :func:`lsp_server.hardware.select.fit`):

1. Completion first: for each completion model, :func:`fit` picks its best quantization;
   models that do not fit, or that would be slow on this CPU, are left out; the
   highest tier wins. On the CPU (or partly on it) a model must read its weights for
   every token, so its weights may not exceed ``CPU_BYTES_PER_CORE[role]`` × usable
   cores (completion has to keep up with typing).
2. Then chat, on what the completion model leaves free (the same file is shared).
3. Ties: an open license (no acceptance needed), better placement, smaller file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lsp_server.hardware.estimate import ModelShape
from lsp_server.hardware.probe import GpuInfo, HardwareReport
from lsp_server.hardware.select import CandidateFile, FitOptions, FitRow, fit
from lsp_server.hub.licenses import LicenseInfo, license_info
from lsp_server.models.catalog import CatalogModel, Role, catalog
from lsp_server.models.quant import quality_rank

__all__ = [
    "CATALOG",
    "CPU_BYTES_CAP",
    "CPU_BYTES_PER_CORE",
    "CatalogEntry",
    "Pick",
    "Recommendation",
    "catalog_entry",
    "cpu_budget",
    "recommend",
]

GB = 1_000_000_000
GIB = 1 << 30
#: Most weight bytes a CPU-run model may have per usable core, by role (tokens/s ≈
#: memory bandwidth / weight bytes; a desktop core streams roughly 5-10 GB/s).
CPU_BYTES_PER_CORE: dict[str, int] = {"completion": int(0.6 * GB), "chat": int(1.0 * GB)}
#: Completion models below this tier are only used when nothing better fits.
MIN_COMPLETION_TIER = 2
#: ... capped: memory bandwidth stops growing with more cores (dual-channel DDR5 ≈ 60 GB/s).
CPU_BYTES_CAP: dict[str, int] = {"completion": int(2.0 * GB), "chat": int(8 * GB)}


@dataclass(frozen=True)
class CatalogEntry(CatalogModel):
    """A catalogue model as the hub sees it: its license, memory shape and fit candidates."""

    @classmethod
    def of(cls, model: CatalogModel) -> CatalogEntry:
        """The entry for one model of :func:`lsp_server.models.catalog.catalog`."""
        return cls(**{f.name: getattr(model, f.name) for f in dataclasses.fields(model)})

    @property
    def shape(self) -> ModelShape:
        """Architecture numbers for the memory estimate."""
        return ModelShape(
            n_layers=self.layers,
            n_embd=self.embd,
            n_vocab=self.vocab,
            kv_elements_per_token=self.layers * self.kv_heads * 2 * self.head_dim,
            n_merges=self.vocab if self.family in ("qwen", "llama") else 0,
            context_length=self.context,
        )

    @property
    def license_info(self) -> LicenseInfo:
        """The license, with its name and link."""
        info = license_info(self.license, repo=self.repo, source="catalog")
        assert info is not None
        return info

    def candidates(self) -> list[CandidateFile]:
        """The files as :func:`fit` candidates (catalogue shape, published sizes)."""
        return [
            CandidateFile(
                name=f.file,
                size=f.size,
                quant=f.quant,
                shape=self.shape,
                parameter_count=int(self.parameters * 1e9),
            )
            for f in self.files
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "id": self.id,
            "name": self.name,
            "repo": self.repo,
            "role": self.role,
            "family": self.family,
            "license": self.license_info.to_dict(),
            "parameters": self.parameters,
            "sizeClass": self.size_class,
            "tier": self.tier,
            "fim": self.fim,
            "gated": self.gated,
            "contextLength": self.context,
            "notes": self.notes,
            "files": [{"quant": f.quant, "file": f.file, "size": f.size} for f in self.files],
        }


#: The catalogue (``lsp_server/models/catalog.json``), entry by entry.
CATALOG: tuple[CatalogEntry, ...] = tuple(CatalogEntry.of(m) for m in catalog())


def catalog_entry(repo_or_id: str, role: str | None = None) -> CatalogEntry | None:
    """The catalogue entry for a repository (``owner/repo``, case-insensitive) or an id."""
    key = repo_or_id.split(":", 1)[0].lower()
    for model in CATALOG:
        if (model.repo.lower() == key or model.id == key) and (role is None or model.role == role):
            return model
    for model in CATALOG:
        if model.repo.lower() == key or model.id == key:
            return model
    return None


# ---------------------------------------------------------------------------------------
# recommend()
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pick:
    """The model chosen for one role, the fit row of its chosen file, and why."""

    role: Role
    model: CatalogEntry
    row: FitRow
    reason: str

    @property
    def spec(self) -> str:
        """``owner/repo:QUANT`` for ``openLlm.model`` / ``openLlm.completion.model``."""
        return self.model.spec(self.row.quant or "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "role": self.role,
            "model": self.model.to_dict(),
            "spec": self.spec,
            "file": self.row.file,
            "quant": self.row.quant,
            "size": self.row.size,
            "fit": self.row.to_dict(),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Recommendation:
    """The best completion and chat models for a machine, with an explanation."""

    completion: Pick | None
    chat: Pick | None
    explanation: tuple[str, ...]
    considered: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "completion": self.completion.to_dict() if self.completion else None,
            "chat": self.chat.to_dict() if self.chat else None,
            "explanation": list(self.explanation),
            "considered": list(self.considered),
        }


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def cpu_budget(role: str, cores: int) -> int:
    """Most weight bytes a model of ``role`` may read per token on the CPU."""
    per_core, cap = CPU_BYTES_PER_CORE[role], CPU_BYTES_CAP[role]
    return min(per_core * max(1, cores), cap)


def _cpu_bytes(row: FitRow) -> int:
    """Weight bytes read by the CPU per token: all for CPU, the rest for partial offload."""
    if row.placement == "gpu":
        return 0
    if row.placement == "partial" and row.n_layers:
        return int(row.size * (row.n_layers - row.gpu_layers) / row.n_layers)
    return row.size


def _without(hw: HardwareReport, row: FitRow) -> HardwareReport:
    """The machine with ``row``'s memory taken (what a second model may use)."""
    avail = None if hw.available_memory is None else max(0, hw.available_memory - row.ram_bytes)
    gpus: list[GpuInfo] = []
    left = row.vram_bytes
    for gpu in hw.gpus:
        free = gpu.free_memory if gpu.free_memory is not None else gpu.total_memory
        if free is not None and left > 0:
            take = min(left, free)
            free -= take
            left -= take
        gpus.append(dataclasses.replace(gpu, free_memory=free))
    if hw.unified_memory and avail is not None:
        avail = max(0, avail - row.vram_bytes)
    return dataclasses.replace(hw, available_memory=avail, gpus=tuple(gpus))


_PLACE = {"gpu": 3, "partial": 2, "cpu": 1, "none": 0}


@dataclass
class _Search:
    hw: HardwareReport
    options: dict[str, FitOptions]
    considered: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @property
    def cores(self) -> int:
        return self.hw.effective_cores or 1

    def quality(self, row: FitRow) -> int:
        """Quality rank, capped at Q4_K_M on CPU-only machines with few cores (as fit())."""
        rank = quality_rank(row.quant)
        few = not (self.hw.gpus and self.hw.gpu_offload) and self.cores <= 4
        return min(rank, quality_rank("Q4_K_M")) if few else rank

    def note(self, role: str, model: CatalogEntry, verdict: str, reason: str) -> None:
        key = (role, model.id)
        order = {"fits": 2, "too slow": 1, "doesn't fit": 0}
        old = self.considered.get(key)
        if old is None or order[verdict] > order[old["verdict"]]:
            self.considered[key] = {
                "role": role, "id": model.id, "repo": model.repo, "verdict": verdict,
                "reason": reason,
            }  # fmt: skip

    def fast(self, role: str, model: CatalogEntry, row: FitRow) -> bool:
        cpu, budget = _cpu_bytes(row), cpu_budget(role, self.cores)
        if cpu <= budget:
            self.note(role, model, "fits", f"{row.quant} {row.label}, {row.context} tokens")
            return True
        self.note(
            role, model, "too slow",
            f"{row.file} would read {_gib(cpu)} per token on {self.cores} CPU core(s) "
            f"(limit {_gib(budget)} for {role})",
        )  # fmt: skip
        return False

    def completion_rows(self, models: Iterable[CatalogEntry]) -> list[tuple[CatalogEntry, FitRow]]:
        out = []
        for model in models:
            result = fit(self.hw, model.candidates(), self.options["completion"])
            if result.choice is None:
                self.note("completion", model, "doesn't fit", result.message)
            for row in result.rows:
                if row.fits and self.fast("completion", model, row):
                    out.append((model, row))
        return out

    def chat_row(self, hw: HardwareReport, model: CatalogEntry) -> FitRow | None:
        result = fit(hw, model.candidates(), self.options["chat"])
        if result.choice is None:
            self.note("chat", model, "doesn't fit", result.message)
            return None
        return result.choice if self.fast("chat", model, result.choice) else None


def recommend(
    hardware: HardwareReport,
    *,
    completion_context: int = 4096,
    chat_context: int = 4096,
    ram_headroom: int = 1 * GIB,
    kv_cache_type: str = "f16",
    catalog: Sequence[CatalogEntry] = CATALOG,
) -> Recommendation:
    """Choose a completion model and a chat model for ``hardware`` from the catalogue.

    Pure: no network, no file reads. Every completion file that fits and stays fast is
    paired with the best chat file that fits in what it leaves (or with the same file,
    loaded once). The pair with the best chat model wins, then the best completion
    model; placement (full GPU first), quantization, open licenses and size break ties.

    :param hardware: the machine (:func:`lsp_server.hardware.probe.probe` or synthetic).
    :param completion_context: the completion model's context length.
    :param chat_context: the chat model's context length.
    :param ram_headroom: memory left free for the OS and the editor.
    :param kv_cache_type: KV cache element type (``f16``, ``q8_0``...).
    :param catalog: the models to choose from.
    """

    def options(ctx: int) -> FitOptions:
        return FitOptions(
            desired_context=ctx,
            min_context=ctx,
            ram_headroom=ram_headroom,
            kv_cache_type=kv_cache_type,
        )

    search = _Search(
        hardware, {"completion": options(completion_context), "chat": options(chat_context)}
    )
    chat_models = [m for m in catalog if m.role == "chat"]
    best: tuple[tuple[Any, ...], Pick | None, Pick | None] | None = None
    pairs: list[tuple[tuple[CatalogEntry, FitRow] | None, HardwareReport]] = [
        (c, _without(hardware, c[1]))
        for c in search.completion_rows(m for m in catalog if m.role == "completion")
    ]
    # Completion below the 1.5B tier only when nothing better fits and stays fast.
    if any(c is not None and c[0].tier >= MIN_COMPLETION_TIER for c, _ in pairs):
        pairs = [(c, r) for c, r in pairs if c is not None and c[0].tier >= MIN_COMPLETION_TIER]
    if not pairs:
        pairs = [(None, hardware)]
    for comp, rest in pairs:
        for model in chat_models:
            shared = comp is not None and model.repo == comp[0].repo
            if shared:
                assert comp is not None
                same = [r for r in fit(hardware, model.candidates(), search.options["chat"]).rows
                        if r.file == comp[1].file]  # fmt: skip
                row = same[0] if same and same[0].fits else None
                if row is not None and not search.fast("chat", model, row):
                    row = None
            else:
                row = search.chat_row(rest, model)
            if row is None:
                continue
            key = _pair_key(search, comp, (model, row))
            if best is None or key > best[0]:
                comp_pick = None
                if comp is not None:
                    comp_pick = Pick("completion", comp[0], comp[1], _why(comp[0], comp[1]))
                best = (key, comp_pick, Pick("chat", model, row, _why(model, row)))
        if best is None and comp is not None:  # no chat model fits at all
            key = _pair_key(search, comp, None)
            best = (key, Pick("completion", comp[0], comp[1], _why(comp[0], comp[1])), None)
    completion, chat = (best[1], best[2]) if best else (None, None)
    if completion is None and pairs[0][0] is not None:
        comp = max((p[0] for p in pairs if p[0]), key=lambda c: _pair_key(search, c, None))
        completion = Pick("completion", comp[0], comp[1], _why(comp[0], comp[1]))
    lines = _explain(hardware, search.cores, completion, chat)
    return Recommendation(completion, chat, tuple(lines), tuple(search.considered.values()))


def _pair_key(
    search: _Search,
    comp: tuple[CatalogEntry, FitRow] | None,
    chat: tuple[CatalogEntry, FitRow] | None,
) -> tuple[Any, ...]:
    def part(item: tuple[CatalogEntry, FitRow] | None) -> tuple[int, int, int, int]:
        if item is None:
            return (-1, -1, -1, 0)
        model, row = item
        cpu = -(_cpu_bytes(row) // (256 << 20))  # fewer weight bytes on the CPU: faster
        return (model.tier, _PLACE[row.placement], search.quality(row), cpu)

    chat_part, comp_part = part(chat), part(comp)
    open_licenses = sum(1 for x in (comp, chat) if x and not x[0].license_info.restricted)
    shared = comp is not None and chat is not None and comp[1].file == chat[1].file
    size = sum(x[1].size for x in (comp, chat) if x) - (chat[1].size if shared and chat else 0)
    return (
        chat_part[0], chat_part[1], chat_part[3], comp_part[0], comp_part[1], chat_part[2],
        comp_part[2], open_licenses, shared, -size,
    )  # fmt: skip


def _why(model: CatalogEntry, row: FitRow) -> str:
    return f"{model.name} {row.quant} ({_gib(row.size)}): {row.label}, {row.context}-token context"


def _explain(
    hardware: HardwareReport, cores: int, completion: Pick | None, chat: Pick | None
) -> list[str]:
    lines: list[str] = []
    gpu_ok = bool(hardware.gpus and hardware.gpu_offload)
    gpu = f"{len(hardware.gpus)} GPU(s) with {_gib(hardware.gpu_free_memory)} free" if gpu_ok \
        else "no usable GPU"  # fmt: skip
    avail = hardware.available_memory
    lines.append(
        f"This machine: {cores} usable core(s), "
        f"{_gib(avail) if avail is not None else 'unknown memory'} available, {gpu}."
    )
    for pick, what in ((completion, "Completion"), (chat, "Chat")):
        if pick is None:
            lines.append(f"{what}: nothing in the catalogue fits this machine.")
            continue
        lic = pick.model.license_info
        terms = (
            f"License: {lic.name} ({lic.url}), which you must accept before downloading"
            if lic.restricted
            else f"License: {lic.name}, no acceptance needed"
        )
        extra = " FIM-trained: it sees the code after the cursor." if pick.model.fim else ""
        gated = (
            " The Hub asks for a token with access granted (HF_TOKEN)." if pick.model.gated else ""
        )
        lines.append(f"{what}: {pick.reason}.{extra} {terms}.{gated}")
    if completion and chat:
        if completion.row.file == chat.row.file:
            lines.append("Both roles use the same file: it is loaded once.")
        else:
            ram = completion.row.ram_bytes + chat.row.ram_bytes
            vram = completion.row.vram_bytes + chat.row.vram_bytes
            gpu_part = f" and {_gib(vram)} of GPU memory" if vram else ""
            lines.append(f"Together they need about {_gib(ram)} of RAM{gpu_part}.")
    if not gpu_ok:
        lines.append(
            "On the CPU every token reads the whole model, so larger models are left out to "
            f"stay fast (here: completion ≤ {_gib(cpu_budget('completion', cores))}, chat ≤ "
            f"{_gib(cpu_budget('chat', cores))} of weights)."
        )
    return lines
