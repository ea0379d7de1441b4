"""Hardware probes on fake /proc and /sys/fs/cgroup trees and canned command output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from lsp_server.hardware.gpu import gpu_info, llama_gpu_offload
from lsp_server.hardware.probe import (
    HardwareReport,
    cpu_info,
    memory_info,
    probe,
    recommended_threads,
    threads_for_cores,
)

GIB = 1 << 30
MIB = 1 << 20


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


MEMINFO = "MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\n"


def _x86_cpuinfo(sockets: int, cores: int, threads: int) -> str:
    blocks = []
    n = 0
    for s in range(sockets):
        for c in range(cores):
            for _ in range(threads):
                blocks.append(
                    f"processor\t: {n}\nmodel name\t: Fake Xeon\nphysical id\t: {s}\n"
                    f"core id\t\t: {c}\ncpu cores\t: {cores}\n"
                    "flags\t\t: fpu pni ssse3 avx avx2 fma f16c avx512f avx512_vnni\n"
                )
                n += 1
    return "\n".join(blocks)


ARM_CPUINFO = "".join(
    f"processor\t: {i}\nBogoMIPS\t: 48.00\nFeatures\t: fp asimd evtstrm aes asimddp i8mm\n\n"
    for i in range(4)
)


def test_meminfo_without_cgroup(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"proc/meminfo": MEMINFO, "proc/self/cgroup": "0::/\n"})
    mem = memory_info(root)
    assert mem.total == 32000000 * 1024
    assert mem.available == 20000000 * 1024
    assert mem.cgroup_limit is None


def test_cgroup_v2_limit_and_usage(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "proc/meminfo": MEMINFO,
            "proc/self/cgroup": "0::/user.slice/app.scope\n",
            "sys/fs/cgroup/memory.max": "max\n",
            "sys/fs/cgroup/user.slice/memory.max": f"{8 * GIB}\n",
            "sys/fs/cgroup/user.slice/app.scope/memory.max": f"{4 * GIB}\n",
            "sys/fs/cgroup/user.slice/app.scope/memory.current": f"{GIB + 256 * MIB}\n",
            "sys/fs/cgroup/user.slice/app.scope/memory.stat": (
                f"anon 1\ninactive_file {256 * MIB}\n"
            ),
            "sys/fs/cgroup/user.slice/app.scope/cpu.max": "150000 100000\n",
        },
    )
    mem = memory_info(root)
    assert mem.cgroup_limit == 4 * GIB
    assert mem.total == 4 * GIB
    assert mem.available == 3 * GIB  # limit - (usage - inactive file cache)
    assert any("container memory limit" in n for n in mem.notes)
    cpu = cpu_info(tmp_path)
    assert cpu.usable_cpus == 1.5


def test_cgroup_v1_limit_and_quota(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "proc/meminfo": MEMINFO,
            "proc/cpuinfo": _x86_cpuinfo(1, 8, 2),
            "proc/self/cgroup": "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": f"{2 * GIB}\n",
            "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": f"{GIB + 512 * MIB}\n",
            "sys/fs/cgroup/memory/docker/abc/memory.stat": (
                f"cache 1\ntotal_inactive_file {512 * MIB}\n"
            ),
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    mem = memory_info(root)
    assert (mem.total, mem.available, mem.cgroup_limit) == (2 * GIB, GIB, 2 * GIB)
    cpu = cpu_info(root)
    assert (cpu.physical_cores, cpu.logical_cores) == (8, 16)
    assert cpu.usable_cpus == 2.0
    report = probe(root, gpus=False, llama=False)
    assert report.effective_cores == 2
    assert report.recommended_threads() == 1


def test_cgroup_v1_unlimited(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "proc/meminfo": MEMINFO,
            "proc/self/cgroup": "4:memory:/\n",
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    assert memory_info(root).cgroup_limit is None


def test_x86_topology_and_simd(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"proc/cpuinfo": _x86_cpuinfo(2, 4, 2)})
    cpu = cpu_info(root)
    assert cpu.model == "Fake Xeon"
    assert (cpu.physical_cores, cpu.logical_cores, cpu.usable_cpus) == (8, 16, 16.0)
    assert {"sse3", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni"} <= set(cpu.simd)
    assert "neon" not in cpu.simd


def test_arm_without_core_ids(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"proc/cpuinfo": ARM_CPUINFO})
    cpu = cpu_info(root)
    assert (cpu.physical_cores, cpu.logical_cores) == (4, 4)
    assert {"neon", "asimd", "asimddp", "i8mm"} <= set(cpu.simd)


def test_empty_root_degrades(tmp_path: Path) -> None:
    report = probe(tmp_path, gpus=False, llama=False)
    assert report.total_memory is None
    assert report.available_memory is None
    assert report.physical_cores is None
    assert report.recommended_threads() == 1
    assert any("memory unknown" in n for n in report.notes)


@pytest.mark.parametrize(
    ("cores", "threads"),
    [(None, 1), (1, 1), (2, 1), (3, 2), (4, 3), (8, 7), (9, 7), (16, 14), (64, 62)],
)
def test_thread_rule(cores: int | None, threads: int) -> None:
    assert threads_for_cores(cores) == threads
    if cores is not None:
        assert recommended_threads(cores) == threads


def test_recommended_threads_on_this_machine() -> None:
    assert recommended_threads() >= 1


class FakeRunner:
    """Answers commands from a table; records what was asked."""

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, cmd: Sequence[str], timeout: float) -> str | None:
        self.calls.append(list(cmd))
        assert timeout <= 10
        for key, value in self.answers.items():
            if " ".join(cmd).startswith(key):
                return value
        return None


def test_nvidia_smi(tmp_path: Path) -> None:
    run = FakeRunner(
        {
            "nvidia-smi": (
                "NVIDIA GeForce RTX 4090, 24564, 23012\nNVIDIA A100-SXM4-80GB, 81920, 81000\n"
            )
        }
    )
    gpus, notes = gpu_info(runner=run, system="Linux", machine="x86_64", use_nvml=False)
    assert [g.name for g in gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA A100-SXM4-80GB"]
    assert gpus[0].total_memory == 24564 * MIB
    assert gpus[0].free_memory == 23012 * MIB
    assert gpus[0].source == "nvidia-smi"
    assert not notes
    assert "--format=csv,noheader,nounits" in run.calls[0]


def test_rocm_smi() -> None:
    data = {
        "card0": {
            "Card series": "Radeon RX 7900 XTX",
            "VRAM Total Memory (B)": str(24 * GIB),
            "VRAM Total Used Memory (B)": str(GIB),
        },
        "system": {"Driver version": "6.8"},
    }
    run = FakeRunner({"rocm-smi": json.dumps(data)})
    gpus, _ = gpu_info(runner=run, system="Linux", machine="x86_64", use_nvml=False)
    assert len(gpus) == 1
    assert gpus[0].vendor == "amd"
    assert gpus[0].name == "Radeon RX 7900 XTX"
    assert (gpus[0].total_memory, gpus[0].free_memory) == (24 * GIB, 23 * GIB)


def test_broken_tools_give_no_gpu() -> None:
    run = FakeRunner({"nvidia-smi": "garbage", "rocm-smi": "{not json"})
    gpus, notes = gpu_info(runner=run, system="Linux", machine="x86_64", use_nvml=False)
    assert gpus == []
    assert notes and "no GPU" in notes[0]


def test_apple_silicon(tmp_path: Path) -> None:
    run = FakeRunner(
        {"sysctl -n hw.memsize": str(16 * GIB), "sysctl -n machdep.cpu.brand_string": "Apple M2"}
    )
    gpus, _ = gpu_info(runner=run, system="Darwin", machine="arm64")
    assert len(gpus) == 1
    assert gpus[0].unified
    assert gpus[0].total_memory == 12 * GIB
    assert gpus[0].name == "Apple M2 GPU"
    intel, notes = gpu_info(runner=run, system="Darwin", machine="x86_64")
    assert intel == [] and notes


def test_report_to_dict_camel_case(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"proc/meminfo": MEMINFO, "proc/cpuinfo": _x86_cpuinfo(1, 4, 2)})
    run = FakeRunner({"nvidia-smi": "RTX 3060, 12288, 11000\n"})
    report = probe(root, runner=run, system="Linux", machine="x86_64", llama=False, nvml=False)
    assert isinstance(report, HardwareReport)
    d = report.to_dict()
    assert d["physicalCores"] == 4
    assert d["logicalCores"] == 8
    assert d["recommendedThreads"] == 3
    assert d["gpus"][0]["totalMemory"] == 12288 * MIB
    assert d["gpuOffload"] is False
    assert json.loads(json.dumps(d)) == d


def test_probe_this_machine() -> None:
    report = probe(llama=False, gpus=False)
    assert report.recommended_threads() >= 1
    if Path("/proc/meminfo").exists():
        assert report.total_memory and report.available_memory
        assert report.physical_cores and report.physical_cores >= 1


def test_llama_gpu_offload_is_a_bool() -> None:
    assert isinstance(llama_gpu_offload(), bool)
