"""fit(): which file runs where on synthetic machines, with the expected choices written down.

Machines (sizes in GiB): an 8 GB laptop without GPU (5.5 available), a 16 GB Apple
M-series (11 available, GPU may use 75 %), a 24 GB NVIDIA card (23.5 free) with 64 GB
RAM, a 2-core 24 GB VM, and an 8 GB NVIDIA card with 32 GB RAM. Files: a 7B
repository with Mistral-7B-Instruct-v0.2's real file sizes (Q2_K … F16) and its shape
(32 layers, 8 KV heads × 128), and Gemma 3 27B QAT Q4_0 (17.2 GB, 62 layers, 16 KV heads).
"""

from __future__ import annotations

import pytest

from lsp_server.core.errors import ModelNotFound
from lsp_server.hardware.estimate import ModelShape
from lsp_server.hardware.gpu import GpuInfo
from lsp_server.hardware.probe import HardwareReport
from lsp_server.hardware.select import (
    CandidateFile,
    FitOptions,
    FitResult,
    fit,
    nominal_bits,
)
from lsp_server.models.bundled import bundled_smollm2_path
from lsp_server.models.gguf import read_gguf

GIB = 1 << 30


def _machine(
    total: float,
    avail: float,
    cores: int,
    gpus: tuple[GpuInfo, ...] = (),
    offload: bool = True,
    system: str = "Linux",
) -> HardwareReport:
    return HardwareReport(
        system=system,
        machine="arm64" if system == "Darwin" else "x86_64",
        cpu_model="test",
        physical_cores=cores,
        logical_cores=cores,
        usable_cpus=float(cores),
        simd=(),
        total_memory=int(total * GIB),
        available_memory=int(avail * GIB),
        gpus=gpus,
        gpu_offload=offload and bool(gpus),
    )


LAPTOP = _machine(8, 5.5, 4)
APPLE = _machine(
    16,
    11,
    8,
    (GpuInfo("apple", "Apple M2 GPU", 12 * GIB, 11 * GIB, "sysctl", unified=True),),
    system="Darwin",
)
NVIDIA_24 = _machine(
    64, 50, 16, (GpuInfo("nvidia", "RTX 4090", 24 * GIB, int(23.5 * GIB), "nvml"),)
)
VM_2CORE = _machine(23.5, 22.4, 2)
NVIDIA_8 = _machine(32, 24, 8, (GpuInfo("nvidia", "RTX 4060", 8 * GIB, int(7.5 * GIB), "nvml"),))

MISTRAL = ModelShape(
    n_layers=32,
    n_embd=4096,
    n_vocab=32000,
    kv_elements_per_token=32 * 8 * (128 + 128),
    n_merges=58980,
    context_length=32768,
)
SIZES_GB = {
    "Q2_K": 3.08,
    "Q3_K_S": 3.16,
    "Q3_K_M": 3.52,
    "Q3_K_L": 3.82,
    "Q4_0": 4.11,
    "Q4_K_S": 4.14,
    "Q4_K_M": 4.37,
    "Q5_0": 5.00,
    "Q5_K_S": 5.00,
    "Q5_K_M": 5.13,
    "Q6_K": 5.94,
    "Q8_0": 7.70,
    "F16": 14.48,
}
REPO_7B = [
    CandidateFile(f"mistral-7b-instruct-v0.2.{q}.gguf", int(gb * 1e9), shape=MISTRAL)
    for q, gb in SIZES_GB.items()
]
GEMMA_27B = ModelShape(62, 5376, 262144, 62 * 16 * (128 + 128), 0, 131072)
QAT_27B = [CandidateFile("gemma-3-27b-it-qat-q4_0.gguf", int(17.23e9), shape=GEMMA_27B)]


def _row(result: FitResult, quant: str) -> tuple[str, int, int]:
    row = next(r for r in result.rows if r.quant == quant)
    return row.placement, row.gpu_layers, row.context


def _choice(result: FitResult) -> tuple[str | None, str, int, int]:
    c = result.choice
    assert c is not None, result.message
    return c.quant, c.placement, c.gpu_layers, c.context


# -- the 7B repository ---------------------------------------------------------------------


def test_7b_on_8gb_laptop() -> None:
    r = fit(LAPTOP, REPO_7B)
    assert _choice(r) == ("Q4_K_S", "cpu", 0, 4096)
    assert _row(r, "Q3_K_M") == ("cpu", 0, 8192)
    assert _row(r, "Q3_K_L") == ("cpu", 0, 7168)  # the largest 1024-multiple that fits
    for q in ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16"):
        assert _row(r, q)[0] == "none"
    assert "context lowered from 8192 to 4096" in r.choice.reason  # type: ignore[union-attr]
    assert sum(row.chosen for row in r.rows) == 1


def test_7b_on_16gb_apple() -> None:
    r = fit(APPLE, REPO_7B)
    assert _choice(r) == ("Q8_0", "gpu", 32, 8192)
    assert _row(r, "F16")[0] == "none"  # unified memory: no partial offload
    assert all(row.placement in ("gpu", "none") for row in r.rows)


def test_7b_on_24gb_nvidia() -> None:
    r = fit(NVIDIA_24, REPO_7B)
    assert _choice(r) == ("Q8_0", "gpu", 32, 8192)  # F16 fits too but is capped
    assert _row(r, "F16") == ("gpu", 32, 8192)
    uncapped = fit(NVIDIA_24, REPO_7B, FitOptions(max_quality=None))
    assert _choice(uncapped) == ("F16", "gpu", 32, 8192)


def test_7b_on_2core_vm() -> None:
    r = fit(VM_2CORE, REPO_7B)
    assert all(row.placement == "cpu" and row.context == 8192 for row in r.rows)
    assert _choice(r) == ("Q4_K_M", "cpu", 0, 8192)  # 2 cores: bigger files are too slow
    assert any("2 cores" in n for n in r.notes)
    uncapped = fit(VM_2CORE, REPO_7B, FitOptions(cpu_few_cores_max_quality=None))
    assert _choice(uncapped) == ("Q8_0", "cpu", 0, 8192)


def test_7b_on_8gb_card() -> None:
    r = fit(NVIDIA_8, REPO_7B)
    assert _choice(r) == ("Q6_K", "gpu", 32, 8192)
    assert _row(r, "Q8_0") == ("partial", 26, 8192)
    assert _row(r, "F16") == ("partial", 14, 8192)
    only_f16 = fit(NVIDIA_8, REPO_7B[-1:])
    assert _choice(only_f16) == ("F16", "partial", 14, 8192)
    assert only_f16.choice is not None and only_f16.choice.label == "Partial GPU (14/32 layers)"


# -- 27B QAT Q4_0 --------------------------------------------------------------------------


def test_27b_qat_everywhere() -> None:
    assert fit(LAPTOP, QAT_27B).choice is None
    assert fit(APPLE, QAT_27B).choice is None
    assert _choice(fit(NVIDIA_24, QAT_27B)) == ("Q4_0", "gpu", 62, 8192)
    assert _choice(fit(VM_2CORE, QAT_27B)) == ("Q4_0", "cpu", 0, 8192)
    assert _choice(fit(NVIDIA_8, QAT_27B)) == ("Q4_0", "partial", 20, 8192)
    msg = fit(LAPTOP, QAT_27B).message
    assert "No file fits" in msg and "GiB" in msg


def test_bigger_context_lowers_placement() -> None:
    r = fit(NVIDIA_24, QAT_27B, FitOptions(desired_context=32768))
    # 32k and 16k contexts no longer fit next to the weights: the largest that does.
    assert _choice(r)[1:] == ("gpu", 62, 14336)


# -- rules ---------------------------------------------------------------------------------


def test_never_below_3_bits_unless_forced() -> None:
    tiny = _machine(8, 5.0, 4)
    files = [f for f in REPO_7B if f.quant_name in ("Q2_K", "Q4_K_M")]
    r = fit(tiny, files)
    assert _row(r, "Q2_K")[0] == "cpu"
    assert _row(r, "Q4_K_M")[0] == "none"
    assert r.choice is None
    assert "below 3 bits" in r.message
    forced = fit(tiny, files, FitOptions(force_low_bits=True))
    assert _choice(forced)[0] == "Q2_K"


def test_gpu_without_offload_build_runs_on_cpu() -> None:
    no_offload = _machine(
        64, 50, 16, (GpuInfo("nvidia", "RTX 4090", 24 * GIB, 23 * GIB, "nvml"),), offload=False
    )
    r = fit(no_offload, REPO_7B)
    assert all(row.placement == "cpu" for row in r.rows)
    assert any("cannot offload" in n for n in r.notes)
    assert r.vram_budget == 0


def test_context_capped_by_training_length() -> None:
    short = ModelShape(32, 4096, 32000, 32 * 8 * 256, 0, context_length=4096)
    files = [CandidateFile("m-Q4_K_M.gguf", int(4.37e9), shape=short)]
    r = fit(NVIDIA_24, files, FitOptions(desired_context=32768))
    assert _choice(r)[3] == 4096


def test_guessed_shape_from_size() -> None:
    files = [CandidateFile("unknown-7b-Q4_K_M.gguf", int(4.37e9))]
    r = fit(LAPTOP, files, FitOptions(min_context=2048))
    assert r.rows[0].n_layers == 32
    assert r.rows[0].placement in ("cpu", "none")


def test_header_candidate_smollm2() -> None:
    try:
        path = bundled_smollm2_path()
    except ModelNotFound as exc:
        pytest.skip(str(exc))
    cand = CandidateFile.from_gguf(read_gguf(path))
    assert cand.name == path.name
    assert cand.quant_name == "Q4_1"
    r = fit(VM_2CORE, [cand], FitOptions(desired_context=32768))
    assert _choice(r) == ("Q4_1", "cpu", 0, 8192)  # SmolLM2 was trained on 8192 tokens


def test_empty_and_unknown_memory() -> None:
    assert fit(LAPTOP, []).message == "No GGUF files to choose from."
    unknown = HardwareReport("Linux", "x86_64", None, None, None, None, (), None, None)
    r = fit(unknown, REPO_7B[:1])
    assert r.choice is None
    assert any("unknown" in n for n in r.notes)


def test_nominal_bits() -> None:
    assert [nominal_bits(q) for q in ("Q2_K", "IQ3_XXS", "Q4_K_M", "F16", "BF16", "F32")] == [
        2,
        3,
        4,
        16,
        16,
        32,
    ]
    assert nominal_bits("TQ1_0") == 1
    assert nominal_bits("MXFP4") == 4
    assert nominal_bits(None) is None


def test_to_dict() -> None:
    d = fit(NVIDIA_8, REPO_7B).to_dict()
    assert d["choice"]["quant"] == "Q6_K"
    assert d["choice"]["chosen"] is True
    assert {"gpuLayers", "nLayers", "ramBytes", "vramBytes", "label"} <= set(d["rows"][0])
    assert d["vramBudget"] > 0
