#!/usr/bin/env bash
# make deploy-check (deploy-check.py says what it checks). Installs its Python packages
# (pinned) into a venv under the target dir once; kustomize is kubectl's (`kubectl
# kustomize`), nats-server Debian's (both are on the project's machines).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$(pwd)/target}
venv="$target/tools/deploy-venv"
if ! "$venv/bin/python" -c 'import jsonschema, yaml' 2>/dev/null; then
  echo "deploy-check: installing jsonschema and PyYAML into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'jsonschema==4.26.0' 'PyYAML==6.0.3'
fi
exec "$venv/bin/python" deploy/deploy-check.py
