"""Actual against predicted impact of applied policy changes, and the before/after effectiveness report.

A change is a version that came into force (:func:`change_windows`): its *after window* runs from the
time it came into force (``effective_at``, or approval if later) until the next version took over, or
``now``. The actual of each stored prediction (:mod:`core.policy.prediction`) is computed by replaying
the version's rule on the points inside the after window only, never on data before the change:

``episodes_per_week``
    Episodes starting in the after window per week of it.
``time_in_alert_pct``
    Percent of the after window's evaluations firing.
``incidents_caught``
    Percent of labelled incidents starting in the after window that an episode overlaps.

The predicted interval is re-stated for the hours of data actually seen (a count over 30 hours varies
more than over a week): episodes from the stored count, span and dispersion
(:func:`core.policy.prediction.nb_interval`), time in alert from the daily shares, incidents as the
beta-binomial predictive interval of the share caught among the incidents seen. A recommendation's
own interval is used as stored. With less than :data:`MIN_HOURS` hours of data since the change the row
says so ("too little data since the change (N h of 24 h needed)") and shows no actual.

Reads only; pure functions over store reads and replays.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import betabinom

from core.alerting.prometheus import PromMapping
from core.alerting.recommend.confidence import CONFIDENCE
from core.alerting.replay import Replay, replay
from core.alerting.rules import Rule
from core.analysis.scoring import score_events
from core.data.csvsafe import to_safe_csv
from core.data.frame import series_values
from core.data.store import outcomes as osql
from core.data.store.sql import Store
from core.errors import StudioError
from core.fmt import fmt_ts
from core.policy.prediction import MEASURES, nb_interval, tia_interval
from core.policy.versions import DEFAULT_POLICY, PolicyVersion, history

#: hours of data after a change before its actual is compared with the prediction
MIN_HOURS = 24.0

OUTCOME_COLUMNS = ["version", "applied_at", "effective_at", "author", "reason", "rule", "series", "measure",
                   "predicted", "predicted_low", "predicted_high", "actual", "relative_error", "inside_interval",
                   "hours_since_change", "verdict"]
REPORT_COLUMNS = ["version", "applied_at", "effective_at", "author", "reason", "rule", "series", "change",
                  "window_h", "before_episodes_per_week", "after_episodes_per_week", "before_time_in_alert_pct",
                  "after_time_in_alert_pct", "before_incidents", "before_incidents_caught", "after_incidents",
                  "after_incidents_caught", "verdict"]


def utc(t: Any) -> pd.Timestamp:
    """``t`` (default the clock) as a UTC timestamp."""
    t = pd.Timestamp(pd.Timestamp.now(tz="UTC") if t is None else t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


# ---------------------------------------------------------------------------------------- windows
#: the end of the after window of the version still in force (all later points)
OPEN_END = pd.Timestamp("2200-01-01", tz="UTC")


@dataclass(frozen=True)
class ChangeWindow:
    """A version that was in force: from ``start`` (UTC) until ``end`` (the next version took over; None:
    still in force), with the version in force before it (``previous``, None for the first)."""

    version: PolicyVersion
    previous: PolicyVersion | None
    start: pd.Timestamp
    end: pd.Timestamp | None

    def until(self, now: pd.Timestamp) -> pd.Timestamp:
        """End of the after window: when the next version took over or, for the version still in force,
        :data:`OPEN_END` (every point stored after the change counts, also points stamped later than
        ``now``, e.g. an export from a machine whose clock runs ahead, or a replayed future)."""
        if self.end is None:
            return OPEN_END
        return now if self.end > now else self.end


def change_windows(versions: list[PolicyVersion], now: Any = None) -> list[ChangeWindow]:
    """The succession of versions in force up to ``now`` (the active version at any time is the
    highest-numbered one in force by then), oldest first."""
    t = utc(now)
    live = sorted((v for v in versions if v.in_force_from is not None and utc(v.in_force_from) <= t),
                  key=lambda v: (utc(v.in_force_from), v.number))
    out: list[ChangeWindow] = []
    for v in live:
        if out and v.number < out[-1].version.number:
            continue   # a lower number coming into force later never becomes the active version
        if out:
            last = out[-1]
            out[-1] = ChangeWindow(last.version, last.previous, last.start, utc(v.in_force_from))
        out.append(ChangeWindow(v, out[-1].version if out else None, utc(v.in_force_from), None))
    return out


def rule_of(v: PolicyVersion | None, name: str) -> Rule | None:
    """The rule called ``name`` in version ``v`` (None: no such rule, or no version)."""
    if v is None:
        return None
    d = next((r for r in v.rule_dicts if r["name"] == name), None)
    return None if d is None else Rule.from_dict(dict(d), path=f"rules[{name}]")


def window_points(store: Store, keys: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Points of ``keys`` with ``start <= ts < end``."""
    pts = store.get_points(keys, start=start, end=end)
    return pts[pts["ts"] < end]


def replay_window(rule: Rule, values: pd.Series, lookback_s: float | None = None) -> Replay | None:
    """Replay ``rule`` on ``values`` (one window's points); None when it cannot (no data, too thin)."""
    if values.notna().sum() == 0:
        return None
    try:
        return replay(rule, values, lookback_s=PromMapping().lookback_s if lookback_s is None else lookback_s)
    except StudioError:
        return None


def incidents_in(store: Store, key: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Labelled incidents of ``key`` (its own and global ones) starting in ``[start, end)``."""
    inc = store.list_incidents(key, start=start, end=end)
    if inc.empty:
        return inc
    s = pd.to_datetime(inc["start"], utc=True)
    return inc[(s >= start) & (s < end)].reset_index(drop=True)


def caught_flags(rep: Replay | None, incidents: pd.DataFrame) -> np.ndarray:
    """Per incident (row order): whether an episode of ``rep`` catches it (event scoring, one incident at
    a time with :func:`core.analysis.scoring.score_events`)."""
    if rep is None or incidents.empty:
        return np.zeros(len(incidents), dtype=bool)
    eps = rep.alert_episodes(None)
    alerts = eps[["start", "end"]].copy()
    alerts.loc[eps["open"].to_numpy(), "end"] = pd.NaT
    return np.array([score_events(alerts, incidents.iloc[[i]][["start", "end"]].reset_index(drop=True)).tp > 0
                     for i in range(len(incidents))], dtype=bool)


def measures(rep: Replay | None, incidents: pd.DataFrame) -> dict[str, Any]:
    """Actual measures of one replayed window: ``hours`` of data (first to last evaluation),
    ``episodes``, ``episodes_per_week``, ``time_in_alert_pct``, ``incidents``, ``incidents_caught``
    (count) and ``incidents_caught_pct``."""
    if rep is None or rep.ts_ns.size < 2:
        return {"hours": 0.0, "episodes": None, "episodes_per_week": None, "time_in_alert_pct": None,
                "incidents": len(incidents), "incidents_caught": None, "incidents_caught_pct": None}
    per = rep.period(None, None)
    caught = int(caught_flags(rep, incidents).sum())
    n = len(incidents)
    return {"hours": rep.span_s / 3600.0, "episodes": per["episodes"], "episodes_per_week": per["episodes_per_week"],
            "time_in_alert_pct": per["time_in_alert_pct"], "incidents": n, "incidents_caught": caught,
            "incidents_caught_pct": 100.0 * caught / n if n else None}


# ---------------------------------------------------------------------------------------- intervals
def restated_interval(row: Mapping[str, Any], hours: float, n_incidents: int = 0) -> tuple[float | None, float | None]:
    """The prediction interval of a stored prediction row for ``hours`` of data after the change (and,
    for incidents, ``n_incidents`` labelled incidents there); the stored interval when the row has no
    basis to re-state it (a recommendation's prediction)."""
    basis = row.get("basis") or {}
    if isinstance(basis, str):
        basis = json.loads(basis or "{}")
    lo, hi = row.get("predicted_low"), row.get("predicted_high")
    m = row["measure"]
    h_s = hours * 3600.0
    if m == "episodes_per_week" and "count" in basis and h_s > 0:
        _, lo, hi = nb_interval(basis["count"], basis["span_s"], h_s, basis.get("phi", 1.0))
    elif m == "time_in_alert_pct" and basis.get("daily_sd") is not None and h_s > 0:
        lo, hi = tia_interval(basis["daily_mean"], basis["daily_sd"], int(basis["days"]), h_s / 86400.0)
    elif m == "incidents_caught" and "total" in basis and n_incidents > 0:
        c, t = int(basis["caught"]), int(basis["total"])
        a = (1 - CONFIDENCE) / 2
        k_lo, k_hi = betabinom.ppf([a, 1 - a], n_incidents, c + 0.5, t - c + 0.5)
        lo, hi = 100.0 * float(k_lo) / n_incidents, 100.0 * float(k_hi) / n_incidents
    if lo is None or hi is None or _nan(lo) or _nan(hi):
        return None, None
    p = row.get("predicted")
    if not _nan(p) and m == "time_in_alert_pct":   # the point stays inside its interval, as when stored
        lo, hi = min(lo, p), max(hi, p)
    return float(lo), float(hi)


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def relative_error(actual: float | None, predicted: float | None) -> float | None:
    """``(actual - predicted) / predicted``; None when either is missing or the prediction is 0."""
    if _nan(actual) or _nan(predicted) or predicted == 0:
        return None
    return (float(actual) - float(predicted)) / float(predicted)


def thin_verdict(hours: float, need: float = MIN_HOURS) -> str:
    """``"too little data since the change (N h of 24 h needed)"`` (N: whole hours of data, rounded down)."""
    return f"too little data since the change ({math.floor(hours):.0f} h of {need:.0f} h needed)"


def judge(actual: float | None, lo: float | None, hi: float | None) -> tuple[bool | None, str]:
    """Whether ``actual`` lies in ``[lo, hi]`` and the verdict in words."""
    if _nan(actual):
        return None, "no actual"
    if lo is None or hi is None:
        return None, "no predicted interval to judge against"
    tol = 1e-9 * max(1.0, abs(float(actual)))
    if actual < lo - tol:
        return False, "below the predicted interval"
    if actual > hi + tol:
        return False, "above the predicted interval"
    return True, "as predicted (inside the interval)"


# ---------------------------------------------------------------------------------------- outcomes
def _actual_key(measure: str) -> str:
    return {"incidents_caught": "incidents_caught_pct"}.get(measure, measure)


def outcome_rows(store: Store, w: ChangeWindow, preds: pd.DataFrame, now: pd.Timestamp,
                 min_hours: float = MIN_HOURS) -> list[dict[str, Any]]:
    """Outcome rows of one change window (see :func:`change_outcomes`); ``min_hours`` of data needed."""
    v = w.version
    end = w.until(now)
    keys = sorted(set(preds["series"]))
    pts = window_points(store, keys, w.start, end) if keys else None
    base = {"version": v.number, "applied_at": utc(v.created_at), "effective_at": w.start, "author": v.author,
            "reason": v.reason}
    cache: dict[tuple[str, str], dict[str, Any]] = {}
    out = []
    for row in preds.to_dict("records"):
        name, key = row["rule"], row["series"]
        if (name, key) not in cache:
            rule = rule_of(v, name)
            inc = incidents_in(store, key, w.start, end)
            rep = replay_window(rule, series_values(pts, key)) if rule is not None and pts is not None else None
            cache[(name, key)] = measures(rep, inc)
        m = cache[(name, key)]
        hours = float(m["hours"])
        rec = {**base, "rule": name, "series": key, "measure": row["measure"], "predicted": row["predicted"],
               "predicted_low": row["predicted_low"], "predicted_high": row["predicted_high"], "actual": None,
               "relative_error": None, "inside_interval": None, "hours_since_change": hours}
        if _nan(row["predicted"]):
            rec["verdict"] = f"no prediction ({row.get('note') or 'none stored'})"
        elif hours < min_hours:
            rec["verdict"] = thin_verdict(hours, min_hours)
        elif row["measure"] == "incidents_caught" and not m["incidents"]:
            rec["verdict"] = "no labelled incident since the change"
        else:
            actual = m[_actual_key(row["measure"])]
            lo, hi = restated_interval(row, hours, int(m["incidents"] or 0))
            inside, verdict = judge(actual, lo, hi)
            rec.update(actual=actual, predicted_low=lo, predicted_high=hi,
                       relative_error=relative_error(actual, row["predicted"]), inside_interval=inside,
                       verdict=verdict)
        out.append(rec)
    return out


def change_outcomes(store: Store, policy: str = DEFAULT_POLICY, now: Any = None) -> pd.DataFrame:
    """Actual against predicted impact of every applied change of ``policy`` up to ``now``.

    Returns
    -------
    pandas.DataFrame
        One row per (version, rule, series, measure), newest version first, columns
        :data:`OUTCOME_COLUMNS`: ``version, applied_at, effective_at, author, reason, rule, series,
        measure`` (``episodes_per_week`` | ``time_in_alert_pct`` (percent) | ``incidents_caught``
        (percent of labelled incidents)), ``predicted, predicted_low, predicted_high`` (the interval
        re-stated for the hours of data seen), ``actual`` (after the change only), ``relative_error``
        (``(actual - predicted) / predicted``), ``inside_interval``, ``hours_since_change`` (hours of
        data after the change, first to last evaluation) and ``verdict`` (words; thin data gives
        "too little data since the change (N h of 24 h needed)" and no actual).
    """
    t = utc(now)
    preds = osql.predictions(store, policy)
    rows: list[dict[str, Any]] = []
    if not preds.empty:
        for w in change_windows(history(store, policy), t):
            mine = preds[preds["version"] == w.version.number]
            if not mine.empty:
                rows += outcome_rows(store, w, mine, t)
    df = pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
    return df.sort_values(["version", "rule", "series", "measure"], ascending=[False, True, True, True],
                          kind="stable").reset_index(drop=True)


def _accuracy(df: pd.DataFrame) -> dict[str, Any]:
    judged = df[df["inside_interval"].notna()]
    errs = pd.to_numeric(df["relative_error"], errors="coerce").dropna()
    return {"n": int(len(judged)), "share_inside": float(judged["inside_interval"].astype(bool).mean()) if len(judged) else None,
            "mape_pct": float(100.0 * errs.abs().mean()) if len(errs) else None, "n_mape": int(len(errs))}


def prediction_accuracy(outcomes_df: pd.DataFrame) -> dict[str, Any]:
    """Model accuracy over all judged outcomes (rows of :func:`change_outcomes` with an actual).

    Returns
    -------
    dict
        ``n`` (outcomes judged against an interval), ``share_inside`` (fraction 0-1 inside the predicted
        interval; None when n is 0), ``mape_pct`` (mean absolute percentage error, percent, over the
        ``n_mape`` rows with a non-zero prediction; None when none) and ``per_measure``: the same per
        measure.
    """
    df = outcomes_df if len(outcomes_df) else pd.DataFrame(columns=OUTCOME_COLUMNS)
    return {**_accuracy(df), "per_measure": {m: _accuracy(df[df["measure"] == m]) for m in MEASURES}}


# ---------------------------------------------------------------------------------------- report
def _side(rule: Rule | None, values: pd.Series, inc: pd.DataFrame) -> dict[str, Any]:
    if rule is None:   # the rule does not exist on this side: it fires nothing, catches nothing
        return {"hours": None, "episodes_per_week": 0.0, "time_in_alert_pct": 0.0, "incidents": len(inc),
                "incidents_caught": 0}
    return measures(replay_window(rule, values), inc)


def effectiveness_report(store: Store, policy: str = DEFAULT_POLICY, now: Any = None) -> pd.DataFrame:
    """Before against after for every applied change that replaced a version.

    For each rule the change added, altered or removed and each stored series it selects (either side):
    the previous version's rule replayed on an equal-length window *before* the change, and the new
    rule on the window *after* it (from the change until the next version or ``now``). A rule absent on
    a side fires nothing there (0 episodes). Columns :data:`REPORT_COLUMNS`; ``window_h`` is the
    after window's length in hours (the before window has the same), ``*_time_in_alert_pct`` in percent,
    ``*_incidents`` labelled incidents starting in each window and ``*_incidents_caught`` how many an
    episode caught. ``verdict`` says when the after window is thinner than :data:`MIN_HOURS`.
    """
    t = utc(now)
    keys_all = store.series_keys()
    rows: list[dict[str, Any]] = []
    for w in change_windows(history(store, policy), t):
        if w.previous is None:
            continue
        old = {r["name"]: r for r in w.previous.rule_dicts}
        new = {r["name"]: r for r in w.version.rule_dicts}
        names = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
        plan = []
        for n in names:
            ro, rn = rule_of(w.previous, n), rule_of(w.version, n)
            ks = sorted(set(ro.matching(keys_all) if ro else []) | set(rn.matching(keys_all) if rn else []))
            plan += [(n, ro, rn, k) for k in ks]
        if not plan:
            continue
        ks = sorted({p[3] for p in plan})
        end = w.until(t)
        after_pts = window_points(store, ks, w.start, end)
        if w.end is None:     # in force: until now, or the newest point if it is stamped later
            last = after_pts["ts"].max() if len(after_pts) else None
            end = t if last is None or pd.isna(last) else max(t, utc(last) + pd.Timedelta(1, "s"))
        length = end - w.start
        b0 = w.start - length
        before_pts = window_points(store, ks, b0, w.start)
        hours = length.total_seconds() / 3600.0
        for n, ro, rn, k in plan:
            b = _side(ro, series_values(before_pts, k), incidents_in(store, k, b0, w.start))
            a = _side(rn, series_values(after_pts, k), incidents_in(store, k, w.start, end))
            change = "added" if ro is None else "removed" if rn is None else "changed"
            rows.append({"version": w.version.number, "applied_at": utc(w.version.created_at),
                         "effective_at": w.start, "author": w.version.author, "reason": w.version.reason,
                         "rule": n, "series": k, "change": change, "window_h": hours,
                         "before_episodes_per_week": b["episodes_per_week"],
                         "after_episodes_per_week": a["episodes_per_week"],
                         "before_time_in_alert_pct": b["time_in_alert_pct"],
                         "after_time_in_alert_pct": a["time_in_alert_pct"],
                         "before_incidents": b["incidents"], "before_incidents_caught": b["incidents_caught"],
                         "after_incidents": a["incidents"], "after_incidents_caught": a["incidents_caught"],
                         "verdict": thin_verdict(hours) if hours < MIN_HOURS else "compared"})
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def report_csv(df: pd.DataFrame) -> bytes:
    """The effectiveness report as UTF-8 CSV (timestamps ISO 8601 UTC; cells that a spreadsheet would
    run as a formula are prefixed with a quote)."""
    return to_safe_csv(df, index=False, date_format="%Y-%m-%dT%H:%M:%SZ").encode("utf-8")


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return "-"
    if isinstance(v, pd.Timestamp):
        return fmt_ts(v)
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def report_html(df: pd.DataFrame, accuracy: Mapping[str, Any] | None = None, *, title: str = "Policy change "
                "effectiveness", generated_at: Any = None) -> str:
    """A printable, self-contained HTML page of the effectiveness report (inline CSS, no scripts or
    external assets; every value escaped), with the prediction accuracy when given."""
    esc = html.escape
    gen = utc(generated_at)
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">", f"<title>{esc(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#111}"
             "table{border-collapse:collapse;font-size:12px;width:100%}"
             "th,td{border:1px solid #bbb;padding:3px 6px;text-align:left}th{background:#eee}"
             "td.n{text-align:right}@media print{body{margin:0.5cm}tr{page-break-inside:avoid}}</style>",
             "</head><body>", f"<h1>{esc(title)}</h1>", f"<p>Generated {esc(fmt_ts(gen))} UTC. Before: the previous "
             "version's rules on a window of equal length before each change; after: the new rules on the data "
             "after it. Rates per week; time in alert in percent of evaluations.</p>"]
    if accuracy is not None:
        si, mape = accuracy.get("share_inside"), accuracy.get("mape_pct")
        parts.append("<h2>Prediction accuracy</h2><p>"
                     + esc(f"{'-' if si is None else f'{100 * si:.0f}%'} of actuals inside the predicted interval "
                           f"(n = {accuracy.get('n', 0)}); MAPE {'-' if mape is None else f'{mape:.0f}%'} "
                           f"(n = {accuracy.get('n_mape', 0)}).") + "</p>")
    if df.empty:
        parts.append("<p>No applied change replaced a version yet: nothing to compare.</p>")
    else:
        parts.append("<table><thead><tr>" + "".join(f"<th>{esc(str(c))}</th>" for c in df.columns) + "</tr></thead><tbody>")
        for rec in df.itertuples(index=False):
            parts.append("<tr>" + "".join(
                f"<td class=\"n\">{esc(_cell(v))}</td>" if isinstance(v, (int, float)) and not isinstance(v, bool)
                else f"<td>{esc(_cell(v))}</td>" for v in rec) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts)
