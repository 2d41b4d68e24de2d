"""Data quality of metric series: completeness, regularity, validity and a 0-100 score.

Nothing here fills, interpolates or drops data: gaps are measured, NaN and infinite values are
counted, duplicates are counted. The numbers describe the series as it was received.

Definitions (all times in seconds)
----------------------------------
resolution_s
    The sampling step: the most common step between consecutive distinct timestamps when it
    accounts for at least half of the steps, otherwise the median step.
gap
    A step longer than ``gap_factor`` (default 1.5) x the resolution. A gap's duration is the time
    in which points were expected but none came: ``step - resolution``. With one-minute data and
    ten missing minutes the step is 660 s and the gap lasts **600 s** (ten expected points).
    In :func:`gap_table` a gap runs from the first missing slot (``previous point + resolution``)
    to the next point received (exclusive), so ``end - start == duration_s``.
missing_pct
    ``100 * sum(gap durations) / (span_s + resolution_s)``: the share of the expected time (the
    span plus the last point's own slot) in which no point was received. One missing minute in a
    day of one-minute data is ``100 * 60 / 86400``.
duplicates
    Rows whose timestamp repeats an earlier row's (``points - distinct timestamps``). Later
    analysis keeps the last value, as the store does.
nan / inf
    Values reported as missing (NaN) and infinite values. Neither is filled.
flat_pct
    Share of the finite points that lie in a *flat run*: at least ``flat_min_points`` (default 30)
    consecutive points with the identical value, not interrupted by a gap.
counter_resets
    For ``kind == "counter"`` only (None otherwise): how often the value decreased from one finite
    point to the next.
staleness_s
    ``now - last timestamp``, only when ``now`` is given (None otherwise). Reported as an issue
    when older than ``max(1 hour, 10 x resolution)``, but **not** part of the score: a historical
    export is not of worse quality for being old.

Score (0-100) and grade
-----------------------
``score = 100 - sum of penalties``, each ``weight * min(1, share / saturation)``:

============== ====== ========================================== ==========
component      weight share                                      saturation
============== ====== ========================================== ==========
completeness   50     missing time + NaN points, of expected     20 %
flat lines     20     flat_pct / 100                             50 %
duplicates     10     duplicates / points                        5 %
invalid        10     infinite values / points                   1 %
counter resets 10     resets / finite points (counters only)     1 %
============== ====== ========================================== ==========

Grades: A >= 90, B >= 80, C >= 70, D >= 60, F below. With fewer than ``min_points`` (default 10)
finite values the score is None and the grade ``"insufficient"``: too little data to judge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.data.frame import ts_ns, validate_points
from core.errors import ValidationError
from core.fmt import fmt_duration

GAP_FACTOR = 1.5
FLAT_MIN_POINTS = 30
MIN_POINTS = 10
STALE_MIN_S = 3600.0

#: ``component: (weight, saturation share)`` of the score; weights sum to 100.
WEIGHTS: dict[str, tuple[float, float]] = {
    "completeness": (50.0, 0.20),
    "flat": (20.0, 0.50),
    "duplicates": (10.0, 0.05),
    "invalid": (10.0, 0.01),
    "counter_resets": (10.0, 0.01),
}
GRADES: tuple[tuple[float, str], ...] = ((90.0, "A"), (80.0, "B"), (70.0, "C"), (60.0, "D"), (-1.0, "F"))

REPORT_COLUMNS = ["series", "points", "start", "end", "span_s", "resolution_s", "gaps", "longest_gap_s",
                  "missing_pct", "duplicates", "nan", "inf", "flat_pct", "counter_resets", "staleness_s",
                  "score", "grade", "issues"]

_NS = 1_000_000_000


@dataclass
class SeriesQuality:
    """Quality of one series. Times in seconds, shares in percent (0-100)."""

    series: str | None
    kind: str
    points: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    span_s: float | None
    resolution_s: float | None
    gaps: int
    longest_gap_s: float
    missing_pct: float | None
    duplicates: int
    nan: int
    inf: int
    flat_pct: float | None
    flat_runs: int
    counter_resets: int | None
    staleness_s: float | None
    score: float | None
    grade: str
    issues: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["issues"] = list(self.issues)
        return d


def _timestamp(now: Any) -> pd.Timestamp | None:
    if now is None:
        return None
    ts = pd.Timestamp(now)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _resolution_ns(steps: np.ndarray) -> int | None:
    """Robust sampling step: the mode if it covers at least half of the steps, else the median."""
    if steps.size == 0:
        return None
    # fast path (regular series): a value covering at least half of the steps is the median step,
    # and then it is the mode np.unique would pick (two values covering half each average to neither)
    med = np.median(steps)
    if med == int(med) and 2 * int(np.count_nonzero(steps == int(med))) >= steps.size:
        return int(med)
    uniq, counts = np.unique(steps, return_counts=True)
    i = int(np.argmax(counts))
    if counts[i] * 2 >= steps.size:
        return int(uniq[i])
    return int(np.median(steps))


def _sorted_unique(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Sort by time (stable) and keep the last row of each timestamp. Returns ``(t, v, duplicates)``."""
    if t.size > 1 and np.any(t[1:] < t[:-1]):
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
    last = np.ones(t.size, dtype=bool)
    if t.size > 1:
        last[:-1] = t[1:] != t[:-1]
    return t[last], v[last], int(t.size - last.sum())


def _assess(t: np.ndarray, v: np.ndarray, *, series: str | None, kind: str, now: pd.Timestamp | None,
            gap_factor: float, flat_min_points: int, min_points: int) -> SeriesQuality:
    """Core of :func:`assess_series` on int64 ns timestamps and float values (any order)."""
    n = int(t.size)
    nan = int(np.isnan(v).sum())
    inf = int(np.isinf(v).sum())
    tu, vu, duplicates = _sorted_unique(t, v)
    finite = np.isfinite(vu)
    n_finite = int(finite.sum())

    start = end = None
    span_s = resolution_s = missing_pct = flat_pct = staleness_s = None
    gaps = flat_runs = 0
    longest_gap_s = 0.0
    completeness_share = 0.0
    gap_mask = np.zeros(max(tu.size - 1, 0), dtype=bool)
    if tu.size:
        start = pd.Timestamp(int(tu[0]), unit="ns", tz="UTC")
        end = pd.Timestamp(int(tu[-1]), unit="ns", tz="UTC")
        span_s = (int(tu[-1]) - int(tu[0])) / _NS
        if now is not None:
            staleness_s = (now - end).total_seconds()
    steps = np.diff(tu)
    res = _resolution_ns(steps)
    if res is not None and res > 0:
        resolution_s = res / _NS
        gap_mask = steps > gap_factor * res
        gaps = int(gap_mask.sum())
        missing = (steps[gap_mask] - res).astype(np.float64)
        longest_gap_s = float(missing.max()) / _NS if gaps else 0.0
        expected_ns = float(int(tu[-1]) - int(tu[0]) + res)
        missing_pct = 100.0 * float(missing.sum()) / expected_ns
        expected_points = expected_ns / res
        completeness_share = missing_pct / 100.0 + nan / expected_points

    # flat runs: identical finite consecutive values, broken by gaps
    if n_finite:
        brk = np.ones(vu.size, dtype=bool)
        if vu.size > 1:
            brk[1:] = (vu[1:] != vu[:-1]) | gap_mask | ~finite[1:] | ~finite[:-1]
        run_id = np.cumsum(brk) - 1
        lengths = np.bincount(run_id)
        run_finite = finite[brk]
        flat = (lengths >= flat_min_points) & run_finite
        flat_runs = int(flat.sum())
        flat_pct = 100.0 * float(lengths[flat].sum()) / n_finite

    counter_resets = None
    if kind == "counter":
        fv = vu[finite]
        counter_resets = int((np.diff(fv) < 0).sum()) if fv.size > 1 else 0

    issues: list[str] = []
    if gaps:
        issues.append(f"{gaps} gap{'s' * (gaps != 1)} (longest {fmt_duration(longest_gap_s)}); "
                      f"{missing_pct:.2f}% of the expected time has no points")
    if nan:
        issues.append(f"{nan} value{'s' * (nan != 1)} reported as missing (NaN)")
    if inf:
        issues.append(f"{inf} infinite value{'s' * (inf != 1)}")
    if duplicates:
        issues.append(f"{duplicates} repeated timestamp{'s' * (duplicates != 1)} (last value kept)")
    if flat_runs:
        issues.append(f"flat for {flat_pct:.1f}% of points ({flat_runs} run{'s' * (flat_runs != 1)} of "
                      f">= {flat_min_points} identical values)")
    if counter_resets:
        issues.append(f"{counter_resets} counter reset{'s' * (counter_resets != 1)} (value decreased)")
    if staleness_s is not None and staleness_s > max(STALE_MIN_S, 10 * (resolution_s or 0.0)):
        issues.append(f"stale: last point {fmt_duration(staleness_s)} before {now.isoformat()}")

    if n_finite < min_points:
        score, grade = None, "insufficient"
        issues.insert(0, f"only {n_finite} finite value{'s' * (n_finite != 1)}; at least {min_points} "
                         "are needed for a quality score")
    else:
        shares = {
            "completeness": completeness_share,
            "flat": (flat_pct or 0.0) / 100.0,
            "duplicates": duplicates / n,
            "invalid": inf / n,
            "counter_resets": (counter_resets or 0) / n_finite,
        }
        penalty = sum(w * min(1.0, shares[k] / sat) for k, (w, sat) in WEIGHTS.items())
        score = round(max(0.0, 100.0 - penalty), 1)
        grade = next(g for lo, g in GRADES if score >= lo)

    return SeriesQuality(series=series, kind=kind, points=n, start=start, end=end, span_s=span_s,
                         resolution_s=resolution_s, gaps=gaps, longest_gap_s=longest_gap_s,
                         missing_pct=missing_pct, duplicates=duplicates, nan=nan, inf=inf, flat_pct=flat_pct,
                         flat_runs=flat_runs, counter_resets=counter_resets, staleness_s=staleness_s,
                         score=score, grade=grade, issues=issues)


def _index_ns(values: pd.Series) -> np.ndarray:
    if not isinstance(values.index, pd.DatetimeIndex):
        raise ValidationError(f"series must be indexed by timestamps, not {type(values.index).__name__}",
                              path="index")
    idx = values.index
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return idx.as_unit("ns").asi8


def assess_series(values: pd.Series, kind: str = "gauge", now: Any = None, *,
                  gap_factor: float = GAP_FACTOR, flat_min_points: int = FLAT_MIN_POINTS,
                  min_points: int = MIN_POINTS) -> SeriesQuality:
    """Assess one series (values indexed by UTC timestamps; a naive index is taken as UTC).

    Parameters
    ----------
    values : pandas.Series
        Float values indexed by timestamp, in any order; NaN/inf and repeated timestamps allowed.
    kind : str
        ``gauge``, ``counter``, ``rate`` or ``histogram_quantile``; resets are counted for counters.
    now : timestamp-like, optional
        Reference time for ``staleness_s`` (seconds). Without it staleness is not assessed.
    gap_factor : float
        A step longer than this many resolutions is a gap.
    flat_min_points : int
        Minimum length (points) of a run of identical values to count as flat.
    min_points : int
        Fewer finite values than this give ``score=None`` and grade ``"insufficient"``.

    Returns
    -------
    SeriesQuality
        See the module docstring for every definition and the score's weights.
    """
    t = _index_ns(values)
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    return _assess(t, v, series=None if values.name is None else str(values.name), kind=kind,
                   now=_timestamp(now), gap_factor=gap_factor, flat_min_points=flat_min_points,
                   min_points=min_points)


def quality_report(points: pd.DataFrame, kinds: Mapping[str, str] | None = None, now: Any = None, *,
                   gap_factor: float = GAP_FACTOR, flat_min_points: int = FLAT_MIN_POINTS,
                   min_points: int = MIN_POINTS) -> pd.DataFrame:
    """One row per series of a points frame with the columns of :data:`REPORT_COLUMNS`.

    ``counter_resets`` is a nullable integer column (``<NA>`` for series that are not counters);
    ``score`` is NaN where the grade is ``"insufficient"``. ``issues`` holds a list of strings.

    ``kinds`` maps series keys to kinds (default ``gauge``). Rows are sorted by series key. The
    frame is sorted once; each series is then assessed with array operations on its slice.
    """
    pts = validate_points(points)
    if pts.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in REPORT_COLUMNS})
    codes, keys = pd.factorize(pts["series"], sort=True)
    return quality_from_arrays([str(k) for k in keys], codes.astype(np.int64), ts_ns(pts["ts"]),
                               pts["value"].to_numpy(dtype=np.float64), kinds, now, gap_factor=gap_factor,
                               flat_min_points=flat_min_points, min_points=min_points)


def quality_from_arrays(keys: Sequence[str], code: np.ndarray, t_ns: np.ndarray, values: np.ndarray,
                        kinds: Mapping[str, str] | None = None, now: Any = None, *,
                        gap_factor: float = GAP_FACTOR, flat_min_points: int = FLAT_MIN_POINTS,
                        min_points: int = MIN_POINTS) -> pd.DataFrame:
    """:func:`quality_report` of points given as arrays (as ``Store.point_arrays`` returns them).

    ``code[i]`` is point i's index into ``keys``, ``t_ns`` its time (int64 nanoseconds, UTC) and
    ``values`` its value (float64, NaN = missing); any order. One row per series that has points,
    sorted by key, exactly as :func:`quality_report` gives for the same points.
    """
    code = np.asarray(code, dtype=np.int64)
    t = np.asarray(t_ns, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if code.size == 0:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in REPORT_COLUMNS})
    keys = [str(k) for k in keys]
    change = code[1:] != code[:-1]
    starts = np.r_[0, np.flatnonzero(change) + 1]
    if np.unique(code[starts]).size != starts.size:   # a series in several pieces: bring them together
        order = np.argsort(code, kind="stable")
        code, t, v = code[order], t[order], v[order]
        starts = np.r_[0, np.flatnonzero(code[1:] != code[:-1]) + 1]
    stops = np.r_[starts[1:], code.size]
    ref = _timestamp(now)
    kinds = kinds or {}
    rows = []
    for a, b in zip(starts, stops, strict=True):   # per series; _assess sorts by time when needed
        key = keys[code[a]]
        q = _assess(t[a:b], v[a:b], series=key, kind=kinds.get(key, "gauge"), now=ref,
                    gap_factor=gap_factor, flat_min_points=flat_min_points, min_points=min_points)
        rows.append(q.to_dict())
    rows.sort(key=lambda r: r["series"])
    rep = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    rep["counter_resets"] = rep["counter_resets"].astype("Int64")  # <NA> where not a counter
    return rep


def gap_table(values: pd.Series, *, gap_factor: float = GAP_FACTOR) -> pd.DataFrame:
    """The gaps of one series, for shading on charts.

    Returns a frame with ``start`` (first missing slot: previous point + resolution), ``end`` (the
    next point received; exclusive) and ``duration_s`` (``end - start`` in seconds). Empty when
    there are no gaps or fewer than two distinct timestamps.
    """
    t = _index_ns(values)
    tu, _, _ = _sorted_unique(t, np.zeros(t.size))
    steps = np.diff(tu)
    res = _resolution_ns(steps)
    if res is None or res <= 0:
        idx = np.flatnonzero(np.zeros(0, dtype=bool))
    else:
        idx = np.flatnonzero(steps > gap_factor * res)
        res = int(res)
    start = pd.to_datetime(tu[idx] + (res or 0), unit="ns", utc=True)
    end = pd.to_datetime(tu[idx + 1], unit="ns", utc=True)
    return pd.DataFrame({"start": start, "end": end,
                         "duration_s": (end - start).total_seconds().astype(np.float64)})
