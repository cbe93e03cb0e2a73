#!/usr/bin/env bash
# One batched check of the GPU paths on an NVIDIA machine (prints its figures; writes a JSON
# summary and two plots into $OUT):
#   1. NVML power logged for 30 s under a CUDA load (achieved rate, distinct updates, range);
#   2. the PyTorch backend on CUDA for resnet18 and mobilenet_v2 (timing vs profiling pass);
#   3. a two-model sweep with NVML power and the CUDA backend (wall time, samples, range).
# Usage: OUT=/tmp/gpu bash benchmarks/gpu_check.sh   (long run: add "long" as first argument)
set -u
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here" || exit 1
OUT="${OUT:-/tmp/gpu_check}"
work="$(mktemp -d)"
export PYTHONUNBUFFERED=1 PYTHONPATH="$here" PYTHON="${PYTHON:-python3}"
py="$PYTHON"
nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader
"$py" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, torch.cuda.get_device_name())'

if [ "${1:-}" = "long" ]; then
  # peak RSS of a long profiling pass (30 000 profiled inferences of a ~60-layer model)
  "$py" -m model --model resnet18 --backend torch --weights random --runs 500 --warmup 50 \
      --profile-runs 30000 --result-dir "$work/long" 2>&1 | grep -v "it/s"
  "$py" benchmarks/gpu_summary.py "$work" "$OUT" long
  exit 0
fi

"$py" - <<'PY' &
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
end = time.time() + 36
while time.time() < end:
    for _ in range(20):
        a = (a @ a).clamp_(-1, 1)
    torch.cuda.synchronize()
PY
load=$!
sleep 3
"$py" measure_power.py --source nvml --duration 30 --out "$work/nvml" --prefix cuda_load
wait $load

for m in resnet18 mobilenet_v2; do
  "$py" -m model --model "$m" --backend torch --weights random --runs 3000 --warmup 200 \
      --result-dir "$work/profile" 2>&1 | grep -v "it/s"
done

start=$(date +%s)
./run_experiment.sh --models resnet18,mobilenet_v2 --runs 3000 --warmup 200 --backend torch \
    --power-source nvml --weights random --idle-duration 15 --cooldown 0 --no-upload \
    --result-dir "$work/sweep" 2>&1 | grep -v "it/s"
echo "sweep wall time: $(( $(date +%s) - start )) s"
"$py" benchmarks/gpu_summary.py "$work" "$OUT" short
