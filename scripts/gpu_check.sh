#!/bin/bash
# The prepared GPU check (README, "Speed" → "On a GPU"), one call on a lent machine, under 8 minutes:
#   here, once:   bash scripts/gpu_wheels.sh
#   the device:   run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
# It runs the GPU test tier and python -m nag.bench --device cuda (the GPU variants, the loop, the matching shares,
# the data path, the FID network's speed), writes $OUT/bench.json and logs, and prints the table last.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 NAG_CACHE_DIR=/tmp/nag-cache NAG_FID=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/gpu -o addopts="" 2>&1 | tee "$OUT/gpu_tier.log" | tail -15
timeout 260 python3 -m nag.bench --device cuda --only gpu matching model fid --out "$OUT/bench.json" 2>&1 \
  | tee "$OUT/bench.log" | tail -40
