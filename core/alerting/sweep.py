"""Threshold sweeps: replay one rule shape at many levels, and at many ``for`` periods, at once.

:func:`sweep` answers "what would each of these thresholds have done?" for one pending period;
:func:`sweep_grid` answers it for a grid of levels by pending periods ("when would this have fired,
at every level and every ``for``?"). Every row or cell holds exactly the numbers
:func:`core.alerting.replay.replay` and :meth:`core.alerting.replay.Replay.summary` give for a rule
with that one level (the tests check them cell by cell): alert episodes, episodes per week, time in
alert and, with labelled incidents, the event scores of :func:`core.analysis.scoring.score_events`.

How it stays fast (no loop over points or over levels): the candidate levels' breach masks are laid
end to end as rows of one boolean matrix with a separator after each row, the runs of breaching
(and holding) evaluations are found once with ``np.diff``, and pending, ``keep_firing_for`` and
recovery are resolved on the run boundaries (:func:`core.alerting.replay._fire_from_runs`, cost
O(runs)). The pending period only changes how long a breach run must be before it fires, so the grid
finds the runs once and pays O(runs) per ``for``; only ``missing: keep_last``, whose carry window
grows with ``for``, needs the runs again for each distinct window. Incident scoring works on the
episodes of all levels at once (``_score_sweep``).

All in-sample: a sweep over the history the levels are being chosen from says what each candidate
would have done there, not what it will do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.alerting.replay import (
    _NS,
    WEEK_S,
    _breach,
    _carry,
    _counts,
    _fire_from_runs,
    _grid,
    _one_series,
    _runs,
    keep_last_window_s,
)
from core.alerting.rules import COMPARATORS, MISSING_MODES, parse_duration
from core.analysis.scoring import _episodes as _window_seconds
from core.analysis.scoring import event_rates
from core.errors import InsufficientDataError, ValidationError

__all__ = ["sweep", "sweep_grid", "auto_levels", "SweepGrid", "MAX_LEVELS"]

#: most levels a grid or an automatic level choice takes
MAX_LEVELS = 1000


def _row_median(a: np.ndarray) -> np.ndarray:
    """Median of the finite values of each row (NaN where a row has none), as ``np.median`` gives it."""
    if a.shape[1] == 0:
        return np.full(a.shape[0], np.nan)
    a = np.sort(np.where(np.isfinite(a), a, np.nan), axis=1)        # NaN sorts last
    k = np.isfinite(a).sum(axis=1)
    r = np.arange(a.shape[0])
    lo, hi = a[r, np.maximum(k - 1, 0) // 2], a[r, k // 2]    # the middle one, or the middle two
    return np.where(k > 0, (lo + hi) / 2, np.nan)


def _score_sweep(row: np.ndarray, ls: np.ndarray, le: np.ndarray, m: int, tg: np.ndarray,
                 inc_s: np.ndarray, inc_e: np.ndarray, early_s: float) -> dict[str, np.ndarray]:
    """Event scores of every candidate threshold's episodes at once.

    ``row, ls, le``: the firing runs of all candidates (candidate index, start and exclusive end as
    evaluation indices, ``le == n``: still firing at the end), sorted by ``(row, ls)``. ``inc_s,
    inc_e``: incident windows in epoch seconds (NaN end: open incident). Gives, per candidate, the
    numbers :func:`core.analysis.scoring.score_events` gives for that candidate's episodes (the tests check
    they are identical), without a loop over candidates:

    * times are compared as the same float seconds, turned into evaluation indices with
      ``searchsorted``: an episode matches an incident iff ``ls < ke`` (starts no later than the
      incident end) and ``le >= ks`` (ends, or is still firing, no earlier than the incident start
      minus ``early_s``);
    * a candidate's episodes are disjoint and sorted, so the ones matching an incident are one
      contiguous block ``[j0, j1]``: first start = start of ``j0``, last end = end of ``j1``;
    * an episode is a false alarm when no block covers it (a cumulative sum of block edges);
      precision, recall and F1 then come from :func:`core.analysis.scoring.event_rates` (caught incidents
      and false alarms), the definition ``score_events`` uses.

    Cost O(candidates x incidents x log episodes).
    """


    n = tg.size
    sec = tg.astype(np.float64) / 1e9                  # the seconds score_events reads timestamps as
    n_a = np.bincount(row, minlength=m)
    n_i = inc_s.size
    nan = np.full(m, np.nan)
    if n_i == 0:                                        # nothing to judge against
        return {"precision": nan, "recall": nan.copy(), "f1": nan.copy(), "false_alarms": nan.copy(),
                "detection_delay_s": nan.copy(), "reset_time_s": nan.copy()}
    ke = np.searchsorted(sec, np.where(np.isnan(inc_e), np.inf, inc_e), side="right")
    ks = np.searchsorted(sec, inc_s - early_s, side="left")
    w = np.int64(n + 2)
    base = np.arange(m, dtype=np.int64)[:, None] * w    # (m, 1): candidate r's keys live in [r w, (r+1) w)
    j0 = np.searchsorted(row * w + le, base + ks[None, :], side="left")       # first episode ending late enough
    j1 = np.searchsorted(row * w + ls, base + ke[None, :], side="left") - 1   # last episode starting early enough
    caught = j0 <= j1                                   # (m, incidents)
    n_eps = row.size
    c0, c1 = np.minimum(j0, max(n_eps - 1, 0)), np.maximum(j1, 0)
    if n_eps:
        a_end = np.where(le < n, sec[np.minimum(le, n - 1)], np.nan)      # NaN: still firing
        delay = np.where(caught, sec[ls[c0]] - inc_s[None, :], np.nan)
        reset = np.where(caught, a_end[c1] - inc_e[None, :], np.nan)
        edges = np.bincount(j0[caught], minlength=n_eps + 1) - np.bincount(j1[caught] + 1, minlength=n_eps + 1)
        hit = np.bincount(row, weights=np.cumsum(edges)[:n_eps] > 0, minlength=m)
    else:
        delay = reset = np.full(caught.shape, np.nan)
        hit = np.zeros(m)
    n_caught = caught.sum(axis=1)
    fp = n_a - hit                                      # episodes that overlap no incident: false alarms
    rates = event_rates(n_caught, fp, np.full(m, n_i))
    return {**rates, "false_alarms": fp.astype(np.int64),
            "detection_delay_s": np.where(n_caught > 0, _row_median(delay), np.nan),
            "reset_time_s": np.where(n_caught > 0, _row_median(reset), np.nan)}



# ----------------------------------------------------------------------------------- shared machinery
def _check_shape(comparator: str, missing: str, recovery_offset: float | None, consecutive: int,
                 early_s: float) -> None:
    """Validate the rule shape a sweep replays (the options every candidate shares)."""
    if comparator not in COMPARATORS:
        raise ValidationError(f"unknown comparator {comparator!r}; expected one of {list(COMPARATORS)}",
                              path="comparator")
    if missing not in MISSING_MODES:
        raise ValidationError(f"unknown missing-data mode {missing!r}; expected one of {list(MISSING_MODES)}",
                              path="missing")
    if recovery_offset is not None and not (math.isfinite(recovery_offset) and recovery_offset > 0):
        raise ValidationError(f"recovery_offset must be a finite number > 0, got {recovery_offset!r}",
                              path="recovery_offset")
    if isinstance(consecutive, bool) or int(consecutive) != consecutive or consecutive < 1:
        raise ValidationError(f"consecutive must be a whole number >= 1, got {consecutive!r}", path="consecutive")
    if not (math.isfinite(early_s) and early_s >= 0):
        raise ValidationError(f"early_s must be a finite number of seconds >= 0, got {early_s!r}", path="early_s")


def _levels_array(levels: Sequence[float] | np.ndarray, path: str) -> np.ndarray:
    thr = np.asarray(levels, dtype=np.float64).ravel()
    if thr.size == 0 or not np.isfinite(thr).all():
        raise ValidationError(f"{path} must be a non-empty array of finite numbers", path=path)
    return thr


def _level_runs(x: np.ndarray, thr: np.ndarray, comparator: str, recovery_offset: float | None,
                shapes: Sequence[tuple[int, int]], block: int,
                tick: Callable[[int], None] | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Firing runs of every candidate level, for each ``(run_need, keep_evals)`` shape.

    Returns, per shape, ``(row, ls, le)``: candidate index and start / exclusive end (evaluation
    indices; ``le == n`` still firing at the end), sorted by ``(row, ls)``. The breach and hold runs
    are found once per block of levels and shared by all shapes. ``tick(k)`` is called after each block
    of ``k`` levels.
    """
    n = x.size
    width = n + 1                  # each row ends in a separator that stops everything
    per_block = max(1, block // width)
    up = comparator in (">", ">=")
    parts: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in shapes]
    for a in range(0, thr.size, per_block):
        tb = thr[a:a + per_block, None]
        k = tb.shape[0]
        b = np.zeros((k, width), dtype=bool)
        b[:, :n] = _breach(x[None, :], tb, comparator)
        bs, be = _runs(b.ravel())
        hs, he = bs, be
        if recovery_offset is not None:
            rec = tb - recovery_offset if up else tb + recovery_offset
            h = np.zeros((k, width), dtype=bool)
            h[:, :n] = (x[None, :] >= rec) if up else (x[None, :] <= rec)
            hs, he = _runs(h.ravel())
        reset_idx = np.arange(k, dtype=np.int64) * width + n
        for j, (run_need, keep_evals) in enumerate(shapes):
            s, e = _fire_from_runs(bs, be, hs, he, k * width, reset_idx, run_need, keep_evals,
                                   recovery_offset is None)
            row = s // width
            parts[j].append((row + a, s - row * width, e - row * width))
        if tick is not None:
            tick(k)
    out = []
    for p in parts:
        out.append(tuple(np.concatenate(c) for c in zip(*p, strict=True)) if p
                   else (np.empty(0, np.int64),) * 3)
    return out   # type: ignore[return-value]


def _load_columns(row: np.ndarray, ls: np.ndarray, le: np.ndarray, m: int, n: int, interval_ns: int,
                  span: float) -> dict[str, np.ndarray]:
    """Episodes, episodes per week and time in alert of ``m`` candidates from their firing runs,
    computed as :meth:`core.alerting.replay.Replay.summary` computes them (the last evaluation has no
    duration; rates NaN over an empty span)."""
    episodes = np.bincount(row, minlength=m).astype(np.int64)
    alert_evals = np.bincount(row, weights=np.minimum(le, n - 1) - ls, minlength=m)
    t_alert = alert_evals * (interval_ns / _NS)
    return {"episodes": episodes,
            "episodes_per_week": episodes / (span / WEEK_S) if span > 0 else np.full(m, np.nan),
            "time_in_alert_s": t_alert,
            "time_in_alert_pct": 100.0 * t_alert / span if span > 0 else np.full(m, np.nan)}


def _incident_seconds(incidents: pd.DataFrame, key: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (epoch seconds, NaN end = open) of this series' and the global incident windows."""
    inc = incidents
    if "series" in inc.columns and key is not None:
        inc = inc[inc["series"].isna() | (inc["series"] == key)]
    return _window_seconds(inc, "incidents")


# ----------------------------------------------------------------------------------- one `for`
def sweep(points: pd.Series | pd.DataFrame, comparator: str, thresholds: Sequence[float] | np.ndarray, *,
          for_s: float | str = 0.0, keep_firing_for_s: float | str = 0.0, recovery_offset: float | None = None,
          consecutive: int = 1, missing: str = "nodata", interval_s: float | str | None = None,
          series: str | None = None, resolution_s: float | None = None, incidents: pd.DataFrame | None = None,
          early_s: float = 0.0, block: int = 2_000_000, lookback_s: float | str | None = None) -> pd.DataFrame:
    """Replay one rule shape at many candidate thresholds at once (vectorised across thresholds).

    Parameters
    ----------
    comparator : {">", ">=", "<", "<="}
    thresholds : array of float
        Candidate trigger values (finite).
    for_s, keep_firing_for_s, consecutive, missing, interval_s
        As in :class:`core.alerting.rules.Rule` (durations in seconds or ``"5m"`` strings).
    recovery_offset : float, optional
        Hysteresis as a distance from each threshold (> 0): recovery = threshold - offset for
        ``>``/``>=``, threshold + offset for ``<``/``<=``.
    incidents : DataFrame, optional
        Incident windows ``start, end`` (a ``series`` column keeps this series' rows and global
        ones); adds precision, recall, f1, false_alarms (episodes overlapping no incident),
        detection_delay_s and reset_time_s per threshold: the numbers
        :func:`core.analysis.scoring.score_events` gives for that threshold's episodes (its ``fp`` for
        false_alarms; NaN where it gives None), computed for all thresholds at once.
    early_s : float
        Seconds before an incident an alert may start and still count as catching it.
    block : int
        Work in blocks of about this many (threshold x evaluation) cells to bound memory.
    lookback_s : float or str, optional
        How long ``missing="keep_last"`` carries a value, as in :func:`core.alerting.replay.replay`.

    Returns
    -------
    DataFrame
        One row per threshold (input order): ``threshold, episodes, episodes_per_week,
        time_in_alert_s, time_in_alert_pct`` (+ incident columns). Firing sets shrink as a ``>``
        threshold rises, so time in alert never increases; the episode count can go either way.
    """
    _check_shape(comparator, missing, recovery_offset, consecutive, early_s)
    thr = _levels_array(thresholds, "thresholds")
    f_s = parse_duration(for_s, path="for")
    k_s = parse_duration(keep_firing_for_s, path="keep_firing_for")
    i_s = parse_duration(interval_s, path="interval") if interval_s is not None else None
    key, t, v = _one_series(points, None, series)
    tg, x, interval, src = _grid(t, v, i_s, resolution_s)
    if missing == "keep_last" and np.isnan(x).any():
        window = keep_last_window_s(f_s, int(consecutive), interval / _NS, lookback_s)
        x = _carry(x, tg, src, int(round(window * _NS)))
    n = x.size
    span = float(tg[-1] - tg[0]) / _NS
    shape = _counts(f_s, k_s, int(consecutive), interval)
    [(row, ls, le)] = _level_runs(x, thr, comparator, recovery_offset, [shape], block)
    out = pd.DataFrame({"threshold": thr, **_load_columns(row, ls, le, thr.size, n, interval, span)})
    if incidents is not None:
        inc_s, inc_e = _incident_seconds(incidents, key)
        for c, vals in _score_sweep(row, ls, le, thr.size, tg, inc_s, inc_e, early_s).items():
            out[c] = vals
    return out


# ----------------------------------------------------------------------------------- level x `for` grid
@dataclass(frozen=True)
class SweepGrid:
    """Result of :func:`sweep_grid`.

    Attributes
    ----------
    series : str or None
        Series key swept (when known).
    comparator : str
    interval_s : float
        Evaluation interval in seconds.
    span_s : float
        Seconds from the first to the last evaluation.
    cells : DataFrame
        One row per (level, for), level-major in input order: ``level, for_s, episodes,
        episodes_per_week, time_in_alert_s, time_in_alert_pct`` and, with incidents, ``incidents,
        caught, precision, recall, f1, false_alarms, false_alarms_per_week, detection_delay_s
        (median), reset_time_s (median)``. Undefined numbers are NaN (None in ``Replay.summary``).
    """

    series: str | None
    comparator: str
    interval_s: float
    span_s: float
    cells: pd.DataFrame

    def pivot(self, column: str) -> pd.DataFrame:
        """One column of the cells as a table: levels as rows, ``for`` periods (seconds) as columns."""
        return self.cells.pivot_table(index="level", columns="for_s", values=column, sort=False,
                                      dropna=False, aggfunc="first")


def sweep_grid(points: pd.Series | pd.DataFrame, comparator: str, levels: Sequence[float] | np.ndarray,
               for_values: Sequence[float | str], *, keep_firing_for_s: float | str = 0.0,
               recovery_offset: float | None = None, consecutive: int = 1, missing: str = "nodata",
               interval_s: float | str | None = None, series: str | None = None,
               resolution_s: float | None = None, incidents: pd.DataFrame | None = None, early_s: float = 0.0,
               lookback_s: float | str | None = None, block: int = 2_000_000,
               progress: Callable[[float], None] | None = None) -> SweepGrid:
    """Replay one rule shape at every level x pending period (``for``) at once. Causal, in-sample.

    Each cell holds what :func:`core.alerting.replay.replay` of a rule with that one level and that
    ``for`` (and the shared options) reports in ``summary()`` (``python -m core replay``'s
    ``summary.any``): the episodes of the alert level (not no-data episodes), episodes per week, time
    in alert and, with incidents, the event scores of :func:`core.analysis.scoring.score_events`.

    Parameters
    ----------
    points : Series or DataFrame
        One series: values indexed by UTC time, or a points frame (pick a series with ``series=``).
    comparator : {">", ">=", "<", "<="}
    levels : array of float
        Candidate trigger values (finite; at most :data:`MAX_LEVELS`).
    for_values : sequence of float or str
        Pending periods (seconds or ``"5m"`` strings), each >= 0.
    keep_firing_for_s, recovery_offset, consecutive, missing, interval_s, resolution_s, lookback_s, early_s
        As in :func:`sweep` (shared by every cell).
    incidents : DataFrame, optional
        Labelled incident windows ``start, end`` (``series`` column: this series' rows and global ones).
    block : int
        Work in blocks of about this many (level x evaluation) cells to bound memory.
    progress : callable, optional
        Called with the fraction done (0..1) as the work proceeds (for a progress bar).

    Returns
    -------
    SweepGrid

    Notes
    -----
    Cost: the breach runs of all levels are found once (O(levels x evaluations), vectorised), then
    each ``for`` costs O(runs). Under ``missing="keep_last"`` with missing evaluations the carry
    window depends on ``for`` (:func:`core.alerting.replay.keep_last_window_s`), so the runs are found
    once per distinct window.
    """
    _check_shape(comparator, missing, recovery_offset, consecutive, early_s)
    thr = _levels_array(levels, "levels")
    if thr.size > MAX_LEVELS:
        raise ValidationError(f"{thr.size} levels; a grid takes at most {MAX_LEVELS}", path="levels")
    fors = [parse_duration(f, path="for") for f in for_values]
    if not fors:
        raise ValidationError("give at least one for period", path="for")
    k_s = parse_duration(keep_firing_for_s, path="keep_firing_for")
    i_s = parse_duration(interval_s, path="interval") if interval_s is not None else None
    key, t, v = _one_series(points, None, series)
    tg, x0, interval, src = _grid(t, v, i_s, resolution_s)
    n = x0.size
    span = float(tg[-1] - tg[0]) / _NS
    # group the for periods by the series they evaluate (keep_last carries a value longer for a longer for)
    groups: dict[int, list[int]] = {}
    carry = missing == "keep_last" and bool(np.isnan(x0).any())
    for j, f in enumerate(fors):
        w = int(round(keep_last_window_s(f, int(consecutive), interval / _NS, lookback_s) * _NS)) if carry else 0
        groups.setdefault(w, []).append(j)
    total, done = thr.size * len(groups), 0

    def tick(k: int) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(min(1.0, done / total))

    runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [None] * len(fors)   # type: ignore[list-item]
    for w, js in groups.items():
        x = _carry(x0, tg, src, w) if carry else x0
        shapes = [_counts(fors[j], k_s, int(consecutive), interval) for j in js]
        for j, r in zip(js, _level_runs(x, thr, comparator, recovery_offset, shapes, block, tick), strict=True):
            runs[j] = r
    inc = _incident_seconds(incidents, key) if incidents is not None else None
    m = thr.size
    frames = []
    for j, (row, ls, le) in enumerate(runs):
        cols: dict[str, np.ndarray] = {"level": thr, "for_s": np.full(m, fors[j]),
                                        **_load_columns(row, ls, le, m, n, interval, span)}
        if inc is not None:
            sc = _score_sweep(row, ls, le, m, tg, inc[0], inc[1], early_s)
            n_i = inc[0].size
            cols["incidents"] = np.full(m, n_i, dtype=np.int64)
            cols["caught"] = np.rint(np.nan_to_num(sc["recall"]) * n_i).astype(np.int64)
            cols.update(sc)
            cols["false_alarms_per_week"] = (sc["false_alarms"] / (span / WEEK_S) if span > 0 and n_i
                                             else np.full(m, np.nan))
        frames.append(pd.DataFrame(cols).assign(_l=np.arange(m), _f=j))
    cells = (pd.concat(frames, ignore_index=True).sort_values(["_l", "_f"], kind="stable")
             .drop(columns=["_l", "_f"]).reset_index(drop=True))
    if progress is not None:
        progress(1.0)
    return SweepGrid(series=key, comparator=comparator, interval_s=interval / _NS, span_s=span, cells=cells)


def auto_levels(points: pd.Series | pd.DataFrame | np.ndarray, comparator: str, n: int) -> np.ndarray:
    """``n`` candidate levels spread over the series' own quantiles, dense in the tail the comparator
    points at (the high tail for ``>``/``>=``, the low one for ``<``/``<=``).

    The tail probabilities are geometrically spaced from 0.5 (the median) to ``1 / finite points``
    (about the most extreme value), so p50, p90, p99, p99.9 ... each get a share of the levels.
    Quantiles of the raw finite values, never averaged, taken as observed values (the empirical
    quantile, as ``numpy.quantile(method="inverted_cdf")``): a level between two observed values
    would behave exactly like one of them. Deep in the tail, where neighbouring probabilities fall on
    the same order statistic, the next order statistics outwards are taken instead (up to the most
    extreme value, never past the median), so ``n`` distinct ranks come back while the series has
    them; tied values (a series with few distinct values) are
    kept once, so fewer than ``n`` levels may come back. Ascending.

    Raises
    ------
    InsufficientDataError
        Fewer than 2 finite values.
    """
    if comparator not in COMPARATORS:
        raise ValidationError(f"unknown comparator {comparator!r}; expected one of {list(COMPARATORS)}",
                              path="comparator")
    if isinstance(n, bool) or int(n) != n or not 1 <= n <= MAX_LEVELS:
        raise ValidationError(f"the number of levels must be a whole number from 1 to {MAX_LEVELS}, got {n!r}",
                              path="auto")
    if isinstance(points, pd.DataFrame):
        vals = pd.to_numeric(points["value"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        vals = np.asarray(points, dtype=np.float64).ravel()
    finite = vals[np.isfinite(vals)]
    if finite.size < 2:
        raise InsufficientDataError(f"{finite.size} finite value(s): levels from quantiles need at least 2")
    nf = finite.size
    srt = np.sort(finite)
    tail = np.geomspace(0.5, min(0.5, 1.0 / nf), int(n)) if n > 1 else np.array([0.5])
    step = np.arange(tail.size)
    if comparator in (">", ">="):       # ranks of the (1 - tail)-quantiles, pushed apart upwards
        rank = np.ceil(nf * (1.0 - tail) - 1e-9).astype(np.int64) - 1
        rank = np.maximum(np.minimum(np.maximum.accumulate(rank - step) + step, nf - tail.size + step), rank[0])
    else:                               # ranks of the tail-quantiles, pushed apart downwards
        rank = np.ceil(nf * tail - 1e-9).astype(np.int64) - 1
        rank = np.minimum(np.maximum(np.minimum.accumulate(rank + step) - step, tail.size - 1 - step), rank[0])
    return np.unique(srt[np.clip(rank, 0, nf - 1)])
