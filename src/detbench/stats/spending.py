"""How a study that looks several times shares its alpha among its looks.

An O'Brien–Fleming-type spending function (Lan and DeMets, 1983):
alpha*(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t)), for the fraction t of the
study done at a look. Look k may use alpha*(t_k) - alpha*(t_(k-1)), and the
look that ends the study by its plan (the last planned look, or the study
time running out) uses all that is left. The levels add up to at most alpha,
so the chance of any false claim over all looks is at most alpha by the union
bound (an exact group-sequential boundary would be a little less
conservative). Early looks get little: they decide only large differences,
and the last look keeps almost all of alpha (0.037 of 0.05 with six looks
growing 1.6 times), where splitting alpha evenly gave it 0.0083.

The fraction t of a look is the larger of its share of the last planned
look's rounds and its share of the study time: both are fixed by the plan and
the clock, not by the differences being tested.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()


def spent(alpha: float, fraction: float) -> float:
    """alpha*(t): the alpha spent by the time a fraction t (0..1) of the study is done."""
    if fraction <= 0.0:
        return 0.0
    if fraction >= 1.0:
        return alpha
    z = _NORMAL.inv_cdf(1.0 - alpha / 2.0)
    return 2.0 * (1.0 - _NORMAL.cdf(z / math.sqrt(fraction)))


def look_alpha(alpha: float, fraction: float, used: float, final: bool) -> float:
    """The level of a look at `fraction` of the study, after `used` alpha was spent at earlier looks; the final
    look takes what is left."""
    return max(0.0, alpha - used) if final else max(0.0, spent(alpha, fraction) - used)


def fraction_done(rounds: int, last_planned_rounds: int, turn_seconds: float, study_seconds: float) -> float:
    """The share of the study a look comes at: rounds of the last planned look, or seconds of the study time,
    whichever is further along."""
    by_rounds = rounds / last_planned_rounds if last_planned_rounds > 0 else 0.0
    by_time = turn_seconds / study_seconds if study_seconds > 0 and math.isfinite(study_seconds) else 0.0
    return min(1.0, max(by_rounds, by_time))
