"""The paired analysis of an interleaved study, on simulated studies whose true answer is known.

The simulator draws what this machine showed: drift that moves every model
alike, AR(1) noise that carries over from one turn to the next, bursts that
slow a run of consecutive turns by 40 %, and (optionally) a per-process offset.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from detbench.stats import paired


def simulate(rng: np.random.Generator, effects: dict[str, float], rounds: int, workers: int = 2, phi: float = 0.5,
             sigma: float = 0.05, burst_p: float = 0.01, process_sd: float = 0.0,
             fresh_at: tuple[int, ...] = ()) -> dict[str, list[dict[int, float]]]:
    """Each model's workers' {round: latency}; latency = 10 ms * (1 + effect) * exp(noise).

    `fresh_at`: rounds at which every worker is replaced by a fresh process (new offsets, a new series)."""
    series = {name: [] for name in effects}
    offsets: dict[str, np.ndarray] = {}
    drift = np.cumsum(rng.normal(0.0, 0.005, rounds))
    state, burst_left = 0.0, 0
    for r in range(rounds):
        if r == 0 or r in fresh_at:
            for name in effects:
                series[name] += [{} for _ in range(workers)]
                offsets[name] = rng.normal(0.0, process_sd, workers)
        turns = [(name, w) for name in effects for w in range(workers)]
        for k in rng.permutation(len(turns)):
            name, w = turns[k]
            state = phi * state + rng.normal(0.0, sigma * math.sqrt(1 - phi ** 2))
            if burst_left == 0 and rng.random() < burst_p:
                burst_left = 8
            burst = 0.4 if burst_left else 0.0
            burst_left = max(0, burst_left - 1)
            log_latency = math.log(10.0 * (1.0 + effects[name])) + drift[r] + offsets[name][w] + state + burst
            series[name][w - workers][r] = math.exp(log_latency)
    return series


def trials(effect: float, n: int, seed: int, rounds: int = 100, **options) -> tuple[float, dict[str, int]]:
    """Coverage of the true log ratio and the verdict counts over n simulated two-model studies (one look)."""
    rng = np.random.default_rng(seed)
    covered, verdicts = 0, {}
    for _ in range(n):
        data = simulate(rng, {"base": 0.0, "m": effect}, rounds, **options)
        result = paired.analyse_look(data, "base", 0.05, 0.02, rounds).results[0]
        low, high = result.ci_log
        covered += low <= math.log1p(effect) <= high
        verdicts[result.verdict] = verdicts.get(result.verdict, 0) + 1
    return covered / n, verdicts


def test_a_a_pairs_are_almost_never_called_faster_or_slower():
    coverage, verdicts = trials(0.0, 200, seed=1)
    assert verdicts.get(paired.FASTER, 0) + verdicts.get(paired.SLOWER, 0) <= 4  # at most 2 %, alpha is 5 %
    assert coverage >= 0.92


@pytest.mark.parametrize("effect, verdict", [(0.05, paired.SLOWER), (-0.05, paired.FASTER)])
def test_a_true_five_percent_difference_is_found_and_covered(effect, verdict):
    coverage, verdicts = trials(effect, 150, seed=2, rounds=200, sigma=0.03)
    assert verdicts.get(verdict, 0) >= 0.9 * 150, verdicts
    assert sum(count for name, count in verdicts.items() if name not in (verdict, paired.UNDECIDED)) == 0
    assert coverage >= 0.92


def test_process_luck_widens_the_interval_instead_of_making_false_claims():
    coverage, verdicts = trials(0.0, 150, seed=3, process_sd=0.02)
    assert verdicts.get(paired.FASTER, 0) + verdicts.get(paired.SLOWER, 0) <= 0.05 * 150
    assert coverage >= 0.85  # the variance component is estimated from 2 workers per model: approximately right
    spread = paired.process_spread(simulate(np.random.default_rng(4), {"a": 0, "b": 0, "c": 0}, 200,
                                            process_sd=0.05, sigma=0.02))
    assert spread.variance > 0 and spread.excess_ratio > 3 and spread.df == 3


def test_the_process_test_holds_its_level_when_processes_do_not_differ():
    """Identical processes: the F test of a process effect rejects at about its alpha, and the excess ratio
    averages about 1 (each offset's own noise is (W - 1) / W of a process mean's, which the test accounts for)."""
    rng = np.random.default_rng(8)
    spreads = [paired.process_spread(simulate(rng, {"a": 0.0, "b": 0.0}, 100, workers=workers))
               for workers in (2, 4) for _ in range(120)]
    rejected = sum(s.p_value < 0.05 for s in spreads)
    assert rejected <= 0.09 * len(spreads), rejected
    assert 0.8 <= float(np.mean([s.excess_ratio for s in spreads])) <= 1.25


def sequential(effect: float, n: int, seed: int, fresh: bool, process_sd: float) -> tuple[int, int]:
    """(right verdicts, intervals covering the truth) over n simulated studies looking at LOOKS, stopping once
    decided, with or without fresh workers after each look."""
    rng = np.random.default_rng(seed)
    right = covered = 0
    for _ in range(n):
        data = simulate(rng, {"base": 0.0, "m": effect}, LOOKS[-1], process_sd=process_sd,
                        fresh_at=LOOKS[:-1] if fresh else ())
        result = paired.replay(data, "base", 0.05, 0.02, LOOKS, len(LOOKS))[0]
        right += result.verdict == paired.SLOWER
        covered += result.ci_log[0] <= math.log1p(effect) <= result.ci_log[1]
    return right, covered


LOOKS = (40, 64, 102, 164, 262, 419)  # engine.planned_looks(40, until_decided=True)


def test_fresh_workers_after_each_look_keep_the_power_that_process_luck_takes():
    """Workers 1 % apart at random: with the same two processes per model for the whole study the process
    component has 2 degrees of freedom and most studies stay undecided; with fresh ones after each look it has
    2 per generation and a +5 % model is called slower."""
    fresh_right, fresh_covered = sequential(0.05, 30, 11, fresh=True, process_sd=0.01)
    kept_right, _ = sequential(0.05, 30, 11, fresh=False, process_sd=0.01)
    assert fresh_right >= 26 and fresh_covered >= 27, (fresh_right, fresh_covered)
    assert kept_right < fresh_right


def test_generations_and_their_weight_follow_the_rounds_each_worker_served():
    first = [paired.Series.of({r: 10.0 for r in range(0, 40)}) for _ in range(2)]
    second = [paired.Series.of({r: 10.0 for r in range(40, 60)}) for _ in range(2)]
    empty = paired.Series.of({})
    groups = paired.generations([*first, empty, *second])
    assert [len(group) for group in groups] == [2, 2] and groups[1][0].rounds[0] == 40
    shared = np.arange(60)
    assert paired.process_weight(first + second, shared) == pytest.approx(((40 / 60) ** 2 + (20 / 60) ** 2) / 2)
    assert paired.process_weight(first, np.arange(40)) == pytest.approx(1 / 2)


def test_zero_variance_is_undecided_with_its_reason_not_a_p_of_zero():
    constant = [{r: 10.0 for r in range(50)}]
    look = paired.analyse_look({"base": constant, "m": constant}, "base", 0.05, 0.02, 50)
    result = look.results[0]
    assert result.verdict == paired.UNDECIDED and result.p_value is None and "zero variance" in result.reason


def test_too_few_rounds_give_no_interval_and_say_so():
    short = [{r: 10.0 + r % 3 for r in range(10)}]
    result = paired.analyse_look({"base": short, "m": short}, "base", 0.05, 0.02, 10).results[0]
    assert result.ci_log is None and result.verdict == paired.UNDECIDED and "too few" in result.reason


def test_holm_tests_the_smallest_p_at_alpha_over_m_and_stops_at_the_first_failure():
    rng = np.random.default_rng(5)
    data = simulate(rng, {"base": 0.0, "big": 0.5, "none": 0.0, "mid": 0.08}, 200, sigma=0.02)
    results = {r.model: r for r in paired.analyse_look(data, "base", 0.05, 0.02, 200).results}
    assert results["big"].verdict == paired.SLOWER and results["big"].confidence == pytest.approx(1 - 0.05 / 3)
    # Holm's levels 0.05 / 3, 0.05 / 2, 0.05; an equivalence is shown at 1 - 2 level (two one-sided tests)
    assert results["none"].verdict == paired.EQUIVALENT and results["none"].confidence == pytest.approx(1 - 2 * 0.05)
    assert results["mid"].confidence == pytest.approx(1 - 0.05 / 2)
    for result in results.values():  # every verdict agrees with the interval shown next to it
        low, high = result.ci_log
        margin = math.log1p(0.02)
        expected = (paired.SLOWER if low > margin else paired.FASTER if high < -margin
                    else paired.EQUIVALENT if -margin < low and high < margin else paired.UNDECIDED)
        assert result.verdict in (expected, paired.UNDECIDED)


def test_a_verdict_is_final_at_its_first_look_and_replay_reaches_the_same_verdicts():
    rng = np.random.default_rng(6)
    data = simulate(rng, {"base": 0.0, "p2": 0.6, "same": 0.0}, 160, sigma=0.04)
    results = None
    for count in (40, 64, 102, 160):
        upto = {name: [{r: v for r, v in w.items() if r < count} for w in workers] for name, workers in data.items()}
        results = paired.merge_looks(results, paired.analyse_look(upto, "base", 0.05 / 6, 0.02, count))
    p2 = next(r for r in results if r.model == "p2")
    assert p2.verdict == paired.SLOWER and p2.decided_at_round == 40 and p2.n_rounds == 40
    replayed = paired.replay(data, "base", 0.05, 0.02, [40, 64, 102, 160], planned_looks=6)
    assert [r.as_dict() for r in replayed] == [r.as_dict() for r in results]


def test_worker_series_rebuilds_each_workers_rounds_from_a_reports_lists():
    series = paired.worker_series([5.0, 6.0, 7.0, 8.0, 9.0], [0, 1, 0, 1, 1], [0, 0, 3, 3, 3])
    assert {k: s.rounds.tolist() for k, s in series.items()} == {0: [0, 1], 3: [0, 1]}  # by the worker's index
    assert np.allclose(np.exp(series[3].logs), [7.0, 9.0])  # a round listed twice keeps its last sample


def test_separate_runs_get_a_ratio_and_no_verdict():
    result = paired.untested("m", "base", 12.0, 10.0)
    assert result.verdict == paired.UNTESTED and result.ci_log is None
    assert result.delta_pct == pytest.approx(20.0) and "separate runs" in result.reason


def test_batch_means_use_every_value_and_need_four_batches():
    assert paired.batch_means(list(range(19))) is None
    values = np.random.default_rng(1).normal(0.0, 1.0, 103)
    estimate = paired.batch_means(values)
    assert 4 <= estimate.batches <= 20 and estimate.df == estimate.batches - 1 and not estimate.reason
    chunks = np.array_split(values, estimate.batches)
    middles = [np.sort(c)[int(0.2 * c.size):c.size - int(0.2 * c.size)].mean() for c in chunks]
    assert estimate.mean == pytest.approx(np.mean(middles))


def test_a_burst_of_slow_turns_moves_no_estimate():
    """Trimmed batch means: 3 % of the rounds 3 to 10 times slower on one side barely move the estimate, where the
    plain mean moves by several percent."""
    rng = np.random.default_rng(2)
    values = rng.normal(0.05, 0.05, 400)
    hit = rng.random(400) < 0.03
    values[hit] += np.log(rng.uniform(3.0, 10.0, hit.sum()))
    assert abs(paired.batch_means(values).mean - 0.05) < 0.01 < abs(values.mean() - 0.05)


def test_turns_correlated_over_many_rounds_get_longer_batches_or_no_interval():
    """An AR(1) series with coefficient 0.9 (about 19 rounds of memory): batches of 5 would make the interval
    far too narrow. The batches grow with the measured lag-1; with too few rounds for four of them there is no
    interval, and the look says why."""
    rng = np.random.default_rng(3)

    def ar(n: int, phi: float) -> np.ndarray:
        x = np.zeros(n)
        noise = rng.normal(0.0, math.sqrt(1 - phi ** 2), n)
        for k in range(1, n):
            x[k] = phi * x[k - 1] + noise[k]
        return x

    assert paired.batch_means(rng.normal(0.0, 1.0, 400)).rounds_per_batch == 20  # 400 / MAX_BATCHES
    short = paired.batch_means(ar(300, 0.9))
    assert short.reason.startswith("the turns are correlated over many rounds") and short.df == 0
    long = paired.batch_means(ar(2000, 0.9))
    assert not long.reason and long.rounds_per_batch >= 100 and long.lag1 > 0.8
    data = {"base": [{r: 10.0 for r in range(200)}], "m": [{r: 10.0 * math.exp(0.1 * v) for r, v in
                                                            enumerate(ar(200, 0.9))}]}
    result = paired.analyse_look(data, "base", 0.05, 0.02, 200).results[0]
    assert result.verdict == paired.UNDECIDED and result.ci_log is None and "correlated" in result.reason


def test_after_a_failed_holm_step_no_interval_looks_decided():
    """Three comparisons whose claims sit just around their Holm levels: the first fails, the rest are shown at
    its level, so an interval beyond the margin (claims beyond it, as older studies made) never stands next to
    "undecided"."""
    results = [paired.PairResult(name, "base", 100, estimate_log=est, se_log=0.01, df=50.0)
               for name, est in (("a", 0.045), ("b", 0.0449), ("c", 0.2))]
    margin = math.log1p(0.02)
    for result in results:
        claims = paired.claim_p_values(result.estimate_log, result.se_log, result.df, margin, beyond=margin)
        result.claim = min(claims, key=claims.get)
        result.p_value = claims[result.claim]
    paired._holm(results, 0.05, 3)
    for result in results:
        low, high = result.ci_log
        assert (result.verdict == paired.SLOWER) == (low > margin), result.as_dict()


def test_holm_over_three_way_claims_keeps_the_family_error_rate():
    """Five comparisons sharing one baseline (correlated estimates), every true difference exactly at the
    equivalence margin or at 0: the chance of any false claim (slower or faster at 0, equivalent at the margin)
    stays below alpha."""
    rng = np.random.default_rng(8)
    margin, se, df, trials, false = math.log1p(0.02), 0.01, 19.0, 2000, 0
    truths = np.array([0.0, margin, -margin, margin, 0.0])
    for _ in range(trials):
        shared = rng.normal(0.0, se * math.sqrt(0.5))
        estimates = truths + shared + rng.normal(0.0, se * math.sqrt(0.5), truths.size)
        results = []
        for k, estimate in enumerate(estimates):
            result = paired.PairResult(f"m{k}", "base", 100, estimate_log=float(estimate), se_log=se, df=df)
            claims = paired.claim_p_values(result.estimate_log, se, df, margin)
            result.claim = min(claims, key=claims.get)
            result.p_value = claims[result.claim]
            results.append(result)
        paired._holm(results, 0.05, len(results))
        wrong = {paired.SLOWER: lambda t: t <= 0.0, paired.FASTER: lambda t: t >= 0.0,
                 paired.EQUIVALENT: lambda t: abs(t) >= margin}
        false += any(r.verdict in wrong and wrong[r.verdict](t) for r, t in zip(results, truths, strict=True))
    assert false / trials <= 0.05


def shared_study(rng: np.random.Generator, effects: dict[str, float], rounds: int, workers: int = 2,
                 sigma: float = 0.05, process_sd: float = 0.0, favour: float = 0.0,
                 fresh_at: tuple[int, ...] = ()) -> dict[str, dict[int, dict[int, float]]]:
    """The engine's design: `workers` processes per generation, each holding every model ({model: {process:
    {round: ms}}}). A process's offset (sd `process_sd`) is common to its models; `favour`: process 0 of each
    generation times every model but the first `favour` slower (a process that suits one model's buffers)."""
    starts = [0, *fresh_at]
    found: dict[str, dict[int, dict[int, float]]] = {name: {} for name in effects}
    for generation, (begin, end) in enumerate(zip(starts, [*fresh_at, rounds], strict=True)):
        for k in range(workers):
            process, offset = generation * workers + k, rng.normal(0.0, process_sd)
            for index, (name, effect) in enumerate(effects.items()):
                extra = favour if k == 0 and index > 0 else 0.0
                noise = rng.normal(0.0, sigma, end - begin)
                found[name][process] = {begin + i: 10.0 * (1.0 + effect) * math.exp(offset + extra + noise[i])
                                        for i in range(end - begin)}
    return found


def test_rounds_are_paired_within_each_process_that_took_both_turns():
    """d(r) is the mean over the processes with both turns in round r of their log ratio: process 1 lost its
    baseline turn of round 1, so round 1 is process 0's ratio alone; the offset of process 1 (twice as slow)
    cancels."""
    model = {0: paired.Series.of({0: 11.0, 1: 12.0}), 1: paired.Series.of({0: 22.0, 1: 30.0})}
    baseline = {0: paired.Series.of({0: 10.0, 1: 10.0}), 1: paired.Series.of({0: 20.0})}
    rounds, values = paired.round_means(paired.process_differences(model, baseline))
    assert rounds.tolist() == [0, 1] and np.allclose(values, [math.log(1.1), math.log(1.2)])


def test_process_luck_cancels_when_every_process_holds_every_model():
    """Processes 20 % apart at random: paired within each process the interval is as narrow as the turns' noise
    allows and a +5 % model is called slower; the older analysis of the same turns (per-model means with a
    process variance component) is several times wider."""
    data = shared_study(np.random.default_rng(21), {"base": 0.0, "m": 0.05}, 200, sigma=0.03, process_sd=0.2,
                        fresh_at=(40, 80, 120, 160))
    shared = paired.analyse_look(data, "base", 0.05, 0.02, 200, shared=True)
    (result,) = shared.results
    assert shared.process is None and result.verdict == paired.SLOWER, result.as_dict()
    assert result.ci_log[0] <= math.log(1.05) <= result.ci_log[1]
    (old,) = paired.analyse_look(data, "base", 0.05, 0.02, 200).results
    assert old.se_log > 3 * result.se_log
    # one df per generation of 2 processes, where 40 rounds were enough for each process's own batch means
    assert result.agreement["processes"] == 10 and 3 <= result.agreement["df"][0] <= 5
    assert result.as_dict()["process_agreement"] == result.agreement and "process_agreement" not in old.as_dict()


def test_a_process_that_favours_a_model_widens_the_interval_and_is_recorded():
    """Process 0 of every generation times the model 8 % slower than the other: the record's F test of the
    processes' own estimates rejects, and the process-by-model component widens the interval, which still
    holds the truth (the mean over the processes, 1.1 * sqrt(1.08))."""
    data = shared_study(np.random.default_rng(22), {"base": 0.0, "m": 0.1}, 200, sigma=0.03, favour=math.log(1.08),
                        fresh_at=(40, 80, 120, 160))
    (result,) = paired.analyse_look(data, "base", 0.05, 0.02, 200, shared=True).results
    assert result.agreement["disagree"] is True and result.agreement["p_value"] < paired.AGREEMENT_ALPHA
    assert result.agreement["component_sd_pct"] > 2.0
    truth = math.log(1.1 * math.sqrt(1.08))
    assert result.estimate_log == pytest.approx(truth, abs=0.01)
    assert result.ci_log[0] < truth < result.ci_log[1] and result.df < 19
    series = paired.as_series(data)
    alone = paired.batch_means(paired.round_means(paired.process_differences(series["m"], series["base"]))[1])
    assert result.se_log > 2 * alone.se


def test_the_agreement_test_holds_its_level_when_processes_agree():
    """Processes with luck of their own but no favourite: the agreement test rejects at about its 1 %, and the
    verdicts of A/A studies stay at or below alpha."""
    rng = np.random.default_rng(23)
    results = [paired.analyse_look(shared_study(rng, {"base": 0.0, "m": 0.0}, 120, process_sd=0.1,
                                                fresh_at=(40, 80)), "base", 0.05, 0.02, 120, shared=True).results[0]
               for _ in range(200)]
    assert sum(r.agreement["disagree"] for r in results) <= 6  # 3 % of 200, for a test at 1 %
    assert sum(r.verdict in (paired.FASTER, paired.SLOWER) for r in results) <= 4


def test_replay_pairs_by_process_only_for_studies_whose_processes_held_every_model():
    data = shared_study(np.random.default_rng(24), {"base": 0.0, "m": 0.05}, 120, process_sd=0.2, fresh_at=(40, 80))
    shared = paired.replay(data, "base", 0.05, 0.02, [40, 64, 120], 3, shared=True)
    older = paired.replay(data, "base", 0.05, 0.02, [40, 64, 120], 3)
    assert shared[0].agreement is not None and older[0].agreement is None
    assert shared[0].as_dict() != older[0].as_dict()
