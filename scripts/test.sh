#!/usr/bin/env bash
# Set up (idempotent) and run the test suite: python -m pytest tests, as one pytest process per CPU core (at most
# 2) over disjoint test files (scripts/run_tests.py; --shards 1 for one process; naming files runs just those)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup_env.sh"
venv="${AVFEWSHOT_VENV:-$HOME/.cache/avfewshot/venv}"
cd "$here"
exec "$venv/bin/python" scripts/run_tests.py -q "$@"
