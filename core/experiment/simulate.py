"""Simulated A/B tests of alert rules: future days bootstrapped from history, incidents injected.

There is no live traffic to split, so an experiment here is a simulation, and every step of it is
stated:

1. **Future days** come from a *seasonal block bootstrap* of the stored history: whole days (each
   future day is a past day of the same weekday, drawn at random) or whole weeks (a run of seven
   consecutive past days starting on the same weekday). Inside a block nothing is reordered, so the
   daily cycle, the autocorrelation and the gaps (NaN, missing stays missing) survive; the weekly
   cycle survives through the weekday match. Labelled incidents of a drawn day come with it
   (clipped to that day).
2. **Incidents are injected** at ``rate`` per day (Poisson), with shapes taken from the demo
   scenarios (:data:`SHAPES`): ``spike`` (5-20 min burst), ``degradation`` (linear ramp over 1-4 h),
   ``level_shift`` (a step that lasts until the end of the day, as if rolled back at midnight) and
   ``oscillation`` (10-30 min period for 1-3 h). Sizes are multiples of the history's spread (99th
   minus 50th percentile of the raw points), in the direction the rule alerts on. Every incident is
   confined to its day, so the units (days) stay independent. The labelled window is the whole
   affected span.
3. **Assignment**: each day is a unit, randomly assigned to arm A (control) or B (candidate) with
   the chosen split (share of units in B, 0.1-0.9; complete randomisation: exactly
   ``round(split x days)`` units in B, in random order).
4. **Outcomes per unit**: both rules are replayed (:func:`core.alerting.replay.replay`) over the whole
   simulated span, and each day keeps only the outcomes of the rule of its arm: the other rule's
   outcomes on that day are discarded, as in a real test where only one rule runs on a day. Outcomes
   are judged against the *labelled and injected incident windows* (event level,
   :func:`core.analysis.scoring.score_events`), never against an arm's own percentile: alert episodes
   (starting that day), false episodes (matching no incident), incidents, caught, missed, and the
   mean detection delay (seconds) of the day's caught incidents (NaN when none was caught).

Caveat: a rule's state at midnight is the state its own replay left the previous day with (the
previous day may have belonged to the other arm); with pending periods of minutes this touches at
most the first minutes of a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from core.alerting.replay import replay
from core.alerting.rules import Rule
from core.analysis.scoring import score_events
from core.errors import InsufficientDataError, ValidationError

__all__ = ["SHAPES", "OUTCOMES", "Simulation", "bootstrap", "inject_incidents", "assign_units",
           "unit_outcomes", "future_days", "simulate", "spread_of", "synthetic_history"]

DAY_S = 86400
_NS = 1_000_000_000
SHAPES = ("spike", "degradation", "level_shift", "oscillation")
#: per-unit outcome columns
OUTCOMES = ("episodes", "false_episodes", "incidents", "caught", "missed", "delay_s")
MIN_SPLIT, MAX_SPLIT = 0.1, 0.9


@dataclass
class Simulation:
    """One simulated experiment.

    Attributes
    ----------
    series : Series
        The simulated future values (UTC index, regular step; NaN = missing).
    incidents : DataFrame
        ``start, end, shape``: carried-over labelled incidents (shape ``"labelled"``) and injected ones.
    outcomes : DataFrame
        One row per unit (day), in time order: ``unit, day, arm`` and :data:`OUTCOMES` of the arm's rule.
    counterfactual : DataFrame
        The same per-day outcomes for *both* rules (columns ``<outcome>_A``, ``<outcome>_B``); for
        diagnostics and tests only: an analysis must use :attr:`outcomes`.
    split : float
        Share of units in arm B.
    seed : int or None
    """

    series: pd.Series
    incidents: pd.DataFrame
    outcomes: pd.DataFrame
    counterfactual: pd.DataFrame
    split: float
    seed: int | None = None


# ----------------------------------------------------------------------------- history as day blocks
def _as_series(history: pd.Series | pd.DataFrame) -> pd.Series:
    if isinstance(history, pd.DataFrame):
        if not {"ts", "value"} <= set(history.columns):
            raise ValidationError("history frame needs columns ts, value", path="history")
        if "series" in history.columns and history["series"].nunique() > 1:
            raise ValidationError("history holds several series; pass one", path="history.series")
        history = pd.Series(history["value"].to_numpy(dtype=float), index=pd.DatetimeIndex(history["ts"]))
    if not isinstance(history.index, pd.DatetimeIndex) or history.index.tz is None:
        raise ValidationError("history must be indexed by tz-aware (UTC) timestamps", path="history.index")
    return history.sort_index()


def _day_matrix(history: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """``(values[day, slot], day_start_ns[day], step_ns)`` of the history's complete UTC days.

    The step is the median step; a sample goes to the slot ``[k step, (k + 1) step)`` it falls in
    (jittered scrapes keep their slot), and slots without a sample are NaN (a gap stays a gap).
    Days not wholly inside the history's span (the partial first and last day) are left out.
    """
    t = history.index.tz_convert("UTC").as_unit("ns").asi8
    v = history.to_numpy(dtype=float)
    if t.size < 2:
        raise InsufficientDataError("history has fewer than 2 points; need at least 7 whole days")
    step = int(np.median(np.diff(t)))
    if step <= 0 or (DAY_S * _NS) % step:
        raise ValidationError(f"history step of {step / _NS:g} s does not divide a day; resample it first",
                              path="history")
    slots = DAY_S * _NS // step
    day_ns = DAY_S * _NS
    first = -(-int(t[0]) // day_ns) * day_ns          # first midnight at or after the first point
    last = (int(t[-1]) + step) // day_ns * day_ns      # midnight after the last whole day
    n_days = (last - first) // day_ns
    if n_days < 7:
        raise InsufficientDataError(f"history holds {max(n_days, 0)} whole day(s); the seasonal bootstrap "
                                    "needs at least 7 (one of each weekday)")
    keep = (t >= first) & (t < last)
    pos = (t[keep] - first) // step                   # a jittered sample goes to the slot it falls in
    mat = np.full(n_days * slots, np.nan)
    mat[pos] = v[keep]                                 # (several in one slot: the last one)
    return mat.reshape(n_days, slots), first + np.arange(n_days, dtype=np.int64) * day_ns, step


def _weekday(day_start_ns: np.ndarray) -> np.ndarray:
    return ((day_start_ns // (DAY_S * _NS)) + 3) % 7          # 1970-01-01 was a Thursday (3)


def bootstrap(history: pd.Series | pd.DataFrame, days: int, *, rng: np.random.Generator,
              block: str = "day", start: Any = None,
              incidents: pd.DataFrame | None = None) -> tuple[pd.Series, pd.DataFrame, np.ndarray]:
    """Future days by a seasonal block bootstrap of ``history`` (see the module docstring).

    Parameters
    ----------
    history : Series or DataFrame
        One series: values indexed by UTC time, or a points frame ``ts, value``. Needs at least 7
        whole days (14 for ``block="week"``).
    days : int
        Number of future days (1-366).
    rng : numpy Generator
    block : {"day", "week"}
        Resample whole days of the same weekday, or whole weeks starting on the same weekday.
    start : timestamp-like, optional
        First future midnight (UTC); default the midnight after the history's last whole day.
    incidents : DataFrame, optional
        Labelled windows ``start, end`` in the history; those overlapping a drawn day come with it,
        clipped to the day.

    Returns
    -------
    (Series, DataFrame, ndarray)
        The future values, the carried incident windows (``start, end, shape="labelled"``) and the
        index of the source day of each future day.
    """
    if not 1 <= int(days) <= 366:
        raise ValidationError(f"days must be 1-366, got {days}", path="days")
    if block not in ("day", "week"):
        raise ValidationError(f"block must be 'day' or 'week', got {block!r}", path="block")
    mat, day0, step = _day_matrix(_as_series(history))
    n_hist = mat.shape[0]
    wd = _weekday(day0)
    day_ns = DAY_S * _NS
    s0 = day0[-1] + day_ns if start is None else pd.Timestamp(start).tz_convert("UTC").as_unit("ns").value
    if s0 % day_ns:
        raise ValidationError("start must be a UTC midnight", path="start")
    fut = s0 + np.arange(int(days), dtype=np.int64) * day_ns
    fwd = _weekday(fut)
    if block == "day":
        src = np.empty(fut.size, dtype=np.int64)
        for w in range(7):                                  # 7 weekdays, not a loop over points
            pool = np.flatnonzero(wd == w)
            sel = fwd == w
            src[sel] = pool[rng.integers(pool.size, size=int(sel.sum()))]
    else:
        starts = np.flatnonzero((wd == fwd[0]) & (np.arange(n_hist) + 7 <= n_hist))
        if starts.size < 2:
            raise InsufficientDataError(f"history holds {n_hist} whole days: {starts.size} whole week(s) "
                                        "starting on the right weekday; week blocks need at least 2")
        n_weeks = -(-fut.size // 7)
        src = (starts[rng.integers(starts.size, size=n_weeks)][:, None] + np.arange(7)).ravel()[:fut.size]
    values = mat[src].ravel()
    idx = pd.DatetimeIndex(pd.to_datetime(fut[0] + np.arange(values.size, dtype=np.int64) * step, utc=True))
    carried = pd.DataFrame({"start": pd.Series([], dtype="datetime64[ns, UTC]"),
                            "end": pd.Series([], dtype="datetime64[ns, UTC]"), "shape": []})
    if incidents is not None and len(incidents):
        i_s = pd.DatetimeIndex(pd.to_datetime(incidents["start"], utc=True)).as_unit("ns").asi8
        i_e = pd.DatetimeIndex(pd.to_datetime(incidents["end"], utc=True)).as_unit("ns").asi8
        d_s = day0[src][:, None]
        hit = (i_s[None, :] < d_s + day_ns) & (i_e[None, :] >= d_s)     # future day x incident
        fd, inc = np.nonzero(hit)
        if fd.size:
            off = fut[fd] - day0[src][fd]
            a = np.maximum(i_s[inc], day0[src][fd]) + off
            b = np.minimum(i_e[inc], day0[src][fd] + day_ns - step) + off
            carried = pd.DataFrame({"start": pd.to_datetime(a, utc=True), "end": pd.to_datetime(b, utc=True),
                                    "shape": "labelled"})
    return pd.Series(values, index=idx, name=getattr(history, "name", None)), carried, src


# ----------------------------------------------------------------------------- incident injection
def spread_of(values: np.ndarray) -> float:
    """Size unit of injected incidents: 99th minus 50th percentile of the raw values (else their sd)."""
    x = values[np.isfinite(values)]
    if x.size < 10:
        raise InsufficientDataError(f"{x.size} finite values; need at least 10 to size injected incidents")
    s = float(np.quantile(x, 0.99) - np.quantile(x, 0.5))
    return s if s > 0 else float(np.std(x)) or 1.0


def inject_incidents(series: pd.Series, *, rng: np.random.Generator, rate: float = 0.5,
                     shapes: tuple[str, ...] = SHAPES, direction: int = 1,
                     spread: float | None = None) -> tuple[pd.Series, pd.DataFrame]:
    """Add incidents to whole-day ``series`` at ``rate`` per day (Poisson); see the module docstring.

    Parameters
    ----------
    series : Series
        Regular, starting at a UTC midnight, a whole number of days long (as :func:`bootstrap` gives).
    rate : float
        Expected incidents per day (0-24).
    shapes : tuple of str
        Drawn uniformly from these (subset of :data:`SHAPES`).
    direction : {1, -1}
        +1 pushes values up (for ``>`` rules), -1 down.
    spread : float, optional
        Size unit (series units); default the 99th minus the 50th percentile of ``series``.

    Returns
    -------
    (Series, DataFrame)
        The series with incidents added (NaN stays NaN) and the windows ``start, end, shape``.
    """
    if not (0 <= rate <= 24):
        raise ValidationError(f"incident rate must be 0-24 per day, got {rate}", path="rate")
    bad = [s for s in shapes if s not in SHAPES]
    if bad or not shapes:
        raise ValidationError(f"unknown incident shape(s) {bad}; expected some of {list(SHAPES)}", path="shapes")
    if direction not in (1, -1):
        raise ValidationError("direction must be 1 or -1", path="direction")
    t = series.index.as_unit("ns").asi8
    step = int(t[1] - t[0])
    slots = DAY_S * _NS // step
    n_days = t.size // slots
    v = series.to_numpy(dtype=float).copy()
    size = spread_of(v) if spread is None else float(spread)
    counts = rng.poisson(rate, size=n_days)
    n = int(counts.sum())
    day = np.repeat(np.arange(n_days), counts)
    kind = np.asarray(shapes)[rng.integers(len(shapes), size=n)]
    start_slot = rng.integers(slots, size=n)
    mins = np.where(kind == "spike", rng.uniform(5, 20, n),
                    np.where(kind == "degradation", rng.uniform(60, 240, n),
                             np.where(kind == "oscillation", rng.uniform(60, 180, n), 1440.0)))
    length = np.maximum(1, np.round(mins * 60 * _NS / step)).astype(np.int64)
    end_slot = np.minimum(start_slot + length, slots)          # confined to the day
    amp = np.where(kind == "spike", rng.uniform(1.5, 3.0, n),
                   np.where(kind == "degradation", rng.uniform(1.0, 2.0, n),
                            np.where(kind == "level_shift", rng.uniform(0.6, 1.2, n), rng.uniform(0.8, 1.5, n))))
    period = rng.uniform(10, 30, n) * 60 * _NS / step
    for i in range(n):                                          # one slice per incident (few per day)
        a, b = day[i] * slots + start_slot[i], day[i] * slots + end_slot[i]
        k = np.arange(b - a, dtype=float)
        if kind[i] == "degradation":
            shape = k / max(1.0, float(length[i] - 1))
        elif kind[i] == "oscillation":
            shape = 0.5 + 0.5 * np.sin(2 * np.pi * k / period[i])
        else:
            shape = np.ones_like(k)
        v[a:b] += direction * amp[i] * size * shape
    a_ns = t[0] + (day * slots + start_slot) * step
    b_ns = t[0] + (day * slots + end_slot - 1) * step
    windows = pd.DataFrame({"start": pd.to_datetime(a_ns, utc=True), "end": pd.to_datetime(b_ns, utc=True),
                            "shape": kind})
    return pd.Series(v, index=series.index, name=series.name), windows


def assign_units(n_units: int, split: float, rng: np.random.Generator) -> np.ndarray:
    """Arm of each unit (``True`` = B): exactly ``round(split x n_units)`` in B, in random order."""
    if not (MIN_SPLIT <= split <= MAX_SPLIT):
        raise ValidationError(f"split (share of units in B) must be {MIN_SPLIT}-{MAX_SPLIT}, got {split}",
                              path="split")
    n_b = int(round(split * n_units))
    arm = np.zeros(n_units, dtype=bool)
    arm[:n_b] = True
    return rng.permutation(arm)


# ----------------------------------------------------------------------------- outcomes
def unit_outcomes(rule: Rule, series: pd.Series, incidents: pd.DataFrame, *,
                  early_s: float = 0.0) -> pd.DataFrame:
    """Per-day outcomes of ``rule`` replayed over ``series`` (whole UTC days), judged against ``incidents``.

    Returns
    -------
    DataFrame
        One row per day: ``day`` (UTC midnight) and :data:`OUTCOMES`. ``episodes`` counts alert
        episodes (any level) starting that day, ``false_episodes`` those matching no incident,
        ``incidents`` the incidents starting that day, ``caught``/``missed`` those incidents, and
        ``delay_s`` the mean detection delay (seconds) over the day's caught incidents (NaN if none).
    """
    rp = replay(rule, series)
    eps = rp.alert_episodes()
    t0 = int(series.index[0].value)
    n_days = -(-(int(series.index[-1].value) - t0 + 1) // (DAY_S * _NS))
    inc = incidents[["start", "end"]].reset_index(drop=True)
    alerts = eps[["start", "end"]].copy()
    alerts.loc[eps["open"].to_numpy(), "end"] = pd.NaT
    a_day = (pd.DatetimeIndex(alerts["start"]).as_unit("ns").asi8 - t0) // (DAY_S * _NS)
    i_day = (pd.DatetimeIndex(inc["start"]).as_unit("ns").asi8 - t0) // (DAY_S * _NS)
    sc = score_events(alerts, inc, early_s=early_s)
    per = sc.per_incident
    caught = per["caught"].to_numpy(dtype=bool)
    delay = per["delay_s"].to_numpy(dtype=float)
    # an episode is false when it matches no incident at all: score each day's episodes alone
    false = np.zeros(n_days)
    for d in np.unique(a_day):                                   # days with episodes (<= days)
        false[d] = score_events(alerts[a_day == d], inc, early_s=early_s).fp
    n_inc = np.bincount(i_day, minlength=n_days)[:n_days]
    n_caught = np.bincount(i_day, weights=caught, minlength=n_days)[:n_days]
    dsum = np.bincount(i_day, weights=np.where(caught, delay, 0.0), minlength=n_days)[:n_days]
    with np.errstate(invalid="ignore", divide="ignore"):
        delay_mean = np.where(n_caught > 0, dsum / n_caught, np.nan)
    return pd.DataFrame({
        "day": pd.to_datetime(t0 + np.arange(n_days, dtype=np.int64) * DAY_S * _NS, utc=True),
        "episodes": np.bincount(a_day, minlength=n_days)[:n_days].astype(float),
        "false_episodes": false, "incidents": n_inc.astype(float), "caught": n_caught,
        "missed": n_inc - n_caught, "delay_s": delay_mean})


def future_days(history: pd.Series | pd.DataFrame, days: int, *, rng: np.random.Generator, rule: Rule,
                rate: float = 0.5, shapes: tuple[str, ...] = SHAPES, block: str = "day",
                incidents: pd.DataFrame | None = None) -> tuple[pd.Series, pd.DataFrame]:
    """Steps 1-2 of the module docstring: bootstrapped days with incidents, and all incident windows.

    Incidents push values the way ``rule`` alerts (up for ``>``/``>=``, down otherwise) by multiples
    of the history's spread. Returns the values and the windows ``start, end, shape`` sorted by start.
    """
    series, carried, _ = bootstrap(history, days, rng=rng, block=block, incidents=incidents)
    direction = 1 if rule.comparator in (">", ">=") else -1
    values, injected = inject_incidents(series, rng=rng, rate=rate, shapes=shapes, direction=direction,
                                        spread=spread_of(_as_series(history).to_numpy(dtype=float)))
    windows = pd.concat([carried, injected], ignore_index=True) if len(carried) else injected
    return values, windows.sort_values("start", kind="stable").reset_index(drop=True)


def simulate(history: pd.Series | pd.DataFrame, rule_a: Rule, rule_b: Rule, *, days: int = 30,
             split: float = 0.5, rate: float = 0.5, shapes: tuple[str, ...] = SHAPES, block: str = "day",
             incidents: pd.DataFrame | None = None, seed: int | None = None,
             early_s: float = 0.0) -> Simulation:
    """Simulate an A/B test of ``rule_b`` against ``rule_a`` on bootstrapped future days (module docstring).

    Parameters
    ----------
    history : Series or DataFrame
        One stored series (raw points, UTC); at least 7 whole days.
    rule_a, rule_b : Rule
        Control and candidate. The incidents' direction follows ``rule_a``'s comparator.
    days : int
        Units (days) to simulate.
    split : float
        Share of units in B (0.1-0.9).
    rate : float
        Injected incidents per day.
    incidents : DataFrame, optional
        Labelled incident windows of the history (carried with their days).
    seed : int, optional
        Seeds the bootstrap, the injection and the assignment (reproducible).
    """
    rng = np.random.default_rng(seed)
    values, windows = future_days(history, days, rng=rng, rule=rule_a, rate=rate, shapes=shapes, block=block,
                                  incidents=incidents)
    arm_b = assign_units(int(days), split, rng)
    out_a = unit_outcomes(rule_a, values, windows, early_s=early_s)
    out_b = out_a if rule_b == rule_a else unit_outcomes(rule_b, values, windows, early_s=early_s)
    cols = list(OUTCOMES)
    chosen = np.where(arm_b[:, None], out_b[cols].to_numpy(), out_a[cols].to_numpy())
    outcomes = pd.DataFrame(chosen, columns=cols)
    outcomes.insert(0, "arm", np.where(arm_b, "B", "A"))
    outcomes.insert(0, "day", out_a["day"])
    outcomes.insert(0, "unit", np.arange(int(days)))
    cf = out_a[["day"]].copy()
    for c in cols:
        cf[f"{c}_A"], cf[f"{c}_B"] = out_a[c].to_numpy(), out_b[c].to_numpy()
    return Simulation(series=values, incidents=windows, outcomes=outcomes, counterfactual=cf,
                      split=float(split), seed=seed)


def synthetic_history(days: int = 28, *, seed: int = 0, step_s: int = 60) -> pd.Series:
    """A seasonal demo series (latency-like, ms) for the command line when no stored series is named.

    Daily cycle (afternoon peak), quieter weekends, AR(1) noise; no incidents. Starts 2026-01-05
    (a Monday) UTC.
    """
    rng = np.random.default_rng(seed)
    n = int(days) * DAY_S // step_s
    t = np.arange(n) * step_s
    hour = (t % DAY_S) / 3600.0
    weekday = (t // DAY_S) % 7
    base = 120 + 30 * np.sin(2 * np.pi * (hour - 9) / 24) - np.where(weekday >= 5, 15.0, 0.0)
    e = rng.normal(0, 6, n)
    ar = lfilter([1.0], [1.0, -0.8], e)          # AR(1) noise by a linear filter (no loop over points)
    idx = pd.date_range("2026-01-05", periods=n, freq=f"{step_s}s", tz="UTC")
    return pd.Series(base + ar, index=idx, name='latency_p95_ms{service="demo"}')
