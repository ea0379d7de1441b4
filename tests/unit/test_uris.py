"""URI ↔ path on POSIX and Windows (drive letters, UNC shares), checked on any system."""

from __future__ import annotations

from pathlib import PureWindowsPath

import pytest

from lsp_server.core.uris import is_file_uri, path_to_uri, uri_to_path


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///home/me/src/a.py", "/home/me/src/a.py"),
        ("file:///home/me/my%20src/%C3%A9.py", "/home/me/my src/é.py"),
        ("file://localhost/etc/hosts", "/etc/hosts"),
        ("file:///", "/"),
    ],
)
def test_posix(uri: str, path: str) -> None:
    assert uri_to_path(uri, windows=False) == path
    assert uri_to_path(path_to_uri(path, windows=False), windows=False) == path


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///C:/src/a.py", r"C:\src\a.py"),
        ("file:///c%3A/src/a.py", r"C:\src\a.py"),
        ("file:///d:/", "D:\\"),
        ("file://server/share/dir/a.py", r"\\server\share\dir\a.py"),
        ("file:///C:/My%20Docs/x.py", r"C:\My Docs\x.py"),
    ],
)
def test_windows(uri: str, path: str) -> None:
    got = uri_to_path(uri, windows=True)
    assert got == path
    assert PureWindowsPath(got).is_absolute()
    back = path_to_uri(path, windows=True)
    assert uri_to_path(back, windows=True) == path


def test_unc_round_trip_keeps_the_host() -> None:
    uri = path_to_uri(r"\\build01\repo\main.c", windows=True)
    assert uri == "file://build01/repo/main.c"


def test_other_schemes_and_plain_paths() -> None:
    assert uri_to_path("untitled:Untitled-1") is None
    assert uri_to_path("https://example.com/x.py") is None
    assert uri_to_path("/already/a/path") == "/already/a/path"
    assert is_file_uri("FILE:///x") and not is_file_uri("untitled:x")
