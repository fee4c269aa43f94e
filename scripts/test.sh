#!/usr/bin/env bash
# Run binderlite's whole test suite on this machine, as root.
# Installs what the tests need first (idempotent), then: ruff, unit tests,
# integration tests against the real Docker engine, registry, hub and proxy.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
BINDERLITE_WITH_TEST_TOOLS=1 bash scripts/install-debian.sh
VENV="${BINDERLITE_INSTALL_PREFIX:-/opt/binderlite}/venv"
echo "==> ruff"
"$VENV/bin/ruff" check binderlite tests benchmarks
echo "==> unit tests"
"$VENV/bin/python" -m pytest tests/unit -q -p no:cacheprovider
echo "==> integration tests"
"$VENV/bin/python" -m pytest tests/integration -v -p no:cacheprovider --durations=15
