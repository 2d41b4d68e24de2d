"""Threshold strategies: one small class per way of choosing levels, behind a registry.

Every strategy reads a :class:`FitData` (the *fit period* of one series: raw points in time order,
labelled incidents marked) and returns a :class:`Candidate`: warning and critical levels in the
series' unit, the pending period ``for`` (seconds), optionally a ``recovery`` level, a rationale in
plain words and the numbers behind it. A strategy that cannot answer on the data it was given
returns a candidate with ``insufficient`` set to the reason and no levels; it never guesses.

Levels are fitted on the fit period only (the engine validates them on the later, held-out part).
"Clean" fit points are the finite raw points outside labelled incidents: percentiles are always of
raw points, never of averaged percentiles.

Strategies (``STRATEGIES`` name -> class):

``percentile``
    Warning / critical at the preset's quantiles (p99 / p99.9 for balanced) of the clean points.
``robust``
    Median + k x MAD (scaled by 1.4826 to estimate a standard deviation), or Tukey's IQR fence
    ``Q3 + k x IQR`` with ``method="iqr"``; unaffected by a few extreme values.
``budget``
    The most sensitive level whose replay on the fit period (the vectorised sweep, with the preset's
    ``for``) gives at most N episodes per week: N is the preset's budget per severity.
``incident_optimal``
    The level with the best event F1 on the labelled incidents of the fit period (precision counts
    one true positive per caught incident); refused below :data:`MIN_INCIDENTS` incidents.
``seasonal``
    Per hour-of-week levels: the preset's quantiles of the clean points of each of the 168 UTC
    hours of the week (needs :data:`MIN_SLOT_POINTS` per hour). Replay it with
    :func:`seasonal_residual` (value minus the level of its hour, against 0); export it as a
    recording rule of the hourly levels (:func:`seasonal_recording_rule`).
``burn_rate``
    For an error-ratio SLI with an SLO target: the multi-window, multi-burn-rate pairs of the Google
    SRE workbook (30-day SLO window): page when both the 1 h and 5 m error ratios exceed
    14.4 x (1 - target), page when both the 6 h and 30 m exceed 6 x, ticket when both the 3 d and
    6 h exceed 1 x. It returns rules (``Candidate.rules``), not one level on the raw value, so the
    engine does not pit it against the scalar strategies.

Presets (:data:`PRESETS`) set the quantiles, robust k, budgets and ``for`` of every strategy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from core.alerting.rules import format_duration
from core.alerting.sweep import sweep
from core.errors import ValidationError

__all__ = ["Preset", "PRESETS", "FitData", "Candidate", "Strategy", "STRATEGIES", "register", "get_strategy",
           "MIN_INCIDENTS", "MIN_SLOT_POINTS", "MIN_FIT_POINTS", "BURN_RATE_PAIRS", "seasonal_residual",
           "seasonal_recording_rule", "burn_rate_condition", "hour_of_week", "robust_scale"]

#: labelled incidents the fit period must hold before ``incident_optimal`` gives a level
MIN_INCIDENTS = 5
#: clean points each hour of the week needs for ``seasonal``
MIN_SLOT_POINTS = 30
#: clean fit points any strategy needs at all
MIN_FIT_POINTS = 100
WEEK_S = 7 * 86400.0
_NS = 1_000_000_000
#: (severity, long window s, short window s, burn factor, share of a 30-day budget spent when it fires)
BURN_RATE_PAIRS = (("critical", 3600.0, 300.0, 14.4, 0.02), ("critical", 21600.0, 1800.0, 6.0, 0.05),
                   ("warning", 259200.0, 21600.0, 1.0, 0.10))


@dataclass(frozen=True)
class Preset:
    """How cautious a recommendation is.

    ``quantiles`` (warning, critical) as fractions for ``>``-like comparators (mirrored for ``<``);
    ``robust_k`` (warning, critical) multiples of the scaled MAD; ``budget`` (warning, critical)
    episodes per week; ``for_s`` pending period in seconds; ``strategies`` the scalar strategies the
    engine chooses among.
    """

    name: str
    quantiles: tuple[float, float]
    robust_k: tuple[float, float]
    budget: tuple[float, float]
    for_s: float
    strategies: tuple[str, ...] = ("percentile", "robust", "budget", "incident_optimal", "seasonal")


PRESETS = {
    "conservative": Preset("conservative", (0.995, 0.9995), (5.0, 8.0), (1.0, 0.25), 600.0),
    "balanced": Preset("balanced", (0.99, 0.999), (4.0, 6.0), (3.0, 1.0), 300.0),
    "aggressive": Preset("aggressive", (0.98, 0.995), (3.0, 5.0), (10.0, 3.0), 120.0),
}


def hour_of_week(ts_ns: np.ndarray) -> np.ndarray:
    """Hour of the week (0 = Monday 00:00 UTC ... 167) of epoch nanoseconds. 1970-01-01 was a Thursday."""
    hours = np.asarray(ts_ns, dtype=np.int64) // (3600 * _NS)
    return ((hours + 72) % 168).astype(np.int64)


@dataclass(frozen=True)
class FitData:
    """The fit period of one series, as the strategies read it.

    Attributes
    ----------
    key : str
        Series key.
    ts_ns, values : ndarray
        Raw points of the fit period (int64 ns UTC, float; NaN = missing), time order.
    clean : ndarray of bool
        Finite and outside every labelled incident (the points levels are fitted on).
    comparator : str
    preset : Preset
    incidents : DataFrame or None
        Labelled incident windows ``start, end`` of this series that start in the fit period.
    for_s : float
        Pending period (seconds) every replay here uses.
    """

    key: str
    ts_ns: np.ndarray
    values: np.ndarray
    clean: np.ndarray
    comparator: str
    preset: Preset
    incidents: pd.DataFrame | None = None
    for_s: float = 300.0
    slo_target: float | None = None
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def up(self) -> bool:
        """True for ``>``/``>=`` (alert on high values)."""
        return self.comparator in (">", ">=")

    @property
    def sign(self) -> float:
        """+1 for ``>``-like comparators, -1 for ``<``-like: ``sign x value`` grows towards alerting."""
        return 1.0 if self.up else -1.0

    @property
    def x(self) -> np.ndarray:
        """Clean values in time order."""
        if "x" not in self._cache:
            self._cache["x"] = self.values[self.clean]
        return self._cache["x"]

    @property
    def span_s(self) -> float:
        return float(self.ts_ns[-1] - self.ts_ns[0]) / _NS if self.ts_ns.size > 1 else 0.0

    def quantile(self, q: float) -> float:
        """The ``q`` quantile in the alerting direction (``q`` for ``>``, ``1 - q`` for ``<``)."""
        return float(np.quantile(self.x, q if self.up else 1.0 - q))

    def series(self) -> pd.Series:
        """The fit period as a Series (all raw points, incidents included: replays count them)."""
        if "series" not in self._cache:
            idx = pd.DatetimeIndex(self.ts_ns.astype("datetime64[ns]")).tz_localize("UTC")
            self._cache["series"] = pd.Series(self.values, index=idx, name=self.key)
        return self._cache["series"]

    def grid(self) -> np.ndarray:
        """Candidate levels for sweeps: quantiles of the clean points from 0.5 to 0.99999 in the
        alerting direction plus one beyond the most extreme clean point, in increasing severity."""
        if "grid" not in self._cache:
            tail = np.concatenate([np.linspace(0.5, 0.9, 9), 1 - np.logspace(-1, -5, 41)[1:]])
            qs = tail if self.up else 1.0 - tail
            lv = np.quantile(self.x, qs)
            ext = self.x.max() if self.up else self.x.min()
            pad = 1e-9 * max(1.0, abs(ext)) + 1e-3 * robust_scale(self.x)
            lv = np.append(lv, ext + self.sign * pad)
            lv = np.unique(lv)
            self._cache["grid"] = lv if self.up else lv[::-1]
        return self._cache["grid"]

    def grid_sweep(self) -> pd.DataFrame:
        """:func:`core.alerting.sweep.sweep` of :meth:`grid` over the fit period (one call; incident
        scores when incidents are labelled)."""
        if "sweep" not in self._cache:
            self._cache["sweep"] = sweep(self.series(), self.comparator, self.grid(), for_s=self.for_s,
                                         incidents=self.incidents if _has(self.incidents) else None)
        return self._cache["sweep"]


def _has(df: pd.DataFrame | None) -> bool:
    return df is not None and len(df) > 0


def robust_scale(x: np.ndarray) -> float:
    """A robust spread: 1.4826 x MAD, else the IQR / 1.349, else the standard deviation, else 1."""
    med = float(np.median(x))
    mad = 1.4826 * float(np.median(np.abs(x - med)))
    if mad > 0:
        return mad
    q1, q3 = np.quantile(x, [0.25, 0.75])
    if q3 > q1:
        return float(q3 - q1) / 1.349
    sd = float(np.std(x))
    return sd if sd > 0 else 1.0


@dataclass(frozen=True)
class Candidate:
    """A strategy's answer for one series.

    ``warning`` / ``critical`` in the series' unit (None when not set); ``for_s`` seconds;
    ``recovery`` the hysteresis level or None; ``rationale`` plain words; ``numbers`` the figures
    behind it; ``insufficient`` the reason when the strategy refused (then no levels);
    ``hourly`` (168 x 2 array of warning/critical per hour of the week, seasonal only); ``rules``
    (burn-rate rule dicts, burn_rate only).
    """

    strategy: str
    warning: float | None
    critical: float | None
    for_s: float
    rationale: str
    numbers: dict[str, Any] = field(default_factory=dict)
    recovery: float | None = None
    insufficient: str | None = None
    hourly: np.ndarray | None = None
    rules: tuple[dict[str, Any], ...] = ()

    @property
    def scalar(self) -> bool:
        """Whether this is one fixed level on the raw value (what the sweep can score)."""
        return self.insufficient is None and self.hourly is None and not self.rules and self.warning is not None


def _refuse(name: str, for_s: float, reason: str, **numbers: Any) -> Candidate:
    return Candidate(name, None, None, for_s, f"No {name} recommendation: {reason}.", dict(numbers),
                     insufficient=reason)


class Strategy:
    """Base class: ``fit(data) -> Candidate``. Subclasses set ``name`` and ``description``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def fit(self, data: FitData) -> Candidate:  # pragma: no cover - interface
        raise NotImplementedError


STRATEGIES: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add a strategy to :data:`STRATEGIES` under its ``name``."""
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str, **params: Any) -> Strategy:
    """An instance of the strategy ``name`` (``params`` go to its constructor)."""
    if name not in STRATEGIES:
        raise ValidationError(f"unknown strategy {name!r}; expected one of {sorted(STRATEGIES)}", path="strategy")
    return STRATEGIES[name](**params)


def _pct(q: float) -> str:
    return f"p{100 * q:.4g}"


def _order(data: FitData, w: float, c: float | None) -> float | None:
    """Critical only when it lies beyond warning in the alerting direction."""
    if c is None:
        return None
    return c if data.sign * (c - w) > 0 else None


@register
class Percentile(Strategy):
    """Quantiles of the clean raw points of the fit period."""

    name = "percentile"
    description = "the preset's percentiles (p99 / p99.9 balanced) of the raw points"

    def __init__(self, quantiles: tuple[float, float] | None = None) -> None:
        self.quantiles = quantiles

    def fit(self, data: FitData) -> Candidate:
        qw, qc = self.quantiles or data.preset.quantiles
        w, c = data.quantile(qw), data.quantile(qc)
        n = data.x.size
        side = "" if data.up else " (lower tail)"
        why = (f"Warning at the {_pct(qw)} and critical at the {_pct(qc)}{side} of {n:,} raw points of the fit "
               "period (labelled incidents left out).")
        if n * (1 - qc) < 5:
            why += f" The {_pct(qc)} rests on fewer than 5 points beyond it: rough."
        return Candidate(self.name, w, _order(data, w, c), data.for_s, why,
                         {"quantiles": (qw, qc), "points": int(n)})


@register
class Robust(Strategy):
    """Median + k x scaled MAD, or Tukey's IQR fence."""

    name = "robust"
    description = "median + k x MAD (or the IQR fence), unmoved by a few extreme values"

    def __init__(self, method: str = "mad", k: tuple[float, float] | None = None) -> None:
        if method not in ("mad", "iqr"):
            raise ValidationError(f"robust method must be 'mad' or 'iqr', got {method!r}", path="method")
        self.method, self.k = method, k

    def fit(self, data: FitData) -> Candidate:
        x = data.x
        kw, kc = self.k or (data.preset.robust_k if self.method == "mad" else (1.5, 3.0))
        if self.method == "mad":
            centre = float(np.median(x))
            spread = 1.4826 * float(np.median(np.abs(x - centre)))
            what = f"median {centre:.4g} + k x 1.4826 MAD ({spread:.4g})"
        else:
            q1, q3 = (float(v) for v in np.quantile(x, [0.25, 0.75]))
            centre, spread = (q3 if data.up else q1), q3 - q1
            what = f"{'Q3' if data.up else 'Q1'} {centre:.4g} + k x IQR ({spread:.4g})"
        if not spread > 0:
            return _refuse(self.name, data.for_s, f"the {self.method.upper()} of the fit points is 0 (more than half "
                           "of them are equal), so a robust spread cannot set a level", centre=centre)
        w, c = centre + data.sign * kw * spread, centre + data.sign * kc * spread
        return Candidate(self.name, w, c, data.for_s,
                         f"Levels at {what}, k = {kw:g} (warning) and {kc:g} (critical).",
                         {"method": self.method, "centre": centre, "spread": spread, "k": (kw, kc)})


@register
class Budget(Strategy):
    """The most sensitive level whose fit-period replay stays within N episodes per week."""

    name = "budget"
    description = "the most sensitive level that stays within the preset's episodes/week per severity"

    def __init__(self, budget: tuple[float, float] | None = None) -> None:
        self.budget = budget

    def fit(self, data: FitData) -> Candidate:
        bw, bc = self.budget or data.preset.budget
        sw = data.grid_sweep()
        lv = sw["threshold"].to_numpy()
        eps = sw["episodes_per_week"].to_numpy()
        if not np.isfinite(eps).all():
            return _refuse(self.name, data.for_s, "the fit period has no time span to count episodes per week over")

        def lowest(b: float) -> tuple[float, float]:
            ok = np.flatnonzero(eps <= b)         # grid is ordered by increasing severity
            i = int(ok[0]) if ok.size else lv.size - 1
            return float(lv[i]), float(eps[i])

        (w, ew), (c, ec) = lowest(bw), lowest(bc)
        crit = _order(data, w, c)
        why = (f"Most sensitive level with at most {bw:g} episode(s)/week on the fit period (replayed with for "
               f"{format_duration(data.for_s)}): {w:.4g} gives {ew:.2f}/week")
        why += (f"; critical at most {bc:g}/week: {c:.4g} gives {ec:.2f}/week." if crit is not None
                else "; the critical budget is met at the same level, so only a warning is set.")
        return Candidate(self.name, w, crit, data.for_s, why,
                         {"budget": (bw, bc), "episodes_per_week": (ew, ec)})


@register
class IncidentOptimal(Strategy):
    """Best event F1 on labelled incidents (refused below :data:`MIN_INCIDENTS`)."""

    name = "incident_optimal"
    description = f"best event F1 on labelled incidents (needs at least {MIN_INCIDENTS})"

    def __init__(self, min_incidents: int = MIN_INCIDENTS) -> None:
        self.min_incidents = min_incidents

    def fit(self, data: FitData) -> Candidate:
        n = len(data.incidents) if _has(data.incidents) else 0
        if n < self.min_incidents:
            return _refuse(self.name, data.for_s, f"{n} labelled incident(s) in the fit period; choosing a level by "
                           f"how it catches incidents needs at least {self.min_incidents}", incidents=n)
        sw = data.grid_sweep()
        f1 = sw["f1"].to_numpy(dtype=float)
        if not np.isfinite(f1).any():
            return _refuse(self.name, data.for_s, "no candidate level fired at all on the fit period", incidents=n)
        best = float(np.nanmax(f1))
        i = int(np.flatnonzero(f1 == best)[-1])        # ties: the least sensitive (fewest alerts)
        row = sw.iloc[i]
        w = float(row["threshold"])
        bc = data.preset.budget[1]
        eps = sw["episodes_per_week"].to_numpy()
        rec = sw["recall"].to_numpy(dtype=float)
        # critical: the least sensitive level still catching as many incidents, within the critical budget
        ok = np.flatnonzero((np.arange(len(sw)) >= i) & (rec >= rec[i]) & (eps <= bc))
        c = float(sw["threshold"].iloc[ok[-1]]) if ok.size else None
        why = (f"Best event F1 ({best:.2f}: precision {row['precision']:.2f}, recall {row['recall']:.2f}) over "
               f"{n} labelled incidents of the fit period at {w:.4g}.")
        return Candidate(self.name, w, _order(data, w, c), data.for_s, why,
                         {"incidents": n, "f1": best, "precision": float(row["precision"]),
                          "recall": float(row["recall"])})


def _slot_quantiles(x: np.ndarray, slots: np.ndarray, qs: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per hour-of-week slot: the quantiles ``qs`` (linear interpolation, as ``np.quantile``) and counts."""
    by_value = np.argsort(x)
    order = by_value[np.argsort(slots[by_value], kind="stable")]        # slot, then value (a radix sort)
    xs, ss = x[order], slots[order]
    cnt = np.bincount(ss, minlength=168)
    start = np.concatenate(([0], np.cumsum(cnt)[:-1]))
    out = np.full((168, len(qs)), np.nan)
    has = cnt > 0
    for j, q in enumerate(qs):
        pos = start[has] + q * (cnt[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, start[has] + cnt[has] - 1)
        frac = pos - lo
        out[has, j] = xs[lo] + (xs[hi] - xs[lo]) * frac
    return out, cnt


@register
class Seasonal(Strategy):
    """Per hour-of-week quantile levels."""

    name = "seasonal"
    description = "the preset's percentiles per hour of the week (168 levels)"

    def __init__(self, quantiles: tuple[float, float] | None = None, min_slot_points: int = MIN_SLOT_POINTS) -> None:
        self.quantiles, self.min_slot_points = quantiles, min_slot_points

    def fit(self, data: FitData) -> Candidate:
        qw, qc = self.quantiles or data.preset.quantiles
        qs = (qw, qc) if data.up else (1 - qw, 1 - qc)
        slots = hour_of_week(data.ts_ns[data.clean])
        lv, cnt = _slot_quantiles(data.x, slots, qs)
        thin = int((cnt < self.min_slot_points).sum())
        if thin:
            return _refuse(self.name, data.for_s, f"{thin} of the 168 hours of the week have fewer than "
                           f"{self.min_slot_points} clean points in the fit period (at least one week of data at a "
                           "resolution of 2 minutes or finer is needed)", thin_hours=thin)
        crit_ok = bool((data.sign * (lv[:, 1] - lv[:, 0]) > 0).all())
        why = (f"Warning at the {_pct(qw)} and critical at the {_pct(qc)} of each hour of the week (UTC), from "
               f"at least {int(cnt.min())} raw points per hour; levels range {np.min(lv[:, 0]):.4g} to "
               f"{np.max(lv[:, 0]):.4g} (warning).")
        ext = np.max if data.up else np.min
        return Candidate(self.name, float(ext(lv[:, 0])), float(ext(lv[:, 1])) if crit_ok else None, data.for_s, why,
                         {"quantiles": (qw, qc), "min_slot_points": int(cnt.min())}, hourly=lv)


def seasonal_residual(ts_ns: np.ndarray, values: np.ndarray, hourly: np.ndarray, column: int = 0) -> np.ndarray:
    """``value - level of its hour of the week``: replaying ``residual > 0`` (``< 0`` for ``<``) with
    any scalar replay or sweep is replaying the seasonal rule. Causal (the levels are fixed)."""
    return np.asarray(values, dtype=float) - hourly[hour_of_week(ts_ns), column]


def seasonal_recording_rule(record: str, selector: str, hourly: np.ndarray, column: int = 0) -> dict[str, Any]:
    """A Prometheus recording rule whose value is the level of the current hour of the week.

    The expression adds one ``vector(level) and on() (hour() == h and day_of_week() == d)`` term
    per hour (Prometheus' ``day_of_week()`` is 0 for Sunday). An alerting rule then compares
    ``selector > on() group_left <record>``.
    """
    terms = []
    for how in range(168):
        dow = (how // 24 + 1) % 7                # our hour-of-week starts on Monday
        terms.append(f"(vector({hourly[how, column]:.6g}) and on() (hour() == {how % 24} and day_of_week() == {dow}))")
    return {"record": record, "expr": " or ".join(terms), "labels": {"studio_selector": selector}}


def burn_rate_condition(values: pd.Series, target: float, long_s: float, short_s: float, factor: float) -> np.ndarray:
    """Whether a burn-rate pair fires at each point: the error ratio averaged over the trailing
    ``long_s`` and over the trailing ``short_s`` seconds (windows end at the point, inclusive: causal)
    both exceed ``factor x (1 - target)``. Missing points are left out of the averages."""
    s = values.sort_index()
    thr = factor * (1.0 - target)
    lo = s.rolling(pd.Timedelta(seconds=long_s), min_periods=1).mean().to_numpy()
    sh = s.rolling(pd.Timedelta(seconds=short_s), min_periods=1).mean().to_numpy()
    return (lo > thr) & (sh > thr)


@register
class BurnRate(Strategy):
    """SRE-workbook multi-window multi-burn-rate pairs for an error-ratio SLI with a target."""

    name = "burn_rate"
    description = "multi-window multi-burn-rate SLO alerts (1h/5m 14.4x, 6h/30m 6x, 3d/6h 1x)"

    def __init__(self, target: float | None = None, unit: str = "ratio") -> None:
        if unit not in ("ratio", "percent"):
            raise ValidationError(f"SLI unit must be 'ratio' or 'percent', got {unit!r}", path="unit")
        self.target, self.unit = target, unit

    def fit(self, data: FitData) -> Candidate:
        target = self.target if self.target is not None else data.slo_target
        if target is None:
            return _refuse(self.name, 0.0, "an SLO burn-rate alert needs an SLO target (e.g. 0.999) for the SLI")
        if not (isinstance(target, (int, float)) and 0 < target < 1):
            raise ValidationError(f"SLO target must be a fraction in (0, 1), got {target!r}", path="slo_target")
        scale = 100.0 if self.unit == "percent" else 1.0
        budget = 1.0 - target
        rules, eps_week = [], []
        s = data.series() / scale
        weeks = data.span_s / WEEK_S
        for sev, long_s, short_s, factor, spent in BURN_RATE_PAIRS:
            fire = burn_rate_condition(s, target, long_s, short_s, factor)
            starts = int(np.count_nonzero(np.diff(fire.astype(np.int8), prepend=0) == 1))
            eps_week.append(starts / weeks if weeks > 0 else None)
            rules.append({"severity": sev, "long_window_s": long_s, "short_window_s": short_s, "burn_factor": factor,
                          "threshold": factor * budget * scale, "budget_spent": spent,
                          "fit_episodes_per_week": eps_week[-1]})
        why = (f"SLO {target:.4%}: error budget {budget:.4%} over 30 days. Page when the error ratio over both 1 h and "
               f"5 m exceeds {14.4 * budget * scale:.4g} (14.4x: 2 % of the budget in an hour) or over both 6 h and 30 m "
               f"exceeds {6 * budget * scale:.4g} (6x: 5 % in 6 h); ticket when over both 3 d and 6 h it exceeds "
               f"{budget * scale:.4g} (1x: 10 % in 3 days). Multi-window pairs from the Google SRE workbook.")
        return Candidate(self.name, budget * scale, 14.4 * budget * scale, 0.0, why,
                         {"target": target, "fit_episodes_per_week": eps_week}, rules=tuple(rules))
