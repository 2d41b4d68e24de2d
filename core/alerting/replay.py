"""Replay alert rules over history: when would this rule have fired, for how long, and was it right?

Evaluation model (the way Prometheus and Grafana evaluate alerting rules)
--------------------------------------------------------------------------
* The rule is evaluated on a regular grid ``t0, t0 + interval, ...`` up to the last sample, where
  ``interval`` is ``rule.interval_s`` or, by default, the series' resolution (its median step). Each
  evaluation sees the newest sample in ``(t - lookback, t]`` with ``lookback = max(interval, step)``;
  no sample there (a gap in the rows) or a NaN sample means the evaluation has *missing* data. When
  the samples already sit on that grid (the usual export) the evaluations are the samples.
* Missing data follows ``rule.missing``. In every mode a missing evaluation is, for the alert,
  "condition false", as in Prometheus, where a series without a sample makes the expression return
  nothing for it: pending stops, and a firing alert resolves unless ``keep_firing_for`` holds it
  across the gap (a gap shorter than ``keep_firing_for`` does not split an alert in two). The modes
  differ in what else happens:

  - ``"nodata"``: a gap is also reported as a ``nodata`` episode, the way the export's
    ``<Name>NoData`` alert, ``absent_over_time(x[w])`` with the same window ``w`` as ``keep_last``
    below, fires: a missing evaluation counts once the last finite sample is at least ``w`` old
    (``t - t_sample >= w``; before the first finite sample, counted from the first evaluation),
    so the episode starts at the first evaluation at or after *last sample + w* and ends at the
    first evaluation that sees a sample again. Gaps shorter than ``w`` (a missed scrape or three)
    raise no nodata episode, as they raise no NoData alert;
  - ``"keep_last"``: the last value is carried forward for evaluation (the gap is still counted as
    missing), but only while it is younger than the window the Prometheus export reads it with,
    ``last_over_time(x[w])``: ``w = max(lookback, for + (consecutive - 1) x interval)`` where
    ``lookback`` is :attr:`core.alerting.prometheus.PromMapping.lookback` (10 minutes unless ``lookback_s`` says
    otherwise). A value is carried at evaluation ``t`` while ``t - t_sample < w`` (Prometheus 3's
    left-open range); after that the evaluation is missing and not breaching. So one breach before a
    10-hour gap is a 10-minute episode, not a 10-hour one;
  - ``"resolve"``: nothing else (a missing value is simply not breaching).
* Per evaluation: *breach* = ``value <comparator> threshold``. The condition becomes *pending* at
  the ``consecutive``-th consecutive breach; it *fires* once it has been pending for ``for_s`` seconds
  (so with ``for_s = 0`` and ``consecutive = 1`` it fires at the first breach). A breach-free
  evaluation resets pending. Once firing, the alert *holds* while the value breaches (or, with a
  ``recovery`` threshold, until the value crosses ``recovery``); after the hold stops it keeps firing
  while ``t - t_first_non_hold < keep_firing_for_s`` (Prometheus ``keep_firing_for``), and resumes
  normally if the hold comes back within that window.
* Warning and critical are replayed **separately**, each with its own threshold (and the shared
  recovery threshold): a critical episode is reported as its own row and normally lies inside a
  warning episode. ``Replay.summary(severity=None)`` judges the union ("any level firing").

In-sample: a replay over the stored history says what the rule *would have done* on that history.
When the thresholds were chosen from the same history, its numbers are in-sample, not a prediction;
:mod:`core.alerting.recommend` checks a suggested rule on a held-out later period.

Episodes
--------
``start`` is the first firing evaluation; ``end`` the first evaluation at which the alert no longer
fires (so ``duration_s`` = number of firing evaluations x interval), or, for an episode still
firing at the last evaluation, that last timestamp with ``open = True`` and ``state = "firing"``.
Everything is causal: the state at an evaluation depends only on that evaluation and earlier ones.

:func:`replay` is vectorised with no Python loop over points: one pass finds the runs of breaching
(and holding) evaluations with ``np.diff``/``flatnonzero``, then pending, keep-firing and hysteresis
are resolved on the run boundaries with ``searchsorted`` (cost O(runs)).
:func:`core.alerting.sweep.sweep` does the same for many thresholds at once by laying the candidate
rows end to end, and :func:`core.alerting.sweep.sweep_grid` for many thresholds and ``for`` periods
(the breach runs are found once and each ``for`` costs O(runs)). ``_firing`` states the same
semantics point by point (``maximum.accumulate`` of last-true indices) and
:func:`replay_reference` as a plain state-machine loop over evaluations; tests check all three agree.

Lookback caveat: with jittered timestamps a sample that arrives just *after* its grid time is seen
one evaluation later, which can leave an evaluation without data. For such series set
``rule.interval_s`` to the scrape interval and pass ``resolution_s`` a little larger: the lookback
is ``max(interval, resolution)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.prometheus import PromMapping
from core.alerting.rules import SEVERITIES, Rule, format_duration, parse_duration
from core.errors import InsufficientDataError, ValidationError

__all__ = ["Replay", "replay", "replay_all", "replay_reference", "evaluation_grid", "keep_last_window_s",
           "EPISODE_COLUMNS", "DEFAULT_LOOKBACK_S"]

EPISODE_COLUMNS = ["start", "end", "severity", "peak", "duration_s", "state", "open"]
WEEK_S = 7 * 86400.0
MAX_EVALUATIONS = 50_000_000
MIN_EPISODES_P95 = 20
#: seconds a ``keep_last`` value is carried at most (with a short ``for``): the export's default lookback
DEFAULT_LOOKBACK_S = parse_duration(PromMapping.lookback, path="lookback")
_NS = 1_000_000_000


# ----------------------------------------------------------------------------------- input
def _one_series(points: pd.Series | pd.DataFrame, rule: Rule | None = None,
                series: str | None = None) -> tuple[str | None, np.ndarray, np.ndarray]:
    """``(key, ts_ns, values)`` of one series, sorted by time, from a Series or a points frame."""
    if isinstance(points, pd.Series):
        idx = points.index
        if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
            raise ValidationError("points must be indexed by tz-aware (UTC) timestamps", path="points.index")
        key = series or (str(points.name) if points.name is not None else None)
        t = idx.tz_convert("UTC").as_unit("ns").asi8
        v = points.to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(points, pd.DataFrame):
        for col in ("ts", "value"):
            if col not in points.columns:
                raise ValidationError(f"points frame lacks column {col!r}; expected series, ts, value",
                                      path=f"points.{col}")
        key = series
        if "series" in points.columns:
            keys = pd.unique(points["series"])
            if series is not None:
                points = points[points["series"] == series]
                if len(points) == 0:
                    raise ValidationError(f"series {series!r} is not in the points frame", path="series")
            elif len(keys) > 1:
                chosen = rule.matching([str(k) for k in keys]) if rule is not None else []
                if len(chosen) != 1:
                    raise ValidationError(
                        f"points frame holds {len(keys)} series and {len(chosen)} match the rule; "
                        "pass one series (series=...)", path="series")
                key = chosen[0]
                points = points[points["series"] == key]
            elif len(keys) == 1:
                key = str(keys[0])
        ts = points["ts"]
        if not isinstance(ts.dtype, pd.DatetimeTZDtype):
            raise ValidationError("timestamps must be tz-aware (UTC)", path="points.ts")
        t = pd.DatetimeIndex(ts).tz_convert("UTC").as_unit("ns").asi8
        v = pd.to_numeric(points["value"], errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        raise ValidationError(f"cannot replay over a {type(points).__name__}; expected a Series indexed by "
                              "UTC time or a points frame", path="points")
    t = np.asarray(t, dtype=np.int64)
    if t.size == 0:
        raise InsufficientDataError("no points to replay over; need at least 2 timestamps")
    if t.size > 1:
        d = np.diff(t)
        if (d <= 0).any():
            order = np.argsort(t, kind="stable")
            t, v = t[order], v[order]
            dup = np.flatnonzero(np.diff(t) == 0)
            if dup.size:
                raise ValidationError(f"duplicate timestamp {pd.Timestamp(t[dup[0]], tz='UTC')} in the series; "
                                      "expected one value per timestamp", path="points.ts")
    return key, t, v


def _step_ns(t: np.ndarray) -> tuple[int, bool]:
    """Median positive step (ns) and whether every step equals it."""
    d = np.diff(t)
    lo, hi = int(d.min()), int(d.max())
    if lo == hi:
        return lo, True
    return int(np.median(d)), False


def evaluation_grid(t: np.ndarray, v: np.ndarray, interval_s: float | None = None,
                    resolution_s: float | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Evaluation timestamps (int64 ns), the value each evaluation sees (NaN = missing) and the interval (ns).

    See the module docstring: regular grid from the first sample, newest sample within the lookback.
    ``resolution_s`` is the series' sampling step; by default the median step of ``t`` (like a
    scrape interval, it is a property of the whole series, not of any one point).
    """
    tg, x, interval, _ = _grid(t, v, interval_s, resolution_s)
    return tg, x, interval


def _grid(t: np.ndarray, v: np.ndarray, interval_s: float | None,
          resolution_s: float | None) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """:func:`evaluation_grid` plus the timestamp (ns) of the sample each evaluation sees."""
    n = t.size
    if n < 2 and interval_s is None and resolution_s is None:
        raise InsufficientDataError("need at least 2 points to infer the evaluation interval "
                                    "(or set the rule's interval)")
    step, regular = _step_ns(t) if n >= 2 else (0, True)
    if resolution_s is not None:
        res = int(round(parse_duration(resolution_s, path="resolution") * _NS))
        regular = regular and (n < 2 or step == res)
        step = res
    interval = int(round(interval_s * _NS)) if interval_s is not None else step
    if interval <= 0 or step < 0:
        raise ValidationError("evaluation interval must be > 0", path="interval")
    if regular and (n < 2 or interval == step):
        return t, v, interval, t
    count = (int(t[-1]) - int(t[0])) // interval + 1
    if count > MAX_EVALUATIONS:
        raise ValidationError(f"{count:,} evaluations at a {interval / _NS:g}s interval; at most "
                              f"{MAX_EVALUATIONS:,} are replayed (use a longer interval)", path="interval")
    tg = t[0] + np.arange(count, dtype=np.int64) * interval
    j = np.searchsorted(t, tg, side="right") - 1
    ok = t[j] > tg - max(interval, step)
    return tg, np.where(ok, v[j], np.nan), interval, t[j]


def keep_last_window_s(for_s: float, consecutive: int, interval_s: float,
                       lookback_s: float | str | None = None) -> float:
    """Seconds a ``keep_last`` value is carried forward: the window the Prometheus export reads it over.

    ``max(lookback, for + (consecutive - 1) x interval)``, the ``last_over_time`` window of
    :func:`core.alerting.prometheus.prometheus_export`; ``lookback_s`` defaults to :data:`DEFAULT_LOOKBACK_S`
    (:attr:`core.alerting.prometheus.PromMapping.lookback`). Durations in seconds (or ``"10m"`` strings).
    """
    lb = DEFAULT_LOOKBACK_S if lookback_s is None else parse_duration(lookback_s, path="lookback")
    return max(lb, float(for_s) + (int(consecutive) - 1) * float(interval_s))


def _carry(x: np.ndarray, tg: np.ndarray, src: np.ndarray, window_ns: int) -> np.ndarray:
    """``keep_last``: each missing evaluation takes the last seen value while that value's sample is
    younger than ``window_ns`` at the evaluation (``t - t_sample < window``), NaN after that. Causal."""
    ok = ~np.isnan(x)
    if ok.all():
        return x
    idx = np.maximum.accumulate(np.where(ok, np.arange(x.size), -1))
    k = np.maximum(idx, 0)
    young = (idx >= 0) & (tg - src[k] < window_ns)
    return np.where(ok, x, np.where(young, x[k], np.nan))


def _absent(t: np.ndarray, v: np.ndarray, tg: np.ndarray, missing: np.ndarray, window_ns: int) -> np.ndarray:
    """``nodata``: evaluations the export's ``absent_over_time(x[window])`` fires at: missing, and the
    last finite sample at or before the evaluation (the first evaluation, before any) at least
    ``window_ns`` old. Causal."""
    tf = t[np.isfinite(v)]
    if tf.size:
        j = np.searchsorted(tf, tg, side="right") - 1
        last = np.where(j >= 0, tf[np.maximum(j, 0)], tg[0])
    else:
        last = np.full(tg.size, tg[0])
    return missing & (tg - last >= window_ns)


def _counts(rule_for_s: float, keep_s: float, consecutive: int, interval_ns: int) -> tuple[int, int]:
    """Evaluations needed: breach-run length that fires, and evaluations kept firing after the hold.

    Fires at evaluation i when the breach run holds ``consecutive + ceil(for / interval)`` evaluations
    (pending starts at the N-th breach and ``t_i - t_pending >= for``). Keep-firing covers the
    evaluations with ``t_i - t_first_non_hold < keep``, i.e. ``ceil(keep / interval)`` of them.
    """
    for_ns = int(round(rule_for_s * _NS))
    keep_ns = int(round(keep_s * _NS))
    return consecutive + -(-for_ns // interval_ns), -(-keep_ns // interval_ns)


# ----------------------------------------------------------------------------------- the core
def _last_index(mask: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """For each position, the index of the last True at or before it along the last axis (-1: none)."""
    return np.maximum.accumulate(np.where(mask, idx, -1), axis=-1)


def _breach(x: np.ndarray, thr: Any, comparator: str) -> np.ndarray:
    if comparator == ">":
        return x > thr
    if comparator == ">=":
        return x >= thr
    if comparator == "<":
        return x < thr
    return x <= thr


def _firing(x: np.ndarray, thr: Any, comparator: str, recovery: Any, run_need: int, keep_evals: int,
            reset: np.ndarray | None) -> np.ndarray:
    """Firing state at every evaluation, point by point (``thr``/``recovery`` may be ``(m, 1)`` columns).

    The dense statement of the semantics (kept to cross-check :func:`_fire_runs`, which is faster):
    ``fire_i`` = the breach run ending at i is ``run_need`` long; ``extended_hold_i`` = hold at i, or
    within ``keep_evals`` evaluations after the last hold (and not a ``reset``: the sweep's row
    separators);
    ``S_i = fire_i or (S_{i-1} and extended_hold_i)``. Since ``fire`` implies the extended hold, S is
    true exactly where the current extended-hold run contains a fire at or before i.
    """
    n = x.shape[-1]
    idx = np.arange(n, dtype=np.int32 if n < 2**31 - 1 else np.int64)
    b = _breach(x, thr, comparator)
    if run_need > 1:
        f = b & (idx - _last_index(~b, idx) >= run_need)
    else:
        f = b
    if recovery is None:
        h = b
    else:
        h = (x >= recovery) if comparator in (">", ">=") else (x <= recovery)
    if keep_evals > 0:
        e = idx - _last_index(h, idx) <= keep_evals
        if reset is not None:
            e &= ~reset
    else:
        e = h
    if e is f:
        return f
    return e & (_last_index(f, idx) > _last_index(~e, idx))


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and end indices (exclusive) of the True runs of a 1-D boolean mask."""
    m = mask.view(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == 1) + 1
    ends = np.flatnonzero(d == -1) + 1
    if m.size and m[0]:
        starts = np.concatenate(([0], starts))
    if m.size and m[-1]:
        ends = np.concatenate((ends, [m.size]))
    return starts, ends


def _fire_runs(b: np.ndarray, h: np.ndarray | None, reset_idx: np.ndarray, run_need: int,
               keep_evals: int) -> tuple[np.ndarray, np.ndarray]:
    """Firing runs ``(starts, ends)`` from the breach mask, working on runs instead of points.

    Same semantics as :func:`_firing` (which works point by point); this one is faster because
    every step after extracting the runs of ``b`` (and ``h``) costs O(number of runs):

    * fire: the part of each breach run from its ``run_need``-th evaluation on;
    * extended hold: each hold run ``[hs, he)`` lengthened to ``he + keep_evals``, cut at the first
      reset (the row separators of :func:`core.alerting.sweep.sweep`) at or after ``he``, and
      merged with the next hold run when they touch;
    * firing: from the first fire inside an extended-hold run to the end of that run.

    ``reset_idx`` must be sorted; ``h`` None means the hold is the breach itself.
    """
    bs, be = _runs(b)
    hs, he = _runs(h) if h is not None else (bs, be)
    return _fire_from_runs(bs, be, hs, he, b.size, reset_idx, run_need, keep_evals, h is None)


def _fire_from_runs(bs: np.ndarray, be: np.ndarray, hs: np.ndarray, he: np.ndarray, n: int,
                    reset_idx: np.ndarray, run_need: int, keep_evals: int,
                    hold_is_breach: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_fire_runs` from the runs already found: breach runs ``[bs, be)``, hold runs ``[hs, he)``
    (the breach runs themselves when ``hold_is_breach``) over ``n`` evaluations. O(runs); lets a
    sweep over several ``for`` periods find the runs once."""
    long_enough = (be - bs) >= run_need
    fs, fe = bs[long_enough] + (run_need - 1), be[long_enough]
    if hold_is_breach and keep_evals == 0:
        return fs, fe
    if keep_evals > 0 and hs.size:
        ext = np.minimum(he + keep_evals, n)
        if reset_idx.size:
            j = np.searchsorted(reset_idx, he)
            nxt = np.where(j < reset_idx.size, reset_idx[np.minimum(j, reset_idx.size - 1)], n)
            ext = np.minimum(ext, nxt)
        new = np.ones(hs.size, dtype=bool)
        new[1:] = hs[1:] > ext[:-1]
        last = np.ones(hs.size, dtype=bool)
        last[:-1] = new[1:]
        es, ee = hs[new], ext[last]
    else:
        es, ee = hs, he
    if fs.size == 0 or es.size == 0:
        return fs[:0], fs[:0]
    c = np.searchsorted(fs, es)
    cc = np.minimum(c, fs.size - 1)
    ok = (c < fs.size) & (fs[cc] < ee)
    return fs[cc][ok], ee[ok]


def _mask_of(starts: np.ndarray, ends: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of length ``n`` that is True on the runs ``[starts, ends)`` (runs never touch)."""
    d = np.zeros(n + 1, dtype=np.int8)
    d[starts] = 1
    d[ends] = -1
    return np.cumsum(d[:-1], dtype=np.int8) > 0


def _episode_frame(parts: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    if parts:
        cols = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
    else:
        cols = {"start": np.empty(0, np.int64), "end": np.empty(0, np.int64), "severity": np.empty(0, object),
                "peak": np.empty(0), "state": np.empty(0, object), "open": np.empty(0, bool),
                "order": np.empty(0, np.int64)}
    start = pd.to_datetime(cols["start"], utc=True).as_unit("ns")
    end = pd.to_datetime(cols["end"], utc=True).as_unit("ns")
    df = pd.DataFrame({
        "start": start, "end": end, "severity": cols["severity"].astype(object),
        "peak": cols["peak"].astype(np.float64),
        "duration_s": (cols["end"] - cols["start"]) / _NS,
        "state": cols["state"].astype(object), "open": cols["open"].astype(bool), "_o": cols["order"],
    })
    df = df.sort_values(["start", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)
    return df[EPISODE_COLUMNS]


def _episodes_of(s: np.ndarray, e: np.ndarray, tg: np.ndarray, x: np.ndarray, severity: str,
                 comparator: str | None, order: int) -> dict[str, np.ndarray]:
    """Episode columns from runs ``[s, e)`` of evaluations (``e == n``: still open at the end)."""
    n = tg.size
    open_ = e == n
    end = tg[np.minimum(e, n - 1)]
    if comparator is None or s.size == 0:
        peak = np.full(s.size, np.nan)
    else:
        red = np.fmax if comparator in (">", ">=") else np.fmin
        bounds = np.empty(2 * s.size, dtype=np.int64)
        bounds[0::2], bounds[1::2] = s, e
        if bounds[-1] == n:          # the last segment runs to the end of the array
            bounds = bounds[:-1]
        peak = red.reduceat(x, bounds)[0::2]
    if severity == "nodata":
        state = np.full(s.size, "nodata", dtype=object)
    else:
        state = np.where(open_, "firing", "resolved").astype(object)
    return {"start": tg[s], "end": end, "severity": np.full(s.size, severity, dtype=object), "peak": peak,
            "state": state, "open": open_, "order": np.full(s.size, order, dtype=np.int64)}


# ----------------------------------------------------------------------------------- result
def _to_ns(when: Any, path: str) -> int:
    """A timestamp (str, datetime, Timestamp; naive = UTC) as int64 nanoseconds since the epoch."""
    try:
        ts = pd.Timestamp(when)
    except (TypeError, ValueError):
        raise ValidationError(f"cannot read {when!r} as a timestamp", path=path) from None
    if ts is pd.NaT:
        raise ValidationError("a timestamp is required, got NaT", path=path)
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


@dataclass
class Replay:
    """Result of :func:`replay`.

    Attributes
    ----------
    rule : Rule
    series : str or None
        Series key replayed (when known).
    episodes : DataFrame
        ``start, end, severity, peak, duration_s, state, open`` sorted by start; severity is
        ``warning``, ``critical`` or ``nodata``; state ``resolved``, ``firing`` (still firing at the end,
        ``open``) or ``nodata``. ``peak`` is the most extreme evaluated value in the breach direction.
    ts_ns : ndarray
        Evaluation timestamps (int64 ns, UTC).
    values : ndarray
        Value each evaluation used (carried forward under ``keep_last``; NaN = missing).
    missing : ndarray of bool
        Evaluations without data (in every missing-data mode).
    runs : dict
        Severity -> ``(starts, ends)`` evaluation indices of the firing runs (ends exclusive);
        ``firing`` gives the same as boolean masks.
    interval_s : float
        Evaluation interval in seconds.
    nodata_window_s : float or None
        ``missing: nodata``: seconds without a sample before a gap is a ``nodata`` episode (the
        export's ``absent_over_time`` window); None in the other modes.
    """

    rule: Rule
    series: str | None
    episodes: pd.DataFrame
    ts_ns: np.ndarray
    values: np.ndarray
    missing: np.ndarray
    runs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    interval_s: float = 0.0
    nodata_window_s: float | None = None

    @cached_property
    def firing(self) -> dict[str, np.ndarray]:
        """Severity -> boolean firing state per evaluation (built on first use)."""
        return {sev: _mask_of(s, e, self.ts_ns.size) for sev, (s, e) in self.runs.items()}

    @property
    def span_s(self) -> float:
        """Seconds from the first to the last evaluation."""
        return float(self.ts_ns[-1] - self.ts_ns[0]) / _NS if self.ts_ns.size else 0.0

    def timeline(self) -> pd.DataFrame:
        """Per-evaluation frame ``ts, value, missing, <severity>...`` (booleans), for charts."""
        df = pd.DataFrame({"ts": pd.to_datetime(self.ts_ns, utc=True), "value": self.values,
                           "missing": self.missing})
        for sev, m in self.firing.items():
            df[sev] = m
        return df

    def _mask(self, severity: str | None) -> np.ndarray:
        if severity is None:
            if not self.runs:
                return np.zeros(self.ts_ns.size, dtype=bool)
            masks = list(self.firing.values())
            out = masks[0].copy()
            for m in masks[1:]:
                out |= m
            return out
        if severity not in self.runs:
            raise ValidationError(f"severity {severity!r} was not replayed; available: {list(self.runs)}",
                                  path="severity")
        return self.firing[severity]

    def alert_episodes(self, severity: str | None = None) -> pd.DataFrame:
        """Firing episodes of one severity, or of "any level firing" (the union) when None."""
        if severity is not None:
            self._mask(severity)
            return self.episodes[self.episodes["severity"] == severity].reset_index(drop=True)
        if len(self.runs) == 1:
            only = next(iter(self.runs))
            return self.episodes[self.episodes["severity"] == only].reset_index(drop=True)
        s, e = _runs(self._mask(None))
        part = _episodes_of(s, e, self.ts_ns, self.values, "any", self.rule.comparator, 0)
        return _episode_frame([part])

    def summary(self, severity: str | None = None, incidents: pd.DataFrame | None = None,
                early_s: float = 0.0) -> dict[str, Any]:
        """Alert load and (with incidents) accuracy of the replayed rule.

        Parameters
        ----------
        severity : str, optional
            ``"warning"`` or ``"critical"``; None = any level firing (the union of levels).
        incidents : DataFrame, optional
            Labelled incident windows ``start, end`` (a ``series`` column, if present, is filtered to
            this series plus global rows). Scored with :func:`core.analysis.scoring.score_events`.
        early_s : float
            Seconds before an incident an alert may start and still count as catching it.

        Returns
        -------
        dict
            ``evaluations, interval_s, span_s, episodes, open_episodes, episodes_per_week,
            time_in_alert_s, time_in_alert_pct, duration_median_s, duration_p95_s,
            missing_evaluations, nodata_episodes, nodata_s, notes`` and, with incidents,
            ``incidents, precision, recall, f1, tp, fp, fn, duplicates, false_alarms_per_week,
            detection_delay_s, reset_time_s, insufficient`` (see :class:`core.analysis.scoring.EventScore`:
            ``tp`` counts caught incidents, ``fp`` false-alarm episodes, ``duplicates`` repeat episodes
            about an incident already announced).
            Rates are None where the span is empty; the 95th percentile duration is None below
            20 closed episodes (a p95 of a handful of values is not a number to tune on).
        """
        mask = self._mask(severity)
        eps = self.alert_episodes(severity)
        notes: list[str] = []
        n = self.ts_ns.size
        interval = self.interval_s
        span = self.span_s
        t_alert = float(mask[:-1].sum()) * interval if n else 0.0
        closed = eps.loc[~eps["open"], "duration_s"].to_numpy()
        nod = self.episodes[self.episodes["severity"] == "nodata"]
        out: dict[str, Any] = {
            "severity": severity or "any", "series": self.series, "evaluations": int(n),
            "interval_s": interval, "span_s": span, "episodes": len(eps),
            "open_episodes": int(eps["open"].sum()),
            "episodes_per_week": (len(eps) / (span / WEEK_S)) if span > 0 else None,
            "time_in_alert_s": t_alert,
            "time_in_alert_pct": (100.0 * t_alert / span) if span > 0 else None,
            "duration_median_s": float(np.median(closed)) if closed.size else None,
            "duration_p95_s": float(np.percentile(closed, 95)) if closed.size >= MIN_EPISODES_P95 else None,
            "missing_evaluations": int(self.missing.sum()),
            "nodata_episodes": len(nod), "nodata_s": float(nod["duration_s"].sum()),
        }
        if span <= 0:
            notes.append("a single evaluation: no rates can be given")
        elif span < WEEK_S:
            notes.append(f"history covers only {format_duration(span)}; episodes per week is extrapolated "
                         "from less than a week")
        if 0 < closed.size < MIN_EPISODES_P95:
            notes.append(f"{closed.size} closed episode(s): 95th percentile duration needs at least "
                         f"{MIN_EPISODES_P95}")
        if out["open_episodes"]:
            notes.append("an episode is still firing at the end of the data; its duration is a lower bound "
                         "and it is left out of the duration statistics")
        if incidents is not None:
            out.update(self._score(eps, incidents, early_s, notes))
        out["notes"] = notes
        return out

    def period(self, start: Any = None, end: Any = None, severity: str | None = None) -> dict[str, Any]:
        """Alert load inside one time window of the replay (e.g. a fit period and a held-out one).

        Parameters
        ----------
        start, end : timestamp-like, optional
            The window ``[start, end)`` (UTC); None = from the first / through the last evaluation.
        severity : str, optional
            As in :meth:`summary` (None = any level firing).

        Returns
        -------
        dict
            ``span_s`` (seconds, ``end - start``), ``evaluations``, ``missing_evaluations``,
            ``episodes`` (episodes that *start* in the window), ``episodes_per_week``,
            ``time_in_alert_s`` (firing evaluations in the window x interval; the last evaluation of
            the replay has no duration, as in :meth:`summary`) and ``time_in_alert_pct``. Rates are
            None for an empty window. Consecutive windows add up to :meth:`summary`'s totals.
        """
        tg = self.ts_ns
        mask = self._mask(severity)
        if tg.size == 0:
            raise InsufficientDataError("the replay has no evaluations")
        a = int(tg[0]) if start is None else _to_ns(start, "start")
        b = int(tg[-1]) if end is None else _to_ns(end, "end")
        if b < a:
            raise ValidationError(f"period end {pd.Timestamp(b, tz='UTC')} is before its start "
                                  f"{pd.Timestamp(a, tz='UTC')}", path="end")
        inside = (tg >= a) & (tg < b)
        t_alert = float((mask[:-1] & inside[:-1]).sum()) * self.interval_s
        eps = self.alert_episodes(severity)
        st = eps["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        n_eps = int(((st >= a) & ((st < b) | ((end is None) & (st <= b)))).sum())
        span = (b - a) / _NS
        return {"start": pd.Timestamp(a, tz="UTC"), "end": pd.Timestamp(b, tz="UTC"), "span_s": span,
                "evaluations": int(inside.sum()), "missing_evaluations": int((self.missing & inside).sum()),
                "episodes": n_eps, "episodes_per_week": n_eps / (span / WEEK_S) if span > 0 else None,
                "time_in_alert_s": t_alert, "time_in_alert_pct": 100.0 * t_alert / span if span > 0 else None}

    def _score(self, eps: pd.DataFrame, incidents: pd.DataFrame, early_s: float,
               notes: list[str]) -> dict[str, Any]:
        try:
            from core.analysis.scoring import score_events
        except ImportError:  # pragma: no cover - scoring ships with the project
            notes.append("core.analysis.scoring is not available: incidents were not scored")
            return {}
        inc = incidents
        if "series" in inc.columns and self.series is not None:
            inc = inc[inc["series"].isna() | (inc["series"] == self.series)]
        alerts = eps[["start", "end"]].copy()
        alerts.loc[eps["open"].to_numpy(), "end"] = pd.NaT       # still firing: open-ended
        sc = score_events(alerts, inc[["start", "end"]].reset_index(drop=True), early_s=early_s,
                          span_s=self.span_s if self.span_s > 0 else None)
        if sc.note:
            notes.append(sc.note)
        return {"incidents": int(len(inc)), "precision": sc.precision, "recall": sc.recall, "f1": sc.f1,
                "tp": sc.tp, "fp": sc.fp, "fn": sc.fn, "duplicates": sc.duplicates,
                "false_alarms_per_week": sc.false_alarms_per_week, "detection_delay_s": sc.detection_delay_s,
                "reset_time_s": sc.reset_time_s, "insufficient": sc.insufficient}


# ----------------------------------------------------------------------------------- public API
def _levels(rule: Rule, severity: str | None) -> dict[str, float]:
    trig = rule.triggers()
    if severity is None:
        return trig
    if severity not in SEVERITIES:
        raise ValidationError(f"unknown severity {severity!r}; expected one of {list(SEVERITIES)}",
                              path="severity")
    if severity not in trig:
        raise ValidationError(f"rule {rule.name!r} has no {severity} threshold", path="severity")
    return {severity: trig[severity]}


def replay(rule: Rule, points: pd.Series | pd.DataFrame, severity: str | None = None, *,
           series: str | None = None, resolution_s: float | None = None,
           lookback_s: float | str | None = None) -> Replay:
    """Replay a rule over one series' history (vectorised; causal).

    Parameters
    ----------
    rule : Rule
    points : Series or DataFrame
        Values indexed by UTC timestamps, or a points frame (``series, ts, value``) holding one
        series, or several of which exactly one matches the rule (or pick it with ``series=``).
    severity : {"warning", "critical"}, optional
        Replay only this level; default every configured level (each reported separately).
    resolution_s : float, optional
        Sampling step of the series in seconds; default its median step.
    lookback_s : float or str, optional
        ``missing: keep_last`` carries a value for at most :func:`keep_last_window_s` seconds
        (``max(lookback, for + (consecutive - 1) x interval)``), and ``missing: nodata`` reports a
        gap once it is that long; default the export's lookback (:data:`DEFAULT_LOOKBACK_S`). Pass
        the ``PromMapping.lookback`` you export with.

    Returns
    -------
    Replay
        Episodes, per-evaluation state and :meth:`Replay.summary`. See the module docstring for the
        exact evaluation semantics.
    """
    levels = _levels(rule, severity)
    key, t, v = _one_series(points, rule, series)
    tg, x, interval, src = _grid(t, v, rule.interval_s, resolution_s)
    missing = np.isnan(x)
    has_missing = bool(missing.any())
    window = keep_last_window_s(rule.for_s, rule.consecutive, interval / _NS, lookback_s)
    if rule.missing == "keep_last" and has_missing:
        x = _carry(x, tg, src, int(round(window * _NS)))
    run_need, keep_evals = _counts(rule.for_s, rule.keep_firing_for_s, rule.consecutive, interval)
    reset_idx = np.empty(0, np.int64)          # a missing evaluation is "condition false", never a reset
    hold = None
    if rule.recovery is not None:
        hold = (x >= rule.recovery) if rule.comparator in (">", ">=") else (x <= rule.recovery)
    runs, parts = {}, []
    for order, (sev, thr) in enumerate(levels.items()):
        s, e = _fire_runs(_breach(x, thr, rule.comparator), hold, reset_idx, run_need, keep_evals)
        runs[sev] = (s, e)
        parts.append(_episodes_of(s, e, tg, x, sev, rule.comparator, order))
    if rule.missing == "nodata" and has_missing:
        s, e = _runs(_absent(t, v, tg, missing, int(round(window * _NS))))
        parts.append(_episodes_of(s, e, tg, x, "nodata", None, len(levels)))
    return Replay(rule=rule, series=key, episodes=_episode_frame(parts), ts_ns=tg, values=x,
                  missing=missing, runs=runs, interval_s=interval / _NS,
                  nodata_window_s=window if rule.missing == "nodata" else None)


def replay_all(rule: Rule, points: pd.DataFrame, severity: str | None = None, *,
               lookback_s: float | str | None = None) -> dict[str, Replay]:
    """Replay a rule over every series of a points frame that it selects (glob rules), by key.

    Raises :class:`ValidationError` when the rule selects none of the frame's series.
    """
    if "series" not in points.columns:
        raise ValidationError("points frame lacks column 'series'; expected series, ts, value",
                              path="points.series")
    keys = [str(k) for k in pd.unique(points["series"])]
    chosen = rule.matching(keys)
    if not chosen:
        raise ValidationError(f"rule {rule.name!r} selects none of the {len(keys)} series "
                              f"(pattern {rule.series!r})", path="series")
    groups = dict(tuple(points.groupby("series", sort=False)))
    return {k: replay(rule, groups[k], severity, series=k, lookback_s=lookback_s) for k in chosen}


def replay_reference(rule: Rule, points: pd.Series | pd.DataFrame, severity: str | None = None, *,
                     series: str | None = None, resolution_s: float | None = None,
                     lookback_s: float | str | None = None) -> pd.DataFrame:
    """Plain-loop replay (one state machine step per evaluation); the specification :func:`replay` is tested
    against. Slow: use it on small inputs only. Returns the episodes frame only."""
    levels = _levels(rule, severity)
    key, t, v = _one_series(points, rule, series)
    n = t.size
    if n < 2 and rule.interval_s is None and resolution_s is None:
        raise InsufficientDataError("need at least 2 points to infer the evaluation interval")
    step = int(np.median(np.diff(t))) if n >= 2 else 0
    if resolution_s is not None:
        step = round(resolution_s * _NS)
    interval = int(round(rule.interval_s * _NS)) if rule.interval_s is not None else step
    lookback = max(interval, step)
    for_ns = round(rule.for_s * _NS)
    keep_ns = round(rule.keep_firing_for_s * _NS)
    carry_ns = round(keep_last_window_s(rule.for_s, rule.consecutive, interval / _NS, lookback_s) * _NS)
    up = rule.comparator in (">", ">=")

    # evaluation grid, walking a pointer over the samples (and the last finite one, for nodata)
    times, seen, sample_ts, last_finite, p, q, lastf = [], [], [], [], 0, 0, int(t[0])
    g = int(t[0])
    while g <= int(t[-1]):
        while p + 1 < n and int(t[p + 1]) <= g:
            p += 1
        while q < n and int(t[q]) <= g:
            if not math.isnan(float(v[q])):
                lastf = int(t[q])
            q += 1
        times.append(g)
        seen.append(float(v[p]) if int(t[p]) > g - lookback else math.nan)
        sample_ts.append(int(t[p]))
        last_finite.append(lastf)
        g += interval

    def breach(x: float, thr: float) -> bool:
        if math.isnan(x):
            return False
        return {">": x > thr, ">=": x >= thr, "<": x < thr, "<=": x <= thr}[rule.comparator]

    def not_recovered(x: float) -> bool:
        if math.isnan(x):
            return False
        return x >= rule.recovery if up else x <= rule.recovery

    rows = []
    for order, (sev, thr) in enumerate(levels.items()):
        firing, count, active_at, keep_since, last, last_ts = False, 0, None, None, math.nan, None
        ep_start, peak = None, math.nan
        for i, (tt, raw, src) in enumerate(zip(times, seen, sample_ts, strict=True)):
            x = raw
            if not math.isnan(raw):
                last, last_ts = raw, src
            elif rule.missing == "keep_last" and last_ts is not None and tt - last_ts < carry_ns:
                x = last        # carried while younger than the export's last_over_time window
            was = firing
            # every mode: a missing value that is not carried is simply "condition false"
            br = breach(x, thr)
            count = count + 1 if br else 0
            if firing:
                hold = br if rule.recovery is None else not_recovered(x)
                if hold:
                    keep_since = None
                else:
                    if keep_since is None:
                        keep_since = tt
                    if not tt - keep_since < keep_ns:
                        firing, keep_since, active_at = False, None, None
            if not firing:
                if count >= rule.consecutive:
                    if active_at is None:
                        active_at = tt
                    if tt - active_at >= for_ns:
                        firing, keep_since = True, None
                else:
                    active_at = None
            if firing and not was:
                ep_start, peak = tt, x
            elif firing:
                if not math.isnan(x):
                    peak = x if math.isnan(peak) else (max(peak, x) if up else min(peak, x))
            elif was:
                rows.append((ep_start, tt, sev, peak, "resolved", False, order))
            if firing and i == len(times) - 1:
                rows.append((ep_start, tt, sev, peak, "firing", True, order))
    if rule.missing == "nodata":
        start = None
        for i, (tt, raw, lf) in enumerate(zip(times, seen, last_finite, strict=True)):
            absent = math.isnan(raw) and tt - lf >= carry_ns     # absent_over_time(x[window]) fires
            if absent and start is None:
                start = tt
            if not absent and start is not None:
                rows.append((start, tt, "nodata", math.nan, "nodata", False, len(levels)))
                start = None
            if i == len(times) - 1 and start is not None:
                rows.append((start, tt, "nodata", math.nan, "nodata", True, len(levels)))
    parts = [{"start": np.array([r[0] for r in rows], dtype=np.int64),
              "end": np.array([r[1] for r in rows], dtype=np.int64),
              "severity": np.array([r[2] for r in rows], dtype=object),
              "peak": np.array([r[3] for r in rows], dtype=np.float64),
              "state": np.array([r[4] for r in rows], dtype=object),
              "open": np.array([r[5] for r in rows], dtype=bool),
              "order": np.array([r[6] for r in rows], dtype=np.int64)}]
    return _episode_frame(parts)
