"""Error rates of the interleaved study's verdicts on synthetic turns whose true Δ is known, by Monte Carlo.

Each study's turns come from `synthetic_studies` (log-normal turns around 50 ms, per-turn log sd 0.10, plus
the scenario's noise; W = 2 fresh worker processes per look, each holding every model (--design shared, the
engine's), or W = 2 per model (--design per-model, the older design); looks at
planned_looks(150, until_decided=True)),
and go through the engine's own analysis: `paired.analyse_look` at each look, the study stopping once every
comparison is decided, and `paired.replay` over the looks taken for the final verdicts (what study.json and
`compare` report). Per scenario, each as p ± se (se = sqrt(p (1 - p) / n)):

- A/A false: studies with a false "faster" or "slower" at true Δ 0 (--aa-models 6: any of 5 comparisons);
- any-look miss: at true Δ +5 %, studies in which the interval of some look excluded the true Δ;
- worst look miss: at +5 %, per look, the studies that took it and whose interval missed, against the look's
  nominal rate (1 - the confidence its interval was shown at); the worst ratio over the looks, and which look;
- coverage 5 %: the final interval holds +5 %;
- power 2 %, power 5 %: "slower" at +2 % and +5 %;
- false equivalent 3 %: "equivalent" at +3 % (the minimum effect is 2 %).

A cell that misses its target is marked with *.

    python benchmarks/verdict_harness.py [--trials 100] [--scenarios iid,bursts] [--seed 0] [--aa-models 2]
                                         [--design shared|per-model] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import synthetic_studies as sim

from detbench.stats import paired

POWER_EXEMPT = ("worker_ar09", "no_fresh")  # noise the design cannot be expected to see through at 5 %


@dataclass(frozen=True)
class Metric:
    key: str
    heading: str
    at_most: float | None = None
    at_least: float | None = None
    ratio: bool = False  # shown as a ratio, not a percentage

    @property
    def target(self) -> str:
        if self.at_most is not None:
            return f"≤ {self.at_most:g}×" if self.ratio else f"≤ {100 * self.at_most:g} %"
        if self.at_least is not None:
            return f"≥ {100 * self.at_least:g} %"
        return ""


METRICS = (
    Metric("aa_false", "A/A false", at_most=0.01),
    Metric("any_look_miss", "any-look miss", at_most=0.05),
    Metric("worst_look_miss", "worst look miss", at_most=2.0, ratio=True),
    Metric("coverage_5", "coverage 5 %"),
    Metric("power_2", "power 2 %"),
    Metric("power_5", "power 5 %", at_least=0.90),
    Metric("false_equivalent_3", "false equiv 3 %", at_most=0.01),
)


def measure(scenario: sim.Scenario, trials: int, seed: int, aa_models: int = 2,
            shared: bool = True) -> dict[str, dict[str, Any]]:
    """Every metric of one scenario: {key: {p, se, n, ...}}."""
    shape = sim.Shape(shared=shared)
    aa = sim.tally(scenario, sim.AA, trials, seed, sim.Shape(models=aa_models, shared=shared))
    power = sim.tally(scenario, sim.POWER_DELTA, trials, seed, shape)
    equivalence = sim.tally(scenario, sim.EQUIVALENCE_DELTA, trials, seed, shape)
    miss = sim.tally(scenario, sim.MISS_DELTA, trials, seed, shape)

    def shown(rate: sim.Rate) -> dict[str, Any]:
        return {"p": rate.p, "se": rate.se, "n": rate.n, "hits": rate.hits}

    found = {
        "aa_false": shown(aa.claim_rate(paired.FASTER, paired.SLOWER)),
        "any_look_miss": shown(sim.Rate(miss.any_look_miss, miss.studies)),
        "coverage_5": shown(sim.Rate(miss.final_covered, miss.studies)),
        "power_2": shown(power.claim_rate(paired.SLOWER)),
        "power_5": shown(miss.claim_rate(paired.SLOWER)),
        "false_equivalent_3": shown(equivalence.claim_rate(paired.EQUIVALENT)),
    }
    looks = [{"look": k + 1, "rounds": shape.looks[k], "nominal": nominal, **shown(rate)}
             for k, (rate, nominal) in enumerate(miss.look_miss_ratios())]
    worst = max(looks, key=lambda look: look["p"] / look["nominal"])
    found["worst_look_miss"] = {"p": worst["p"] / worst["nominal"], "se": worst["se"] / worst["nominal"],
                                "n": worst["n"], "look": worst["look"], "per_look": looks}
    found["verdicts"] = {f"{100 * t.delta:+g} %": _verdict_shares(t) for t in (aa, power, equivalence, miss)}
    found["looks_taken"] = {f"{100 * t.delta:+g} %": t.looks_taken for t in (aa, power, equivalence, miss)}
    return found


def _verdict_shares(tally: sim.Tally) -> dict[str, float]:
    verdicts = (paired.FASTER, paired.SLOWER, paired.EQUIVALENT, paired.UNDECIDED)
    return {verdict: tally.claim_rate(verdict).p for verdict in verdicts}


def meets(metric: Metric, scenario: str, value: float) -> bool | None:
    """Whether the estimate meets the metric's target (None: no target here)."""
    if metric.at_most is not None:
        return value <= metric.at_most
    if metric.at_least is not None and not (metric.key == "power_5" and scenario in POWER_EXEMPT):
        return value >= metric.at_least
    return None


def cell(metric: Metric, scenario: str, value: dict[str, Any]) -> tuple[str, bool | None]:
    if math.isnan(value["p"]):
        return "n/a", None
    ok = meets(metric, scenario, value["p"])
    if metric.ratio:
        text = f"{value['p']:.1f} ± {value['se']:.1f} (look {value['look']})"
    else:
        text = f"{100 * value['p']:.1f} ± {100 * value['se']:.1f}"
    return text + (" *" if ok is False else ""), ok


def table(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    rows = [["scenario", *(m.heading for m in METRICS)],
            ["target", *(m.target + (" (not ar09, no_fresh)" if m.key == "power_5" else "") for m in METRICS)]]
    for name, found in results.items():
        rows.append([name, *(cell(m, name, found[m.key])[0] for m in METRICS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(2, "  ".join("-" * width for width in widths))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="studies per scenario and true Δ (default 100)")
    parser.add_argument("--scenarios", default=",".join(sim.SCENARIOS),
                        help=f"comma-separated, of: {', '.join(sim.SCENARIOS)} (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aa-models", type=int, default=2, choices=(2, 6),
                        help="models in the A/A studies: 2, or 6 (a family of 5 comparisons)")
    parser.add_argument("--design", choices=("shared", "per-model"), default="shared",
                        help="shared: every worker process holds every model (the engine's design, default); "
                             "per-model: every model in W processes of its own (studies recorded before it)")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    opts = parser.parse_args(argv)
    names = [name.strip() for name in opts.scenarios.split(",") if name.strip()]
    unknown = [name for name in names if name not in sim.SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(sim.SCENARIOS)}")
    shape = sim.Shape(shared=opts.design == "shared")
    processes = "processes per look, each holding every model" if shape.shared else "workers per model per look"
    print(f"{opts.trials} studies per scenario and true Δ; seed {opts.seed}; {shape.models} models "
          f"(A/A: {opts.aa_models}), W = {shape.workers} fresh {processes}; looks at rounds "
          f"{', '.join(map(str, shape.looks))}; alpha {shape.alpha:g}, min effect {100 * shape.min_effect:g} %")
    began, cpu = time.perf_counter(), time.process_time()
    results = {}
    for name in names:
        results[name] = measure(sim.SCENARIOS[name], opts.trials, opts.seed, opts.aa_models, shape.shared)
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    print("\n".join(table(results)))
    print(f"(percent; worst look miss: times the look's nominal rate; * misses its target; "
          f"{wall:.0f} s, {cpu:.0f} s of CPU)")
    if opts.json:
        settings = {"trials": opts.trials, "seed": opts.seed, "design": opts.design, "models": shape.models,
                    "aa_models": opts.aa_models,
                    "workers": shape.workers, "looks": list(shape.looks), "alpha": shape.alpha,
                    "min_effect": shape.min_effect, "turn_sd": sim.TURN_SD, "baseline_ms": sim.BASELINE_MS}
        targets = {m.key: {"at_most": m.at_most, "at_least": m.at_least} for m in METRICS}
        for name, found in results.items():
            for metric in METRICS:
                found[metric.key]["meets"] = meets(metric, name, found[metric.key]["p"])
        opts.json.write_text(json.dumps({"settings": settings, "targets": targets, "seconds": round(wall, 1),
                                         "cpu_seconds": round(cpu, 1), "scenarios": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
