"""The ``open-llm-lsp`` command: serve over stdio (default) or TCP, and tools.

stdout belongs to the protocol: before serving on stdio the real stdout is kept
for LSP frames and file descriptor 1 is pointed at stderr, so a stray ``print``
or a native library's log can never corrupt the stream.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from lsp_server import __version__

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser (subcommands included)."""
    parser = argparse.ArgumentParser(
        prog="open-llm-lsp",
        description="Offline coding assistant: a language server running local LLMs.",
    )
    parser.add_argument("--version", action="version", version=f"open-llm-lsp {__version__}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the language server (default)")
    for p in (parser, serve):
        p.add_argument("--tcp", action="store_true", help="serve over TCP instead of stdio")
        p.add_argument(
            "--stdio", action="store_true", help="serve over stdio (the default; for clients)"
        )
        p.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=2087, help="TCP port (default 2087)")
        p.add_argument("--log-file", help="also write logs (debug level) to this file")
        p.add_argument("-v", "--verbose", action="count", default=0, help="more logs on stderr")
    sub.add_parser("hw", help="print this machine's hardware report")
    from lsp_server.cli.models import add_models_parser

    add_models_parser(sub)
    sub.add_parser("demo", help="run a scripted editor session against a fresh server")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``open-llm-lsp`` command."""
    args = build_parser().parse_args(argv)
    if args.command == "hw":
        return _hw()
    if args.command == "models":
        from lsp_server.cli.models import run_models

        return run_models(args)
    if args.command == "demo":
        from lsp_server.demo.session import main as demo

        return demo()
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    from lsp_server.protocol.logging import setup_logging
    from lsp_server.protocol.setup import create_server

    level = (
        logging.DEBUG if args.verbose >= 2 else logging.INFO if args.verbose else logging.WARNING
    )
    client_log = setup_logging(level, args.log_file)
    if args.tcp:
        server = create_server(client_log)
        server.start_tcp(args.host, args.port)
        return 0
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    server = create_server(client_log)
    server.start_io(sys.stdin.buffer, protocol_out)
    return 0


def _hw() -> int:
    from lsp_server.hardware.probe import probe
    from lsp_server.hardware.report import format_hardware

    sys.stdout.write(format_hardware(probe()) + "\n")
    return 0
