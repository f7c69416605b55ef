#!/usr/bin/env bash
# Set up (idempotent) and run the test suite: python -m pytest tests
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup_env.sh"
venv="${AVFEWSHOT_VENV:-$HOME/.cache/avfewshot/venv}"
cd "$here"
exec "$venv/bin/python" -m pytest tests -q "$@"
