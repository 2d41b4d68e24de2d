"""Confidence of a recommendation: moving-block bootstrap intervals and a risk level with its reasons.

Neighbouring points of a metric are correlated, so resampling single points would understate the
uncertainty. A *moving-block bootstrap* (Künsch 1989) resamples whole blocks of consecutive points
(here of ``block`` points, by default ``ceil(n^(1/3))`` and at least one hour of data) and so keeps
the short-range dependence inside each block.

:func:`quantile_interval` bootstraps the ``q`` quantile of the fit period's clean points: the level
of any scalar strategy sits at some empirical quantile of those points, so its interval is the
interval of that quantile (for budget and incident-optimal levels this treats the quantile the level
landed on as fixed: it states the sampling error of the level, not of the choice).
It never builds the resampled arrays: a resample is a multiset of blocks, so each point's weight is
the number of chosen blocks covering it (a cumulative count of block starts), and a tail quantile
only needs the weights of the points nearest that tail.

:func:`rate_interval` bootstraps episodes per week from the episode starts per day (blocks of days),
and takes its union with the exact Poisson (Garwood) interval, which stays honest when the fit
period saw few or no episodes (kept for callers; the engine's prediction uses the next one).

:func:`nb_rate_interval` is the engine's predictive interval on episodes per week: the count over a
later window as negative binomial around a rate estimated on a window the level was not chosen on,
overdispersed by :func:`dispersion` (day-to-day variation) and with the estimate's own uncertainty.

:func:`risk` turns the evidence into low / medium / high with the reasons.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import chi2, nbinom

__all__ = ["default_block", "quantile_interval", "rate_interval", "dispersion", "nb_rate_interval",
           "compound_rate_interval", "garwood", "risk", "CONFIDENCE"]

#: two-sided confidence of every interval here
CONFIDENCE = 0.90
_NS = 1_000_000_000
WEEK_S = 7 * 86400.0


def default_block(n: int, points_per_hour: float = 1.0) -> int:
    """Block length (points): ``ceil(n^(1/3))``, at least one hour of points, at most ``n // 4``."""
    b = max(math.ceil(n ** (1 / 3)), math.ceil(points_per_hour))
    return int(max(1, min(b, max(1, n // 4))))


def _block_starts(n: int, block: int, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    nb = math.ceil(n / block)
    return rng.integers(0, n - block + 1, size=(n_boot, nb)), nb * block


def quantile_interval(x: np.ndarray, q: float, *, block: int | None = None, n_boot: int = 200,
                      confidence: float = CONFIDENCE, seed: int = 0, upper: bool = True) -> tuple[float, float]:
    """Moving-block bootstrap percentile interval of the ``q`` quantile of ``x`` (time order).

    Parameters
    ----------
    x : ndarray
        Finite values in time order.
    q : float
        Quantile as a fraction (0.99 = p99).
    block : int, optional
        Block length in points (default :func:`default_block`).
    n_boot : int
        Resamples.
    confidence : float
        Two-sided coverage of the interval.
    upper : bool
        Whether ``q`` is in the upper tail (uses the weights of the top points); False for the lower.

    Returns
    -------
    (lo, hi) : tuple of float
        The bootstrap quantile at ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``.
    """
    x = np.asarray(x, dtype=float)
    n = x.size
    if n < 2:
        return (math.nan, math.nan)
    b = block or default_block(n)
    rng = np.random.default_rng(seed)
    starts, total = _block_starts(n, b, n_boot, rng)
    s = starts
    y = x if upper else -x
    tail = 1.0 - q if upper else q
    rank = np.ceil(tail * total).astype(np.int64)                 # from the top, 1-based
    k = int(min(n, math.ceil(4 * tail * n) + 4 * b + 16))
    part = np.argpartition(-y, k - 1)[:k] if k < n else np.arange(n)
    order = part[np.argsort(-y[part], kind="stable")]
    rows = np.arange(n_boot, dtype=np.int64)[:, None]

    def weights(idx: np.ndarray) -> np.ndarray:
        """(n_boot, len(idx)) chosen blocks covering each point of ``idx``: a start ``s`` covers the
        points at positions ``[s, s + block)``, counted with a table of sorted positions."""
        pos_order = np.argsort(idx, kind="stable")
        pos = idx[pos_order]
        m = pos.size
        below = np.zeros(n + 1, dtype=np.int64)        # below[i] = positions < i (a searchsorted table)
        below[pos + 1] = 1
        below = np.cumsum(below)
        lo = below[s] + rows * (m + 1)
        hi = below[np.minimum(s + b, n)] + rows * (m + 1)
        d = np.bincount(lo.ravel(), minlength=n_boot * (m + 1)) - np.bincount(hi.ravel(), minlength=n_boot * (m + 1))
        w = np.cumsum(d.reshape(n_boot, m + 1)[:, :m], axis=1)
        out = np.empty_like(w)
        out[:, pos_order] = w
        return out

    top = order[:k]
    cw = np.cumsum(weights(top), axis=1)
    reached = cw[:, -1] >= rank
    if not reached.all():
        top = np.argsort(-y, kind="stable")
        cw = np.cumsum(weights(top), axis=1)
    j = np.argmax(cw >= rank, axis=1)
    vals = y[top[j]]
    lo, hi = np.quantile(vals, [(1 - confidence) / 2, (1 + confidence) / 2])
    return (float(lo), float(hi)) if upper else (float(-hi), float(-lo))


def garwood(count: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided Poisson interval of a count (Garwood 1936)."""
    a = 1 - confidence
    lo = 0.0 if count == 0 else float(chi2.ppf(a / 2, 2 * count)) / 2
    hi = float(chi2.ppf(1 - a / 2, 2 * count + 2)) / 2
    return lo, hi


def rate_interval(start_ns: np.ndarray, t0_ns: int, t1_ns: int, *, n_boot: int = 500, block_days: int = 3,
                  confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Interval on episodes per week from the episode starts inside ``[t0, t1)``.

    Moving-block bootstrap of the daily counts (blocks of ``block_days``), united with the
    Garwood interval of the total count; both scaled to a week.
    """
    span_s = (t1_ns - t0_ns) / _NS
    if span_s <= 0:
        return (math.nan, math.nan)
    weeks = span_s / WEEK_S
    st = np.asarray(start_ns, dtype=np.int64)
    st = st[(st >= t0_ns) & (st < t1_ns)]
    g_lo, g_hi = garwood(int(st.size), confidence)
    days = max(1, int(math.ceil(span_s / 86400)))
    if days < 2 * block_days:
        return (g_lo / weeks, g_hi / weeks)
    daily = np.bincount(((st - t0_ns) // (86400 * _NS)).astype(np.int64), minlength=days)[:days]
    rng = np.random.default_rng(seed)
    nb = math.ceil(days / block_days)
    starts = rng.integers(0, days - block_days + 1, size=(n_boot, nb))
    csum = np.concatenate(([0], np.cumsum(daily)))
    tot = (csum[starts + block_days] - csum[starts]).sum(axis=1) * (days / (nb * block_days))
    b_lo, b_hi = np.quantile(tot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return (min(g_lo, float(b_lo)) / weeks, max(g_hi, float(b_hi)) / weeks)


def dispersion(start_ns: np.ndarray, t0_ns: int, t1_ns: int) -> float:
    """Overdispersion ``phi = max(1, var / mean)`` of the daily episode counts in ``[t0, t1)``.

    Day-to-day variation beyond Poisson (bursts, busy days); 1 with fewer than 4 full days or no
    episode.
    """
    st = np.asarray(start_ns, dtype=np.int64)
    st = st[(st >= t0_ns) & (st < t1_ns)]
    full = int((t1_ns - t0_ns) / _NS // 86400)
    if full < 4 or st.size == 0:
        return 1.0
    daily = np.bincount(((st - t0_ns) // (86400 * _NS)).astype(np.int64), minlength=full + 1)[:full]
    mu = float(daily.mean())
    return max(1.0, float(daily.var(ddof=1)) / mu) if mu > 0 else 1.0


def nb_rate_interval(count: int, span_s: float, horizon_s: float, phi: float = 1.0, *,
                     confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Predicted episodes/week from ``count`` episodes seen over ``span_s`` seconds, and a
    predictive interval for the rate over a later window of ``horizon_s`` seconds.

    The later count is modelled as negative binomial: Poisson at the estimated rate, overdispersed
    by ``phi`` (:func:`dispersion`), plus the estimate's own uncertainty: mean ``m`` and variance
    ``phi * m * (1 + H / D)`` (``H`` the later span, ``D`` the estimation span; with ``phi = 1``
    this is the Jeffreys-prior posterior predictive of a Poisson rate). A short estimation or
    later window widens the interval by itself. With no episode, ``m`` is half an episode over
    the estimation span (never a zero-width interval).

    Returns
    -------
    (rate, lo, hi) : float
        Point estimate and interval, in episodes per week (NaN when a span is not positive).
    """
    if span_s <= 0 or horizon_s <= 0:
        return (math.nan, math.nan, math.nan)
    ratio = horizon_s / span_s
    m = max(float(count), 0.5) * ratio          # expected count over the later window
    v = max(phi, 1.0) * m * (1.0 + ratio)       # > m always
    p = m / v
    r = m * p / (1.0 - p)
    a = 1 - confidence
    k_lo, k_hi = nbinom.ppf([a / 2, 1 - a / 2], r, p)
    weeks = horizon_s / WEEK_S
    return (count / span_s * WEEK_S, float(k_lo) / weeks, float(k_hi) / weeks)


def compound_rate_interval(count: int, span_s: float, horizon_s: float, phi: float, incidents: int,
                           incident_span_s: float, per_incident: np.ndarray, *, confidence: float = CONFIDENCE,
                           draws: int = 4000, seed: int = 0) -> tuple[float, float, float]:
    """Predicted episodes/week and its predictive interval when part of the episodes come with
    labelled incidents.

    The later window's count is ``N + K_1 + ... + K_M``: ``N`` the episodes outside incidents
    (negative binomial as in :func:`nb_rate_interval`, from ``count`` over ``span_s``); ``M`` the
    incidents in the later window, Poisson at a rate drawn from its Jeffreys posterior
    (``Gamma(incidents + 1/2)`` over ``incident_span_s``: the uncertainty of a rate seen a few
    times); each ``K`` drawn from ``per_incident`` (the rule's episodes per labelled incident of the
    fit period, zeros for missed ones). The interval is the Monte Carlo quantiles of ``draws`` draws
    with a fixed ``seed`` (the same inputs give the same interval anywhere); the point estimate is
    ``count / span_s + incidents / incident_span_s x mean(per_incident)``, per week.

    Returns
    -------
    (rate, lo, hi) : float
        Episodes per week (NaN when a span is not positive).
    """
    k = np.asarray(per_incident, dtype=np.int64)
    if span_s <= 0 or horizon_s <= 0 or incident_span_s <= 0:
        return (math.nan, math.nan, math.nan)
    if incidents <= 0 or k.size == 0:
        return nb_rate_interval(count, span_s, horizon_s, phi, confidence=confidence)
    rng = np.random.default_rng(seed)
    ratio = horizon_s / span_s
    m = max(float(count), 0.5) * ratio
    v = max(phi, 1.0) * m * (1.0 + ratio)
    p = m / v
    r = m * p / (1.0 - p)
    noise = rng.negative_binomial(r, p, size=draws)
    lam = rng.gamma(incidents + 0.5, 1.0, size=draws) * (horizon_s / incident_span_s)
    n_inc = rng.poisson(lam)
    top = int(n_inc.max()) if n_inc.size else 0
    extra = np.zeros(draws, dtype=np.int64)
    if top > 0:
        pick = k[rng.integers(0, k.size, size=(draws, top))]
        extra = (pick * (np.arange(top)[None, :] < n_inc[:, None])).sum(axis=1)
    total = noise + extra
    a = 1 - confidence
    weeks = horizon_s / WEEK_S
    lo, hi = np.quantile(total, [a / 2, 1 - a / 2], method="inverted_cdf")
    point = count / span_s * WEEK_S + incidents / incident_span_s * WEEK_S * float(k.mean())
    return (point, float(lo) / weeks, float(hi) / weeks)


def risk(*, fit_episodes: int, level: float, level_interval: tuple[float, float], scale: float,
         shift: float | None, missing_share: float, validation: dict[str, Any] | None) -> tuple[str, list[str]]:
    """Risk level (``low``/``medium``/``high``) and its reasons.

    Reasons: fewer than 5 episodes in the fit period; a level interval wider than 20 % of the level
    (or than one robust spread when the level is near 0); weekly medians of the fit period spanning
    more than one robust spread (``shift``: a level shift or trend); more than 5 % of the fit period's
    evaluations missing; an episodes/week interval widened because the fit period's rate was not
    stable (``validation["instability"]``, fit period only); a
    held-out rate more than 50 % (and 1/week) off the prediction. One reason is medium, two or more,
    or a failed held-out check, high.
    """
    reasons: list[str] = []
    if fit_episodes < 5:
        reasons.append(f"few events: {fit_episodes} episode(s) in the fit period")
    lo, hi = level_interval
    if math.isfinite(lo) and math.isfinite(hi):
        width = hi - lo
        ref = abs(level) if abs(level) > scale else scale
        if width > 0.2 * ref:
            reasons.append(f"wide interval: the level could lie anywhere in {lo:.4g} to {hi:.4g}")
    if shift is not None and math.isfinite(shift) and shift > 1.0:
        reasons.append(f"level shift or trend: the weekly medians of the fit period span {shift:.1f} robust spreads")
    if missing_share > 0.05:
        reasons.append(f"poor data quality: {missing_share:.0%} of the evaluations have no data")
    if validation and validation.get("instability"):
        reasons.append(f"unstable rate in the fit period, so the episodes/week interval was widened: "
                       f"{validation['instability']}")
    failed = False
    if validation and validation.get("sufficient") and not validation.get("within"):
        rel = validation.get("relative_error")
        failed = rel is not None and abs(rel) > 0.5
        if failed:
            reasons.append(f"held-out error {rel:+.0%}: the later data did not behave like the fit period")
    level_ = "low" if not reasons else "medium" if len(reasons) == 1 and not failed else "high"
    return level_, reasons
