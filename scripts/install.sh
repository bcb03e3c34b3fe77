#!/usr/bin/env bash
# The one install step, shared by the Makefile, CI (.ci/run) and the Dockerfile.
#   scripts/install.sh        editable install with the dev tools (developers, CI)
#   scripts/install.sh prod   plain install of the service only (container image)
# torch is installed first and pinned to 2.13.0 so that pip takes the CPU build;
# TORCH_INDEX_URL (optional) names a package index that serves CPU wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-dev}"
pip_install() { python -m pip install --disable-pip-version-check --no-input "$@"; }
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip_install "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
  pip_install "torch==2.13.0"
fi
case "$mode" in
  dev) pip_install -e ".[dev]" ;;
  prod) pip_install --no-cache-dir . ;;
  *) echo "usage: scripts/install.sh [dev|prod]" >&2; exit 2 ;;
esac
