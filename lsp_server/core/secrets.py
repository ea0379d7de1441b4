"""Which files are secrets: never sent as context, attached to a chat or sent to a server."""

from __future__ import annotations

import fnmatch

__all__ = ["DEFAULT_SECRET_GLOBS", "is_secret"]

DEFAULT_SECRET_GLOBS = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keystore",
    "*.jks",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    "*credentials*",
    "*secret*",
    "*.tfvars",
)
"""File names never used as extra context (matched against the base name and the path)."""


def is_secret(path: str, globs: tuple[str, ...] | list[str] = DEFAULT_SECRET_GLOBS) -> bool:
    """Whether ``path`` matches a secret-file pattern (case-insensitive)."""
    lowered = path.replace("\\", "/").lower()
    name = lowered.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(name, g.lower()) or fnmatch.fnmatchcase(lowered, g.lower())
        for g in globs
    )
