#!/usr/bin/env bash
# One prepared check for a machine with a CUDA GPU (about 9 minutes on one H200), run once:
#   1. the CUDA tests (tests/test_cuda.py: fp16/bf16 features against fp32 on CPU, batches in
#      flight, extraction on the GPU against the CPU, parsers and the TSN trained on the GPU;
#      tests/test_tvl1_torch.py -k cuda: tvl1-torch on the GPU against the CPU and OpenCV);
#   2. the extraction throughput table for RGB (model-only eager/folded fp32, fp16, bf16; host
#      only; full pipeline), target >= 2,000 RGB frames/s with fp16;
#   3. the same for RGB + DIS flow;
#   4. TV-L1 flow (benchmarks/flow_speed.py --device cuda): tvl1-torch at batch 1..64 and
#      compiled, against OpenCV's CPU DualTVL1, target >= 200 pairs/s at 340x256.
# Each benchmark writes its results file into OUTDIR (extract_throughput_rgb_cuda.md,
# extract_throughput_rgb_flow_cuda.md, flow_speed.md and .csv; see benchmarks/README.md), beside the logs;
# copy them into benchmarks/results/ to publish them.
# Needs tapos importable (pip install -e . or PYTHONPATH) and a torch that sees the GPU.
# Usage: bash benchmarks/gpu_check.sh [OUTDIR]      (logs and tables land in OUTDIR, default gpu_check/)
set -u
out=${1:-gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if ! $python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: torch ($python) sees no CUDA device: nothing to check here" >&2
  exit 1
fi
status=0
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc;
  $python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"
timeout 200 $python -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
timeout 120 $python -m pytest -q -p no:cacheprovider tests/test_tvl1_torch.py -k cuda 2>&1 | tee "$out/test_tvl1_cuda.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
timeout 180 $python benchmarks/extract_throughput.py --device cuda --instances 48 --out "$out" 2>&1 \
  | tee "$out/throughput_rgb.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
timeout 150 $python benchmarks/extract_throughput.py --device cuda --instances 24 --modality rgb,flow --flow dis \
  --out "$out" 2>&1 \
  | tee "$out/throughput_rgb_flow.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
# few OpenCV pairs (about 1 s each on one core); the GPU rows tile them to 64
timeout 240 $python benchmarks/flow_speed.py --device cuda --pairs 8 --feature-clips 1 --out "$out" 2>&1 \
  | tee "$out/flow_speed.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
exit $status
