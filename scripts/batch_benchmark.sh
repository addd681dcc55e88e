#!/usr/bin/env bash
# Benchmark every model of the ablation study in one interleaved study (worker processes taking turns), with
# verdicts against the baseline, on one shared benchmark list:
#   bash scripts/batch_benchmark.sh                    # every results/runs/*/seed*/weights/best.pt
#   bash scripts/batch_benchmark.sh --device 0 --study-time 300
#   bash scripts/batch_benchmark.sh --models baseline,ghost,eca
# All flags are those of `detbench ablate` (see --help). Resumable: a finished, unchanged study is skipped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
if [[ -n "${PYTHON:-}" ]]; then
  python="$PYTHON"
elif [[ -x "$repo/.venv/bin/python" ]]; then
  python="$repo/.venv/bin/python"
else
  python="$(command -v python3 || command -v python)"
fi
# not `python -m`: that puts the working folder first on the import path, where a folder named detbench/ (this
# clone, in a project folder) or any .py file would be imported in place of the package (scripts/_safe_path.py)
exec "$python" "$here/_detbench.py" ablate "$@"
