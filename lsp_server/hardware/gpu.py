"""GPU probes: NVIDIA (NVML, else nvidia-smi), AMD (rocm-smi), Apple Silicon (unified memory).

Each probe degrades gracefully (no GPU, no tool, a failing tool: an empty list and a note);
commands go through an injectable :data:`~lsp_server.hardware.commands.Runner`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsp_server.hardware.commands import Runner, default_runner, sysctl_int

if TYPE_CHECKING:
    from lsp_server.hardware.probe import MemoryInfo

__all__ = ["APPLE_GPU_FRACTION", "GpuInfo", "gpu_info", "llama_gpu_offload"]

log = logging.getLogger(__name__)

#: Share of unified memory Metal lets one process use (recommendedMaxWorkingSetSize).
APPLE_GPU_FRACTION = 0.75


@dataclass(frozen=True)
class GpuInfo:
    """One GPU (or Apple's unified-memory GPU) usable by llama.cpp."""

    vendor: str  # "nvidia", "amd", "apple"
    name: str
    total_memory: int | None
    free_memory: int | None
    source: str  # "nvml", "nvidia-smi", "rocm-smi", "sysctl", "synthetic"
    unified: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "vendor": self.vendor,
            "name": self.name,
            "totalMemory": self.total_memory,
            "freeMemory": self.free_memory,
            "source": self.source,
            "unified": self.unified,
        }


def _nvml_gpus() -> list[GpuInfo] | None:
    try:
        import pynvml  # type: ignore[import-not-found,unused-ignore]
    except Exception:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        log.debug("NVML init failed: %s", exc)
        return None
    gpus: list[GpuInfo] = []
    try:
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):
                name = name.decode("utf-8", errors="replace")
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(GpuInfo("nvidia", str(name), int(mem.total), int(mem.free), "nvml"))
    except Exception as exc:
        log.debug("NVML query failed: %s", exc)
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return gpus


def _nvidia_smi_gpus(run: Runner) -> list[GpuInfo]:
    out = run(
        [
            "nvidia-smi",
            "--query-gpu=name,memory.total,memory.free",
            "--format=csv,noheader,nounits",
        ],
        5.0,
    )
    gpus: list[GpuInfo] = []
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        try:
            total = int(float(parts[-2])) * 2**20
            free = int(float(parts[-1])) * 2**20
        except ValueError:
            total = free = 0
        name = ",".join(parts[:-2])
        gpus.append(GpuInfo("nvidia", name, total or None, free or None, "nvidia-smi"))
    return gpus


def _rocm_gpus(run: Runner) -> list[GpuInfo]:
    out = run(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"], 5.0)
    if not out:
        return []
    try:
        data = json.loads(out)
    except ValueError:
        return []
    gpus: list[GpuInfo] = []
    if not isinstance(data, dict):
        return gpus
    for card, info in sorted(data.items()):
        if not isinstance(info, dict) or not card.startswith("card"):
            continue
        total = _int_or_none(info.get("VRAM Total Memory (B)"))
        used = _int_or_none(info.get("VRAM Total Used Memory (B)"))
        name = str(info.get("Card series") or info.get("Card model") or card)
        free = total - used if total is not None and used is not None else None
        gpus.append(GpuInfo("amd", name, total, free, "rocm-smi"))
    return gpus


def _int_or_none(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _apple_gpu(run: Runner, total: int | None, available: int | None) -> list[GpuInfo]:
    brand = (run(["sysctl", "-n", "machdep.cpu.brand_string"], 3.0) or "").strip()
    if total is None:
        total = sysctl_int(run, "hw.memsize")
    if total is None:
        return []
    usable = int(total * APPLE_GPU_FRACTION)
    free = min(usable, available) if available is not None else usable
    return [GpuInfo("apple", f"{brand or 'Apple Silicon'} GPU", usable, free, "sysctl", True)]


def gpu_info(
    *,
    runner: Runner | None = None,
    system: str | None = None,
    machine: str | None = None,
    memory: MemoryInfo | None = None,
    use_nvml: bool = True,
) -> tuple[list[GpuInfo], list[str]]:
    """Find GPUs: NVIDIA (NVML, else nvidia-smi), AMD (rocm-smi), Apple Silicon (Metal).

    :param runner: command runner (tests inject canned outputs).
    :param system: ``platform.system()`` override (``"Darwin"``, ``"Linux"``...).
    :param machine: ``platform.machine()`` override (``"arm64"``...).
    :param memory: memory info, used for Apple's unified memory.
    :param use_nvml: try the optional ``pynvml`` module first.
    :returns: the GPUs found and notes about probes that failed.
    """
    run = runner or default_runner
    system = system or platform.system()
    machine = machine or platform.machine()
    notes: list[str] = []
    if system == "Darwin":
        if machine == "arm64":
            total = memory.total if memory else None
            avail = memory.available if memory else None
            return _apple_gpu(run, total, avail), notes
        return [], ["Intel Mac: Metal offload is not used"]
    gpus = (_nvml_gpus() if use_nvml else None) or _nvidia_smi_gpus(run)
    gpus += _rocm_gpus(run)
    if not gpus:
        notes.append("no GPU found (NVML, nvidia-smi, rocm-smi)")
    return gpus, notes


def llama_gpu_offload() -> bool:
    """Whether the installed llama-cpp-python build can offload to a GPU (False on error)."""
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception as exc:  # not installed, broken build, missing symbol
        log.debug("llama_supports_gpu_offload unavailable: %s", exc)
        return False
