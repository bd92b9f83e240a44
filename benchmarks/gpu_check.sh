#!/usr/bin/env bash
# The checks that need a GPU, as one script (run from the repository root on a GPU machine with
# the venv of `make install`). Writes everything under ${OUT:-results/gpu_check}.
#   - 2+ GPUs: `mdmest estimate` on 2 NCCL processes against one (the cross-rank gather and its
#     reduce-scatter backward), and a short 2-process EF-LSTM training (torchrun, NCCL) against one;
#   - 1 GPU: the single-GPU path, the stability benchmark in float32, bfloat16 and float16 autocast
#     (with a GradScaler), and `mdmest estimate` on the GPU.
set -euo pipefail
OUT=${OUT:-results/gpu_check}
mkdir -p "$OUT"
BIN=${BIN:-.venv/bin}
GPUS=$("$BIN/python" -c "import torch; print(torch.cuda.device_count())")
"$BIN/python" -c "from mdmest.experiments import machine_info; import json; print(json.dumps(machine_info()))" > "$OUT/machine.json"
echo "GPUs: $GPUS" | tee "$OUT/summary.txt"
if [ "$GPUS" -eq 0 ]; then echo "no GPU: nothing to check" | tee -a "$OUT/summary.txt"; exit 1; fi

"$BIN/python" benchmarks/stability.py --steps 2000 --device cuda --out "$OUT/stability" 2>&1 | tail -20 | tee -a "$OUT/summary.txt"
"$BIN/python" -c "import numpy as np; from mdmest.tasks import gaussian_task_with_tc as t; np.savez('$OUT/views.npz', *t(2.0, [8, 8, 8]).sample(20000, seed=0))"
"$BIN/mdmest" estimate "$OUT/views.npz" --device cuda --no-progress --out "$OUT/estimate_cuda.json" | tee -a "$OUT/summary.txt"

if [ "$GPUS" -ge 2 ]; then
  "$BIN/torchrun" --nproc-per-node 2 -m mdmest.cli estimate "$OUT/views.npz" --device cuda \
    --no-progress --out "$OUT/estimate_nccl2.json" | tee -a "$OUT/summary.txt"
  DATA=(--data synthetic:mosi --data-option n_train=800 --data-option n_valid=200 --data-option n_test=200)
  for PROCS in 1 2; do
    "$BIN/torchrun" --nproc-per-node "$PROCS" -m mdmest.cli train --model ef_lstm --penalty dv \
      "${DATA[@]}" --epochs 10 --device cuda --no-progress --out "$OUT/ddp_$PROCS" | tail -4 | tee -a "$OUT/summary.txt"
  done
fi
