#!/usr/bin/env bash
# Copy the screenshots taken by the end-to-end tests (tests/editors/artifacts/vscode/, after
# `make test` or `pytest tests/editors/test_vscode.py`) into media/screenshots/ for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
src=../tests/editors/artifacts/vscode
mkdir -p media/screenshots
for name in status-bar ghost-text chat chat-stopped chat-list search model-picker code-actions preset-switched; do
  if [ -f "$src/$name.png" ]; then
    cp "$src/$name.png" "media/screenshots/$name.png"
    echo "media/screenshots/$name.png"
  else
    echo "missing $src/$name.png (run the end-to-end tests first)" >&2
  fi
done
