"""Paired analysis of an interleaved study: each model against the baseline, with a three-way verdict.

The design (`detbench.study`): W worker processes each hold every model; a
round gives every (process, model) pair one turn, in a seeded random order,
and a turn times one batch. So within a round all models see the same state
of the machine, and within a process the same heap, threads and allocator.

**Statistic.** For model m, process p and round r, L_{p,m}(r) is the log
latency of p's turn of m. Paired by process,
d(r) = mean over the processes p that took both turns in round r of
(L_{p,m}(r) - L_{p,base}(r)), so that whatever luck a process carries for its
whole life cancels in each difference. The pair's statistic is a location of
d(r) over the rounds (below): the log of a robust geometric mean of per-round
ratios. It is shown as a percentage, 100 * (exp(estimate) - 1).

Studies recorded before this design (`processes_hold_every_model` absent
from their study section) ran every model in W processes of its own; for them
(`shared=False`) L_m(r) is the mean over m's workers, d(r) = L_m(r) - L_base(r),
and the intervals include a process variance component (**Processes**,
below), so that `compare` replays them as they were.

**Interval.** d(r) is not independent from round to round (noise that one
process carries over several turns does not cancel in it), so its standard
error comes from batch means: the rounds are cut into B consecutive batches
(at most 20, at least MIN_ROUNDS_PER_BATCH rounds each), and se = sd(batch
locations) / sqrt(B), with B - 1 degrees of freedom (Student t). Each batch's
location is its 20 %-trimmed mean, so that a few turns several times slower
(a burst) move no estimate; the estimate is the mean of the batch locations.
For turns drawn from the same noise the per-round difference is symmetric
about the true log ratio, so trimming does not bias it. Batches must be long
enough for the correlation that remains: the lag-1 autocorrelation of d(r)
(clipped at its quantiles, centred on the whole series) is read, and, taken
as an AR(1) at its upper 2-se bound, it sets the batch length at which
consecutive batch means are at most MAX_BATCH_CORRELATION correlated.
Slow noise (a drift of the ratio over many rounds) hardly shows in the
lag-1 of single rounds, so the batch means' own lag-1 is read too: above
its one-sided 5 % bound under independence the batches are doubled, and
the correlation that remains (the larger of the one the rounds' lag-1
implies and the batch means' own, corrected for its bias and at most 0.45)
widens the se. When no length leaves MIN_BATCHES batches, the comparison
gets no interval and no verdict, and says why (run longer). Drift whose
correlation time is that of the study itself cannot be told from a
difference during the study: `benchmarks/verdict_harness.py` measures what
it costs (scenario ratio_drift).

**Processes.** Process-wide luck cancels in d(r), but a process could still
favour one model over another (its layout suits one model's buffers): an
offset of d_p(r) for the process's life, which no batch of rounds sees.
Each process's own series d_p(r) is compared with those of the processes of
its generation, and the spread of their means beyond their noise is a
process-by-model variance component (method of moments, `process_spread`
below, on the difference series). The interval includes it as the older
design includes its process component: the variance gains s^2 times the sum
over generations of (share of rounds)^2 / W, with Satterthwaite's degrees
of freedom, so that a component estimated from few processes widens the
interval instead of being taken as exact. Its F test ("no process favours a
model") is recorded with every comparison (`process_agreement`, flagged at
AGREEMENT_ALPHA), not used to withhold a claim: as a preliminary test it
would let a real favour through whenever it failed to reject.

**Processes (the older design).** A process can be lucky (memory layout,
thread placement) for its whole life. Each worker's offset from the round means of the workers of
its model that ran beside it (its generation) is measured; the spread of
these offsets beyond what their own noise explains is a variance component
s_p^2 (method of moments, pooled over every model and generation). Every
interval includes it: the pair's variance gains s_p^2 times the sum over its
generations of (share of rounds)^2 / W for each of the two models, and its
degrees of freedom become Satterthwaite's over the three mean squares
involved (batch means, the offsets' spread and their noise), but no fewer
than those of the offsets' spread, so that an imprecise component widens the
interval instead of being taken as exact. The
batch means over all rounds already see part of the shifts between
generations, so some process luck is counted twice: the interval errs wide.
A study that replaces its workers by fresh processes after each look (the
default) samples process luck again in every generation, so the component's
degrees of freedom and the number of processes behind each mean both grow
with the study. An F test of "no process effect" is reported, not used to
drop the component: as a preliminary test it let real process luck through
too often.

**Verdicts.** With a minimum effect e (fraction) and m = log(1 + e), at a
look whose level is L for this comparison:
- slower: the (1 - L) interval's lower end is above 0 (the model is slower;
  by how much, the interval says: possibly less than e);
- faster: its upper end is below 0;
- equivalent: the (1 - 2L) interval lies inside (-m, +m) (two one-sided
  tests, each at L): any difference is smaller than e;
- undecided: none of these.
Studies recorded before every process held every model made slower and
faster only beyond +m and -m; `compare` replays them so.
Each claim has a p-value (the smallest L at which it would be made); the claim
with the smallest is the comparison's. Holm's step-down runs over all
comparisons of the study at each look; a comparison's interval is shown at
the confidence of its claim at the level Holm used for it. A study that looks
several times (`--until-decided`) gives each look the level of an
O'Brien-Fleming-type spending function (`detbench.stats.spending`), the levels
adding up to alpha, so the chance of any false claim over the whole study is
at most alpha; a verdict is final at the first look that makes it. Each
result carries its minimum detectable effect: the true difference the look
would call slower or faster 80 % of the time, (t_{1-L/2} + t_{0.8}) se.
Zero variance cannot make a claim: the p-value is undefined and the verdict
undecided, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_BATCHES = 20
MIN_ROUNDS_PER_BATCH = 5  # batches grow beyond this as far as the turns' measured autocorrelation asks
MIN_BATCHES = 4
TRIM = 0.2  # each batch's location: the mean of its middle 60 %, so that a burst of slow turns moves no estimate
MAX_BATCH_CORRELATION = 0.1  # consecutive batch means may be this correlated (implied by the turns' lag-1)
BATCH_TEST_Z = 1.645  # batch means whose own lag-1 is this far above independence (one-sided 5 %) are too short
AGREEMENT_ALPHA = 0.01  # the record flags processes whose own estimates differ at this level (se holds it)
MAX_HALF_WIDTH_LOG = math.log(1e6)
FASTER, SLOWER, EQUIVALENT, UNDECIDED, UNTESTED = "faster", "slower", "equivalent", "undecided", "untested"


def design(fresh_workers: bool, process_component: bool = True, spending: bool = True, shared: bool = False) -> str:
    """The study design in one line, as the footnotes and the study file name it. `shared`: every worker process
    holds every model and the rounds are paired within each process. `process_component` (the older design): the
    study has two or more workers per model, so the intervals include the spread between processes. `spending`:
    its looks' levels came from the spending rule (studies recorded before it split alpha evenly)."""
    workers = ("workers replaced by fresh processes after each look" if fresh_workers
               else "the same worker processes throughout")
    turns = ("worker processes that each hold every model, one turn per model per process per round" if shared
             else "one turn per worker per round")
    interval = "batch-means t interval of trimmed means" + (
        ", paired within each process, with a process-by-model variance component" if shared
        else " with a process variance component" if process_component else "")
    return (f"interleaved rounds, {turns} in seeded random order, {workers}; "
            f"geometric mean of per-round ratios; {interval}; Holm over comparisons, "
            + ("O'Brien-Fleming-type alpha spending over looks" if spending else "alpha split over planned looks"))


# per worker: round index -> latency (ms) of its turn in that round
WorkerSeries = Mapping[int, float]


@dataclass(frozen=True)
class Series:
    """One worker's turns as arrays: the rounds (sorted, distinct) and the log latencies taken in them."""

    rounds: np.ndarray
    logs: np.ndarray

    @classmethod
    def of(cls, turns: WorkerSeries) -> Series:
        ordered = sorted(turns.items())
        rounds = np.fromiter((r for r, _ in ordered), dtype=np.int64, count=len(ordered))
        logs = np.log(np.fromiter((v for _, v in ordered), dtype=np.float64, count=len(ordered)))
        return cls(rounds, logs)

    def before(self, count: int) -> Series:
        """The turns of rounds 0 .. count - 1."""
        end = int(np.searchsorted(self.rounds, count))
        return Series(self.rounds[:end], self.logs[:end])


# per model: its workers' turns, by worker index (the process, shared across models) or in worker order
Workers = Mapping[int, WorkerSeries | Series] | Sequence[WorkerSeries | Series]


def as_series(models: Mapping[str, Workers]) -> dict[str, dict[int, Series]]:
    """{model: {worker index: Series}}; a model's workers given as a list are indexed in their order."""
    return {name: {int(index): w if isinstance(w, Series) else Series.of(w)
                   for index, w in (workers.items() if isinstance(workers, Mapping) else enumerate(workers))}
            for name, workers in models.items()}


@dataclass(frozen=True)
class BatchMeans:
    mean: float  # the mean of the batches' trimmed means
    se: float
    df: int
    batches: int
    rounds_per_batch: int = 0
    lag1: float = 0.0  # the values' lag-1 autocorrelation within batches
    reason: str = ""  # why no interval can be trusted ("" when one can)


def _trimmed_means(chunks: Sequence[np.ndarray]) -> np.ndarray:
    means = []
    for chunk in chunks:
        cut = int(TRIM * chunk.size)
        means.append(np.sort(chunk)[cut:chunk.size - cut].mean())
    return np.array(means)


def _lag1(x: np.ndarray) -> float:
    """The series' lag-1 autocorrelation around its median, values clipped at their TRIM quantiles (a burst
    would otherwise decide it). Centred on the whole series, so slow drift that does not cancel counts too."""
    low, high = np.quantile(x, [TRIM, 1.0 - TRIM])
    clipped = np.clip(x, low, high) - np.median(x)
    squares = float(np.dot(clipped, clipped))
    return float(np.dot(clipped[:-1], clipped[1:])) / squares if squares > 0.0 else 0.0


def batch_correlation(phi: float, size: int) -> float:
    """The correlation of consecutive means of `size` values of an AR(1) series with coefficient `phi`."""
    if phi <= 0.0:
        return 0.0
    phi = min(phi, 0.999)
    lags = np.arange(1, size)
    within = size + 2.0 * float(np.sum((size - lags) * phi ** lags))
    return phi * ((1.0 - phi ** size) / (1.0 - phi)) ** 2 / within


def batch_means(values: Sequence[float] | np.ndarray) -> BatchMeans | None:
    """Location and standard error of a series by batch means; None when there are too few values for
    MIN_BATCHES batches of MIN_ROUNDS_PER_BATCH.

    Each batch's location is its trimmed mean (TRIM from each end). Batches are at least MIN_ROUNDS_PER_BATCH
    values long, and longer when the values' lag-1 autocorrelation (its upper 2-se bound, as an AR(1)) says
    consecutive batch means would be more than MAX_BATCH_CORRELATION correlated; when no length leaves
    MIN_BATCHES batches, `reason` says why and the interval must not be used. What correlation remains at the
    chosen length (at the estimate) widens the standard error.
    """
    x = np.asarray(values, dtype=np.float64)
    size = max(MIN_ROUNDS_PER_BATCH, math.ceil(x.size / MAX_BATCHES))
    if x.size // size < MIN_BATCHES:
        return None
    lag1 = _lag1(x)
    upper = lag1 + 2.0 / math.sqrt(x.size)
    while batch_correlation(upper, size) > MAX_BATCH_CORRELATION and x.size // size >= MIN_BATCHES:
        size = math.ceil(size * 1.25)
    means = None
    while x.size // size >= MIN_BATCHES:
        means = _trimmed_means(np.array_split(x, x.size // size))  # the first (size % batches) get one value more
        if not _batches_correlated(means):
            break
        size *= 2  # slow noise (a drift over many rounds) the lag-1 missed
    batches = x.size // size
    if batches < MIN_BATCHES or means is None or means.size != batches:
        return BatchMeans(float(np.mean(_trimmed_means(np.array_split(x, MIN_BATCHES)))), 0.0, 0, 0, size, lag1,
                          f"the turns are correlated over many rounds (lag-1 {lag1:.2f}): {x.size} rounds are too "
                          f"few for {MIN_BATCHES} independent batches")
    rho = max(batch_correlation(lag1, x.size // batches), _own_lag1(means))
    inflation = (1.0 + 2.0 * rho) / max(1.0 - 2.0 * rho / (batches - 1), 0.5)
    se = float(means.std(ddof=1) / math.sqrt(batches) * math.sqrt(inflation))
    return BatchMeans(float(means.mean()), se, batches - 1, batches, x.size // batches, lag1)


def _own_lag1(means: np.ndarray) -> float:
    """The batch means' own lag-1 autocorrelation where it is above its 1-sd bound under independence
    (-1/B + 1/sqrt(B)), corrected for its bias (+1/B) and at most 0.45; else 0. Slow noise (a drift over many
    rounds) that the turns' lag-1 extrapolates to nothing, and that the doubling test let through, still widens
    the se, while batch means that merely scatter (bursts) are taken as independent."""
    centred = means - means.mean()
    squares = float(np.dot(centred, centred))
    if means.size < MIN_BATCHES or squares <= 0.0:
        return 0.0
    lag1 = float(np.dot(centred[:-1], centred[1:])) / squares
    if lag1 <= -1.0 / means.size + 1.0 / math.sqrt(means.size):
        return 0.0
    return min(lag1 + 1.0 / means.size, 0.45)


def _batches_correlated(means: np.ndarray) -> bool:
    """Whether consecutive batch means are positively correlated beyond chance: their lag-1 autocorrelation
    above its one-sided 5 % quantile under independence (mean -1/B, sd about 1/sqrt(B)). Fewer than
    2 * MIN_BATCHES batches are too few to tell, and pass."""
    count = means.size
    if count < 2 * MIN_BATCHES:
        return False
    centred = means - means.mean()
    squares = float(np.dot(centred, centred))
    if squares <= 0.0:
        return False
    lag1 = float(np.dot(centred[:-1], centred[1:])) / squares
    return lag1 > -1.0 / count + BATCH_TEST_Z / math.sqrt(count)


def round_means(workers: Sequence[Series]) -> tuple[np.ndarray, np.ndarray]:
    """(rounds, L(r)): the mean log latency over the workers with a turn in round r, for every such round."""
    rounds = np.concatenate([w.rounds for w in workers])
    logs = np.concatenate([w.logs for w in workers])
    if rounds.size and rounds.min() >= 0 and rounds.max() < 4 * rounds.size + 1024:  # dense: count, no sort
        counts = np.bincount(rounds)
        unique = np.flatnonzero(counts)
        return unique, np.bincount(rounds, weights=logs)[unique] / counts[unique]
    unique, index = np.unique(rounds, return_inverse=True)
    return unique, np.bincount(index, weights=logs) / np.bincount(index)


@dataclass(frozen=True)
class ProcessSpread:
    """How much worker processes of one model differ beyond their noise (log scale)."""

    offsets: dict[str, list[float]]  # per model: each worker's mean offset from its generation's round means
    variance: float  # s_p^2 by the method of moments, the component every interval includes: max(0, seen - noise)
    excess_ratio: float | None  # seen / noise (1 = no process effect)
    df: int = 0  # of `seen`: sum over models and generations of (workers - 1)
    p_value: float | None = None  # of the F test of "no process effect" (reported, not used)
    seen: float = 0.0  # mean square of the offsets: estimates s_p^2 + v
    noise: float = 0.0  # the offsets' own noise: estimates v
    noise_df: int = 0  # of `noise`: sum of (workers - 1) * (batches - 1)

    @property
    def sd_pct(self) -> float:
        return 100.0 * (math.exp(math.sqrt(self.variance)) - 1.0)


def generations(workers: Sequence[Series]) -> list[list[Series]]:
    """A model's workers grouped by the rounds they served: those that started in the same round ran side by side
    (a study that replaces its workers at each look has one group per look). Workers with no turns are left out."""
    groups: dict[int, list[Series]] = {}
    for series in workers:
        if series.rounds.size:
            groups.setdefault(int(series.rounds[0]), []).append(series)
    return [groups[first] for first in sorted(groups)]


def _group_offsets(group: Sequence[Series]) -> tuple[list[float], float, int] | None:
    """Each worker's mean offset from the group's round means, the sum of their squared standard errors and the
    smallest batch-means df; None when a worker has too few turns for batch means."""
    rounds, means = round_means(group)
    offsets, noise, dfs = [], 0.0, []
    for series in group:
        estimate = batch_means(series.logs - means[np.searchsorted(rounds, series.rounds)])
        if estimate is None or estimate.reason:
            return None
        offsets.append(estimate.mean)
        noise += estimate.se ** 2
        dfs.append(estimate.df)
    return offsets, noise, min(dfs)


def process_spread(models: Mapping[str, Workers]) -> ProcessSpread:
    """The between-process variance component, by the method of moments, pooled over every group of W >= 2
    workers that ran side by side (per model, per generation).

    A worker's offset o_k is its mean distance from its group's round means. With W workers the offsets sum to
    zero, so sum(o_k^2) / (W - 1) estimates s_p^2 + v (v: the noise variance of one process's mean), and the
    offsets' own noise, sum(se(o_k)^2) / (W - 1), estimates v (each se(o_k)^2 is (W - 1) / W of v). Their
    difference is s_p^2; their ratio is F-distributed with sum(W - 1) and sum((W - 1)(B - 1)) degrees of freedom
    when processes do not differ.
    """
    models = as_series(models)
    offsets: dict[str, list[float]] = {}
    squares = noise = 0.0
    df = within_df = 0
    for name, workers in models.items():
        for group in generations(list(workers.values())):
            found = _group_offsets(group) if len(group) >= 2 else None
            if found is None:
                continue
            group_offsets, group_noise, batch_df = found
            offsets.setdefault(name, []).extend(group_offsets)
            squares += float(np.sum(np.square(group_offsets)))
            noise += group_noise
            df += len(group) - 1
            within_df += (len(group) - 1) * batch_df
    if not df:
        return ProcessSpread(offsets, 0.0, None)
    seen, noise_part = squares / df, noise / df
    ratio = seen / noise_part if noise_part > 0 else None
    p_value = _f_sf(ratio, df, within_df) if ratio is not None else (0.0 if seen > 0 else None)
    return ProcessSpread(offsets, max(0.0, seen - noise_part), ratio, df, p_value, seen, noise_part, within_df)


def process_weight(workers: Sequence[Series], shared: np.ndarray) -> float:
    """How much of s_p^2 reaches a model's mean over the `shared` rounds (sorted): sum over its generations of
    (share of those rounds)^2 / (workers in it). A generation holds the shared rounds from its first round to
    the next generation's first (a study's generations are consecutive blocks). One generation of W workers
    gives 1 / W."""
    groups = generations(workers)
    if not groups or not shared.size:
        return 0.0
    edges = np.searchsorted(shared, [int(group[0].rounds[0]) for group in groups])
    counts = np.diff(np.append(edges, shared.size))
    counts[0] += edges[0]  # shared rounds before the first generation (none in a study) count with it
    return float(sum((count / shared.size) ** 2 / len(group) for count, group in zip(counts, groups, strict=True)))


@dataclass
class PairResult:
    """One model against the baseline."""

    model: str
    baseline: str
    n_rounds: int
    estimate_log: float | None = None
    se_log: float | None = None
    df: float | None = None
    claim: str = UNDECIDED  # the claim the data favour (what Holm tests)
    p_value: float | None = None  # of that claim
    verdict: str = UNDECIDED
    confidence: float | None = None  # of the interval shown
    ci_log: tuple[float, float] | None = None
    decided_at_round: int | None = None
    reason: str = ""
    mde_log: float | None = None  # the smallest difference this look would find 80 % of the time
    rounds_per_batch: int | None = None
    lag1: float | None = None  # the per-round differences' lag-1 autocorrelation within batches
    agreement: dict[str, object] | None = None  # processes holding every model: the test of their agreement

    @property
    def delta_pct(self) -> float | None:
        return None if self.estimate_log is None else 100.0 * math.expm1(self.estimate_log)

    @property
    def ci_pct(self) -> tuple[float, float] | None:
        return None if self.ci_log is None else (100.0 * math.expm1(self.ci_log[0]), 100.0 * math.expm1(self.ci_log[1]))

    @property
    def mde_pct(self) -> float | None:
        return None if self.mde_log is None else 100.0 * math.expm1(self.mde_log)

    def as_dict(self) -> dict[str, object]:
        return {"model": self.model, "baseline": self.baseline, "verdict": self.verdict,
                "delta_pct": self.delta_pct, "ci_pct": list(self.ci_pct) if self.ci_pct else None,
                "confidence": self.confidence, "p_value": self.p_value, "claim": self.claim,
                "n_rounds": self.n_rounds, "se_log": self.se_log, "df": self.df,
                "decided_at_round": self.decided_at_round, "reason": self.reason or None,
                "mde_pct": self.mde_pct, "rounds_per_batch": self.rounds_per_batch, "lag1": self.lag1,
                **({"process_agreement": self.agreement} if self.agreement is not None else {})}


def _t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t with df degrees of freedom."""
    from scipy.stats import t  # imported here, not at the top: scipy is slow to import and only analysis needs it

    return float(t.sf(x, df))


def _f_sf(x: float, df1: float, df2: float) -> float:
    """P(F > x) for Fisher's F with (df1, df2) degrees of freedom."""
    from scipy.stats import f  # imported here, not at the top: scipy is slow to import and only analysis needs it

    return float(f.sf(x, df1, df2))


def t_quantile(q: float, df: float) -> float:
    from scipy.stats import t  # imported here, not at the top: scipy is slow to import and only analysis needs it

    return float(t.ppf(q, df))


def claim_p_values(estimate: float, se: float, df: float, margin: float, beyond: float = 0.0) -> dict[str, float]:
    """The p-value of each claim: the smallest level at which its interval makes it. Slower and faster: the
    two-sided (1 - level) interval lies above +beyond or below -beyond (0: a difference in that direction, of
    any size, which the interval bounds; studies recorded before every process held every model used the
    margin). Equivalent: two one-sided tests, the (1 - 2 level) interval inside (-margin, +margin)."""
    return {
        SLOWER: 2.0 * _t_sf((estimate - beyond) / se, df),
        FASTER: 2.0 * _t_sf((-beyond - estimate) / se, df),
        EQUIVALENT: _t_sf((margin - abs(estimate)) / se, df),
    }


@dataclass(frozen=True)
class PairStatistic:
    estimate: float
    se: float
    df: float
    rounds: int
    batches: BatchMeans


def _with_component(estimate: BatchMeans, weight: float, spread: ProcessSpread) -> tuple[float, float]:
    """The se and df of a batch-means estimate whose mean also carries `weight` times the process variance
    component of `spread`, which its batches do not see (it is constant within a generation).

    s_p^2 = seen - noise is a difference of mean squares: Satterthwaite over all three terms, so that an
    imprecise component (few processes) widens the interval instead of being taken as exact. With a negative
    term that formula can fall to about 1 df whenever the component is small and poorly known; the df are
    kept no lower than min(df of seen, df of the batch means). Measured with `benchmarks/verdict_harness.py`
    (W = 2): without that floor, power at a true +2 % fell from 98 to 88 % (iid) and at +5 % from 100 to 82 %
    (bursts), for a false-claim rate with a process-by-model offset of 7 rather than 6 % (six models).
    """
    within, between = estimate.se ** 2, spread.variance * weight
    if between <= 0 or spread.df <= 0 or estimate.reason:
        return estimate.se, float(estimate.df)
    parts = within ** 2 / estimate.df + (weight * spread.seen) ** 2 / spread.df
    if spread.noise_df > 0:
        parts += (weight * spread.noise) ** 2 / spread.noise_df
    return math.sqrt(within + between), max((within + between) ** 2 / parts, min(spread.df, estimate.df))


def pair_statistic(model: Sequence[Series], baseline: Sequence[Series],
                   process: ProcessSpread) -> PairStatistic | None:
    """The older design: the mean log ratio over the rounds both ran, its se (with the process variance
    component) and df; None when there are too few rounds."""
    if not any(w.rounds.size for w in model) or not any(w.rounds.size for w in baseline):
        return None
    (our_rounds, ours), (their_rounds, theirs) = round_means(model), round_means(baseline)
    shared, mine, other = np.intersect1d(our_rounds, their_rounds, assume_unique=True, return_indices=True)
    estimate = batch_means(ours[mine] - theirs[other])
    if estimate is None:
        return None
    weight = process_weight(model, shared) + process_weight(baseline, shared)
    se, df = _with_component(estimate, weight, process)
    return PairStatistic(estimate.mean, se, df, len(shared), estimate)


def process_differences(model: Mapping[int, Series], baseline: Mapping[int, Series]) -> list[Series]:
    """Each process that holds both: log L_{p,model}(r) - log L_{p,baseline}(r) over the rounds it took both."""
    found = []
    for process, ours in model.items():
        theirs = baseline.get(process)
        if theirs is None:
            continue
        rounds, mine, other = np.intersect1d(ours.rounds, theirs.rounds, assume_unique=True, return_indices=True)
        if rounds.size:
            found.append(Series(rounds, ours.logs[mine] - theirs.logs[other]))
    return found


def shared_statistic(model: Mapping[int, Series],
                     baseline: Mapping[int, Series]) -> tuple[PairStatistic | None, dict[str, object] | None]:
    """Paired by process: the mean over the rounds of d(r), the mean of the processes' differences in round r,
    with its batch-means se and the process-by-model component (`process_spread` of the processes' own
    difference series within each generation, `_with_component`); and the record of that spread (its F test of
    "no process favours a model", reported). (None, None) without shared rounds."""
    differences = process_differences(model, baseline)
    if not differences:
        return None, None
    rounds, values = round_means(differences)
    spread = process_spread({"differences": differences})
    agreement = {"processes": len(differences), "f": spread.excess_ratio, "df": [spread.df, spread.noise_df],
                 "p_value": spread.p_value, "component_sd_pct": round(spread.sd_pct, 4),
                 "offsets_pct": [round(100.0 * math.expm1(v), 4) for v in spread.offsets.get("differences", [])],
                 "disagree": spread.p_value is not None and spread.p_value < AGREEMENT_ALPHA}
    estimate = batch_means(values)
    if estimate is None:
        return None, agreement
    se, df = _with_component(estimate, process_weight(differences, rounds), spread)
    return PairStatistic(estimate.mean, se, df, rounds.size, estimate), agreement


@dataclass
class Look:
    """The analysis at one look: every comparison's estimate, claim and Holm decision."""

    round_count: int
    alpha: float  # this look's share of the study's alpha
    results: list[PairResult] = field(default_factory=list)
    process: ProcessSpread | None = None


def analyse_look(models: Mapping[str, Workers], baseline: str, alpha_look: float, min_effect: float,
                 round_count: int, family_size: int = 0, shared: bool = False) -> Look:
    """Estimates, claims and Holm's step-down over all comparisons against `baseline` at this look.

    `family_size`: the comparisons the study planned, when more than those given (a model that failed still
    counts, so that losing a model never makes the test of the others more lenient). `shared`: every worker
    process held every model (the worker indices name the same process in every model): the rounds are paired
    within each process and the processes' agreement is tested; otherwise the older design's analysis, with its
    process variance component.
    """
    models = as_series(models)
    margin = math.log1p(min_effect)
    spread = None if shared else process_spread(models)
    look = Look(round_count, alpha_look, process=spread)
    for name, workers in models.items():
        if name == baseline:
            continue
        agreement = None
        if shared:
            stat, agreement = shared_statistic(workers, models[baseline])
        else:
            stat = pair_statistic(list(workers.values()), list(models[baseline].values()), spread)
        result = PairResult(name, baseline, 0 if stat is None else stat.rounds, agreement=agreement)
        if stat is None:
            result.reason = f"too few shared rounds for an interval (needs {MIN_BATCHES * MIN_ROUNDS_PER_BATCH})"
        else:
            result.estimate_log, result.se_log, result.df = stat.estimate, stat.se, stat.df
            result.rounds_per_batch, result.lag1 = stat.batches.rounds_per_batch, round(stat.batches.lag1, 4)
            if stat.batches.reason:
                result.se_log = result.df = None
                result.reason = stat.batches.reason
            elif stat.se <= 0.0:
                result.se_log = 0.0
                result.reason = "zero variance: the timings do not vary, no interval can be formed"
            else:
                claims = claim_p_values(stat.estimate, stat.se, stat.df, margin, 0.0 if shared else margin)
                result.claim = min(claims, key=claims.get)
                result.p_value = claims[result.claim]
        look.results.append(result)
    _holm(look.results, alpha_look, max(family_size, len(look.results)))
    return look


def _holm(results: list[PairResult], alpha: float, total: int) -> None:
    """Holm's step-down over the claims: rank k (from 0) is tested at alpha / (M - k); stop at the first failure.

    A decided comparison's interval is shown at its claim's confidence: 1 - 2 level for equivalence (two
    one-sided tests), 1 - level for slower or faster. Once a step fails, every
    later comparison's interval is shown at that step's level: an interval that cannot make a claim, so that no
    interval ever looks decided next to "undecided".
    """
    testable = sorted((r for r in results if r.p_value is not None), key=lambda r: r.p_value)
    failed_level = None
    for rank, result in enumerate(testable):
        level = failed_level if failed_level is not None else alpha / (total - rank)
        decided = failed_level is None and result.p_value <= level
        equivalent = decided and result.claim == EQUIVALENT
        result.verdict = result.claim if decided else UNDECIDED
        result.confidence = 1.0 - 2.0 * level if equivalent else 1.0 - level
        half = min(t_quantile(1.0 - level if equivalent else 1.0 - level / 2.0, result.df) * result.se_log,
                   MAX_HALF_WIDTH_LOG)  # a few df at a tiny level: a million-fold either way already says nothing
        result.ci_log = (result.estimate_log - half, result.estimate_log + half)
        result.mde_log = min((t_quantile(1.0 - level / 2.0, result.df) + t_quantile(0.8, result.df)) * result.se_log,
                             MAX_HALF_WIDTH_LOG)
        if not decided:
            failed_level = level


def merge_looks(previous: Sequence[PairResult] | None, current: Look) -> list[PairResult]:
    """Verdicts are final at the first look that makes them; undecided ones take the current look's result."""
    kept = {r.model: r for r in previous or () if r.verdict != UNDECIDED}
    merged = []
    for result in current.results:
        if result.model in kept:
            merged.append(kept[result.model])
        else:
            if result.verdict != UNDECIDED:
                result.decided_at_round = current.round_count
            merged.append(result)
    return merged


def worker_series(latency_ms: Sequence[float], rounds: Sequence[int], workers: Sequence[int]) -> dict[int, Series]:
    """Each worker's turns, by its index, from a report's parallel sample lists (a round listed twice keeps its
    last sample)."""
    latency = np.asarray(latency_ms, dtype=np.float64)
    round_index = np.asarray(rounds, dtype=np.int64)
    worker_index = np.asarray(workers, dtype=np.int64)
    found = {}
    for worker in np.unique(worker_index):
        mine = worker_index == worker
        own_rounds, own_latency = round_index[mine][::-1], latency[mine][::-1]
        unique, first = np.unique(own_rounds, return_index=True)  # first in reversed order: the last sample
        found[int(worker)] = Series(unique, np.log(own_latency[first]))
    return found


def replay(models: Mapping[str, Workers], baseline: str, alpha: float, min_effect: float,
           looks_at: Sequence[int], planned_looks: int, family_size: int = 0,
           look_alphas: Sequence[float] | None = None, shared: bool = False) -> list[PairResult]:
    """The study's looks again, from the samples alone: the verdicts the study reports. `look_alphas`: the level
    each look used (`detbench.stats.spending`); a study recorded without them split alpha evenly over its
    planned looks. `shared`: the study's processes held every model (`analyse_look`)."""
    results: list[PairResult] | None = None
    levels = list(look_alphas) if look_alphas is not None else [alpha / max(planned_looks, 1)] * len(looks_at)
    arrays = as_series(models)
    for count, level in zip(looks_at, levels, strict=True):
        upto = {name: {index: series.before(count) for index, series in workers.items()}
                for name, workers in arrays.items()}
        results = merge_looks(results, analyse_look(upto, baseline, level, min_effect, count, family_size, shared))
    return results or []


def untested(model: str, baseline: str, model_median: float | None, baseline_median: float | None) -> PairResult:
    """Separately run reports: the ratio of medians, and no verdict (their noise is not comparable)."""
    result = PairResult(model, baseline, 0, verdict=UNTESTED, claim=UNTESTED,
                        reason="separate runs: not measured in one interleaved study, so not tested")
    if model_median and baseline_median and model_median > 0 and baseline_median > 0:
        result.estimate_log = math.log(model_median / baseline_median)
    return result
