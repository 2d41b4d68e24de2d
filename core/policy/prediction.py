"""Predicted impact of a policy change, stored with the version that makes it.

For every rule a change adds or alters, and every stored series the new rule selects, three measures
are predicted, each with a 90 % interval (:data:`core.alerting.recommend.confidence.CONFIDENCE`):

``episodes_per_week``
    From a recommendation when the change carries one (its ``predicted_episodes_per_week`` and
    ``predicted_interval``, source ``recommendation``); otherwise from a replay of the new rule on the
    last :data:`WINDOW_DAYS` days of history before the change (source ``replay``): the count of
    episodes starting in the window, overdispersed by the day-to-day variation
    (:func:`~core.alerting.recommend.confidence.dispersion`), as a negative-binomial predictive interval
    for a later window (:func:`~core.alerting.recommend.confidence.nb_rate_interval`). The stored
    interval is for one week after the change; :mod:`core.policy.outcomes` re-states it for the hours of
    data actually seen (``basis`` keeps the count, span and dispersion).
``time_in_alert_pct``
    Percent of evaluations firing in the same window; interval from the daily shares (mean +- t x sd x
    sqrt(1/D + 1/H) for D days seen and H days predicted, clipped to 0-100; days treated as independent).
    Fewer than 4 days with data: the point only, no interval.
``incidents_caught``
    Percent of labelled incidents the new rule catches, replayed on the whole history before the change
    (incidents are rare, a 28-day window rarely holds one); Jeffreys interval on caught of labelled.
    No labelled incident: no number (``note`` says so).

A rule removed by the change gets no prediction. Nothing here writes; the rows go into the store in
the version's own transaction (:func:`core.policy.versions.apply`). Reads only data before ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta
from scipy.stats import t as student_t

from core.alerting.prometheus import PromMapping
from core.alerting.recommend.confidence import CONFIDENCE, dispersion, nb_rate_interval
from core.alerting.replay import replay
from core.alerting.rules import Rule
from core.data.frame import series_values
from core.data.store import audit
from core.data.store.sql import Store
from core.errors import StudioError

MEASURES = ("episodes_per_week", "time_in_alert_pct", "incidents_caught")
#: days of history before a change that a replay prediction is computed on
WINDOW_DAYS = 28
#: the horizon (seconds) of the stored interval: one week after the change
HORIZON_S = 7 * 86400.0
MIN_DAYS_TIA = 4
_NS = 1_000_000_000


def affected_rules(old: Iterable[Mapping[str, Any]], new: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rule dicts of ``new`` that are added or differ from the rule of the same name in ``old``."""
    before = {r["name"]: dict(r) for r in old}
    return [dict(r) for r in new if before.get(r["name"]) != dict(r)]


def nb_interval(count: int, span_s: float, horizon_s: float, phi: float) -> tuple[float, float, float]:
    """Episodes/week ``(rate, low, high)`` for ``count`` episodes over ``span_s`` seconds, predicted for a
    later window of ``horizon_s`` seconds (:func:`~core.alerting.recommend.confidence.nb_rate_interval`)."""
    return nb_rate_interval(int(count), float(span_s), float(horizon_s), float(phi))


def tia_interval(mean: float, sd: float, days: int, horizon_days: float) -> tuple[float | None, float | None]:
    """Predictive interval (percent) of the time in alert over ``horizon_days`` days from ``days`` daily
    shares with mean ``mean`` and standard deviation ``sd`` (None, None with fewer than 4 days)."""
    if days < MIN_DAYS_TIA or not (math.isfinite(mean) and math.isfinite(sd)) or horizon_days <= 0:
        return None, None
    q = float(student_t.ppf((1 + CONFIDENCE) / 2, days - 1))
    half = q * sd * math.sqrt(1.0 / days + 1.0 / horizon_days)
    return max(0.0, mean - half), min(100.0, mean + half)


def share_interval(caught: int, total: int) -> tuple[float, float]:
    """Jeffreys interval (percent) of a share ``caught`` of ``total`` (90 %)."""
    a = (1 - CONFIDENCE) / 2
    lo = 0.0 if caught == 0 else float(beta.ppf(a, caught + 0.5, total - caught + 0.5))
    hi = 1.0 if caught == total else float(beta.ppf(1 - a, caught + 0.5, total - caught + 0.5))
    return 100.0 * lo, 100.0 * hi


def _row(rule: str, key: str, measure: str, value: float | None, low: float | None, high: float | None,
         source: str, start: Any, end: Any, basis: dict[str, Any] | None = None,
         note: str | None = None) -> dict[str, Any]:
    def num(x: Any) -> float | None:
        return None if x is None or not math.isfinite(float(x)) else float(x)
    return {"rule": rule, "series": key, "measure": measure, "predicted": num(value), "predicted_low": num(low),
            "predicted_high": num(high), "source": source, "window_start": start, "window_end": end,
            "basis": audit.canonical_json(basis or {}), "note": note}


def _daily_tia(rep: Any, t0: int) -> np.ndarray:
    """Percent of evaluations firing per UTC day from ``t0`` (ns) on (days with evaluations only)."""
    tg = np.asarray(rep.ts_ns, dtype=np.int64)
    keep = tg >= t0
    if not keep.any():
        return np.zeros(0)
    firing = np.zeros(tg.size, dtype=bool)
    for m in rep.firing.values():
        firing |= m
    day = tg[keep] // (86400 * _NS)
    day -= day.min()
    n = np.bincount(day)
    fired = np.bincount(day, weights=firing[keep].astype(float))
    return 100.0 * fired[n > 0] / n[n > 0]


def _measure_replay(rule: Rule, name: str, key: str, values: pd.Series, incidents: pd.DataFrame,
                    now: pd.Timestamp, lookback_s: float) -> list[dict[str, Any]]:
    """The three prediction rows of one rule on one series from a replay of ``values`` (all before now)."""
    start = now - pd.Timedelta(days=WINDOW_DAYS)
    rows: list[dict[str, Any]] = []
    try:
        rep = replay(rule, values, lookback_s=lookback_s)
        first = pd.Timestamp(int(rep.ts_ns[0]), tz="UTC") if rep.ts_ns.size else now
        w0 = max(start, first)
        per = rep.period(w0, None)
    except StudioError as exc:
        return [_row(name, key, m, None, None, None, "replay", start, now, note=f"no prediction: {exc}")
                for m in MEASURES]
    span = float(per["span_s"])
    t0, t1 = w0.value, int(per["end"].value)
    eps = rep.alert_episodes(None)
    st = eps["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    n = int(per["episodes"])
    phi = dispersion(st, t0, t1)
    if span > 0:
        rate, lo, hi = nb_interval(n, span, HORIZON_S, phi)
        rows.append(_row(name, key, "episodes_per_week", rate, lo, hi, "replay", w0, per["end"],
                         {"count": n, "span_s": span, "phi": phi, "horizon_s": HORIZON_S}))
    else:
        rows.append(_row(name, key, "episodes_per_week", None, None, None, "replay", w0, per["end"],
                         note="no prediction: no evaluation in the window"))
    daily = _daily_tia(rep, t0)
    mean_d = float(daily.mean()) if daily.size else math.nan
    sd_d = float(daily.std(ddof=1)) if daily.size > 1 else math.nan
    lo_t, hi_t = tia_interval(mean_d, sd_d, int(daily.size), HORIZON_S / 86400)
    tia = per["time_in_alert_pct"]
    if lo_t is not None and hi_t is not None and tia is not None:   # the point always inside its interval
        lo_t, hi_t = min(lo_t, tia), max(hi_t, tia)
    rows.append(_row(name, key, "time_in_alert_pct", tia, lo_t, hi_t, "replay", w0,
                     per["end"], {"days": int(daily.size), "daily_mean": mean_d if daily.size else None,
                                  "daily_sd": sd_d if daily.size > 1 else None},
                     None if lo_t is not None else f"{daily.size} day(s) of data: no interval "
                     f"({MIN_DAYS_TIA} needed)"))
    inc = incidents[pd.to_datetime(incidents["start"], utc=True) < now] if len(incidents) else incidents
    if len(inc):
        s = rep.summary(incidents=inc)
        total, fn = int(s.get("incidents") or 0), s.get("fn")
        if total and fn is not None:
            caught = total - int(fn)
            lo_c, hi_c = share_interval(caught, total)
            first_ts = pd.Timestamp(int(rep.ts_ns[0]), tz="UTC")
            rows.append(_row(name, key, "incidents_caught", 100.0 * caught / total, lo_c, hi_c, "replay",
                             first_ts, per["end"], {"caught": caught, "total": total}))
            return rows
    rows.append(_row(name, key, "incidents_caught", None, None, None, "replay", None, now,
                     note="no labelled incident before the change"))
    return rows


def predict_impact(store: Store, old_rules: Iterable[Mapping[str, Any]], new_rules: Iterable[Mapping[str, Any]],
                   now: datetime | pd.Timestamp, *, supplied: Mapping[str, Mapping[str, Any]] | None = None,
                   lookback_s: float | None = None) -> list[dict[str, Any]]:
    """Prediction rows for a change from ``old_rules`` to ``new_rules`` (normalised rule dicts) at ``now``.

    Parameters
    ----------
    supplied : mapping, optional
        Series key -> ``{"predicted_episodes_per_week": float, "predicted_interval": [low, high]}``
        (a recommendation's prediction, as :meth:`Recommendation.to_dict` gives it): used for
        ``episodes_per_week`` of a changed rule on that series instead of the replay.
    lookback_s : float, optional
        The export lookback (how long ``missing: keep_last`` carries a value), as in the preview.

    Returns
    -------
    list of dict
        One row per (rule, series, measure): ``rule, series, measure, predicted, predicted_low,
        predicted_high, source, window_start, window_end, basis, note``. Reads only points and
        incidents before ``now``; causal.
    """
    lb = PromMapping().lookback_s if lookback_s is None else float(lookback_s)
    t = pd.Timestamp(now)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    changed = affected_rules(old_rules, new_rules)
    if not changed:
        return []
    keys = store.series_keys()
    rules = {d["name"]: Rule.from_dict(dict(d), path=f"rules[{d['name']}]") for d in changed}
    plan = [(name, key) for name, r in rules.items() for key in r.matching(keys)]
    if not plan:
        return []
    series = sorted({k for _, k in plan})
    every = store.list_incidents(None, end=t)
    incidents = {k: every[every["series"].isna() | (every["series"] == k)].reset_index(drop=True) for k in series}
    full = [k for k in series if len(incidents[k])]
    recent = [k for k in series if not len(incidents[k])]
    frames = []
    if full:
        frames.append(store.get_points(full, end=t))
    if recent:
        frames.append(store.get_points(recent, start=t - pd.Timedelta(days=WINDOW_DAYS), end=t))
    points = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    points = points[points["ts"] < t]
    values = {str(k): series_values(g) for k, g in points.groupby("series", sort=False)}
    empty = pd.Series(dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    out: list[dict[str, Any]] = []
    for name, key in plan:
        rows = _measure_replay(rules[name], name, key, values.get(key, empty), incidents[key], t, lb)
        rec = (supplied or {}).get(key)
        if rec and rec.get("predicted_episodes_per_week") is not None and rec.get("predicted_interval"):
            lo, hi = rec["predicted_interval"]
            rows[0] = _row(name, key, "episodes_per_week", rec["predicted_episodes_per_week"], lo, hi,
                           "recommendation", rows[0]["window_start"], rows[0]["window_end"],
                           {"held_out": True}, "the recommendation's held-out prediction")
        out += rows
    return out
