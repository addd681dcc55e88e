"""What a study's time budget can decide, estimated before its first round from the workers' warm-ups.

After the first generation has warmed up, each model's forward time and the spread of its warm-up forwards are
known. A round gives every worker one turn of `turn_warmup` + 1 forwards, so it takes about
sum over models of W (turn_warmup + 1) forward_ms; with `--study-time` seconds of turns the study gets about
R = max_time / round_s rounds, never more than its last planned look. The per-round statistic of a comparison
averages W workers of each model, so its standard error after R rounds is about sqrt(2 s^2 / (W R)), s the larger
of the two models' per-forward log spreads, and the interval at the last look is that times Student's t at the
level of the last look's first Holm step (what the spending rule leaves the last planned look, over the
comparisons; `detbench.stats.spending`), on MAX_BATCHES - 1 degrees of freedom.
The rounds that would bring that half-width down to half of --min-effect (where a true difference of 0 is called
equivalent) follow from the same formula: 8 t^2 s^2 / (W m^2), m = log(1 + min_effect).

This is a lower bound on the interval's width, and it is said so: forwards run back to back during the warm-up
vary less than turns taken between other workers' turns, the spread is a robust one (the median absolute
deviation: bursts are left out, and the batch means will count them). It is meant for the advice: when even
this bound is wider than --min-effect, the study cannot call anything equivalent and can only call differences
well beyond the bound, and the user learns it before waiting, with what would help (time, --iters, image size,
fewer models).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detbench.stats import paired, spending

INTERVAL_ROUNDS = paired.MIN_BATCHES * paired.MIN_ROUNDS_PER_BATCH  # the fewest rounds that give an interval
MIN_NOISE_FORWARDS = 4  # warm-up forwards (of the second half) that give a spread
MIN_SPREAD = 1e-6  # of log latency: below, the timings do not vary (rounding), and no interval can be foreseen


@dataclass(frozen=True)
class Budget:
    round_s: float  # seconds of turns one round takes (every worker's turn)
    fit_rounds: int  # rounds that fit in max_time
    planned_looks: tuple[int, ...]  # rounds of the planned looks: the study never runs beyond the last
    first_look: int  # the fewest rounds of a look before --study-time
    max_time: float
    min_effect: float
    workers_per_model: int
    noise_log: float | None = None  # per-forward log spread of the warm-ups (the noisier model of a pair)
    t: float | None = None  # Student's t of the last look's first Holm step

    @property
    def rounds(self) -> int:
        """The rounds the study runs at most: those that fit, or its last planned look."""
        return min(self.fit_rounds, self.planned_looks[-1])

    @property
    def half_width_pct(self) -> float | None:
        """The last interval's half-width at best (percent); None without a spread or below INTERVAL_ROUNDS."""
        if self.noise_log is None or self.t is None or self.rounds < INTERVAL_ROUNDS:
            return None
        return 100.0 * math.expm1(self.t * math.sqrt(2.0 * self.noise_log ** 2 / (self.workers_per_model
                                                                                  * self.rounds)))

    @property
    def rounds_for_equivalence(self) -> float | None:
        """Rounds that bring the half-width to half of --min-effect."""
        if self.noise_log is None or self.t is None:
            return None
        margin = math.log1p(self.min_effect)
        return 8.0 * self.t ** 2 * self.noise_log ** 2 / (self.workers_per_model * margin ** 2)

    @property
    def can_show_equivalence(self) -> bool:
        half = self.half_width_pct
        return half is not None and half < 100.0 * self.min_effect

    def record(self) -> dict[str, Any]:
        half, needed = self.half_width_pct, self.rounds_for_equivalence
        return {"round_s": round(self.round_s, 4), "rounds": self.rounds, "rounds_fitting_max_time": self.fit_rounds,
                "half_width_pct_at_best": None if half is None else round(half, 3),
                "noise_pct": None if self.noise_log is None else round(100.0 * math.expm1(self.noise_log), 3),
                "decidable_pct_at_best": None if half is None else round(100.0 * self.min_effect + half, 3),
                "rounds_for_equivalence": None if needed is None else math.ceil(needed),
                "meaning": "estimated after the warm-up, before the first round: the rounds the study can run "
                           "(those that fit in --study-time, at most its last planned look) and the interval's "
                           "half-width at the last look from the warm-up forwards' spread alone (a lower bound: "
                           "turns vary more, and the spread between processes is added once measured)"}

    def lines(self, models: int) -> list[str]:
        """The estimate and, where the budget falls short, what would help."""
        effect, half = 100.0 * self.min_effect, self.half_width_pct
        said = f"· budget: about {self.rounds} rounds"
        if self.fit_rounds > self.planned_looks[-1]:
            said += (f" (the last planned look, set by --iters, after about {self.rounds * self.round_s:.0f} of the "
                     f"{self.max_time:g} s of turns allowed)")
        else:
            said += f" in {self.max_time:g} s of turns"
        said += f" ({self.round_s:.2f} s a round)"
        if self.rounds < INTERVAL_ROUNDS:
            said += f", fewer than the {INTERVAL_ROUNDS} an interval needs: nothing can be decided"
        elif half is None:
            said += (f"; the interval is not estimated (too few warm-up forwards to measure their spread: --warmup "
                     f"{2 * MIN_NOISE_FORWARDS - 1} or more)")
        else:
            if self.rounds < self.first_look:
                said += f", fewer than a look's {self.first_look}: the study looks once, at --study-time"
            said += (f"; at best the last interval is ±{half:.1f} % (warm-up spread "
                     f"{100.0 * math.expm1(self.noise_log):.1f} % per forward), so differences beyond about "
                     f"±{effect + half:.0f} % can be decided")
            if self.can_show_equivalence:
                said += f"; a model within about ±{effect - half:.1f} % of the baseline can be shown equivalent"
            else:
                said += f", and no model can be shown equivalent within ±{effect:g} %"
        found = [said]
        needed = self.rounds_for_equivalence
        if (half is None and self.rounds >= INTERVAL_ROUNDS) or self.can_show_equivalence:
            return found
        # the rounds to reach: where the interval is half the margin, and never fewer than a look needs
        target = max(needed or 0.0, float(self.first_look))
        more = []
        if target * self.round_s > self.max_time:
            more.append(f"--study-time {_round_up(target * self.round_s):g}")
        if target > self.planned_looks[-1]:
            first, last = self.planned_looks[0], self.planned_looks[-1]
            more.append(f"--iters {_round_up(self.workers_per_model * first * target / last):g} (the planned looks "
                        f"end at round {last} now)")
        advice = f"  to decide ±{effect:g} %: " + (f"about {' and '.join(more)}, or " if more else "")
        advice += "a smaller --imgsz (half the size: about 4 times fewer FLOPs)" + (", or fewer models"
                                                                                      if models > 2 else "")
        found.append(advice + "; the study goes on and reports what it can decide")
        return found


def _round_up(value: float) -> float:
    """A round number at or above `value` (two significant digits)."""
    if value <= 0 or not math.isfinite(value):
        return value
    step = 10 ** max(0, int(math.log10(value)) - 1)
    return math.ceil(value / step) * step


def _second_half(warmup_ms: Sequence[float]) -> np.ndarray:
    tail = np.asarray(warmup_ms[len(warmup_ms) // 2:], dtype=np.float64)
    return tail[np.isfinite(tail) & (tail > 0)]


def forward_noise(warmup_ms: Sequence[float]) -> tuple[float, float] | None:
    """(median ms, spread of log ms) of the second half of a worker's warm-up forwards; None with too few of them.

    The spread is the median absolute deviation scaled to a normal sd (1.4826 MAD): a burst from another program
    during the warm-up (a few forwards ten times slower) would make the sd, and so the estimate, absurd."""
    tail = _second_half(warmup_ms)
    if tail.size < MIN_NOISE_FORWARDS:
        return None
    logs = np.log(tail)
    spread = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
    if spread < MIN_SPREAD:  # most forwards took the same time (a coarse clock): the sd, if that says anything
        spread = float(np.std(logs, ddof=1))
    return (float(np.median(tail)), spread) if spread >= MIN_SPREAD else None


def round_seconds(warmups: Mapping[str, Sequence[Sequence[float]]], workers_per_model: int,
                  turn_warmup: int) -> float | None:
    """Seconds of one round from each model's warm-up forwards (the median of their second halves); None when a
    model has fewer than MIN_NOISE_FORWARDS of them (the first forwards are the slowest: from one or two, the
    round time would be overestimated, and the looks scheduled from it would come too early)."""
    total = 0.0
    for workers in warmups.values():
        tails = [_second_half(w) for w in workers]
        tails = [tail for tail in tails if tail.size >= MIN_NOISE_FORWARDS]
        if not tails:
            return None
        total += workers_per_model * (turn_warmup + 1) * float(np.median(np.concatenate(tails)))
    return total / 1000.0 if warmups and total > 0 else None


def estimate(warmups: Mapping[str, Sequence[Sequence[float]]], baseline: str, workers_per_model: int,
             turn_warmup: int, max_time: float, planned_looks: Sequence[int], alpha: float, min_effect: float,
             comparisons: int, first_look: int) -> Budget | None:
    """The budget from each model's workers' warm-up forwards (ms); None without a round time (--warmup 0) or
    without the baseline. `comparisons`: those the study planned (Holm's family, a failed model included)."""
    round_s = round_seconds(warmups, workers_per_model, turn_warmup)
    if round_s is None or baseline not in warmups or len(warmups) < 2:
        return None
    fit = max(0, int(max_time / round_s))
    common = (round_s, fit, tuple(planned_looks), first_look, max_time, min_effect, workers_per_model)
    spreads: dict[str, float] = {}
    for model, workers in warmups.items():
        found = [f for f in (forward_noise(w) for w in workers) if f is not None]
        if not found:
            return Budget(*common)
        spreads[model] = float(np.median([f[1] for f in found]))
    spread = max(max(spreads[baseline], value) for model, value in spreads.items() if model != baseline)
    before_last = planned_looks[-2] / planned_looks[-1] if len(planned_looks) > 1 else 0.0
    last_alpha = alpha - spending.spent(alpha, before_last)
    t = paired.t_quantile(1.0 - last_alpha / max(comparisons, 1) / 2.0, paired.MAX_BATCHES - 1)
    return Budget(*common, noise_log=spread, t=t)
