#!/usr/bin/env bash
# A Slurm array job whose tasks all run the same sweep on one shared results folder: for a grid that
# outgrows one machine. Every task walks the same grid; each cell is claimed (a lock file in its run
# folder) before it runs, so the tasks divide the grid between them and no cell runs twice. A task
# that dies (node failure, time limit, scancel) leaves its claim behind: once that claim has had no
# heartbeat for $CLAIM_TIMEOUT seconds another task, or the next submission, takes the cell over and
# resumes it from its last checkpoint. Submitting the same job again later only runs what is missing.
#
#   RESULTS=/shared/results/fewshot AVE_ROOT=/data/AVE LLP_ROOT=/data/LLP sbatch runners/slurm_sweep.sh
#   RESULTS=/shared/results/llp sbatch --array=0-7 runners/slurm_sweep.sh \
#       --task llp_cls --methods coop dgsct --shots 1 2 4 8 16 --seeds 1 2 3 --data-root /data/LLP
#
# With no arguments it runs the paper's few-shot grid (as runners/paper_fewshot.sh, step 1; needs
# AVE_ROOT and LLP_ROOT); arguments replace that grid and go to `avfewshot sweep` as they are.
# RESULTS must be on a filesystem every node sees (NFS, Lustre, GPFS, ...); the nodes' clocks must
# agree to well within CLAIM_TIMEOUT. The decoded-input and feature caches ($AVFEWSHOT_CACHE) may be
# shared too (entries are written atomically and checked on read) or node-local (faster, per node).
# Extra key=value overrides for every run can go in $OVERRIDES (e.g. OVERRIDES="data.num_workers=8").
#
# When the array is done, aggregate (or let a dependent job do it):
#   sbatch --dependency=afterany:<JOBID> --wrap "avfewshot aggregate --results $RESULTS --ci95"
#
#SBATCH --job-name=avfewshot-sweep
#SBATCH --array=0-3
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%x-%A_%a.out
# For GPUs add: #SBATCH --gres=gpu:1
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"  # sbatch runs a copy of this file
venv="${AVFEWSHOT_VENV:-$HOME/.cache/avfewshot/venv}"
avfewshot="$venv/bin/avfewshot"
[ -x "$avfewshot" ] || avfewshot="avfewshot"
results="${RESULTS:?set RESULTS to a results folder on a filesystem every node sees}"
claim_timeout="${CLAIM_TIMEOUT:-600}"  # heartbeats come every minute; 10 missed ones mean the task is gone
read -r -a overrides <<< "${OVERRIDES:-}"
threads="${SLURM_CPUS_PER_TASK:-0}"

if [ "$#" -eq 0 ]; then
  : "${AVE_ROOT:?set AVE_ROOT to the AVE dataset folder (or give the sweep arguments)}"
  : "${LLP_ROOT:?set LLP_ROOT to the LLP dataset folder (or give the sweep arguments)}"
  set -- --task ave ave_cls llp_cls \
    --methods zeroshot zeroshot_clip zeroshot_clap coop cocoop clip_adapter maple dgsct \
    --shots 1 2 4 8 16 --seeds 1 2 3 \
    --data-root "ave=$AVE_ROOT" --data-root "llp=$LLP_ROOT" \
    --recipes runners --schedule runners/paper_schedule.yaml
fi

echo "[slurm_sweep] task ${SLURM_ARRAY_TASK_ID:-local} of job ${SLURM_ARRAY_JOB_ID:-local} on $(hostname): results in $results"
# --no-progress: progress bars make unreadable Slurm logs; the grid progress lines stay.
exec "$avfewshot" sweep "$@" --results "$results" --claim-timeout "$claim_timeout" --no-progress \
  "train.threads=$threads" "${overrides[@]}"
