#!/usr/bin/env bash
# The few-shot / zero-shot experiment on the embedded synthetic demo (tiny towers pretrained on the synthetic
# concept world, built on first use; short training):
# it checks the whole workflow in minutes on a CPU; its numbers say nothing about the methods.
#   1. sweep: every method x {1, 4, 16} shots x seeds {1, 2} on llp_cls, ave_cls and ave (and CLIP / CLAP /
#      fused zero-shot)
#   2. zero-shot: pretrain DG-SCT on the synthetic VGG-Sound 40K, evaluate its bundle on the three tasks at 0 shots
#   3. aggregate and plot.
# Interrupt it at any point and run it again: finished runs are skipped, interrupted ones resume.
#
#   bash runners/demo_fewshot.sh [RESULTS]            (default results/demo_fewshot)
#   DEMO_TASKS="ave_cls" DEMO_SEEDS="1" bash runners/demo_fewshot.sh   (a part of it)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
venv="${AVFEWSHOT_VENV:-$HOME/.cache/avfewshot/venv}"
avfewshot="$venv/bin/avfewshot"
[ -x "$avfewshot" ] || avfewshot="avfewshot"
results="${1:-results/demo_fewshot}"
pretrain_results="${results}_pretrain"
bundle="$pretrain_results/dgsct_vggsound40k.pt"

tasks=(${DEMO_TASKS:-llp_cls ave_cls ave})
seeds=(${DEMO_SEEDS:-1 2})
"$avfewshot" sweep --tasks "${tasks[@]}" --methods zeroshot zeroshot_clip zeroshot_clap \
  --shots 0 --seeds 1 --recipes runners --results "$results" --no-progress
"$avfewshot" sweep --tasks "${tasks[@]}" \
  --methods linear_probe coop kgcoop cocoop clip_adapter maple dgsct \
  --shots 1 4 16 --seeds "${seeds[@]}" --recipes runners --results "$results" --no-progress

"$avfewshot" pretrain --dataset vggsound40k --method dgsct --config runners/dgsct_pretrain.yaml \
  --results "$pretrain_results" --out "$bundle" --no-progress \
  train.epochs=6 train.lr=0.002 train.batch_size=4 "train.milestones=[]" train.selection=last

"$avfewshot" sweep --tasks "${tasks[@]}" --methods dgsct --shots 0 --seeds 1 --init "$bundle" \
  --recipes runners --results "$results" --no-progress

"$avfewshot" aggregate --results "$results" --ci95
"$avfewshot" plot --results "$results" --out "$results/fewshot.png"
