"""Scoring alerts against incidents: event-level precision/recall and the NAB benchmark score.

Two scorers live here, both pure functions of their inputs:

* :func:`score_events` judges *episodes* (an alert firing from ``start`` to ``end``) against labelled
  incident windows. It is what rule replay uses to say "this threshold would have caught 7 of 9
  incidents and paged 3 times for nothing".
* :func:`nab_score` / :func:`nab_file_score` implement the Numenta Anomaly Benchmark scoring rule
  (see ``/work/shared/nab/README.md``) over per-row detections, for the detector evaluation in
  :mod:`core.eval`.

Times may be given as tz-aware timestamps (or strings pandas can parse; naive ones are taken as UTC)
or as plain numbers, which are read as seconds. All durations returned are in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ValidationError

__all__ = [
    "EventScore", "event_rates", "score_events", "WEEK_S",
    "NAB_PROFILES", "NabFileScore", "NabScore", "nab_file_score", "nab_score", "nab_probation",
    "nab_sigmoid",
]


# ---------------------------------------------------------------------------- event-level scoring
WEEK_S = 7 * 86400.0


@dataclass
class EventScore:
    """Event-level score of alert episodes against incident windows.

    How alerting practice judges a rule: an incident is either caught or missed, and a page either
    told someone about an incident or woke them for nothing. Repeats about an incident that was
    already announced (a flapping alert) are noise, not extra true positives, so they do not raise
    precision (they are counted in ``duplicates``).

    Attributes
    ----------
    precision : float or None
        ``tp / (tp + fp)``: caught incidents over caught incidents plus false alarms. Adding a
        duplicate episode inside an already caught incident leaves it unchanged; adding a false
        alarm lowers it. None when there is nothing to judge (no alerts, or no incidents labelled).
    recall : float or None
        Share of incidents overlapped by at least one alert episode; None when no incident is labelled.
    f1 : float or None
        Harmonic mean of precision and recall; None when either is None.
    tp : int
        Caught incidents, one per incident however many episodes overlap it (equals ``caught``).
    fp : int
        False alarms: alert episodes that overlap no incident. With no incident labelled every episode
        is counted here, but precision is None (nothing to judge against).
    fn : int
        Incidents no alert episode overlaps.
    caught : int
        Incidents overlapped by at least one alert episode (``n_incidents - fn``).
    duplicates : int
        Alert episodes that overlap an incident but are not the first alert of any incident they
        overlap (repeat pages about something already announced). ``n_alerts = fp + duplicates +``
        the number of distinct first alerts.
    false_alarms_per_week : float or None
        ``fp`` per 7 days of history when ``span_s`` is given; None without a span, with an empty
        span, or when no incident is labelled (false alarms cannot be told apart then).
    detection_delay_s : float or None
        Median, over caught incidents, of seconds from the incident start to the start of the first
        matching alert episode. Negative when the alert began before the incident (early warning, or
        an alert that was already firing). None when nothing was caught.
    reset_time_s : float or None
        Median, over caught incidents, of seconds from the incident end to the end of the last
        matching alert episode (negative: the alert cleared before the incident ended). Episodes
        still firing (no end) are left out. None when no value is available.
    per_incident : DataFrame
        One row per incident: ``start, end, caught, first_alert, delay_s, reset_s, episodes``
        (``episodes``: alert episodes overlapping that incident; more than one means it flapped).
    insufficient : bool
        True when precision or recall cannot be given honestly (see ``note``).
    note : str
        Plain-language caveat, empty when there is none.
    """

    precision: float | None
    recall: float | None
    f1: float | None
    tp: int
    fp: int
    fn: int
    detection_delay_s: float | None
    reset_time_s: float | None
    per_incident: pd.DataFrame
    insufficient: bool = False
    note: str = ""
    caught: int = 0
    n_alerts: int = 0
    n_incidents: int = 0
    duplicates: int = 0
    false_alarms_per_week: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Scalar fields as a dict (``per_incident`` left out)."""
        return {k: getattr(self, k) for k in (
            "precision", "recall", "f1", "tp", "fp", "fn", "caught", "duplicates", "n_alerts", "n_incidents",
            "false_alarms_per_week", "detection_delay_s", "reset_time_s", "insufficient", "note")}


def event_rates(caught: Any, fp: Any, n_incidents: Any) -> dict[str, np.ndarray]:
    """Precision, recall and F1 from event counts (vectorised; NaN where undefined).

    The one definition :func:`score_events` uses, for callers that count episodes their own way (e.g.
    a sweep over many thresholds at once) and must give the same numbers.

    Parameters
    ----------
    caught : array of int
        Incidents caught (overlapped by at least one alert episode).
    fp : array of int
        Alert episodes overlapping no incident.
    n_incidents : array of int
        Incidents labelled.

    Returns
    -------
    dict of arrays
        ``precision = caught / (caught + fp)`` (NaN with no incident labelled or no alert at all),
        ``recall = caught / n_incidents`` (NaN with no incident), ``f1`` their harmonic mean (0 when
        both are 0; NaN when either is NaN).
    """
    c = np.asarray(caught, dtype=np.float64)
    f = np.asarray(fp, dtype=np.float64)
    n = np.asarray(n_incidents, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(n > 0, c / n, np.nan)
        precision = np.where((n > 0) & (c + f > 0), c / (c + f), np.nan)
        f1 = np.where(precision + recall == 0, 0.0, 2 * precision * recall / (precision + recall))
    f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)
    return {"precision": precision, "recall": recall, "f1": f1}


def _to_seconds(values: Any, what: str) -> np.ndarray:
    """Times as float seconds (epoch for timestamps); NaN for missing. Numbers are read as seconds."""
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if len(s) == 0:
        return np.empty(0, dtype=np.float64)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64)
    try:
        ts = pd.to_datetime(s, utc=True)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"cannot read times: {exc}; expected timestamps or seconds", path=what) from exc
    ns = pd.DatetimeIndex(ts).as_unit("ns").asi8.astype(np.float64)
    ns[np.asarray(ts.isna())] = np.nan
    return ns / 1e9


def _episodes(df: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
    if df is None:
        return np.empty(0), np.empty(0)
    missing = [c for c in ("start", "end") if c not in df.columns]
    if missing:
        raise ValidationError(f"lacks column(s) {missing}; expected columns start, end", path=what)
    start = _to_seconds(df["start"].reset_index(drop=True), f"{what}.start")
    end = _to_seconds(df["end"].reset_index(drop=True), f"{what}.end")
    if np.isnan(start).any():
        raise ValidationError("an episode has no start time; every row needs a start", path=f"{what}.start")
    bad = np.flatnonzero(end < start)
    if bad.size:
        raise ValidationError(f"row {int(bad[0])} ends before it starts; expected end >= start",
                              path=f"{what}.end")
    return start, end


def _median_or_none(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.median(x)) if x.size else None


def _none_if_nan(x: np.ndarray) -> float | None:
    v = float(x)
    return None if np.isnan(v) else v


def score_events(alerts: pd.DataFrame, incidents: pd.DataFrame, *, early_s: float = 0.0,
                 span_s: float | None = None) -> EventScore:
    """Score alert episodes against incident windows (event level, not per point).

    An alert episode ``[a_start, a_end]`` matches an incident ``[i_start, i_end]`` when the two
    intervals overlap after the incident's start is moved ``early_s`` seconds earlier, i.e.
    ``a_start <= i_end and a_end >= i_start - early_s`` (bounds inclusive). A missing ``a_end``
    means the alert is still firing and is treated as open-ended.

    Counting follows alerting practice (see :class:`EventScore`): ``tp`` = caught incidents, one per
    incident; ``fp`` = episodes matching no incident (false alarms); episodes that only repeat an
    already announced incident are ``duplicates`` and count neither way. So precision is
    ``caught / (caught + fp)``: ten flapping episodes inside one incident plus one false alarm score
    1 / 2, the same as one clean alert plus one false alarm, and a flappier threshold never looks
    better for its flapping.

    Parameters
    ----------
    alerts : DataFrame
        Columns ``start, end``: one row per alert episode (firing interval).
    incidents : DataFrame
        Columns ``start, end``: one row per labelled incident window.
    early_s : float, default 0
        Grace period in seconds: an alert that starts up to this long before an incident still
        counts as catching it.
    span_s : float, optional
        Length in seconds of the history the alerts were drawn from; gives
        ``false_alarms_per_week`` (extrapolated when shorter than a week: say so to the user).

    Returns
    -------
    EventScore
        Precision is per page that mattered (see above), recall per incident. With no incidents
        labelled, precision and recall are None (there is no ground truth to judge alerts against);
        with incidents but no alerts, precision is None and recall is 0. Both cases set
        ``insufficient=True`` and a note.
    """
    if early_s < 0 or not np.isfinite(early_s):
        raise ValidationError(f"early_s must be a finite number of seconds >= 0, got {early_s}", path="early_s")
    if span_s is not None and not (np.isfinite(span_s) and span_s >= 0):
        raise ValidationError(f"span_s must be a finite number of seconds >= 0, got {span_s}", path="span_s")
    a_s, a_e = _episodes(alerts, "alerts")
    i_s, i_e = _episodes(incidents, "incidents")
    a_e_open = np.where(np.isnan(a_e), np.inf, a_e)
    i_e_open = np.where(np.isnan(i_e), np.inf, i_e)
    n_a, n_i = a_s.size, i_s.size

    # match matrix: incidents x alerts (both are small: episodes, not points)
    match = (a_s[None, :] <= i_e_open[:, None]) & (a_e_open[None, :] >= (i_s - early_s)[:, None])
    caught_mask = match.any(axis=1) if n_a else np.zeros(n_i, dtype=bool)
    alert_hit = match.any(axis=0) if n_i else np.zeros(n_a, dtype=bool)

    first_alert = np.full(n_i, np.nan)
    first_idx = np.full(n_i, -1, dtype=np.int64)
    last_end = np.full(n_i, np.nan)
    if n_a and n_i:
        starts = np.where(match, a_s[None, :], np.inf)
        first_idx = np.where(caught_mask, starts.argmin(axis=1), -1)
        first_alert = np.where(caught_mask, starts.min(axis=1), np.nan)
        ends = np.where(match, a_e[None, :], -np.inf)        # NaN end (still firing) propagates
        last_end = np.where(caught_mask, ends.max(axis=1), np.nan)
        last_end[~np.isfinite(last_end)] = np.nan
    delay = first_alert - i_s
    reset = last_end - i_e

    caught = int(caught_mask.sum())
    fn = n_i - caught
    fp = int((~alert_hit).sum())
    n_first = int(np.unique(first_idx[caught_mask]).size)       # distinct episodes that announced something
    duplicates = int(alert_hit.sum()) - n_first

    if n_i:
        per = incidents[["start", "end"]].reset_index(drop=True).copy()
        if n_a:
            src = alerts["start"].reset_index(drop=True)
            fa = src.iloc[np.maximum(first_idx, 0)].reset_index(drop=True)
            per["first_alert"] = fa.where(pd.Series(caught_mask))
        else:
            per["first_alert"] = np.nan
    else:
        per = pd.DataFrame({"start": [], "end": [], "first_alert": []})
    per["caught"] = caught_mask
    per["delay_s"] = delay
    per["reset_s"] = reset
    per["episodes"] = match.sum(axis=1).astype(np.int64) if n_a else np.zeros(n_i, dtype=np.int64)
    per = per[["start", "end", "caught", "first_alert", "delay_s", "reset_s", "episodes"]]

    rates = event_rates(caught, fp, n_i)
    insufficient, notes = False, []
    if n_i == 0:
        insufficient = True
        notes.append(f"no incidents labelled, so the {n_a} alert episode(s) cannot be judged; "
                     "precision and recall need at least one incident")
    elif n_a == 0:
        insufficient = True
        notes.append(f"no alert fired: precision is undefined; 0 of {n_i} incident(s) caught")
    fa_week = fp / (span_s / WEEK_S) if span_s and n_i else None
    return EventScore(
        precision=_none_if_nan(rates["precision"]), recall=_none_if_nan(rates["recall"]),
        f1=_none_if_nan(rates["f1"]), tp=caught, fp=fp, fn=fn,
        detection_delay_s=_median_or_none(delay[caught_mask]) if caught else None,
        reset_time_s=_median_or_none(reset[caught_mask]) if caught else None,
        per_incident=per, insufficient=insufficient, note="; ".join(notes),
        caught=caught, n_alerts=n_a, n_incidents=n_i, duplicates=duplicates,
        false_alarms_per_week=fa_week,
    )


# ---------------------------------------------------------------------------- NAB scoring
NAB_PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}


def nab_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid ``s(x) = 2 / (1 + exp(5 x)) - 1`` (1 at -inf, 0 at 0, -1 at +inf)."""
    x = np.asarray(x, dtype=np.float64)
    return 2.0 / (1.0 + np.exp(np.clip(5.0 * x, -700, 700))) - 1.0


_S_FIRST = float(nab_sigmoid(-1.0))   # weight of a window's first row before rescaling


def nab_probation(n_rows: int) -> int:
    """Rows in NAB's probationary period: 15% of the file, at most 750 (detections there are ignored)."""
    return int(min(np.floor(0.15 * n_rows), 750))


@dataclass
class NabFileScore:
    """NAB outcome for one file under one profile. ``raw``/``null``/``perfect`` are in profile units."""

    name: str
    profile: str
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int
    windows: int
    fp_cost: float
    tp_gain: float


@dataclass
class NabScore:
    """NAB score summed over files: ``normalised = 100 (raw - null) / (perfect - null)`` (None if no window)."""

    profile: str
    raw: float
    null: float
    perfect: float
    normalised: float | None
    per_file: pd.DataFrame = field(repr=False)


def _window_rows(ts_ns: np.ndarray, windows: Iterable[Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """First and last row index of each window (inclusive); windows with no row are dropped."""
    wins = list(windows)
    if not wins:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    st = pd.DatetimeIndex(pd.to_datetime([w[0] for w in wins], utc=True)).as_unit("ns").asi8
    en = pd.DatetimeIndex(pd.to_datetime([w[1] for w in wins], utc=True)).as_unit("ns").asi8
    order = np.argsort(st, kind="stable")
    left = np.searchsorted(ts_ns, st[order], side="left")
    right = np.searchsorted(ts_ns, en[order], side="right") - 1
    keep = right >= left
    return left[keep].astype(np.int64), right[keep].astype(np.int64)


def nab_file_score(timestamps: Any, detections: Any, windows: Iterable[Sequence[Any]], *,
                   profile: str = "standard", name: str = "") -> NabFileScore:
    """NAB score of one file's per-row detections.

    Parameters
    ----------
    timestamps : array-like of datetimes
        Row times, sorted ascending (naive times are taken as UTC).
    detections : array-like of bool
        True where the detector fired (score at or above the shared threshold).
    windows : iterable of (start, end)
        Labelled anomaly windows (inclusive bounds).
    profile : {"standard", "reward_low_FP", "reward_low_FN"}
    name : str
        File name carried into the result.

    Notes
    -----
    Detections in the first :func:`nab_probation` rows are ignored. In a window of ``w`` rows ending at
    row ``r`` the earliest detection ``i`` earns ``TP * s(p) / s(-1)`` with ``p = -(r - i + 1) / w``
    (exactly ``TP`` on the window's first row). A missed window costs ``FN``. A detection outside every
    window adds ``FP * s(q)`` (a negative amount) with ``q = (i - r_prev) / (w_prev - 1)`` after the
    preceding window, or ``s = -1`` when there is none or ``q > 3``.
    """
    if profile not in NAB_PROFILES:
        raise ValidationError(f"unknown NAB profile {profile!r}; expected one of {sorted(NAB_PROFILES)}",
                              path="profile")
    wt = NAB_PROFILES[profile]
    ts_ns = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True)).as_unit("ns").asi8
    det = np.asarray(detections, dtype=bool)
    if det.shape != ts_ns.shape:
        raise ValidationError(f"{det.size} detections for {ts_ns.size} rows; expected one per row",
                              path="detections")
    n = ts_ns.size
    left, right = _window_rows(ts_ns, windows)
    width = right - left + 1
    d = np.flatnonzero(det)
    d = d[d >= nab_probation(n)]

    # true positives: earliest detection inside each window
    k = np.searchsorted(d, left, side="left")
    first = np.append(d, np.iinfo(np.int64).max)[k]               # sentinel: no detection after
    hit = first <= right
    p = -(right - first + 1) / width
    tp_gain = float(np.sum(wt["tp"] * nab_sigmoid(p[hit]) / _S_FIRST)) if hit.any() else 0.0
    n_tp = int(hit.sum())
    n_fn = int(left.size - n_tp)

    # false positives: detections in no window, weighted by distance after the preceding window
    in_win = np.zeros(d.size, dtype=bool)
    if left.size and d.size:
        j = np.searchsorted(left, d, side="right") - 1          # last window starting at or before d
        in_win = (j >= 0) & (d <= right[np.maximum(j, 0)])
    fps = d[~in_win]
    fp_cost = 0.0
    if fps.size:
        s = np.full(fps.size, -1.0)
        if left.size:
            jp = np.searchsorted(right, fps, side="left") - 1     # last window ending before the FP
            has = jp >= 0
            wprev = width[np.maximum(jp, 0)]
            with np.errstate(divide="ignore", invalid="ignore"):
                q = (fps - right[np.maximum(jp, 0)]) / (wprev - 1.0)
            q = np.where(wprev > 1, q, np.inf)
            s = np.where(has & (q <= 3.0), nab_sigmoid(q), -1.0)
        fp_cost = float(np.sum(wt["fp"] * s))
    raw = tp_gain + fp_cost - wt["fn"] * n_fn
    return NabFileScore(name=name, profile=profile, raw=raw, null=-wt["fn"] * left.size,
                        perfect=wt["tp"] * left.size, tp=n_tp, fp=int(fps.size), fn=n_fn,
                        windows=int(left.size), fp_cost=fp_cost, tp_gain=tp_gain)


def normalised(raw: float, null: float, perfect: float) -> float | None:
    """``100 (raw - null) / (perfect - null)``; None when there is no window (perfect == null)."""
    return None if perfect == null else 100.0 * (raw - null) / (perfect - null)


def nab_score(files: Mapping[str, tuple[Any, Any]], windows: Mapping[str, Iterable[Sequence[Any]]],
              profile: str = "standard") -> NabScore:
    """NAB score over several files.

    Parameters
    ----------
    files : mapping name -> (timestamps, detections)
        Per-row timestamps and boolean detections of each file.
    windows : mapping name -> list of (start, end)
        Labelled windows per file (a file missing from the mapping has none).
    profile : str
        One of :data:`NAB_PROFILES`.

    Returns
    -------
    NabScore
        Summed raw, null and perfect scores, the normalised score and a per-file table
        (``file, raw, null, perfect, tp, fp, fn, windows``).
    """
    rows = [nab_file_score(ts, det, windows.get(name, []), profile=profile, name=name)
            for name, (ts, det) in files.items()]
    per = pd.DataFrame([{k: getattr(r, k) for k in ("name", "raw", "null", "perfect", "tp", "fp", "fn",
                                                    "windows")} for r in rows],
                       columns=["name", "raw", "null", "perfect", "tp", "fp", "fn", "windows"])
    raw, null, perfect = float(per["raw"].sum()), float(per["null"].sum()), float(per["perfect"].sum())
    return NabScore(profile=profile, raw=raw, null=null, perfect=perfect,
                    normalised=normalised(raw, null, perfect), per_file=per)
