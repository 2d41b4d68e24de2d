"""Distribution drift of one series: has the data since a change (or since the baseline period) moved?

Metric data are autocorrelated, so a two-sample test on raw points treats thousands of dependent
points as independent and its p-value is far too small. Both sides are therefore compared on **block
aggregates**: the mean of each block of ``block`` (default one hour, ``"1h"``) of consecutive points,
blocks with fewer than half the median block count dropped. Hourly means of minute or 5-minute data
with an AR(1) coefficient of 0.8 are close to independent, which keeps the false-alarm rate honest
(measured in ``tests/test_drift.py``).

- **small samples** (fewer than ``large_n`` blocks on either side, default 240 = 10 days of hours):
  the two-sample Kolmogorov-Smirnov test on the block means; drift when p < ``alpha`` (default 0.01).
- **large samples**: effect sizes on the block means, where a p-value would flag trivial shifts:
  PSI (population stability index on the baseline's deciles) and the Wasserstein-1 distance divided by
  the baseline's standard deviation. Drift when PSI > ``psi_threshold`` (0.25, the usual "significant
  shift" convention) or the scaled distance > ``w_threshold`` (0.5 baseline standard deviations).

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


@dataclass(frozen=True)
class DriftResult:
    """The outcome of :func:`drift`.

    ``test`` is ``"ks"`` or ``"psi+wasserstein"`` (``None`` when insufficient); ``statistic`` is the KS
    D or the PSI; ``p_value`` (KS) or ``distance`` (Wasserstein / baseline sd) is set by the test used;
    ``n_baseline`` / ``n_recent`` count block aggregates, ``points_*`` raw finite points. ``verdict`` is
    ``"drift"``, ``"stable"`` or ``"insufficient"``; ``reason`` says why in words.
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def block_stats(s: pd.Series, block: str = "1h") -> pd.DataFrame:
    """Mean and standard deviation of each ``block``-long time bucket of the finite points of ``s``.

    ``s`` has a DatetimeIndex. Buckets with fewer than half the median number of points (and fewer
    than 2) are dropped (a partial or gappy block is not comparable); empty buckets are not filled.
    Returns columns ``mean`` and ``sd`` (same unit as the values; ``sd`` is NaN for a one-point block,
    e.g. hourly data), in time order.
    """
    v = pd.to_numeric(pd.Series(np.asarray(s), index=pd.DatetimeIndex(s.index)), errors="coerce").astype(float)
    v = v[np.isfinite(v.to_numpy())]
    if v.empty:
        return pd.DataFrame({"mean": [], "sd": []}, dtype=float)
    g = v.resample(block).agg(["mean", "std", "count"])
    g = g[g["count"] >= 0.5 * float(g["count"].median())]
    return pd.DataFrame({"mean": g["mean"].to_numpy(float), "sd": g["std"].to_numpy(float)})


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
    parts = ["mean"]
    if min(int(np.isfinite(bs["sd"]).sum()), int(np.isfinite(rs["sd"]).sum())) >= min_blocks:
        parts.append("sd")   # spread inside blocks needs blocks of several points

    def col(f: pd.DataFrame, c: str) -> np.ndarray:
        x = f[c].to_numpy(float)
        return x[np.isfinite(x)]

    if min(nb, nr) < large_n:
        # KS on level and spread, Bonferroni: the smaller p-value times the number of tests
        res = {c: stats.ks_2samp(col(bs, c), col(rs, c)) for c in parts}
        worst = min(res, key=lambda c: res[c].pvalue)
        d, p = float(res[worst].statistic), min(1.0, len(parts) * float(res[worst].pvalue))
        hit = p < alpha
        return DriftResult("ks", d, p, None, None, **common, verdict="drift" if hit else "stable",
                           reason=f"KS on {block} block {'means' if worst == 'mean' else 'standard deviations'} "
                                  f"({nb} vs {nr} blocks): D = {d:.3f}, p = {p:.2g}"
                                  f"{' (Bonferroni over level and spread)' if len(parts) > 1 else ''} "
                                  f"{'<' if hit else '>='} {alpha:g}")
    psis = {c: psi(col(bs, c), col(rs, c)) for c in parts}
    ws: dict[str, float] = {}
    for c in parts:
        sd = float(np.std(col(bs, c), ddof=1))
        w = float(stats.wasserstein_distance(col(bs, c), col(rs, c)))
        ws[c] = w / sd if sd > 0 else (0.0 if w == 0 else float("inf"))
    worst = max(parts, key=lambda c: max(psis[c] / psi_threshold, ws[c] / w_threshold))
    ps, w = psis[worst], ws[worst]
    hit = ps > psi_threshold or w > w_threshold
    what = "means" if worst == "mean" else "standard deviations"
    return DriftResult("psi+wasserstein", ps, None, w, ps, **common, verdict="drift" if hit else "stable",
                       reason=f"{block} block {what} ({nb} vs {nr} blocks): PSI = {ps:.3f} "
                              f"({'>' if ps > psi_threshold else '<='} {psi_threshold:g}), Wasserstein = "
                              f"{w:.2f} baseline sd ({'>' if w > w_threshold else '<='} {w_threshold:g})")
