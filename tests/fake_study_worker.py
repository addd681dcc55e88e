"""A stand-in for `python -m detbench.study.worker` that speaks the study protocol without torch: one process holds
every model, and each turn answers a latency drawn from the model's name (`slow*` models are 20 % slower), so the
coordinator's logic (generations, order, looks, failures, reports) can be tested in a second. A `dies*` model
fails to load in workers after the first two; a `crash*` model's turn from round 10 on ends the whole process
(exit status 5) in worker 1, a `crashall*` model's in every worker. A bias-probe run answers back-to-back forwards
at the model's plain latency; a `lag*` model's turns take 10 % longer than those (a switch penalty); a
`probedies*` model's probe ends worker 1 (exit status 4). Each model's report lists the rounds of its turns."""

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
    worker = start["worker"]
    specs = {spec["name"]: spec for spec in start["models"]}
    failed = {name: "a worker of a later generation fails to load it" for name in specs
              if name.startswith("dies") and worker >= 2}
    rngs = {name: random.Random(f"{name}-{worker}") for name in specs if name not in failed}
    turns: dict[str, list[int]] = {name: [] for name in rngs}
    channel.send({"ready": {"pid": os.getpid(), "failed": failed}})
    while True:
        command = channel.receive()
        if "stop" in command:
            break
        name = command["model"]
        rng = rngs[name]
        if "warmup" in command:
            channel.send({"warm": {"warmup_s": 0.0, "warmup_ms": [10.0 * rng.lognormvariate(0.0, 0.02)
                                                                   for _ in range(20)]}, "model": name})
        elif "run" in command:
            if name.startswith("probedies") and worker == 1:
                return 4
            channel.send({"run_ms": [10.0 * rng.lognormvariate(0.0, 0.02) for _ in range(command["forwards"])],
                          "model": name})
        else:
            if command["turn"] >= 10 and (name.startswith("crashall") or name.startswith("crash") and worker == 1):
                return 5
            turns[name].append(command["turn"])
            factor = 1.2 if name.startswith("slow") else 1.1 if name.startswith("lag") else 1.0
            channel.send({"ms": 10.0 * factor * rng.lognormvariate(0.0, 0.02), "model": name})
    done = {}
    for name, rounds in turns.items():
        if name not in command.get("drop", []):
            Path(specs[name]["report_path"]).write_text(json.dumps({"worker": worker, "turns": rounds}))
            done[name] = specs[name]["report_path"]
    channel.send({"done": done, "inspection": {}, "failed": {}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
