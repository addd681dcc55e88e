"""A stand-in for `python -m detbench.study.worker` that speaks the study protocol without torch: each turn
answers a latency drawn from the model's name (`slow*` models are 20 % slower; a `dies*` model's workers after
its first two exit at start), so the coordinator's logic (generations, order, looks, failures, reports) can be
tested in a second. A bias-probe run answers back-to-back forwards at the model's plain latency; a `lag*`
model's turns take 10 % longer than those (a switch penalty); a `probedies*` model's worker exits on a probe."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
from pathlib import Path


def _channel_module():
    """detbench's own protocol module (stdlib only), loaded from its file: importing it as `detbench.study.channel`
    would first import the package (`detbench.api`, the report model, ...), a tenth of a second per stand-in."""
    package = importlib.util.find_spec("detbench")
    spec = importlib.util.spec_from_file_location(
        "detbench_study_channel", Path(package.submodule_search_locations[0]) / "study" / "channel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WorkerEnd = _channel_module().WorkerEnd


def main() -> int:
    channel = WorkerEnd(sys.stdin.buffer)
    start = channel.receive()["start"]
    name = start["config"]["name"]
    if name.startswith("dies") and start["worker"] >= 2:
        print("a worker of a later generation fails to start", file=sys.stderr)
        return 3
    rng = random.Random(f"{name}-{start['worker']}")
    channel.send({"ready": {"pid": os.getpid()}})
    channel.receive()
    channel.send({"warm": {"warmup_s": 0.0, "warmup_ms": [10.0 * rng.lognormvariate(0.0, 0.02) for _ in range(20)]}})
    turns = []
    while True:
        command = channel.receive()
        if "stop" in command:
            break
        if "run" in command:
            if name.startswith("probedies"):
                return 4
            channel.send({"run_ms": [10.0 * rng.lognormvariate(0.0, 0.02) for _ in range(command["forwards"])]})
            continue
        turns.append(command["turn"])
        factor = 1.2 if name.startswith("slow") else 1.1 if name.startswith("lag") else 1.0
        channel.send({"ms": 10.0 * factor * rng.lognormvariate(0.0, 0.02)})
    Path(start["report_path"]).write_text(json.dumps({"worker": start["worker"], "turns": turns}))
    channel.send({"done": start["report_path"], "inspection": None})
    return 0


if __name__ == "__main__":
    sys.exit(main())
