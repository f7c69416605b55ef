#!/usr/bin/env bash
# Create or reuse the avfewshot virtual environment (outside the clone) and install the package.
# Idempotent: a second call with the same requirements installs nothing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AVFEWSHOT_VENV:-$HOME/.cache/avfewshot/venv}"
py="${PYTHON:-python3}"
stamp="$venv/.avfewshot-stack"
want="torch==2.9.1 torchvision==0.24.1 torchaudio==2.9.*; $(sha256sum "$here/requirements.txt" | cut -c1-16)"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating virtual environment at $venv"
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONSTRAINT=
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing the pinned torch stack (first time only: large download)"
  pip install -q torch==2.9.1 torchvision==0.24.1
  pip install -q torch==2.9.1 'torchaudio==2.9.*'
  pip install -q -r "$here/requirements.txt"  # = setup.cfg's install_requires + the [dev] extra
  # laion-clap's metadata pins numpy<2 and pulls wandb/wget; its model code needs only what requirements.txt lists.
  pip install -q --no-deps laion-clap==1.1.7
  echo "$want" > "$stamp"
else
  echo "[setup] reusing $venv"
fi
# The package itself, editable (prompts/ and runners/demo/ are read from the checkout); redone only when
# the checkout or its build files change.
editable="$here; $(cat "$here/setup.py" "$here/setup.cfg" "$here/pyproject.toml" | sha256sum | cut -c1-16)"
if [ "$(cat "$venv/.avfewshot-editable" 2>/dev/null)" != "$editable" ]; then
  pip install -q --no-deps --no-build-isolation -e "$here" 2>/dev/null || pip install -q --no-deps -e "$here"
  echo "$editable" > "$venv/.avfewshot-editable"
fi
# Optional: tcmalloc (AVFEWSHOT_ALLOCATOR=tcmalloc, the faster allocator for training; README "Measured").
# No system package is installed unasked: AVFEWSHOT_INSTALL_SYSTEM=1 installs it with apt-get (as root);
# otherwise the install line is printed. Nothing fails without it.
if ! ldconfig -p 2>/dev/null | grep -q libtcmalloc_minimal; then
  if [ "${AVFEWSHOT_INSTALL_SYSTEM:-0}" = 1 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing libtcmalloc-minimal4 (optional allocator; AVFEWSHOT_INSTALL_SYSTEM=1)"
    apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1 \
      || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libtcmalloc-minimal4 >/dev/null 2>&1) \
      || echo "[setup] libtcmalloc-minimal4 not installed (optional; AVFEWSHOT_ALLOCATOR=tcmalloc will say so)"
  else
    echo "[setup] optional, for AVFEWSHOT_ALLOCATOR=tcmalloc: sudo apt-get install libtcmalloc-minimal4" \
         "(or rerun with AVFEWSHOT_INSTALL_SYSTEM=1 as root)"
  fi
fi
echo "[setup] ready: $venv"
