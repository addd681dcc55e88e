"""`detbench` command lines run in order in ONE child process that makes their imports once (torch and
Ultralytics, for `bench`; tests/batch_child.py): each case runs the CLI's own `main`, so its exit code and output
are what `detbench ARGS` in a process of its own gives, and the files it writes are on disk for the next case."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from batch_child import CaseOutcome, run_batch

CLI_MAIN = "from detbench.cli import main\nsys.exit(main(sys.argv[2:]))"
READ_TEXT = "sys.stdout.write(open(sys.argv[2]).read())"  # a file's text between two cases, as its stdout
IMPORTS = "import torch, ultralytics, detbench.cli, detbench.workflows.bench"
HEADROOM = 3 * 2**30  # a whole bench run, its bounded model check's child included
CASE_TIMEOUT_S = 120


def run_cli_batch(cases: Mapping[str, tuple[Sequence[str | Path], Path] | tuple[Sequence[str | Path], Path, str]],
                  scratch: Path, imports: str = IMPORTS) -> dict[str, CaseOutcome]:
    """For each name -> (ARGS, working folder), `detbench ARGS` there; a third item runs that code instead (with
    sys.argv[2:] = ARGS, e.g. READ_TEXT). `imports`: what the commands import, once, before the first case. Every
    case must end with an outcome (a missing one: the child died)."""
    scratch.mkdir(parents=True, exist_ok=True)
    listed = [(name, case[2] if len(case) > 2 else CLI_MAIN, [str(arg) for arg in case[0]], str(case[1]))
              for name, case in cases.items()]
    outcomes = run_batch(listed, imports=imports, headroom=HEADROOM, case_timeout=CASE_TIMEOUT_S, scratch=scratch)
    assert set(outcomes) == set(cases), f"no outcome for {sorted(set(cases) - set(outcomes))}"
    return outcomes
