#!/usr/bin/env bash
# The GPU path, checked by a user on a machine with a GPU: the demo and the real-size DG-SCT bench on CUDA,
# in fp32 and bf16, with a short table at the end. Without a GPU it says so and exits 0.
#   bash scripts/gpu_check.sh [RESULTS]        (default: a temporary folder)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AVFEWSHOT_VENV:-$HOME/.cache/avfewshot/venv}"
python="$venv/bin/python"
[ -x "$python" ] || python="python3"

if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "[gpu-check] no CUDA device is available to torch on this machine: nothing to check (exit 0)"
  exit 0
fi
out="${1:-$(mktemp -d -t avfewshot-gpu-check-XXXXXX)}"
mkdir -p "$out"
"$python" -c 'import torch; print(f"[gpu-check] {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")'
cd "$out"
for precision in fp32 bf16; do
  echo "[gpu-check] demo: avfewshot run --shots 16 --task llp_cls on cuda, $precision"
  "$python" -m avfewshot.cli run --shots 16 --task llp_cls --results "$out/results-$precision" --no-progress \
    train.device=cuda "train.precision=$precision" "model.frozen_dtype=$([ "$precision" = fp32 ] && echo fp32 || echo "$precision")"
done
echo "[gpu-check] real-size DG-SCT bench on cuda (fp32 and bf16)"
"$python" -m avfewshot.cli bench dgsct --device cuda --variants plain --precision fp32 bf16 --breakdown \
  --out "$out/bench_dgsct.json"
"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'check':<34}{'fp32':>14}{'bf16':>14}")
acc = {p: json.loads(next((out / f"results-{p}").rglob("metrics.json")).read_text()) for p in ("fp32", "bf16")}
print(f"{'demo llp_cls 16-shot accuracy':<34}{acc['fp32']['test']['accuracy']:>14.2f}{acc['bf16']['test']['accuracy']:>14.2f}")
print(f"{'demo device':<34}{acc['fp32']['environment']['device']:>14}{acc['bf16']['environment']['device']:>14}")
rows = json.loads((out / "bench_dgsct.json").read_text())["variants"]  # "plain/fp32", "plain/bf16"
for key, label in (("step_seconds", "bench step (s)"), ("eval_seconds", "bench eval forward (s)"),
                   ("peak_memory_gb", "bench peak GPU memory (GB)")):
    print(f"{label:<34}{rows['plain/fp32'][key]:>14.3f}{rows['plain/bf16'][key]:>14.3f}")
error = rows["plain/bf16"].get("against_fp32", {}).get("fused_logits_relative_error")
if error is not None:
    print(f"{'bench fused logits rel. error':<34}{'':>14}{error:>14.2e}")
for kind, seconds in rows["plain/fp32"].get("time_by_kind", {}).items():  # device time of one profiled step
    if seconds > 0:
        print(f"{'bench ' + kind + ' (s)':<34}{seconds:>14.3f}{rows['plain/bf16']['time_by_kind'].get(kind, 0.0):>14.3f}")
PY
echo "[gpu-check] results in $out"
