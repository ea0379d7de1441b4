"""License ids, links, which need acceptance, the record of acceptances, and the gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsp_server.core.errors import LicenseNotAccepted
from lsp_server.hub.gate import require_license
from lsp_server.hub.licenses import (
    LicenseStore,
    card_license,
    license_info,
    normalize_license,
    readme_license,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Apache 2.0", "apache-2.0"),
        ("apache-2.0", "apache-2.0"),
        ("MIT License", "mit"),
        ("MIT", "mit"),
        ("llama-3.1", "llama3.1"),
        ("Gemma", "gemma"),
        ("license:gemma", "gemma"),
        ("  ", None),
        (None, None),
    ],
)
def test_normalize(raw: str | None, expected: str | None) -> None:
    assert normalize_license(raw) == expected


def test_open_and_restricted_licenses() -> None:
    apache = license_info("apache-2.0")
    gemma = license_info("gemma")
    llama = license_info("llama3.2")
    odd = license_info("some-new-license")
    assert apache is not None and not apache.restricted
    assert license_info("MIT") is not None and not license_info("MIT").restricted  # type: ignore[union-attr]
    assert (
        gemma is not None and gemma.restricted and gemma.url == "https://ai.google.dev/gemma/terms"
    )
    assert gemma.name == "Gemma Terms of Use"
    assert llama is not None and llama.restricted and "llama3_2" in (llama.url or "")
    assert odd is not None and odd.restricted  # unknown ids need an acceptance
    assert license_info(None) is None  # no information: nothing to accept


def test_other_license_from_a_model_card() -> None:
    info = card_license(
        {"license": "other", "license_name": "Acme Model License", "license_link": "LICENSE"},
        "acme/model-GGUF",
    )
    assert info is not None and info.restricted
    assert info.key == "other:acme-model-license"
    assert info.url == "https://huggingface.co/acme/model-GGUF/blob/main/LICENSE"
    assert info.name == "Acme Model License"
    listed = card_license({"license": ["mit"]})
    assert listed is not None and listed.id == "mit" and not listed.restricted


def test_license_from_readme_front_matter() -> None:
    text = "---\nlibrary_name: gguf\nlicense: gemma\ntags:\n- x\n---\n\n# Model\n"
    info = readme_license(text, "google/x")
    assert info is not None and info.key == "gemma" and info.source == "card"
    assert readme_license("# no front matter\n") is None


def test_store_records_atomically(tmp_path: Path) -> None:
    path = tmp_path / "state" / "licenses.json"
    store = LicenseStore(path)
    assert not store.is_accepted("gemma")
    assert store.is_accepted("gemma", also=["Gemma"])  # the setting
    store.accept("gemma", via="test", model="Gemma 3 270m")
    assert store.is_accepted("gemma")
    assert LicenseStore(path).is_accepted("GEMMA")  # fresh reads, normalized
    data = json.loads(path.read_text())
    assert data["accepted"]["gemma"]["via"] == "test"
    assert [p.name for p in path.parent.iterdir()] == ["licenses.json"]  # no temp files left
    assert store.revoke("gemma") and not store.is_accepted("gemma")
    assert not store.revoke("gemma")


def test_store_survives_a_damaged_file(tmp_path: Path) -> None:
    path = tmp_path / "licenses.json"
    path.write_text("{not json")
    store = LicenseStore(path)
    assert store.accepted() == {}
    store.accept("llama3.1", via="test")
    assert store.is_accepted("llama3.1")


def test_gate(tmp_path: Path) -> None:
    store = LicenseStore(tmp_path / "licenses.json")
    require_license(license_info("apache-2.0"), model="x", store=store)
    require_license(None, model="x", store=store)
    with pytest.raises(LicenseNotAccepted) as info:
        require_license(license_info("gemma"), model="Gemma 3 270m", store=store, role="completion")
    err = info.value
    assert err.kind == "licenseNotAccepted"
    assert err.data["license"] == "gemma" and err.data["role"] == "completion"
    assert "openLlm.models.acceptedLicenses" in err.message
    assert "openLlm/models/acceptLicense" in err.message
    assert "Inline completion stays off" in err.message
    require_license(license_info("gemma"), model="x", store=store, accepted=["gemma"])
    store.accept("gemma", via="test")
    require_license(license_info("gemma"), model="x", store=store)
