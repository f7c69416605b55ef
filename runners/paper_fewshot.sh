#!/usr/bin/env bash
# The paper's few-shot / zero-shot experiment (DG-SCT Fig. "few-zero") on real data, end to end:
#   1. few-shot sweep: every method x {1, 2, 4, 8, 16} shots x seeds {1, 2, 3} on AVE, AVE-cls and LLP-cls
#   2. zero-shot: pretrain DG-SCT on VGG-Sound 40K, then evaluate its bundle on the three tasks at 0 shots
#   3. aggregate (mean ± std over seeds, 95 % interval) and plot.
# Every step skips what is finished and resumes what was interrupted: run the script again after a crash.
#
#   AVE_ROOT=/data/AVE LLP_ROOT=/data/LLP VGG40K_ROOT=/data/vggsound40k bash runners/paper_fewshot.sh [RESULTS]
#
# Extra key=value overrides for every run can go in $OVERRIDES (e.g. OVERRIDES="data.num_workers=8").
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
venv="${AVFEWSHOT_VENV:-$HOME/.cache/avfewshot/venv}"
avfewshot="$venv/bin/avfewshot"
[ -x "$avfewshot" ] || avfewshot="avfewshot"
: "${AVE_ROOT:?set AVE_ROOT to the AVE dataset folder}"
: "${LLP_ROOT:?set LLP_ROOT to the LLP dataset folder}"
: "${VGG40K_ROOT:?set VGG40K_ROOT to the VGG-Sound 40K folder}"
results="${1:-results/paper_fewshot}"
pretrain_results="${results}_pretrain"
bundle="$pretrain_results/dgsct_vggsound40k.pt"
read -r -a overrides <<< "${OVERRIDES:-}"

"$avfewshot" sweep --task ave ave_cls llp_cls \
  --methods zeroshot zeroshot_clip zeroshot_clap coop kgcoop cocoop clip_adapter maple dgsct \
  --shots 1 2 4 8 16 --seeds 1 2 3 \
  --data-root "ave=$AVE_ROOT" --data-root "llp=$LLP_ROOT" \
  --recipes runners --schedule runners/paper_schedule.yaml --results "$results" "${overrides[@]}"

"$avfewshot" pretrain --dataset vggsound40k --data-root "$VGG40K_ROOT" --method dgsct \
  --config runners/dgsct_pretrain.yaml --results "$pretrain_results" --out "$bundle" "${overrides[@]}"

"$avfewshot" sweep --task ave ave_cls llp_cls --methods dgsct --shots 0 --seeds 1 --init "$bundle" \
  --data-root "ave=$AVE_ROOT" --data-root "llp=$LLP_ROOT" \
  --recipes runners --results "$results" "${overrides[@]}"

"$avfewshot" aggregate --results "$results" --ci95
"$avfewshot" plot --results "$results" --out "$results/fewshot.png"
"$avfewshot" plot --results "$results" --out "$results/fewshot.pdf"
