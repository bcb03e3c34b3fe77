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
# dev: nothing to do when this checkout is what the interpreter imports and pyproject.toml is unchanged since it
# was installed (`make run` and `make test` call this each time: pip's resolution took ~30 s for nothing).
stamp=".tools/installed-$mode"
fingerprint="$( (command -v python; python --version; pwd; cat pyproject.toml) | sha256sum | cut -d' ' -f1)"
if [ "$mode" = dev ] && [ "$(cat "$stamp" 2>/dev/null)" = "$fingerprint" ] \
  && [ "$(python -c 'import dbmeta_app, os; print(os.path.dirname(os.path.dirname(os.path.abspath(dbmeta_app.__file__))))' 2>/dev/null)" = "$(pwd -P)" ] \
  && [ -x .tools/checkov/bin/checkov ]; then
  echo "dbmeta is installed from $(pwd -P) and pyproject.toml is unchanged: nothing to install"
  exit 0
fi
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip_install "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
  pip_install "torch==2.13.0"
fi
# checkov (run by tests/infra) pins packaging, networkx, cachetools and boto3 low: it gets an environment of its own.
CHECKOV_VERSION=3.3.30
install_checkov() {
  local venv=.tools/checkov
  if [ -x "$venv/bin/checkov" ] && [ "$("$venv/bin/checkov" --version 2>/dev/null)" = "$CHECKOV_VERSION" ]; then
    return 0
  fi
  python -m venv "$venv"
  # (the machine's pip configuration may name local indexes that do not exist: their warnings are noise here)
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q "checkov==$CHECKOV_VERSION" \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
case "$mode" in
  dev) pip_install -e ".[dev]"; install_checkov; mkdir -p .tools; echo "$fingerprint" > "$stamp" ;;
  prod) pip_install --no-cache-dir . ;;
  *) echo "usage: scripts/install.sh [dev|prod]" >&2; exit 2 ;;
esac
