"""Probe this machine: memory (cgroup-aware), CPU cores and SIMD features, GPUs.

Every probe degrades gracefully: a value that cannot be read is ``None`` (or empty)
and a note says why. File paths are read below ``root`` so tests can point the
probes at a fake ``/proc`` and ``/sys/fs/cgroup`` tree; commands (``nvidia-smi``,
``rocm-smi``, ``sysctl``) go through an injectable runner.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.hardware.commands import Runner, default_runner, sysctl_int
from lsp_server.hardware.gpu import GpuInfo, gpu_info, llama_gpu_offload

__all__ = [
    "CpuInfo",
    "HardwareReport",
    "MemoryInfo",
    "available_memory",
    "cpu_info",
    "memory_info",
    "probe",
    "recommended_threads",
    "threads_for_cores",
]

log = logging.getLogger(__name__)


_NO_LIMIT = 1 << 60  # cgroup v1 reports "no limit" as a huge number (2^63 - 4096)
_SIMD_FLAGS = (
    "sse3",
    "ssse3",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_int8",
    "neon",
    "asimd",
    "asimddp",
    "i8mm",
    "sve",
    "sve2",
)


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryInfo:
    """Memory visible to this process, in bytes (cgroup limits applied)."""

    total: int | None
    available: int | None
    host_total: int | None = None
    host_available: int | None = None
    cgroup_limit: int | None = None
    cgroup_usage: int | None = None
    notes: tuple[str, ...] = ()


def _meminfo(root: Path) -> tuple[int | None, int | None]:
    text = _read(root, "proc/meminfo")
    if text is None:
        return None, None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    total = values.get("MemTotal")
    avail = values.get("MemAvailable")
    if avail is None and total is not None:
        avail = values.get("MemFree", 0) + values.get("Cached", 0) + values.get("Buffers", 0)
    return total, avail


def _cgroup_paths(root: Path) -> tuple[str | None, dict[str, str]]:
    """Return (v2 path, {v1 controller: path}) from /proc/self/cgroup."""
    text = _read(root, "proc/self/cgroup")
    v2: str | None = None
    v1: dict[str, str] = {}
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
        for c in controllers.split(","):
            if c:
                v1[c] = path
    return v2, v1


def _ancestors(base: Path, rel: str) -> list[Path]:
    """``base/rel`` and each parent up to ``base`` (deepest first), existing ones only."""
    out: list[Path] = []
    parts = [p for p in rel.strip("/").split("/") if p and p != ".."]
    for i in range(len(parts), -1, -1):
        d = base.joinpath(*parts[:i]) if i else base
        if d.is_dir():
            out.append(d)
    return out


def _stat_value(path: Path, keys: Sequence[str]) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    found: dict[str, int] = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k in keys and v.strip().isdigit():
            found[k] = int(v)
    for k in keys:
        if k in found:
            return found[k]
    return None


def _cgroup_memory(root: Path) -> tuple[int | None, int | None]:
    """Return (limit, usage minus reclaimable file cache) of the tightest cgroup limit."""
    v2, v1 = _cgroup_paths(root)
    best: tuple[int, int | None] | None = None
    if v2 is not None:
        for d in _ancestors(root / "sys/fs/cgroup", v2):
            raw = _read(d, "memory.max")
            if raw is None or raw.strip() == "max":
                continue
            try:
                limit = int(raw.strip())
            except ValueError:
                continue
            usage = _read_int(d / "memory.current")
            if usage is not None:
                inactive = _stat_value(d / "memory.stat", ("inactive_file",)) or 0
                usage = max(0, usage - inactive)
            if best is None or limit < best[0]:
                best = (limit, usage)
    if "memory" in v1:
        for d in _ancestors(root / "sys/fs/cgroup/memory", v1["memory"]):
            limit_v1 = _read_int(d / "memory.limit_in_bytes")
            if limit_v1 is None or limit_v1 >= _NO_LIMIT:
                continue
            usage = _read_int(d / "memory.usage_in_bytes")
            if usage is not None:
                inactive = (
                    _stat_value(d / "memory.stat", ("total_inactive_file", "inactive_file")) or 0
                )
                usage = max(0, usage - inactive)
            if best is None or limit_v1 < best[0]:
                best = (limit_v1, usage)
    return (best[0], best[1]) if best else (None, None)


def memory_info(root: str | os.PathLike[str] = "/", *, runner: Runner | None = None) -> MemoryInfo:
    """Read total and available memory, applying cgroup v1/v2 limits.

    :param root: filesystem root holding ``proc/`` and ``sys/fs/cgroup/`` (tests use a fake).
    :param runner: command runner, used on macOS (``sysctl``, ``vm_stat``) only.
    """
    base = Path(root)
    notes: list[str] = []
    total, avail = _meminfo(base)
    if total is None and sys.platform == "darwin" and Path(root) == Path("/"):
        total, avail = _darwin_memory(runner or default_runner)
    if total is None:
        notes.append("total memory unknown (no /proc/meminfo)")
    limit, usage = _cgroup_memory(base)
    eff_total, eff_avail = total, avail
    if limit is not None:
        eff_total = min(total, limit) if total is not None else limit
        if usage is not None:
            cg_avail = max(0, limit - usage)
            eff_avail = min(avail, cg_avail) if avail is not None else cg_avail
        notes.append(f"container memory limit {limit / 2**30:.1f} GiB applies")
    return MemoryInfo(
        total=eff_total,
        available=eff_avail,
        host_total=total,
        host_available=avail,
        cgroup_limit=limit,
        cgroup_usage=usage,
        notes=tuple(notes),
    )


def _darwin_memory(run: Runner) -> tuple[int | None, int | None]:
    out = run(["sysctl", "-n", "hw.memsize"], 3.0)
    try:
        total = int(out.strip()) if out else None
    except ValueError:
        total = None
    avail: int | None = None
    vm = run(["vm_stat"], 3.0)
    if vm:
        page = 16384 if "page size of 16384" in vm else 4096
        pages = 0
        for line in vm.splitlines():
            key, _, val = line.partition(":")
            if key.strip() in (
                "Pages free",
                "Pages inactive",
                "Pages speculative",
                "Pages purgeable",
            ):
                digits = val.strip().rstrip(".")
                if digits.isdigit():
                    pages += int(digits)
        avail = pages * page if pages else None
    return total, avail


def available_memory(root: str | os.PathLike[str] = "/") -> int | None:
    """Bytes of memory this process can still use (cgroup-aware), or None if unknown."""
    return memory_info(root).available


# ---------------------------------------------------------------------------------------
# CPU
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuInfo:
    """CPU topology and features as seen by this process."""

    model: str | None
    physical_cores: int | None
    logical_cores: int | None
    usable_cpus: float | None  # affinity mask and cgroup quota applied
    simd: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _cpu_quota(root: Path) -> float | None:
    v2, v1 = _cgroup_paths(root)
    quotas: list[float] = []
    if v2 is not None:
        for d in _ancestors(root / "sys/fs/cgroup", v2):
            raw = _read(d, "cpu.max")
            if not raw:
                continue
            parts = raw.split()
            if len(parts) >= 1 and parts[0] != "max":
                try:
                    period = int(parts[1]) if len(parts) > 1 else 100_000
                    quotas.append(int(parts[0]) / period)
                except (ValueError, ZeroDivisionError):
                    continue
    cpu_path = v1.get("cpu") or v1.get("cpuacct")
    if cpu_path is not None:
        for mount in ("sys/fs/cgroup/cpu", "sys/fs/cgroup/cpu,cpuacct"):
            for d in _ancestors(root / mount, cpu_path):
                q = _read_int(d / "cpu.cfs_quota_us")
                p = _read_int(d / "cpu.cfs_period_us")
                if q is not None and p and q > 0:
                    quotas.append(q / p)
    return min(quotas) if quotas else None


def cpu_info(root: str | os.PathLike[str] = "/", *, runner: Runner | None = None) -> CpuInfo:
    """Count physical and logical cores, usable CPUs and SIMD features.

    :param root: filesystem root holding ``proc/cpuinfo`` and ``sys/fs/cgroup/``.
    :param runner: command runner, used on macOS (``sysctl``) only.
    """
    base = Path(root)
    live = base == Path("/")
    notes: list[str] = []
    text = _read(base, "proc/cpuinfo")
    model: str | None = None
    logical: int | None = None
    physical: int | None = None
    flags: set[str] = set()
    if text is not None:
        cores: set[tuple[str, str]] = set()
        per_socket: dict[str, int] = {}
        n_proc = 0
        phys_id = "0"
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "processor":
                n_proc += 1
                phys_id = "0"
            elif key in ("model name", "Model", "cpu model") and model is None:
                model = value
            elif key == "physical id":
                phys_id = value
            elif key == "core id":
                cores.add((phys_id, value))
            elif key == "cpu cores" and value.isdigit():
                per_socket[phys_id] = int(value)
            elif key in ("flags", "Features"):
                flags.update(value.split())
        logical = n_proc or None
        if cores:
            physical = len(cores)
        elif per_socket:
            physical = sum(per_socket.values())
        else:
            physical = logical  # ARM and many VMs: no SMT information
    elif live and sys.platform == "darwin":
        run = runner or default_runner
        physical = sysctl_int(run, "hw.physicalcpu")
        logical = sysctl_int(run, "hw.logicalcpu")
        model = (run(["sysctl", "-n", "machdep.cpu.brand_string"], 3.0) or "").strip() or None
        if platform.machine() == "arm64":
            flags.update({"neon", "asimd"})
    if logical is None and live:
        logical = os.cpu_count()
    if physical is None:
        physical = logical
        notes.append("physical core count unknown; using logical CPUs")
    if "asimd" in flags:
        flags.add("neon")
    if "pni" in flags:  # Linux calls SSE3 "pni" (Prescott New Instructions)
        flags.add("sse3")
    usable: float | None = None
    if live and hasattr(os, "sched_getaffinity"):
        usable = float(len(os.sched_getaffinity(0)))
    elif logical is not None:
        usable = float(logical)
    quota = _cpu_quota(base)
    if quota is not None:
        usable = min(usable, quota) if usable is not None else quota
        notes.append(f"container CPU quota {quota:g} CPUs applies")
    simd = tuple(f for f in _SIMD_FLAGS if f in flags)
    return CpuInfo(model, physical, logical, usable, simd, tuple(notes))


def threads_for_cores(physical_cores: int | None) -> int:
    """The thread rule: ≤2 cores → 1, ≤8 → cores-1, else cores-2 (room for the editor).

    ggml worker threads spin while waiting, so using every core (or more threads than
    cores) makes generation collapse as soon as the editor needs CPU time.
    """
    n = physical_cores or 1
    if n <= 2:
        return 1
    if n <= 8:
        return n - 1
    return n - 2


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HardwareReport:
    """Everything the model-fit logic needs to know about this machine."""

    system: str
    machine: str
    cpu_model: str | None
    physical_cores: int | None
    logical_cores: int | None
    usable_cpus: float | None
    simd: tuple[str, ...]
    total_memory: int | None
    available_memory: int | None
    memory_limit: int | None = None
    gpus: tuple[GpuInfo, ...] = ()
    gpu_offload: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def effective_cores(self) -> int | None:
        """Physical cores this process may really use (affinity and quota applied)."""
        cores = self.physical_cores
        if cores is None:
            return None
        if self.usable_cpus is not None:
            cores = min(cores, max(1, int(self.usable_cpus)))
        return cores

    @property
    def unified_memory(self) -> bool:
        """True on Apple Silicon: the GPU shares system memory."""
        return any(g.unified for g in self.gpus)

    @property
    def gpu_free_memory(self) -> int:
        """Free memory summed over all GPUs (llama.cpp splits layers across them)."""
        return sum(g.free_memory or g.total_memory or 0 for g in self.gpus)

    def recommended_threads(self) -> int:
        """Threads for inference from :func:`threads_for_cores` on the usable cores."""
        return threads_for_cores(self.effective_cores)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys."""
        return {
            "system": self.system,
            "machine": self.machine,
            "cpuModel": self.cpu_model,
            "physicalCores": self.physical_cores,
            "logicalCores": self.logical_cores,
            "usableCpus": self.usable_cpus,
            "simd": list(self.simd),
            "totalMemory": self.total_memory,
            "availableMemory": self.available_memory,
            "memoryLimit": self.memory_limit,
            "gpus": [g.to_dict() for g in self.gpus],
            "gpuOffload": self.gpu_offload,
            "recommendedThreads": self.recommended_threads(),
            "notes": list(self.notes),
        }


def probe(
    root: str | os.PathLike[str] = "/",
    *,
    runner: Runner | None = None,
    system: str | None = None,
    machine: str | None = None,
    gpus: bool = True,
    llama: bool = True,
    nvml: bool = True,
) -> HardwareReport:
    """Probe this machine (or a fake tree under ``root``) and return a report.

    :param root: filesystem root for ``/proc`` and ``/sys`` reads.
    :param runner: command runner for ``nvidia-smi``/``rocm-smi``/``sysctl``.
    :param system: ``platform.system()`` override.
    :param machine: ``platform.machine()`` override.
    :param gpus: probe GPUs (set False in tests without fakes).
    :param llama: ask llama-cpp-python whether it can offload (imports it lazily).
    :param nvml: try NVML (``pynvml``) before ``nvidia-smi``.
    """
    system = system or platform.system()
    machine = machine or platform.machine()
    mem = memory_info(root, runner=runner)
    cpu = cpu_info(root, runner=runner)
    notes = [*mem.notes, *cpu.notes]
    found: list[GpuInfo] = []
    if gpus:
        found, gpu_notes = gpu_info(
            runner=runner, system=system, machine=machine, memory=mem, use_nvml=nvml
        )
        notes += gpu_notes
    offload = llama_gpu_offload() if llama else False
    if found and llama and not offload:
        notes.append("this llama-cpp-python build cannot offload to a GPU (CPU-only build)")
    return HardwareReport(
        system=system,
        machine=machine,
        cpu_model=cpu.model,
        physical_cores=cpu.physical_cores,
        logical_cores=cpu.logical_cores,
        usable_cpus=cpu.usable_cpus,
        simd=cpu.simd,
        total_memory=mem.total,
        available_memory=mem.available,
        memory_limit=mem.cgroup_limit,
        gpus=tuple(found),
        gpu_offload=offload,
        notes=tuple(notes),
    )


def recommended_threads(
    physical_cores: int | None = None, *, root: str | os.PathLike[str] = "/"
) -> int:
    """Threads for ``engine.threads = auto`` (see :func:`threads_for_cores`).

    :param physical_cores: use this core count instead of probing.
    :param root: filesystem root for the CPU probe.
    """
    if physical_cores is not None:
        return threads_for_cores(physical_cores)
    cpu = cpu_info(root)
    cores = cpu.physical_cores
    if cores is not None and cpu.usable_cpus is not None:
        cores = min(cores, max(1, int(cpu.usable_cpus)))
    return threads_for_cores(cores)
