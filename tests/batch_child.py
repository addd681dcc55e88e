"""Run many small cases of hostile input in ONE bounded child process (importing torch and Ultralytics once).

Each case is Python code run with `sys.argv[2:]` = its arguments, in its own working folder, under an alarm of
`case_timeout` seconds; the whole child runs under an address-space limit of what its imports take plus
`headroom`. A case's outcome is what a child of its own would give: the exit code (2 and one `error:` line for a
DetbenchError, as the CLI), everything written to file descriptors 1 and 2, and its wall time. Outcomes are written
as each case ends, so a child that dies leaves the outcomes of the cases before it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHILD = r'''
import json, os, re, resource, signal, sys, tempfile, time, traceback
from detbench.errors import DetbenchError
exec(sys.argv[1])  # the imports every case shares, before the limit: what a child of its own would import
peak = int(re.search(r"VmPeak:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
limit = peak + int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
case_timeout, cases, results = int(sys.argv[3]), json.load(open(sys.argv[4])), sys.argv[5]


class CaseTimeout(BaseException):
    pass


def alarm(signum, frame):
    raise CaseTimeout(f"case ran past {case_timeout} s")


signal.signal(signal.SIGALRM, alarm)
saved = os.dup(1), os.dup(2)
for name, code, args, cwd in cases:
    captured = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(captured[0].fileno(), 1); os.dup2(captured[1].fileno(), 2)
    os.chdir(cwd)
    sys.argv = ["-c", code, *args]
    start = time.monotonic()
    signal.alarm(case_timeout)
    try:
        exec(code, {"__name__": "__main__", "sys": sys})
        returncode = 0
    except DetbenchError as exc:
        sys.stderr.write(f"error: {exc}\n")
        returncode = 2
    except SystemExit as exc:
        returncode = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        returncode = 1
    finally:
        signal.alarm(0)
    seconds = time.monotonic() - start
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(saved[0], 1); os.dup2(saved[1], 2)
    out, err = (f.seek(0) or f.read().decode(errors="replace") for f in captured)
    with open(results, "a") as log:
        log.write(json.dumps({"name": name, "returncode": returncode, "stdout": out, "stderr": err,
                              "seconds": seconds}) + "\n")
'''


@dataclass
class CaseOutcome:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_batch(cases: list[tuple[str, str, list[str], str]], *, imports: str, headroom: int, case_timeout: int,
              scratch: Path) -> dict[str, CaseOutcome]:
    """Run (name, code, args, working folder) cases in order in one child; the outcome of each case that ended."""
    listing, results = scratch / "cases.json", scratch / "outcomes.jsonl"
    listing.write_text(json.dumps(cases))
    child = subprocess.run([sys.executable, "-c", CHILD, imports, str(headroom), str(case_timeout), str(listing),
                            str(results)], capture_output=True, text=True,
                           timeout=case_timeout * len(cases) + 60, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    outcomes = {}
    if results.exists():
        for line in results.read_text().splitlines():
            entry = json.loads(line)
            name = entry.pop("name")
            outcomes[name] = CaseOutcome(**entry)
    if len(outcomes) < len(cases):  # the child died: say how, beside the cases left without an outcome
        sys.stderr.write(f"batch child ended with {child.returncode}: {child.stderr[-4000:]}\n")
    return outcomes
