"""The study coordinator's logic on stand-in workers (`fake_study_worker.py`, the real protocol without torch):
worker processes that each hold every model, generations of fresh ones after each look, the recorded order, the
looks, failures of a model and losses of a process, and every worker's reports."""

from __future__ import annotations

import itertools
import math
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from detbench.config import BenchConfig
from detbench.stats import paired
from detbench.study import engine

pytestmark = pytest.mark.slow  # it starts processes (stand-in workers, without torch: a few seconds in all)

FAKE = Path(__file__).resolve().parents[1] / "fake_study_worker.py"


def fake_python(folder: Path) -> str:
    """An executable that the coordinator runs as `python -m detbench.study.worker`; it runs the stand-in."""
    script = folder / "fake-python"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def plan(tmp_path: Path, names: list[str], **options) -> engine.StudyPlan:
    models = [engine.StudyModel(name, BenchConfig(weights=f"{name}.pt", name=name)) for name in names]
    settings = {"min_rounds": 40, "min_effect": 0.0001, "max_time": 600.0, **options}
    return engine.StudyPlan(models=models, baseline=names[0], work_dir=tmp_path / ".study",
                            python=fake_python(tmp_path), **settings)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def default_study(tmp_path_factory) -> engine.StudyOutcome:
    """Two models alike, at the plan's defaults (until decided, two workers, fresh workers after each look)."""
    return engine.run_study(plan(tmp_path_factory.mktemp("default"), ["base", "same"]), [].append)


def test_fresh_workers_take_over_after_every_look_and_each_serves_every_model_in_its_generation(default_study):
    outcome = default_study
    looks = engine.planned_looks(40, until_decided=True)
    assert [look["rounds"] for look in outcome.looks] == looks and outcome.stop_reason == "last planned look"
    assert len(outcome.workers) == 2 * len(looks)  # two processes holding both models, one generation per look
    starts = [0, *looks[:-1]]
    for worker in outcome.workers:
        generation = worker.index // 2
        for model in ("base", "same"):
            assert sorted(worker.turns[model]) == list(range(starts[generation], looks[generation]))
            path = worker.report_paths[model]
            assert path.is_file() and path.name == f"{model}.w{worker.index}.json"
        assert worker.closed and not alive(worker.process.pid)
    assert len({w.process.pid for w in outcome.workers}) == len(outcome.workers)  # every one a new process
    assert sorted(outcome.order[0]) == ["base#0", "base#1", "same#0", "same#1"]
    assert sorted(outcome.order[-1]) == ["base#10", "base#11", "same#10", "same#11"]
    assert outcome.process is None  # process luck cancels within each process: no variance component
    (result,) = outcome.results
    assert result.agreement["processes"] == 2 * len(looks) and result.agreement["df"][0] == len(looks)
    assert outcome.plan.describe()["processes_hold_every_model"] is True


def test_without_fresh_workers_the_same_processes_serve_the_whole_study(tmp_path):
    outcome = engine.run_study(plan(tmp_path, ["base", "same"], fresh_workers=False), [].append)
    assert len(outcome.workers) == 2
    assert all(len(w.turns[m]) == outcome.rounds_done for w in outcome.workers for m in ("base", "same"))
    assert outcome.plan.describe()["fresh_workers_each_look"] is False


@pytest.mark.parametrize("options", [{"workers_per_model": 1}, {"until_decided": False}])
def test_one_worker_per_model_or_one_look_never_replaces_workers(tmp_path, options):
    outcome = engine.run_study(plan(tmp_path, ["base", "same"], **options), [].append)
    assert len(outcome.workers) == outcome.plan.workers_per_model


def test_a_decided_study_stops_at_its_look_without_starting_another_generation(tmp_path):
    outcome = engine.run_study(plan(tmp_path, ["base", "slow"], min_effect=0.02), [].append)
    (result,) = outcome.results
    assert result.verdict == "slower" and outcome.stop_reason == "every comparison decided"
    assert len(outcome.workers) == 2 * len(outcome.looks)  # none started after the look that decided


def test_a_model_that_fails_to_load_in_a_later_generation_fails_and_the_others_go_on(tmp_path):
    outcome = engine.run_study(plan(tmp_path, ["base", "dies", "same"]), [].append)
    assert outcome.failed["dies"] == "worker 2: a worker of a later generation fails to load it"
    assert set(outcome.failed) == {"dies"} and outcome.stop_reason == "last planned look"
    assert [r.model for r in outcome.results] == ["same"]  # the failed model's earlier generation is not used
    assert all("dies" not in w.turns or max(w.turns["dies"]) < 40 for w in outcome.workers)  # no turn after
    assert not any(w.lost for w in outcome.workers) and all(not alive(w.process.pid) for w in outcome.workers)


def test_a_worker_process_that_dies_is_lost_with_its_turns_and_the_other_processes_go_on(tmp_path):
    lines: list[str] = []
    outcome = engine.run_study(plan(tmp_path, ["base", "crash"], until_decided=False), lines.append)
    lost = outcome.workers[1]
    assert lost.lost.startswith("exit status 5") and not outcome.failed and outcome.rounds_done == 40
    assert lost.report_paths == {} and outcome.reports("crash") == [outcome.workers[0].report_paths["crash"]]
    assert any(line.startswith("  ✗ worker 1 lost: exit status 5") for line in lines), lines
    assert all(label.endswith("#0") for label in outcome.order[-1])  # the lost process takes no more turns
    (result,) = outcome.results  # from the turns of the process left, as compare will replay them
    series = {m: {0: outcome.workers[0].turns[m]} for m in ("base", "crash")}
    replayed = paired.replay(series, "base", outcome.plan.alpha, outcome.plan.min_effect, [40], 1, 1,
                             [look["alpha"] for look in outcome.looks], shared=True)
    assert [r.as_dict() for r in replayed] == [result.as_dict()]


def test_a_study_whose_every_worker_process_dies_fails_saying_why(tmp_path):
    outcome = engine.run_study(plan(tmp_path, ["base", "crashall"], until_decided=False), [].append)
    assert outcome.stop_reason.startswith("every worker process was lost (the last: exit status 5")
    assert set(outcome.failed) == {"base", "crashall"}
    assert outcome.failed["base"].startswith("every worker process was lost (the last, worker ")
    assert all(w.lost and not alive(w.process.pid) for w in outcome.workers)


def test_the_bias_probe_pairs_each_turn_with_a_back_to_back_run_and_leaves_the_turns_as_they_were(tmp_path):
    studies = {}
    for name, probe in (("plain", 0), ("probed", 4)):
        (tmp_path / name).mkdir()
        studies[name] = engine.run_study(plan(tmp_path / name, ["base", "lag"], until_decided=False, min_effect=0.02,
                                              bias_probe=probe), [].append)
    plain, probed = studies["plain"], studies["probed"]
    assert probed.order == plain.order  # the probe draws from its own generator
    assert len(probed.probes) == probed.rounds_done and all(len(p.ms) == 4 for p in probed.probes)
    assert [{m: sorted(t) for m, t in w.turns.items()} for w in probed.workers] == [
        {m: sorted(t) for m, t in w.turns.items()} for w in plain.workers]
    found = probed.interleaving_bias()
    assert found["base"]["within"] is True and found["base"]["ci_pct"][0] < 0 < found["base"]["ci_pct"][1]
    assert found["lag"]["within"] is False and found["lag"]["ci_pct"][0] < 10.0 < found["lag"]["ci_pct"][1]
    assert plain.interleaving_bias() is None and probed.plan.describe()["bias_probe_forwards"] == 4


def test_a_worker_that_dies_in_a_probe_is_lost_saying_so_and_the_others_go_on(tmp_path):
    outcome = engine.run_study(plan(tmp_path, ["base", "probedies", "same"], until_decided=False, bias_probe=3,
                                    seed=1), [].append)
    assert outcome.workers[1].lost.startswith("bias probe: exit status 4") and not outcome.workers[0].lost
    assert not outcome.failed and outcome.rounds_done == 40 and len(outcome.results) == 2
    assert any(p.worker == "probedies#1" for p in outcome.probes) is False  # its probe never answered
    assert all(not alive(w.process.pid) for w in outcome.workers)


def test_a_slow_study_looks_within_max_time_at_rounds_fixed_before_its_first_round(tmp_path, monkeypatch):
    """Rounds that take long: the planned looks' rounds (400, 640, ...) never come within --max-time, so after the
    warm-up each look is brought forward to the round where its share of max-time should run out, at the round time
    the warm-ups give (at least 40 rounds, and 1.6 times the previous look's), where the study used to look once, at
    max-time. Every turn takes 1/256 s on a fake clock: 4 turns, 1/64 s a round; the stand-in workers' warm-ups
    (about 10 ms a forward, 2 forwards a turn) give 0.08 s a round."""
    ticks = itertools.count()
    monkeypatch.setattr(engine.time, "perf_counter", lambda: next(ticks) / 256)  # a tick between two readings
    lines: list[str] = []
    outcome = engine.run_study(plan(tmp_path, ["base", "other"], min_rounds=400, max_time=100 / 64,
                                    progress_every=0.0), lines.append)
    assert outcome.plan.looks[:2] == [400, 640] and outcome.budget.round_s == pytest.approx(0.08, rel=0.05)
    assert outcome.look_schedule[:3] == [40, 64, 103]  # ceil(1.6 * 40) = 64; ceil(1.6 * 64) = 103
    assert [look["rounds"] for look in outcome.looks] == [40, 64, 100]  # 100: --study-time ran out first
    assert outcome.stop_reason == "--study-time 1.5625 s of turns reached"
    # fresh workers after each look but the last (after look 2 only 0.56 s of turns are left: if the stand-ins took
    # longer than that to start, the same ones go on, and say so)
    kept = any(line.startswith("  the same workers go on: 1 s of turns left") for line in lines)
    assert len(outcome.workers) == 2 * (2 if kept else 3)
    assert any(line.startswith("  looks at rounds 40, 64, 103, ") for line in lines), lines
    # what compare does: the study's looks replayed from the samples give the study's own verdicts
    series = {name: {w.index: w.turns[name] for w in outcome.workers} for name in ("base", "other")}
    replayed = paired.replay(series, "base", outcome.plan.alpha, outcome.plan.min_effect,
                             [look["rounds"] for look in outcome.looks], len(outcome.plan.looks), 1,
                             [look["alpha"] for look in outcome.looks], shared=True)
    assert [r.as_dict() for r in replayed] == [r.as_dict() for r in outcome.results]
    # a progress line after every round (progress_every 0): the round, the time left, the next look, the intervals
    progress = [line for line in lines if re.match(r"  round \d+: ", line)]
    assert len(progress) == outcome.rounds_done - len(outcome.looks)
    assert progress[0].startswith("  round 1: 0 s of turns, 2 s left; next look at round 40")
    round_10 = next(line for line in progress if line.startswith("  round 10: "))
    assert round_10.endswith("next look at round 40; intervals from round 20")
    round_30 = next(line for line in progress if line.startswith("  round 30: "))
    assert re.search(r"so far \(interim, no verdict\): other [+-]\d+\.\d % \[[+-]\d+\.\d, [+-]\d+\.\d\]$", round_30)
    assert any(re.match(r"  look 1 of 6 at round 40: [01]/1 decided \(1 s of turns\); other [+-]", line)
               for line in lines), lines
    # the budget, said before the first round
    budget_line = next(line for line in lines if line.startswith("· budget: about "))
    assert lines.index(budget_line) < lines.index(progress[0])
    assert outcome.budget.rounds == math.floor(100 / 64 / outcome.budget.round_s)


def test_a_fast_study_keeps_its_planned_looks(default_study):
    outcome = default_study
    assert outcome.look_schedule == outcome.plan.looks == [look["rounds"] for look in outcome.looks]


def test_quiet_studies_print_no_progress_lines(tmp_path):
    said = {}
    for every in (0.0, None):  # a line whenever one may come, or never (--quiet)
        (tmp_path / str(every)).mkdir()
        lines: list[str] = []
        engine.run_study(plan(tmp_path / str(every), ["base", "same"], until_decided=False, progress_every=every),
                         lines.append)
        said[every] = [line for line in lines if re.match(r"  (round \d+|generation \d+ starting):", line)]
    assert len(said[0.0]) > 30 and said[None] == []


def test_no_fresh_generation_for_fewer_seconds_of_turns_than_it_takes_to_start(tmp_path):
    lines: list[str] = []
    coordinator = engine.Coordinator(plan(tmp_path, ["base", "other"], max_time=600.0), lines.append)
    coordinator.setup_seconds = 30.0
    coordinator.turn_seconds = 500.0
    assert coordinator._worth_a_generation() and lines == []
    coordinator.turn_seconds = 590.0
    assert not coordinator._worth_a_generation()
    assert lines == ["  the same workers go on: 10 s of turns left, less than fresh ones take to start (30 s)"]
