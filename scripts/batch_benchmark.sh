#!/usr/bin/env bash
# Benchmark every model of the ablation study in one interleaved study (worker processes taking turns), with
# verdicts against the baseline, on one shared benchmark list:
#   bash scripts/batch_benchmark.sh                    # every results/runs/*/seed*/weights/best.pt
#   bash scripts/batch_benchmark.sh --device 0 --max-time 300
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
# clone, in a project folder) or any .py file would be imported in place of the package; only absolute entries are
# kept, as detbench.proc.python_module does for detbench's own children
exec "$python" -c "import sys, os; sys.path[:] = [p for p in sys.path if os.path.isabs(p)]
script, repo = sys.argv.pop(1), sys.argv.pop(1)
try:
    from detbench.cli import main
except ImportError as exc:
    print(f'error: {sys.executable} cannot import detbench ({exc}); run make setup in {repo}, or set PYTHON to an '
          'interpreter that has it', file=sys.stderr)
    sys.exit(2)
sys.argv[0] = script
sys.exit(main(['ablate', *sys.argv[1:]]))" "$0" "$repo" "$@"
