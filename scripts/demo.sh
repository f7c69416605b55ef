#!/usr/bin/env bash
# Set up (idempotent) and run the main job on the embedded synthetic demo.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup_env.sh"
venv="${AVFEWSHOT_VENV:-$HOME/.cache/avfewshot/venv}"
cd "$here"
exec "$venv/bin/avfewshot" run --shots 16 --task llp_cls "$@"
