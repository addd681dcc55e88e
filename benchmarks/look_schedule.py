"""Error rates of a study's verdicts when its looks are brought within --max-time (`StudyPlan.look_schedule`),
against the planned looks, on synthetic turns whose true difference is known.

A slow machine cannot reach the planned looks (150, 240, ... rounds at --iters 300) within --max-time; the study
then looks at rounds fixed after the warm-up (e.g. 76, 151, 242, 388 when 451 rounds fit) and at --max-time. This
replays both schedules through the engine's own analysis (`paired.replay`, as `compare` does) on turns made the
way a study makes them: two models, W fresh workers per model per generation (one generation per look), each
worker with its own process luck (a constant log offset, sd `--process-sd`), its own AR(1) noise (coefficient
`--ar`, innovations giving a per-turn log sd of `--noise`) and bursts (`--bursts` of turns 3 to 10 times slower).
Noise of this kind does not cancel between the two models of a round.

For each true Δ it reports how often each verdict came, how often a false one did (for Δ 0: faster or slower;
for Δ beyond the margin: the opposite claim or equivalent), and how often the last interval held the true Δ.

    python benchmarks/look_schedule.py [--trials 400] [--deltas 0,0.07] [--rounds-fit 451]
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter

import common  # noqa: F401  (the package from this checkout)
import numpy as np

from detbench.stats import paired
from detbench.study.engine import StudyModel, StudyPlan


def worker_turns(rng: np.random.Generator, rounds: range, level: float, opts: argparse.Namespace) -> dict[int, float]:
    """One worker's latency (ms) in each of `rounds`: process luck, AR(1) noise and bursts around `level`."""
    offset = rng.normal(0.0, opts.process_sd)
    innovation = opts.noise * math.sqrt(1.0 - opts.ar ** 2)
    state, turns = rng.normal(0.0, opts.noise), {}
    for r in rounds:
        state = opts.ar * state + rng.normal(0.0, innovation)
        burst = math.log(rng.uniform(3.0, 10.0)) if rng.random() < opts.bursts else 0.0
        turns[r] = 100.0 * math.exp(level + offset + state + burst)
    return turns


def study(rng: np.random.Generator, delta: float, looks: list[int], opts: argparse.Namespace) -> dict[str, list]:
    """Every model's workers: a fresh generation of W per model between consecutive looks."""
    models: dict[str, list] = {"baseline": [], "other": []}
    starts = [0, *looks[:-1]]
    for begin, end in zip(starts, looks, strict=True):
        for name, level in (("baseline", 0.0), ("other", math.log1p(delta))):
            models[name] += [worker_turns(rng, range(begin, end), level, opts) for _ in range(opts.workers)]
    return models


def false_claims(delta: float, margin: float) -> set[str]:
    """The verdicts that are wrong at a true Δ: inside the margin, faster and slower; on it, every claim (the whole
    interval beyond it, or inside it, cannot hold); beyond it, the opposite claim and equivalent."""
    if math.isclose(abs(delta), margin, rel_tol=1e-9):
        return {"faster", "slower", "equivalent"}
    if abs(delta) < margin:
        return {"faster", "slower"}
    return {"faster" if delta > 0 else "slower", "equivalent"}


def schedules(opts: argparse.Namespace) -> dict[str, list[int]]:
    """The planned looks, and the ones brought within --max-time, each cut at the rounds that fit."""
    plan = StudyPlan(models=[StudyModel("baseline", None), StudyModel("other", None)], baseline="baseline",
                     work_dir=None, workers_per_model=opts.workers, min_rounds=opts.iters // opts.workers,
                     max_time=opts.rounds_fit * 1.0)
    found = {}
    for name, looks in (("planned", plan.looks), ("within max-time", plan.look_schedule(1.0))):
        inside = [r for r in looks if r < opts.rounds_fit]
        found[name] = inside + [opts.rounds_fit] if len(inside) < len(looks) else inside
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--deltas", default="0,0.07")
    parser.add_argument("--rounds-fit", type=int, default=451, help="rounds that fit in --max-time")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noise", type=float, default=0.10, help="per-turn log sd of each worker's AR(1) noise")
    parser.add_argument("--ar", type=float, default=0.5)
    parser.add_argument("--process-sd", type=float, default=0.02)
    parser.add_argument("--bursts", type=float, default=0.03, help="share of turns 3-10 times slower")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--min-effect", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args()
    looks = schedules(opts)
    print(f"looks: {looks}; {opts.trials} trials a cell; per-worker AR({opts.ar}) noise {opts.noise}, process luck "
          f"sd {opts.process_sd}, bursts {opts.bursts:.0%}, W {opts.workers}, alpha {opts.alpha}, min effect "
          f"{opts.min_effect}")
    began = time.perf_counter()
    for delta in (float(d) for d in opts.deltas.split(",")):
        for name, schedule in looks.items():
            rng = np.random.default_rng([opts.seed, int(delta * 1e4)])
            verdicts, covered, decided_at = Counter(), 0, []
            for _ in range(opts.trials):
                models = study(rng, delta, schedule, opts)
                (result,) = paired.replay(models, "baseline", opts.alpha, opts.min_effect, schedule, 6, 1)
                verdicts[result.verdict] += 1
                if result.ci_log is not None and result.ci_log[0] <= math.log1p(delta) <= result.ci_log[1]:
                    covered += 1
                if result.decided_at_round is not None:
                    decided_at.append(result.decided_at_round)
            wrong = false_claims(delta, opts.min_effect)
            false = sum(verdicts[v] for v in wrong)
            se = math.sqrt(max(false, 1) * (opts.trials - false) / opts.trials) / opts.trials
            shown = ", ".join(f"{v} {verdicts[v] / opts.trials:.1%}" for v in
                              ("faster", "slower", "equivalent", "undecided"))
            median = f"{np.median(decided_at):.0f}" if decided_at else "-"
            print(f"Δ {delta:+.0%} {name:16}: {shown}; false {false / opts.trials:.1%} ± {se:.1%}; last interval "
                  f"holds Δ {covered / opts.trials:.1%}; median round of a decision {median}")
    print(f"({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
