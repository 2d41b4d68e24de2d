"""Distribution drift of one series: has the data since a change (or since the baseline period) moved?

Metric data are autocorrelated, so a two-sample test on raw points treats thousands of dependent
points as independent and its p-value is far too small. Both sides are therefore compared on **block
aggregates**: the mean and standard deviation of each block of ``block`` (default one hour, ``"1h"``)
of consecutive points, blocks with fewer than half the median block count dropped (never filled).

Metric data are also seasonal, and a recent window of a few days has another mix of hours of the week
than a baseline of two weeks (three weekdays against weekdays and weekends): its blocks are not
exchangeable with the baseline's even when nothing changed. Before any comparison the baseline's
seasonal profile (hour of week, else weekday/weekend x hour of day, else hour of day; see
:func:`seasonal_adjust`), estimated on the baseline only, is removed from both sides. What is left
(slow trends, a memory leak's restart cycle) is still autocorrelated from hour to hour, so the KS
p-value uses effective sample sizes (:func:`effective_n`). A difference must also be **material**: the
Wasserstein-1 distance between the adjusted windows above ``w_threshold`` (0.5) standard deviations of
the baseline's *unadjusted* blocks (the spread its thresholds were tuned on), so a trend or leak that
a test notices but that moves the series by a fraction of its usual range is not a drift notice.

- **small samples** (fewer than ``large_n`` blocks on either side, default 240 = 10 days of hours):
  the two-sample Kolmogorov-Smirnov test on the adjusted block means and block sds (Bonferroni over
  the two), p from the KS distribution at the effective sizes; drift when p < ``alpha`` (default 0.01)
  and the same statistic's distance is material.
- **large samples**: effect sizes, where a p-value would flag trivial shifts: PSI (population
  stability index on the adjusted baseline's deciles) > ``psi_threshold`` (0.25, the usual
  "significant shift" convention) and the material distance > ``w_threshold``.
- **insufficient**: fewer than ``min_blocks`` (24) blocks on a side, or a baseline without
  ``MIN_PER_CELL`` (3) blocks of every hour of day the recent window has (under three days).

False-alarm rates and power are measured in ``tests/test_drift.py`` and ``bench/drift_false_alarms.py``.
The functions are pure; they are not causal in the detection sense (they compare two given windows).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.01
PSI_THRESHOLD = 0.25
W_THRESHOLD = 0.5
LARGE_N = 240
MIN_BLOCKS = 24
MIN_PER_CELL = 3


@dataclass(frozen=True)
class DriftResult:
    """The outcome of :func:`drift`.

    ``test`` is ``"ks"`` or ``"psi+wasserstein"`` (``None`` when insufficient); ``statistic`` is the KS
    D or the PSI; ``p_value`` (KS, at the effective sizes, Bonferroni-adjusted) is set by the KS test;
    ``distance`` is the Wasserstein-1 distance of the adjusted blocks in unadjusted baseline block
    standard deviations (both tests). ``n_baseline`` / ``n_recent`` count block aggregates,
    ``points_*`` raw finite points, ``n_eff_*`` the effective block counts the KS p-value used.
    ``adjustment`` names the seasonal profile removed (``"hour of week"``, ``"weekday/weekend hour of
    day"``, ``"hour of day"`` or ``"none"`` for daily or coarser blocks). ``verdict`` is ``"drift"``,
    ``"stable"`` or ``"insufficient"``; ``reason`` says why in words.
    """

    test: str | None
    statistic: float | None
    p_value: float | None
    distance: float | None
    psi: float | None
    n_baseline: int
    n_recent: int
    points_baseline: int
    points_recent: int
    block: str
    verdict: str
    reason: str
    adjustment: str | None = None
    n_eff_baseline: float | None = None
    n_eff_recent: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def block_stats(s: pd.Series, block: str = "1h") -> pd.DataFrame:
    """Mean and standard deviation of each ``block``-long time bucket of the finite points of ``s``.

    ``s`` has a DatetimeIndex. Buckets with fewer than half the median number of points (and fewer
    than 2) are dropped (a partial or gappy block is not comparable); empty buckets are not filled.
    Returns columns ``mean`` and ``sd`` (same unit as the values; ``sd`` is NaN for a one-point block,
    e.g. hourly data), in time order, indexed by the block's start (UTC when ``s`` is tz-aware).
    """
    v = pd.to_numeric(pd.Series(np.asarray(s), index=pd.DatetimeIndex(s.index)), errors="coerce").astype(float)
    v = v[np.isfinite(v.to_numpy())]
    if v.empty:
        return pd.DataFrame({"mean": [], "sd": []}, index=pd.DatetimeIndex([]), dtype=float)
    g = v.resample(block).agg(["mean", "std", "count"])
    g = g[g["count"] >= 0.5 * float(g["count"].median())]
    return pd.DataFrame({"mean": g["mean"].to_numpy(float), "sd": g["std"].to_numpy(float)}, index=g.index)


#: seasonal profiles, finest first: the cell key of a block start
PROFILES: tuple[tuple[str, Any], ...] = (
    ("hour of week", lambda t: t.day_of_week * 24 + t.hour),
    ("weekday/weekend hour of day", lambda t: (t.day_of_week >= 5) * 24 + t.hour),
    ("hour of day", lambda t: t.hour),
)


def seasonal_adjust(bs: pd.DataFrame, rs: pd.DataFrame, *, min_per_cell: int = MIN_PER_CELL
                    ) -> tuple[pd.DataFrame, pd.DataFrame, str] | None:
    """Remove the baseline's seasonal profile from the block statistics of both windows.

    The profile is the mean of each column per cell (hour of week, else weekday/weekend x hour of day,
    else hour of day: the finest for which every cell the recent window uses has at least
    ``min_per_cell`` baseline blocks), estimated on the **baseline only**. Recent blocks get their
    cell's baseline mean subtracted; baseline blocks get the mean of the *other* blocks of their cell
    subtracted (leave-one-out, so a block does not shrink its own residual) and are rescaled by
    ``sqrt((1 + 1/k) / (1 + 1/(k - 1)))`` (k blocks in the cell), so that both windows' residuals carry
    the same profile-estimation noise (exact for independent equal-variance blocks). A recent window of
    other hours of the week than the baseline's mix (3 weekdays against two weeks) is then compared
    like for like.

    Returns the adjusted ``(baseline, recent, profile name)``, or None when even the hour-of-day profile
    lacks ``min_per_cell`` baseline blocks for an hour the recent window has.
    """
    for name, cell in PROFILES:
        cb, cr = np.asarray(cell(bs.index), int), np.asarray(cell(rs.index), int)
        size = max(int(cb.max(initial=0)), int(cr.max(initial=0))) + 1
        have = np.bincount(cb[np.isfinite(bs["mean"].to_numpy(float))], minlength=size)
        if (have[np.unique(cr)] < min_per_cell).any():
            continue
        ab, ar = bs.copy(), rs.copy()
        for c in bs.columns:
            x = bs[c].to_numpy(float)
            ok = np.isfinite(x)
            tot = np.bincount(cb[ok], weights=x[ok], minlength=size)
            cnt = np.bincount(cb[ok], minlength=size).astype(float)
            kb = cnt[cb]
            with np.errstate(divide="ignore", invalid="ignore"):
                loo = (tot[cb] - x) / (kb - 1)
                fac = np.sqrt((1 + 1 / kb) / (1 + 1 / (kb - 1)))
                ab[c] = np.where(kb >= 2, (x - loo) * fac, np.nan)
                ar[c] = rs[c].to_numpy(float) - np.where(cnt[cr] > 0, tot[cr] / cnt[cr], np.nan)
        return ab, ar, name
    return None


def effective_n(*parts: np.ndarray) -> tuple[float, float]:
    """Lag-1 autocorrelation ``r`` of consecutive blocks, pooled over ``parts`` (each demeaned on its
    own, so a shift between them does not count), and the factor ``(1 - r) / (1 + r)`` (the AR(1)
    variance inflation of a mean; 1 when ``r <= 0``) by which each part's block count shrinks to an
    effective sample size. Conservative for the empirical distribution function, whose indicators are
    less autocorrelated than the values."""
    num = den = 0.0
    for x in parts:
        x = np.asarray(x, float)
        x = x[np.isfinite(x)] - np.nanmean(x) if np.isfinite(x).sum() > 2 else np.array([])
        if len(x) > 2:
            num += float(np.dot(x[1:], x[:-1]))
            den += float(np.dot(x, x))
    r = num / den if den > 0 else 0.0
    r = min(max(r, 0.0), 0.99)
    return r, (1 - r) / (1 + r)


def psi(baseline: np.ndarray, recent: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``recent`` against ``baseline`` on the baseline's quantile bins.

    ``sum((r - b) * ln(r / b))`` over ``bins`` bins cut at the baseline's deciles (by default), the
    outer bins open-ended; shares are floored at ``0.5 / n`` so an empty bin stays finite.
    """
    b = np.asarray(baseline, float)
    r = np.asarray(recent, float)
    edges = np.unique(np.quantile(b, np.linspace(0, 1, bins + 1)[1:-1]))
    bi = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1) / len(b)
    ri = np.bincount(np.searchsorted(edges, r, side="right"), minlength=len(edges) + 1) / len(r)
    bi = np.maximum(bi, 0.5 / len(b))
    ri = np.maximum(ri, 0.5 / len(r))
    return float(np.sum((ri - bi) * np.log(ri / bi)))


def drift(baseline: pd.Series, recent: pd.Series, *, block: str = "1h", alpha: float = ALPHA,
          large_n: int = LARGE_N, psi_threshold: float = PSI_THRESHOLD, w_threshold: float = W_THRESHOLD,
          min_blocks: int = MIN_BLOCKS) -> DriftResult:
    """Compare the distribution of ``recent`` with ``baseline`` on block means.

    Parameters
    ----------
    baseline, recent : pd.Series
        Values indexed by timestamps (any unit; NaN points are ignored, never filled).
    block : str
        Aggregation block (pandas offset, default ``"1h"``): the unit of the comparison.
    alpha : float
        KS significance level (small samples).
    large_n : int
        From this many blocks on both sides, PSI and Wasserstein are used instead of KS.
    psi_threshold, w_threshold : float
        Large-sample drift thresholds: PSI, and Wasserstein-1 in baseline standard deviations.
    min_blocks : int
        Fewer blocks than this on either side gives ``"insufficient"``.

    Returns
    -------
    DriftResult
    """
    bs = block_stats(baseline, block)
    rs = block_stats(recent, block)
    nb, nr = len(bs), len(rs)
    pb = int(np.isfinite(pd.to_numeric(baseline, errors="coerce").to_numpy(float)).sum())
    pr = int(np.isfinite(pd.to_numeric(recent, errors="coerce").to_numpy(float)).sum())
    common = dict(n_baseline=nb, n_recent=nr, points_baseline=pb, points_recent=pr, block=block)
    if nb < min_blocks or nr < min_blocks:
        side, n = ("baseline", nb) if nb < min_blocks else ("recent window", nr)
        return DriftResult(None, None, None, None, None, **common, verdict="insufficient",
                           reason=f"the {side} has {n} full {block} blocks; at least {min_blocks} are needed")
    # the series' own spread of block statistics (seasonal range included): the scale of "material"
    raw_sd = {c: float(np.nanstd(bs[c].to_numpy(float), ddof=1)) if np.isfinite(bs[c]).sum() > 1 else float("nan")
              for c in bs.columns}
    adjusted = "none"
    if pd.Timedelta(block) < pd.Timedelta("1D"):
        adj = seasonal_adjust(bs, rs)
        if adj is None:
            hours = (bs.index.max() - bs.index.min()) / pd.Timedelta("1h") + 1
            return DriftResult(None, None, None, None, None, **common, verdict="insufficient",
                               reason=f"the baseline spans {hours:.0f} h; the hour-of-day profile needs at least "
                                      f"{MIN_PER_CELL} full {block} blocks of every hour the recent window has "
                                      f"({MIN_PER_CELL * 24} h of a daily cycle)")
        bs, rs, adjusted = adj
    parts = ["mean"]
    if min(int(np.isfinite(bs["sd"]).sum()), int(np.isfinite(rs["sd"]).sum())) >= min_blocks:
        parts.append("sd")   # spread inside blocks needs blocks of several points

    def col(f: pd.DataFrame, c: str) -> np.ndarray:
        x = f[c].to_numpy(float)
        return x[np.isfinite(x)]

    adj_txt = f", after removing the baseline's {adjusted} profile" if adjusted != "none" else ""

    def material(c: str) -> float:
        """Wasserstein-1 between the adjusted windows, in unadjusted baseline block standard deviations."""
        w, sd = float(stats.wasserstein_distance(col(bs, c), col(rs, c))), raw_sd[c]
        return w / sd if sd > 0 else (0.0 if w == 0 else float("inf"))

    ws = {c: material(c) for c in parts}
    if min(nb, nr) < large_n:
        # KS on level and spread with effective sample sizes (autocorrelated blocks), Bonferroni over both;
        # drift needs a significant and a material difference of the same statistic
        res: dict[str, tuple[float, float, float, float]] = {}
        for c in parts:
            xb, xr = col(bs, c), col(rs, c)
            _, f = effective_n(xb, xr)
            eb, er = max(1.0, f * len(xb)), max(1.0, f * len(xr))
            d = float(stats.ks_2samp(xb, xr).statistic)
            p = min(1.0, len(parts) * float(stats.kstwo.sf(d, max(1, int(round(eb * er / (eb + er)))))))
            res[c] = (d, p, eb, er)
        hits = [c for c in parts if res[c][1] < alpha and ws[c] > w_threshold]
        worst = hits[0] if hits else min(parts, key=lambda c: res[c][1])
        d, p, eb, er = res[worst]
        hit = bool(hits)
        bonf = " (Bonferroni over level and spread)" if len(parts) > 1 else ""
        return DriftResult("ks", d, p, ws[worst], None, **common, verdict="drift" if hit else "stable",
                           reason=f"KS on {block} block {'means' if worst == 'mean' else 'standard deviations'} "
                                  f"({nb} vs {nr} blocks, effective {eb:.0f} vs {er:.0f} for autocorrelation"
                                  f"{adj_txt}): D = {d:.3f}, p = {p:.2g}{bonf} {'<' if p < alpha else '>='} "
                                  f"{alpha:g}; Wasserstein = {ws[worst]:.2f} baseline sd "
                                  f"({'>' if ws[worst] > w_threshold else '<='} {w_threshold:g})",
                           adjustment=adjusted, n_eff_baseline=eb, n_eff_recent=er)
    psis = {c: psi(col(bs, c), col(rs, c)) for c in parts}
    worst = max(parts, key=lambda c: min(psis[c] / psi_threshold, ws[c] / w_threshold))
    ps, w = psis[worst], ws[worst]
    hit = ps > psi_threshold and w > w_threshold
    what = "means" if worst == "mean" else "standard deviations"
    return DriftResult("psi+wasserstein", ps, None, w, ps, **common, verdict="drift" if hit else "stable",
                       reason=f"{block} block {what} ({nb} vs {nr} blocks{adj_txt}): PSI = {ps:.3f} "
                              f"({'>' if ps > psi_threshold else '<='} {psi_threshold:g}), Wasserstein = "
                              f"{w:.2f} baseline sd ({'>' if w > w_threshold else '<='} {w_threshold:g})",
                       adjustment=adjusted)
