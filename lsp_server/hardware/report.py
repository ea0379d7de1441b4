"""Plain-text tables for ``open-llm-lsp hw`` and ``open-llm-lsp models fit``."""

from __future__ import annotations

from collections.abc import Sequence

from lsp_server.hardware.probe import HardwareReport
from lsp_server.hardware.select import FitResult

__all__ = ["format_bytes", "format_fit", "format_hardware", "format_table"]


def format_bytes(n: int | float | None) -> str:
    """``1.5 GiB``, ``512 MiB``; ``?`` for None."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, with a dashed rule under the header."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def format_hardware(report: HardwareReport) -> str:
    """Render a hardware report as a two-column table plus one row per GPU.

    :param report: the result of :func:`lsp_server.hardware.probe.probe`.
    """
    usable = "?" if report.usable_cpus is None else f"{report.usable_cpus:g}"
    mem = (
        f"{format_bytes(report.available_memory)} available of {format_bytes(report.total_memory)}"
    )
    if report.memory_limit is not None:
        mem += f" (container limit {format_bytes(report.memory_limit)})"
    rows = [
        ["System", f"{report.system} {report.machine}"],
        ["CPU", report.cpu_model or "?"],
        [
            "Cores",
            f"{report.physical_cores or '?'} physical, {report.logical_cores or '?'} logical, "
            f"{usable} usable",
        ],
        ["Threads (auto)", str(report.recommended_threads())],
        ["SIMD", " ".join(report.simd) or "none detected"],
        ["Memory", mem],
        ["GPU offload", "yes" if report.gpu_offload else "no (CPU-only llama.cpp build)"],
    ]
    if not report.gpus:
        rows.append(["GPU", "none found"])
    for i, gpu in enumerate(report.gpus):
        kind = "unified memory usable by GPU" if gpu.unified else "VRAM"
        rows.append(
            [
                f"GPU {i}",
                f"{gpu.name}: {format_bytes(gpu.free_memory)} free of "
                f"{format_bytes(gpu.total_memory)} {kind} ({gpu.source})",
            ]
        )
    text = format_table(["Item", "Value"], rows)
    if report.notes:
        text += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in report.notes)
    return text


def format_fit(result: FitResult) -> str:
    """Render a fit result: one row per file (chosen marked ``*``), verdict and notes.

    :param result: the result of :func:`lsp_server.hardware.select.fit`.
    """
    rows = []
    for r in result.rows:
        bits = "?" if r.bits_per_weight is None else f"{r.bits_per_weight:.2f}"
        need = r.ram_bytes + r.vram_bytes
        rows.append(
            [
                "*" if r.chosen else "",
                r.file,
                r.quant or "?",
                format_bytes(r.size),
                bits,
                r.label,
                str(r.context) if r.context else "-",
                format_bytes(need),
                r.reason,
            ]
        )
    headers = ["*", "File", "Quant", "Size", "Bits", "Runs on", "Context", "Needs", "Why"]
    budget = f"RAM budget {format_bytes(result.ram_budget)}"
    if result.vram_budget:
        budget += f", GPU budget {format_bytes(result.vram_budget)}"
    text = format_table(headers, rows) + f"\n\n{budget}\n{result.message}"
    if result.notes:
        text += "\n" + "\n".join(f"- {n}" for n in result.notes)
    return text
