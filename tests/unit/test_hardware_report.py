"""Plain-text tables for `open-llm-lsp hw` and `models fit`."""

from __future__ import annotations

from lsp_server.hardware.estimate import ModelShape
from lsp_server.hardware.gpu import GpuInfo
from lsp_server.hardware.probe import HardwareReport, probe
from lsp_server.hardware.report import format_bytes, format_fit, format_hardware, format_table
from lsp_server.hardware.select import CandidateFile, fit

GIB = 1 << 30

REPORT = HardwareReport(
    system="Linux",
    machine="x86_64",
    cpu_model="AMD EPYC",
    physical_cores=2,
    logical_cores=2,
    usable_cpus=2.0,
    simd=("avx", "avx2", "avx512f"),
    total_memory=24 * GIB,
    available_memory=22 * GIB,
    memory_limit=None,
    gpus=(GpuInfo("nvidia", "RTX 4090", 24 * GIB, 23 * GIB, "nvidia-smi"),),
    gpu_offload=True,
    notes=("a note",),
)


def test_format_bytes() -> None:
    assert format_bytes(None) == "?"
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * (1 << 20)) == "3.0 MiB"
    assert format_bytes(int(1.5 * GIB)) == "1.5 GiB"
    assert format_bytes(2048 * GIB) == "2048.0 GiB"


def test_format_table_aligns() -> None:
    text = format_table(["A", "Bee"], [["xx", "y"], ["z", "long cell"]])
    lines = text.splitlines()
    assert lines[0] == "A   Bee"
    assert lines[1] == "--  ---------"
    assert lines[3] == "z   long cell"


def test_format_hardware() -> None:
    text = format_hardware(REPORT)
    assert "AMD EPYC" in text
    assert "2 physical, 2 logical, 2 usable" in text
    assert "Threads (auto)  1" in text
    assert "avx avx2 avx512f" in text
    assert "22.0 GiB available of 24.0 GiB" in text
    assert "RTX 4090: 23.0 GiB free of 24.0 GiB VRAM (nvidia-smi)" in text
    assert "- a note" in text


def test_format_hardware_this_machine() -> None:
    text = format_hardware(probe(gpus=False, llama=False))
    assert "Threads (auto)" in text
    assert "GPU" in text


def test_format_fit() -> None:
    shape = ModelShape(32, 4096, 32000, 32 * 8 * 256, 0, 32768)
    files = [
        CandidateFile("m-Q4_K_M.gguf", int(4.37e9), shape=shape),
        CandidateFile("m-F16.gguf", int(14.48e9), shape=shape),
        CandidateFile("m-huge-F32.gguf", int(60e9), shape=shape),
    ]
    text = format_fit(fit(REPORT, files))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["*", "File", "Quant"]
    chosen = [line for line in lines if line.startswith("*  m-")]
    assert len(chosen) == 1 and "m-F16.gguf" in chosen[0]  # only Q8_0+ is capped
    assert "Full GPU" in text
    assert "Won't fit" in text
    assert "GPU budget" in text
    assert "Use m-F16.gguf (F16): Full GPU, 8192-token context" in text
