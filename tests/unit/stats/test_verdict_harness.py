"""The machinery of benchmarks/verdict_harness.py: synthetic turns of the study's shape, their true Δ, the Monte-Carlo
rates and the study replay (not the quality of the verdicts it measures)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

import synthetic_studies as sim  # noqa: E402
import verdict_harness  # noqa: E402

from detbench.stats import paired  # noqa: E402

SHAPE = sim.Shape()
NOISELESS = sim.Scenario("noiseless", turn_sd=0.0)


def test_turns_come_per_worker_and_generation_in_the_engines_order():
    turns = sim.generate(np.random.default_rng(0), sim.SCENARIOS["iid"], 0.05)
    starts, ends = [0, *SHAPE.looks[:-1]], list(SHAPE.looks)
    assert list(turns) == ["baseline", "m1"]
    for workers in turns.values():
        assert len(workers) == SHAPE.workers * len(starts)  # worker index generation * W + k
        for index, worker in enumerate(workers):
            generation = index // SHAPE.workers
            assert sorted(worker) == list(range(starts[generation], ends[generation]))
            assert all(isinstance(ms, float) and ms > 0 for ms in worker.values())
    one_generation = sim.generate(np.random.default_rng(0), sim.SCENARIOS["no_fresh"], 0.0)
    assert [sorted(w) for w in one_generation["m1"]] == [list(range(SHAPE.looks[-1]))] * SHAPE.workers


def test_series_are_what_the_analysis_makes_of_the_turns():
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    turns = sim.generate(rng_a, sim.SCENARIOS["bursts"], 0.03)
    direct = sim.series(sim.simulate(rng_b, sim.SCENARIOS["bursts"], 0.03))
    for name, workers in paired.as_series(turns).items():
        for converted, made in zip(workers.values(), direct[name], strict=True):
            assert np.array_equal(converted.rounds, made.rounds) and np.allclose(converted.logs, made.logs)


@pytest.mark.parametrize("shared", [False, True])
def test_without_noise_every_turn_shows_the_true_delta(shared):
    turns = sim.generate(np.random.default_rng(1), NOISELESS, 0.05, shared_processes=shared)
    workers = turns["m1"].values() if shared else turns["m1"]
    baseline = turns["baseline"].values() if shared else turns["baseline"]
    assert all(ms == pytest.approx(sim.BASELINE_MS) for w in baseline for ms in w.values())
    assert all(ms == pytest.approx(sim.BASELINE_MS * 1.05) for w in workers for ms in w.values())


def test_shared_processes_key_one_process_the_same_in_every_model():
    luck = sim.Scenario("luck only", turn_sd=0.0, process_sd=0.05)
    turns = sim.generate(np.random.default_rng(2), luck, 0.05, shared_processes=True)
    assert set(turns["baseline"]) == set(turns["m1"]) == set(range(SHAPE.workers * len(SHAPE.looks)))
    for process, rounds in turns["m1"].items():  # a process's luck is common to its models: the ratio stays exact
        assert all(ms / turns["baseline"][process][r] == pytest.approx(1.05) for r, ms in rounds.items())
    separate = sim.series(sim.simulate(np.random.default_rng(2), luck, 0.05))  # one process per model's worker
    ratios = {round(float(np.exp(m.logs[0] - b.logs[0])), 6) for m, b in zip(separate["m1"], separate["baseline"],
                                                                             strict=True)}
    assert len(ratios) > 1


def test_an_aa_run_gives_a_rate_with_its_binomial_standard_error():
    tally = sim.tally(sim.SCENARIOS["iid"], 0.0, 24, seed=3)
    rate = tally.claim_rate(paired.FASTER, paired.SLOWER)
    assert rate.n == tally.studies == 24 and 0.0 <= rate.p <= 1.0
    assert rate.se == pytest.approx(math.sqrt(rate.p * (1.0 - rate.p) / rate.n))
    assert sim.Rate(3, 12).se == pytest.approx(math.sqrt(0.25 * 0.75 / 12))
    assert 1 <= tally.looks_taken <= len(SHAPE.looks)


def test_a_study_replays_one_final_result_per_compared_model_as_its_looks_decided():
    shape = sim.Shape(models=3)
    run = sim.run_study(sim.series(sim.simulate(np.random.default_rng(5), sim.SCENARIOS["iid"], 0.05, shape)), shape)
    assert [r.model for r in run.final] == ["m1", "m2"]
    assert [look.round_count for look in run.looks] == list(shape.looks[:len(run.looks)])
    merged = None
    for look in run.looks:
        merged = paired.merge_looks(merged, look)
    assert [r.verdict for r in run.final] == [r.verdict for r in merged]
    assert all(r.ci_log is not None for look in run.looks for r in look.results)


def test_the_harness_prints_its_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "verdicts.json"
    assert verdict_harness.main(["--trials", "2", "--scenarios", "iid", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "any-look miss" in printed and "\niid " in printed
    found = json.loads(out.read_text())["scenarios"]["iid"]
    assert set(found) >= {metric.key for metric in verdict_harness.METRICS}
    assert found["aa_false"]["n"] == 2 and 0.0 <= found["power_5"]["p"] <= 1.0
