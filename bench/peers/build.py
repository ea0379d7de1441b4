"""Build llama.cpp's ``llama-server`` and ``llama-bench`` from the pinned llama-cpp-python sdist.

    python -m bench.peers.build [--jobs N] [--force]

Downloads the sdist with pip (nothing else is fetched), configures the vendored
``vendor/llama.cpp`` with CMake (native CPU, no curl, no tests or examples, static
libraries) and installs the two binaries into :func:`bench.peers.bin_dir`. Idempotent: when
both binaries exist it does nothing. Run it niced in the background; it takes ~12 minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bench.peers import LLAMA_CPP_PYTHON_VERSION, TOOLS, bin_dir, find, peers_root

CMAKE_FLAGS = (
    "-DGGML_NATIVE=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DCMAKE_BUILD_TYPE=Release",
)


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def download_sdist(dest: Path, version: str) -> Path:
    """Download the llama-cpp-python ``version`` sdist into ``dest`` and return its path."""
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--dest",
            str(dest),
            f"llama-cpp-python=={version}",
        ]
    )
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise SystemExit(f"pip did not download a llama-cpp-python {version} sdist into {dest}")
    return found[0]


def unpack(sdist: Path, dest: Path) -> Path:
    """Unpack ``sdist`` into ``dest`` and return its vendored llama.cpp folder."""
    with tarfile.open(sdist) as tar:
        tar.extractall(dest, filter="data")
    roots = [p for p in dest.iterdir() if p.is_dir()]
    if len(roots) != 1:
        raise SystemExit(f"unexpected layout in {sdist.name}: {[p.name for p in roots]}")
    tree = roots[0] / "vendor" / "llama.cpp"
    if not (tree / "CMakeLists.txt").is_file():
        raise SystemExit(f"{sdist.name} has no vendor/llama.cpp/CMakeLists.txt")
    return tree


def build(version: str = LLAMA_CPP_PYTHON_VERSION, jobs: int | None = None) -> Path:
    """Build the peers of ``version`` into their cache folder and return that folder."""
    out = bin_dir(version)
    work_root = peers_root() / version
    work_root.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="build-", dir=work_root) as tmp:
        work = Path(tmp)
        sdist = download_sdist(work / "sdist", version)
        tree = unpack(sdist, work / "src")
        build_dir = tree / "build"
        _run(["cmake", "-B", str(build_dir), *CMAKE_FLAGS], cwd=tree)
        _run(
            ["cmake", "--build", str(build_dir), f"-j{jobs}", "--target", *TOOLS],
            cwd=tree,
        )
        staged = work / "bin"
        staged.mkdir()
        for tool in TOOLS:
            built = build_dir / "bin" / tool
            if not built.is_file():
                raise SystemExit(f"the build finished without {built}")
            shutil.copy2(built, staged / tool)
        if out.exists():
            shutil.rmtree(out)
        staged.rename(out)  # same file system: the bin folder appears complete or not at all
    return out


def main(argv: list[str] | None = None) -> int:
    """Build the peers unless they are already built."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None, help="parallel compile jobs")
    parser.add_argument("--force", action="store_true", help="rebuild even when present")
    args = parser.parse_args(argv)
    if not args.force and all(find(tool) for tool in TOOLS):
        print(f"peers already built in {bin_dir()}: {', '.join(TOOLS)}")
        return 0
    out = build(jobs=args.jobs)
    for tool in TOOLS:
        print(f"built {out / tool}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
