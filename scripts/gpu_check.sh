#!/usr/bin/env bash
# One prepared check of detbench's GPU path: installs what it needs, benchmarks YOLOv8n at 640
# (batch 1 and 8, fp32 and fp16) and the six zoo models, prints a table and PASS/FAIL lines.
# Without a GPU it runs a short CPU pass and marks the GPU-only assertions as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
elif ! "$PY" -c "import detbench, ultralytics" 2>/dev/null; then
  "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1
  "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1 -e .
fi
exec "$PY" benchmarks/gpu_check.py "$@"
