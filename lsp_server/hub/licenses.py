"""Model licenses: ids, links, which ones need an explicit acceptance, and the record of it.

A model's license comes from its GGUF header (``general.license``) or from its Hugging
Face model card (``cardData.license``, with ``license_name``/``license_link`` for
``other``). Open-source licenses (MIT, Apache-2.0, BSD...) need nothing. Everything else
with a known id — the Gemma Terms of Use, the Llama community licenses, research-only
and non-commercial terms, ``other`` — is *restricted*: it must be accepted once, before
the model is first downloaded or loaded. A model with no license information at all is
shown as ``unknown`` and not blocked (there is nothing to show the user).

Acceptances are recorded in ``data_dir()/state/licenses.json`` (written atomically), or
given up front by the ``openLlm.models.acceptedLicenses`` setting.

What a model card says is not trusted: a README's front matter is read line by line from
its first :data:`README_LIMIT` bytes, ids and names are length-capped and cleaned for
display, and a license link is kept only when it is an ``https:`` URL.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_server.core.paths import read_head
from lsp_server.core.sanitize import clean_text, safe_url
from lsp_server.hub.state import read_json, state_path, write_json

__all__ = [
    "OPEN_LICENSES",
    "LicenseInfo",
    "LicenseStore",
    "card_license",
    "license_info",
    "normalize_license",
    "readme_file_license",
    "readme_license",
]

log = logging.getLogger(__name__)

#: Licenses that need no acceptance (OSI-approved and similarly permissive ones).
OPEN_LICENSES: frozenset[str] = frozenset(
    {
        "apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear",
        "isc", "mpl-2.0", "unlicense", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-3.0",
        "gpl-2.0", "gpl-3.0", "lgpl-2.1", "lgpl-3.0", "agpl-3.0", "artistic-2.0", "bsl-1.0",
        "zlib", "postgresql", "ncsa", "upl-1.0", "ecl-2.0", "afl-3.0", "wtfpl", "odc-by",
        "odbl", "pddl", "cdla-permissive-2.0", "epl-2.0", "eupl-1.2", "osl-3.0",
    }
)  # fmt: skip

# id -> (display name, link)
_KNOWN: dict[str, tuple[str, str]] = {
    "apache-2.0": ("Apache License 2.0", "https://www.apache.org/licenses/LICENSE-2.0"),
    "mit": ("MIT License", "https://opensource.org/license/mit"),
    "bsd-3-clause": ("BSD 3-Clause License", "https://opensource.org/license/bsd-3-clause"),
    "bsd-2-clause": ("BSD 2-Clause License", "https://opensource.org/license/bsd-2-clause"),
    "gpl-3.0": ("GNU GPL v3", "https://www.gnu.org/licenses/gpl-3.0.html"),
    "cc-by-4.0": ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    "gemma": ("Gemma Terms of Use", "https://ai.google.dev/gemma/terms"),
    "llama2": ("Llama 2 Community License", "https://ai.meta.com/llama/license/"),
    "llama3": ("Meta Llama 3 Community License", "https://www.llama.com/llama3/license/"),
    "llama3.1": ("Llama 3.1 Community License", "https://www.llama.com/llama3_1/license/"),
    "llama3.2": ("Llama 3.2 Community License", "https://www.llama.com/llama3_2/license/"),
    "llama3.3": ("Llama 3.3 Community License", "https://www.llama.com/llama3_3/license/"),
    "llama4": ("Llama 4 Community License", "https://www.llama.com/llama4/license/"),
    "qwen-research": (
        "Qwen Research License (non-commercial)",
        "https://huggingface.co/Qwen/Qwen2.5-Coder-3B-Instruct/blob/main/LICENSE",
    ),
    "qwen": ("Tongyi Qianwen License", "https://huggingface.co/Qwen/Qwen-7B/blob/main/LICENSE"),
    "deepseek": (
        "DeepSeek License",
        "https://github.com/deepseek-ai/DeepSeek-Coder/blob/main/LICENSE-MODEL",
    ),
    "cc-by-nc-4.0": ("CC BY-NC 4.0 (non-commercial)", "https://creativecommons.org/licenses/by-nc/4.0/"),
    "cc-by-nc-sa-4.0": (
        "CC BY-NC-SA 4.0 (non-commercial)",
        "https://creativecommons.org/licenses/by-nc-sa/4.0/",
    ),
    "mrl": ("Mistral Research License", "https://mistral.ai/licenses/MRL-0.1.md"),
    "bigcode-openrail-m": (
        "BigCode OpenRAIL-M",
        "https://huggingface.co/spaces/bigcode/bigcode-model-license-agreement",
    ),
    "openrail": ("OpenRAIL", "https://huggingface.co/blog/open_rail"),
}  # fmt: skip

_ALIASES = {
    "apache2": "apache-2.0",
    "apache-2": "apache-2.0",
    "apache2.0": "apache-2.0",
    "apache-license-2.0": "apache-2.0",
    "apache-2.0-license": "apache-2.0",
    "mit-license": "mit",
    "gemma-terms-of-use": "gemma",
    "gemma-terms": "gemma",
    "llama-2": "llama2",
    "llama-3": "llama3",
    "llama-3.1": "llama3.1",
    "llama-3.2": "llama3.2",
    "llama-3.3": "llama3.3",
    "bsd-3": "bsd-3-clause",
    "bsd-2": "bsd-2-clause",
}


MAX_ID_CHARS = 64
"""License ids are cut to this length (a model card can hold any text)."""
MAX_NAME_CHARS = 80
"""License names (shown to the user) are cut to this length."""
README_LIMIT = 64 * 1024
"""Bytes of a README read for its front matter (which comes first)."""
_README_LINES = 500
_README_KEYS = ("license", "license_name", "license_link")
_LINK_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,200}")


def normalize_license(value: str | None) -> str | None:
    """Canonical license id: lower case, words joined by ``-`` (``"Apache 2.0"`` →
    ``"apache-2.0"``, ``"MIT License"`` → ``"mit"``), at most :data:`MAX_ID_CHARS`;
    None for an empty value."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if not text:
        return None
    text = re.sub(r"\s+", "-", text[: 4 * MAX_ID_CHARS])
    text = re.sub(r"^license[-:]", "", text)
    text = _ALIASES.get(text, text)
    if text.endswith("-license") and text[: -len("-license")] in _KNOWN:
        text = text[: -len("-license")]
    return text[:MAX_ID_CHARS]


@dataclass(frozen=True)
class LicenseInfo:
    """A license as shown to the user and checked by the gate.

    ``key`` is what an acceptance records: the id, or ``other:<name>`` for a custom
    license named on a model card.
    """

    id: str
    name: str
    url: str | None
    restricted: bool
    key: str
    source: str = ""  # "gguf", "card", "catalog", "readme"

    def to_dict(self, accepted: bool | None = None) -> dict[str, Any]:
        """JSON-friendly form with camelCase keys (``accepted`` when given)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "restricted": self.restricted,
            "key": self.key,
            "source": self.source,
        }
        if accepted is not None:
            out["accepted"] = accepted or not self.restricted
        return out


def license_info(
    license_id: str | None,
    *,
    name: str | None = None,
    link: str | None = None,
    repo: str | None = None,
    source: str = "",
) -> LicenseInfo | None:
    """Describe a license id (None when there is no license information).

    :param license_id: ``general.license`` or ``cardData.license``.
    :param name: ``license_name`` of an ``other`` license on a model card.
    :param link: ``license_link`` from a model card (wins over the built-in link).
    :param repo: the Hugging Face repository, for a link to its card when nothing better.
    :param source: where the id came from (shown in listings).
    """
    lid = normalize_license(license_id)
    if lid is None:
        return None
    restricted = lid not in OPEN_LICENSES
    known = _KNOWN.get(lid)
    key = lid
    display = known[0] if known else _label(license_id) if license_id else lid
    url = known[1] if known else None
    if lid == "other":
        custom = normalize_license(name)
        key = f"other:{custom}" if custom else (f"other:{repo}" if repo else "other")
        display = _label(name) if name and name.strip() else "a custom license (see the model card)"
    link = link.strip() if link else None
    if (link and "://" in link) or (link and link.lower().startswith(("https:", "http:"))):
        url = safe_url(link) or url  # only https: links are ever offered
    elif link and ":" not in link and repo:
        path = link.lstrip("./")
        if _LINK_PATH.fullmatch(path) and ".." not in path.split("/"):
            url = f"https://huggingface.co/{repo}/blob/main/{path}"
    if url is None and repo:
        url = f"https://huggingface.co/{repo}"
    return LicenseInfo(lid, display, safe_url(url), restricted, key, source)


def _label(text: str) -> str:
    """A license name from a model card, fit to show: one line, no link markup, short."""
    return clean_text(text.strip(), MAX_NAME_CHARS)


def card_license(card: dict[str, Any] | None, repo: str | None = None) -> LicenseInfo | None:
    """The license of a model card's metadata (``cardData``: ``license``,
    ``license_name``, ``license_link``)."""
    if not isinstance(card, dict):
        return None
    value = card.get("license")
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str):
        return None
    name = card.get("license_name")
    link = card.get("license_link")
    return license_info(
        value,
        name=name if isinstance(name, str) else None,
        link=link if isinstance(link, str) else None,
        repo=repo,
        source="card",
    )


def readme_license(text: str, repo: str | None = None) -> LicenseInfo | None:
    """The license in a model card's YAML front matter (``license: gemma``).

    Parsed line by line (no YAML dependency, no regular expression that could backtrack)
    from the first :data:`README_LIMIT` characters: top-level ``license``,
    ``license_name`` and ``license_link`` keys (a one-item list under ``license`` too).
    """
    lines = text[:README_LIMIT].lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    fields: dict[str, Any] = {}
    pending: str | None = None  # a key whose value is on the next line ("- mit")
    for line in lines[1:_README_LINES]:
        stripped = line.strip()
        if stripped in ("---", "..."):
            return card_license(fields, repo)
        if pending is not None and stripped.startswith("- "):
            fields.setdefault(pending, _scalar(stripped[2:]))
            pending = None
            continue
        pending = None
        if line[:1].isspace():
            continue
        key, sep, value = line.partition(":")
        if sep and key in _README_KEYS and key not in fields:
            if value.strip():
                fields[key] = _scalar(value)
            else:
                pending = key
    return None  # no end of the front matter


def _scalar(value: str) -> str:
    return value.strip()[:512].strip("'\"").strip()


def readme_file_license(path: Path, repo: str | None = None) -> LicenseInfo | None:
    """:func:`readme_license` of a README file: a regular file, its first
    :data:`README_LIMIT` bytes only; None when it cannot be read."""
    data = read_head(path, README_LIMIT)
    if data is None:
        return None
    return readme_license(data.decode("utf-8", errors="replace"), repo)


# ---------------------------------------------------------------------------------------
# The record of acceptances
# ---------------------------------------------------------------------------------------


class LicenseStore:
    """Accepted licenses, kept in ``<data dir>/state/licenses.json``.

    The file holds ``{"accepted": {"gemma": {"at": epoch seconds, "via": "editor",
    "model": "..."}}}``. Reads are cheap (the file is small) and always fresh, so
    several server processes and the CLI see each other's acceptances.
    """

    _lock = threading.Lock()

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        """The JSON file (``data_dir()/state/licenses.json`` unless given)."""
        return self._path if self._path is not None else state_path("licenses.json")

    def _read(self) -> dict[str, Any]:
        accepted = read_json(self.path).get("accepted")
        return accepted if isinstance(accepted, dict) else {}

    def accepted(self) -> dict[str, Any]:
        """License key → record of its acceptance."""
        return self._read()

    def is_accepted(self, key: str, also: Iterable[str] = ()) -> bool:
        """Whether ``key`` was accepted here or is listed in ``also`` (the setting)."""
        wanted = normalize_license(key) or key
        extra = {normalize_license(k) or k for k in also}
        if wanted in extra:
            return True
        return wanted in self._read()

    def accept(self, key: str, *, via: str, model: str | None = None) -> None:
        """Record that ``key`` was accepted (atomic write).

        :raises StorageError: the file cannot be written.
        """
        wanted = normalize_license(key) or key
        with self._lock:
            records = self._read()
            records[wanted] = {"at": int(time.time()), "via": via, "model": model}
            write_json(self.path, {"accepted": records})
        log.info("license %s accepted (%s)", wanted, via)

    def revoke(self, key: str) -> bool:
        """Forget an acceptance; True when there was one."""
        wanted = normalize_license(key) or key
        with self._lock:
            records = self._read()
            if records.pop(wanted, None) is None:
                return False
            write_json(self.path, {"accepted": records})
        return True
