"""Run a system command (``nvidia-smi``, ``sysctl``...) safely for the probes.

Probes take a :data:`Runner` so tests can inject canned outputs; the default one runs the
command only if it exists, with a timeout, no stdin, and None on any failure.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Sequence

__all__ = ["Runner", "default_runner", "sysctl_int"]

log = logging.getLogger(__name__)

#: Runs a command with a timeout (seconds) and returns its stdout, or None on any failure.
Runner = Callable[[Sequence[str], float], str | None]


def default_runner(cmd: Sequence[str], timeout: float) -> str | None:
    """Run ``cmd`` if it exists; stdout on success, None otherwise."""
    exe = shutil.which(cmd[0])
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, *cmd[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s failed: %s", cmd[0], exc)
        return None
    if proc.returncode != 0:
        log.debug("%s exited with %d: %s", cmd[0], proc.returncode, proc.stderr[:200])
        return None
    return proc.stdout


def sysctl_int(run: Runner, name: str) -> int | None:
    out = run(["sysctl", "-n", name], 3.0)
    try:
        return int(out.strip()) if out else None
    except ValueError:
        return None
