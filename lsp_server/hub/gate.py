"""The license gate: a restricted license must be accepted before a download or a load.

:func:`require_license` raises :class:`~lsp_server.core.errors.LicenseNotAccepted` with a
message that says what to do: answer the editor's prompt, send
``openLlm/models/acceptLicense``, run ``open-llm-lsp models download --accept-license``,
or list the license in ``openLlm.models.acceptedLicenses``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lsp_server.core.errors import LicenseNotAccepted
from lsp_server.hub.discovery import local_license
from lsp_server.hub.licenses import LicenseInfo, LicenseStore

__all__ = ["ROLE_LABELS", "license_message", "model_license", "require_license"]

ROLE_LABELS = {"chat": "chat", "completion": "inline completion"}


def model_license(path: Path) -> tuple[LicenseInfo | None, str]:
    """``(license, display name)`` of a local model file (GGUF ``general.name``)."""
    from lsp_server.hub.discovery import _header

    header, _ = _header(path)
    return local_license(path, header), str(header.get("name") or path.name)


def license_message(
    info: LicenseInfo, model: str, *, role: str | None = None, download: bool = False
) -> str:
    """Why ``model`` is blocked and every way to accept its license."""
    use = "downloaded" if download else "used"
    what = f"{model} (the {ROLE_LABELS.get(role or '', role)} model)" if role else model
    after = ""
    if role == "completion" and not download:
        after = " Inline completion stays off until then."
    elif role and not download:
        after = f" The {ROLE_LABELS.get(role, role)} model stays off until then."
    return (
        f"{what} is under the {info.name} ({info.url or 'see its model card'}), which must be "
        f"accepted before it is {use}. Accept it when the editor asks, with the "
        f'openLlm/models/acceptLicense request ({{"license": "{info.key}"}}), or by adding '
        f'"{info.key}" to openLlm.models.acceptedLicenses in your user settings.{after}'
    )


def require_license(
    info: LicenseInfo | None,
    *,
    model: str,
    accepted: Iterable[str] = (),
    store: LicenseStore | None = None,
    role: str | None = None,
    download: bool = False,
    data: dict[str, Any] | None = None,
) -> None:
    """Raise :class:`LicenseNotAccepted` unless ``info`` is open, unknown or accepted.

    :param info: the model's license (None: no information, nothing to accept).
    :param model: the model's name, for the message.
    :param accepted: license ids accepted by the settings.
    :param store: recorded acceptances (default: ``<data dir>/state/licenses.json``).
    :param role: the role that would load it (``chat``/``completion``), for the message.
    :param download: the gate guards a download rather than a load.
    :param data: extra fields for the error's ``data``.
    """
    if info is None or not info.restricted:
        return
    if (store or LicenseStore()).is_accepted(info.key, accepted):
        return
    raise LicenseNotAccepted(
        license_message(info, model, role=role, download=download),
        data={
            "license": info.key,
            "licenseName": info.name,
            "licenseUrl": info.url,
            "model": model,
            "role": role,
            **(data or {}),
        },
    )
