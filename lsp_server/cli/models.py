"""``open-llm-lsp models list|fit|download|recommend``: the model tools on the command line.

Tables go to stdout, the download progress bar and messages to stderr. Exit codes:
0 success, 1 error, 3 license not accepted, 130 interrupted (the partial download is
kept and the next run resumes it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from lsp_server.core.errors import LicenseNotAccepted, OpenLlmError

__all__ = ["ProgressBar", "add_models_parser", "run_models"]

GIB = 1 << 30
MIB = 1 << 20


def add_models_parser(sub: Any) -> None:
    """Add the ``models`` command and its subcommands to ``sub`` (argparse subparsers)."""
    models = sub.add_parser(
        "models", help="list, check, choose and download models (see `models -h`)"
    )
    msub = models.add_subparsers(dest="models_command", metavar="COMMAND")
    msub.required = True
    listing = msub.add_parser(
        "list", help="models on this machine: HF cache, LM Studio, bundled, --folder"
    )
    listing.add_argument("--folder", action="append", default=[], help="also search FOLDER")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fitting = msub.add_parser(
        "fit", help="which files of OWNER/REPO (or a local .gguf) fit this machine"
    )
    fitting.add_argument("model", help="OWNER/REPO on Hugging Face, or a .gguf path")
    fitting.add_argument("--context", type=int, default=8192, help="wanted context (8192)")
    fitting.add_argument("--headroom-gb", type=float, default=1.0, help="RAM left free (1.0)")
    fitting.add_argument("--revision", help="branch, tag or commit (main)")
    fitting.add_argument(
        "--all-headers", action="store_true", help="read every file's header (exact, slower)"
    )
    fitting.add_argument("--json", action="store_true", help="print JSON instead of a table")
    down = msub.add_parser(
        "download", help="download OWNER/REPO[:QUANT|:FILE] into the Hugging Face cache"
    )
    down.add_argument(
        "model", help="OWNER/REPO (best fit for this machine), OWNER/REPO:Q4_K_M or :FILE.gguf"
    )
    down.add_argument("--revision", help="branch, tag or commit (main)")
    down.add_argument(
        "--accept-license", action="store_true", help="accept a restricted license without asking"
    )
    down.add_argument(
        "--allow-unverified",
        action="store_true",
        help="download files the Hub gives no checksum for (refused otherwise)",
    )
    down.add_argument("--json", action="store_true", help="print the result as JSON")
    rec = msub.add_parser("recommend", help="the best completion and chat models for this machine")
    rec.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_models(args: argparse.Namespace) -> int:
    """Run a ``models`` subcommand; errors are printed, not raised."""
    try:
        if args.models_command == "list":
            return _list(args)
        if args.models_command == "fit":
            return _fit(args)
        if args.models_command == "download":
            return _download(args)
        if args.models_command == "recommend":
            return _recommend(args)
    except LicenseNotAccepted as exc:
        sys.stderr.write(f"error: {exc.message} (or run again with --accept-license)\n")
        return 3
    except OpenLlmError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    return 2  # pragma: no cover - argparse requires a command


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _size(n: int | None) -> str:
    from lsp_server.hardware.report import format_bytes

    return format_bytes(n)


def _list(args: argparse.Namespace) -> int:
    from lsp_server.hardware.report import format_table
    from lsp_server.hub.discovery import discover
    from lsp_server.hub.licenses import LicenseStore

    found = discover(args.folder)
    store = LicenseStore()
    accepted = list(store.accepted())
    if args.json:
        _out(json.dumps(found.to_dict(accepted), indent=2))
        return 0
    rows = []
    for m in found.models:
        h = m.header
        params = h.get("parameterCount")
        lic = m.license
        lic_text = "?"
        if lic is not None:
            lic_text = lic.id
            if lic.restricted:
                lic_text += " (accepted)" if store.is_accepted(lic.key) else " (needs acceptance)"
        rows.append(
            [
                m.source,
                m.spec if m.source == "huggingface" else str(m.path),
                m.quant or "?",
                _size(m.size) + (f" ({m.parts} parts)" if m.parts > 1 else ""),
                str(h.get("architecture") or "?"),
                f"{params / 1e9:.2f}B" if params else "?",
                str(h.get("contextLength") or "?"),
                lic_text if not m.error else f"unreadable: {m.error[:60]}",
            ]
        )
    headers = ["Source", "Model", "Quant", "Size", "Arch", "Params", "Context", "License"]
    _out(format_table(headers, rows) if rows else "No GGUF models found.")
    _out("\nSearched: " + ", ".join(found.searched))
    _out("Use one in your editor with openLlm.model (chat) or openLlm.completion.model.")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lsp_server.hardware.probe import probe
    from lsp_server.hardware.report import format_fit
    from lsp_server.hardware.select import CandidateFile, FitOptions, fit

    options = FitOptions(
        desired_context=args.context,
        min_context=min(args.context, 2048),
        ram_headroom=int(args.headroom_gb * GIB),
    )
    hw = probe()
    target = args.model
    if target.lower().endswith(".gguf") or Path(target).expanduser().exists():
        from lsp_server.models.gguf import read_gguf

        g = read_gguf(Path(target).expanduser())
        result = fit(hw, [CandidateFile.from_gguf(g)], options)
        if args.json:
            _out(json.dumps(result.to_dict(), indent=2))
        else:
            _out(format_fit(result))
        return 0
    from lsp_server.hub.hf import parse_ref, remote_fit

    repo, _ = parse_ref(target)
    fitted = remote_fit(repo, hw, options, revision=args.revision, all_headers=args.all_headers)
    if args.json:
        _out(json.dumps(fitted.to_dict(), indent=2))
        return 0
    lic = fitted.repo.license
    head = fitted.headers[0] if fitted.headers else None
    _out(f"{repo} at {fitted.repo.commit or '?'}")
    if head is not None:
        g = head.gguf
        _out(
            f"{g.architecture or '?'}, {g.parameter_count / 1e9:.2f}B parameters, trained "
            f"context {g.context_length or '?'}, FIM {'yes' if g.supports_fim else 'no'} "
            f"(header of {head.file}: {_size(g.header_size)} read of {_size(head.size)})"
        )
    if lic is not None:
        needs = " (needs acceptance before download)" if lic.restricted else ""
        _out(f"License: {lic.name}{needs} {lic.url or ''}".rstrip())
    if fitted.repo.gated:
        _out("Gated: the Hub needs a token with access granted (HF_TOKEN or `hf auth login`).")
    _out("")
    _out(format_fit(fitted.result))
    choice = fitted.result.choice
    if choice and choice.quant:
        _out(f"\nDownload it with: open-llm-lsp models download {repo}:{choice.quant}")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from lsp_server.hardware.probe import probe
    from lsp_server.hub.recommend import recommend

    rec = recommend(probe())
    if args.json:
        _out(json.dumps(rec.to_dict(), indent=2))
        return 0
    for line in rec.explanation:
        _out(line)
    picks = ((rec.completion, "openLlm.completion.model"), (rec.chat, "openLlm.model"))
    for pick, setting in picks:
        if pick is not None:
            _out(f"\n{setting}: {pick.spec}\n  open-llm-lsp models download {pick.spec}")
    return 0


class ProgressBar:
    """A download progress bar on a terminal (redrawn in place, ~10 times a second), or a
    line per 10 % when the stream is not a terminal."""

    def __init__(self, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self.last_step = -1
        self.drawn = False

    def __call__(self, progress: Any) -> None:
        pct = progress.percent
        done, total = progress.done, progress.total
        speed = progress.bytes_per_second
        eta = progress.eta_seconds
        eta_text = "" if eta is None else f"  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        amount = f"{done / GIB:.2f}/{(total or 0) / GIB:.2f} GiB" if total else _size(done)
        if self.tty:
            filled = int(self.width * (pct or 0) / 100)
            bar = "#" * filled + "." * (self.width - filled)
            stage = " (checking the partial file)" if progress.stage == "verifying-partial" else ""
            line = (
                f"\r{progress.file[:40]} [{bar}] {pct if pct is not None else '?':>3}%  {amount}  "
                f"{speed / MIB:.1f} MiB/s{eta_text}{stage}"
            )
            self.stream.write(line.ljust(110)[:160])
            self.stream.flush()
            self.drawn = True
            return
        step = (pct or 0) // 10
        if step != self.last_step or progress.stage == "done":
            self.last_step = step
            shown = pct if pct is not None else "?"
            self.stream.write(f"{shown}% {amount} {speed / MIB:.1f} MiB/s\n")
            self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _confirm_license(info: Any, repo: str, accept: bool) -> None:
    from lsp_server.hub.gate import require_license
    from lsp_server.hub.licenses import LicenseStore

    if info is None or not info.restricted:
        return
    store = LicenseStore()
    if store.is_accepted(info.key):
        return
    if accept:
        store.accept(info.key, via="cli", model=repo)
        return
    if sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write(
            f"{repo} is under the {info.name}: {info.url or 'see its model card'}\n"
            "Do you accept its terms? [y/N] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            store.accept(info.key, via="cli", model=repo)
            return
    require_license(info, model=repo, store=store, download=True)


def _download(args: argparse.Namespace) -> int:
    from lsp_server.hub.download import CancelToken, download, plan_download

    started = time.monotonic()
    plan = plan_download(args.model, revision=args.revision)
    _confirm_license(plan.license, plan.repo.repo, args.accept_license)
    sys.stderr.write(
        f"{plan.repo.repo}: {plan.group.name} ({_size(plan.total)}), {plan.reason}\n"
        f"into {_cache()}\n"
    )
    bar = ProgressBar()
    cancel = CancelToken()
    try:
        result = download(
            plan, on_progress=bar, cancel=cancel, allow_unverified=args.allow_unverified
        )
    except KeyboardInterrupt:
        cancel.cancel()
        bar.close()
        sys.stderr.write(
            "interrupted: the partial download is kept; run the same command to resume\n"
        )
        return 130
    finally:
        bar.close()
    if args.json:
        _out(json.dumps(result.to_dict(), indent=2))
        return 0
    resumed = sum(f.resumed_from for f in result.files)
    note = f", resumed from {_size(resumed)}" if resumed else ""
    cached = all(f.cached for f in result.files)
    _out(
        ("Already downloaded: " if cached else "Downloaded and verified: ")
        + f"{result.path} ({_size(result.transferred)} transferred in "
        f"{time.monotonic() - started:.1f} s{note})"
    )
    _out(f"Use it: set openLlm.model (or openLlm.completion.model) to {plan.spec}")
    return 0


def _cache() -> str:
    from lsp_server.hub.discovery import hub_cache_dir

    return str(hub_cache_dir())
