"""What a study's time budget can decide, estimated before its first round from the workers' warm-ups.

After the first generation has warmed up, each model's forward time and the spread of its warm-up forwards are
known. With `--max-time` seconds of turns and rounds of one turn per worker, the study gets about
R = max_time / (seconds of one round) rounds (at most its last planned look). The per-round statistic of a
comparison averages W workers of each model, so its standard error after R rounds is about
sqrt(2 s^2 / (W R)) with s the larger of the two models' per-forward log spreads, and the interval at the last
look is that times Student's t at the level of the last look's first Holm step (alpha / looks / comparisons),
on MAX_BATCHES - 1 degrees of freedom.

This is a lower bound on the interval's width, and it is said so: forwards run back to back during the warm-up
vary less than turns taken between other workers' turns, and the spread between worker processes, which every
interval includes, is not known before the study measures it. It is meant for the advice: when even this bound
is wider than --min-effect, the study cannot call anything equivalent and can only call differences well beyond
the bound, and the user learns it before waiting, with what would help (time, image size, fewer models).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detbench.stats import paired


@dataclass(frozen=True)
class Budget:
    round_s: float  # seconds of turns one round takes (every worker's turn)
    rounds: int  # rounds that fit in max_time (at most the last planned look)
    half_width_pct: float  # the interval's half-width at the last look, at best (percent)
    noise_pct: float  # per-forward spread of the warm-ups (the larger model of each pair; percent)
    max_time: float
    min_effect: float
    rounds_for_equivalence: float  # rounds for the half-width to fall to half of --min-effect
    planned_looks: tuple[int, ...]  # rounds of the planned looks: the study never runs beyond the last
    workers_per_model: int

    @property
    def seconds_for_equivalence(self) -> float:
        return self.rounds_for_equivalence * self.round_s

    @property
    def can_show_equivalence(self) -> bool:
        return self.half_width_pct < 100.0 * self.min_effect

    @property
    def decidable_pct(self) -> float:
        """The smallest true difference the last look can call slower or faster (at best)."""
        return 100.0 * self.min_effect + self.half_width_pct

    def record(self) -> dict[str, Any]:
        return {"round_s": round(self.round_s, 4), "rounds": self.rounds,
                "half_width_pct_at_best": round(self.half_width_pct, 3), "noise_pct": round(self.noise_pct, 3),
                "decidable_pct_at_best": round(self.decidable_pct, 3),
                "seconds_for_equivalence": round(self.seconds_for_equivalence, 1),
                "rounds_for_equivalence": round(self.rounds_for_equivalence),
                "meaning": "estimated after the warm-up, before the first round: rounds that fit in --max-time, "
                           "and the interval's half-width at the last look from the warm-up forwards' spread "
                           "alone (a lower bound: turns vary more, and the spread between processes is added "
                           "once measured)"}

    def lines(self, models: int) -> list[str]:
        """The estimate and, where the budget falls short, what would help."""
        effect = 100.0 * self.min_effect
        found = [f"· budget: about {self.rounds} rounds in {self.max_time:g} s of turns ({self.round_s:.2f} s a "
                 f"round); at best the last interval is ±{self.half_width_pct:.1f} % (warm-up spread "
                 f"{self.noise_pct:.1f} % per forward), so differences beyond about ±{self.decidable_pct:.0f} % can "
                 f"be decided" + ("" if self.can_show_equivalence else
                                  f", and no model can be shown equivalent within ±{effect:g} %")]
        if not self.can_show_equivalence or self.decidable_pct > 4 * effect:
            more = f"--max-time {_round_up(self.seconds_for_equivalence):g}"
            first, last = self.planned_looks[0], self.planned_looks[-1]
            if self.rounds_for_equivalence > last:  # the study stops at its last planned look, whatever the time
                iters = self.workers_per_model * first * self.rounds_for_equivalence / last
                more += f" and --iters {_round_up(iters):g} (the last look is at round {last}, set by --iters)"
            advice = f"  to decide ±{effect:g} %: about {more}"
            advice += ", or a smaller --imgsz (half the size: about 4 times fewer FLOPs)"
            advice += ", or fewer models" if models > 2 else ""
            found.append(advice + "; the study goes on and reports what it can decide")
        return found


def _round_up(seconds: float) -> float:
    """A round number of seconds at or above `seconds` (two significant digits)."""
    if seconds <= 0 or not math.isfinite(seconds):
        return seconds
    step = 10 ** max(0, int(math.log10(seconds)) - 1)
    return math.ceil(seconds / step) * step


def forward_noise(warmup_ms: Sequence[float]) -> tuple[float, float] | None:
    """(median ms, sd of log ms) of the second half of a worker's warm-up forwards; None with fewer than 4."""
    tail = np.asarray(warmup_ms[len(warmup_ms) // 2:], dtype=np.float64)
    tail = tail[np.isfinite(tail) & (tail > 0)]
    if tail.size < 4:
        return None
    return float(np.median(tail)), float(np.std(np.log(tail), ddof=1))


def estimate(warmups: Mapping[str, Sequence[Sequence[float]]], baseline: str, workers_per_model: int,
             turn_warmup: int, max_time: float, planned_looks: Sequence[int], alpha: float,
             min_effect: float) -> Budget | None:
    """The budget from each model's workers' warm-up forwards (ms); None when a model has too few of them."""
    forward_ms: dict[str, float] = {}
    noise: dict[str, float] = {}
    for model, workers in warmups.items():
        found = [f for f in (forward_noise(w) for w in workers) if f is not None]
        if not found:
            return None
        forward_ms[model] = float(np.median([f[0] for f in found]))
        noise[model] = float(np.median([f[1] for f in found]))
    if baseline not in noise or len(noise) < 2:
        return None
    round_s = sum(workers_per_model * (turn_warmup + 1) * ms for ms in forward_ms.values()) / 1000.0
    rounds = max(1, min(planned_looks[-1], int(max_time / round_s)))
    comparisons = len(noise) - 1
    spread = max(max(noise[baseline], value) for model, value in noise.items() if model != baseline)
    se = math.sqrt(2.0 * spread ** 2 / (workers_per_model * rounds))
    t = paired.t_quantile(1.0 - alpha / len(planned_looks) / comparisons / 2.0, paired.MAX_BATCHES - 1)
    half = t * se
    margin = math.log1p(min_effect)
    rounds_for_equivalence = rounds * (half / (margin / 2.0)) ** 2
    return Budget(round_s, rounds, 100.0 * math.expm1(half), 100.0 * math.expm1(spread), max_time, min_effect,
                  rounds_for_equivalence, tuple(planned_looks), workers_per_model)
