"""Print the fleet-health table (the Overview page's landing table) and what needs attention first.

One row per stored series: quality grade, anomalies in the last 24 h and 7 d (the Trends page's
detection), current alerts/week under the policy in force, SLO compliance and budget remaining, the
open recommendation (balanced preset) with its expected reduction in episodes/week, and whether a
drift notice is open. Beside it: the ordered "needs attention first" list, pending approvals, running
experiments and recent notifications.

The columns fall in two groups by cost:

* **cheap** (:func:`fleet_base`): store aggregates (no raw points), the policy and which rules select
  each series, the SLOs, notices, approvals and experiments;
* **derived** (:func:`derive`, groups :data:`GROUPS`): quality grade and current alerts/week (fast:
  they read each series' raw points once), anomalies and the recommendation (slow: about a second a
  series for detection and the recommendation's cross-fitting). The Overview computes them on request
  and keeps them until the data or the series' rules change (:func:`signatures`).

:func:`fleet_table` and :func:`needs_attention` are pure: they merge what the two groups found and
rank it, so they can be tested on hand-built frames. Nothing here fills gaps or averages percentiles.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.replay import WEEK_S, replay
from core.alerting.rules import Rule
from core.data.frame import make_key, parse_key, series_values
from core.data.quality import quality_report
from core.data.store import experiments as exp_sql
from core.data.store import fleet as fsql
from core.data.store import outbox
from core.data.store.sql import Store
from core.errors import InsufficientDataError, StudioError
from core.policy import triggers as trig
from core.policy import versions as pol

# The SLO, drift, detection and recommendation modules import scipy, statsmodels and sklearn (seconds):
# they are imported where used, and only when there is something to compute (an SLO kept with the
# policy, a drift notice, a derived column asked for), so the Overview's first render does not wait.

#: Days of each series' newest data its "current alerts/week" is replayed on (plus a day of context).
CURRENT_DAYS = 7.0
CONTEXT_DAYS = 1.0
#: The Trends page's default range (its anomalies are the last 7 days' alarms).
ANOMALY_RANGE = "last 7 days"
#: Recommendation settings of the Overview's column: the Recommendations page's defaults.
PRESET = "balanced"
TRAIN_FRACTION = 0.7
#: Attention thresholds.
BUDGET_LOW = 0.25            # SLO budget remaining below this share
ALERT_STORM_PER_WEEK = 21.0  # more than 3 alert episodes a day under the policy in force
NOISE_CUT = 0.5              # a recommendation removing more than half of the episodes
MIN_NOISE_PER_WEEK = 1.0     # ... of a rule firing at least once a week
POOR_GRADES = ("D", "F")
#: Attention reasons, most urgent first (the list is ordered by this, then by how bad).
REASONS = ("rollback", "slo_budget", "alert_storm", "pending_approval", "drift", "recommendation", "quality")
#: how long a rollback trigger's firing stays on the attention list (seconds)
ROLLBACK_RECENT_S = 7 * 86400.0
#: The derived column groups and what each reads.
GROUPS = ("quality", "alerts", "anomalies", "recommendation")
FAST_GROUPS = ("quality", "alerts")

TABLE_COLUMNS = ["series", "kind", "points", "last_ts", "grade", "quality_score", "anomalies_24h", "anomalies_7d",
                 "rules", "alerts_per_week", "slo", "slo_compliance", "budget_remaining", "recommended_warning",
                 "current_warning", "episodes_per_week_now", "predicted_episodes_per_week", "expected_reduction",
                 "recommendation_open", "drift", "drift_since", "notes"]


# ---------------------------------------------------------------------------------------- the cheap part
@dataclass
class FleetBase:
    """What :func:`fleet_base` read: the series (``key, kind, unit, points, first_ts, last_ts``), the
    policy version in force and the whole history, the rules in force per series, per-series frames
    for SLOs and drift, and the side lists. ``fingerprint`` is :func:`core.data.store.fleet.data_fingerprint` at read time."""

    series: pd.DataFrame
    version: pol.PolicyVersion | None
    history: list[pol.PolicyVersion]
    rules: dict[str, list[Rule]]
    slo: pd.DataFrame
    drift: pd.DataFrame
    approvals: pd.DataFrame
    experiments: pd.DataFrame
    notifications: pd.DataFrame
    fingerprint: tuple[Any, ...] = ()
    computed_at: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))
    seconds: dict[str, float] = field(default_factory=dict)
    rollbacks: pd.DataFrame = field(default_factory=pd.DataFrame)


def _canonical(key: str) -> str:
    """A series key with its labels sorted (as :meth:`Rule.matches` compares an exact key)."""
    name, labels = parse_key(key)
    return make_key(name, labels) if labels else str(key).strip()


def matching_rules(rule_dicts: Iterable[Mapping[str, Any]], keys: Iterable[str]) -> dict[str, list[Rule]]:
    """Series key -> the policy rules that select it (in policy order); series without one are absent.

    The same answer as :meth:`Rule.matches` for every pair; a rule naming one exact series (no glob, no
    matchers) is looked up by its canonical key instead of being compared with every key."""
    rules = pol.to_rules(rule_dicts)
    keys = [str(k) for k in keys]
    by_canon: dict[str, list[str]] = {}
    exact = [r for r in rules if not r.matchers and "*" not in r.series and "?" not in r.series]
    if exact:
        for k in keys:                                   # per series (a few hundred), once
            by_canon.setdefault(_canonical(k), []).append(k)
    hits: dict[str, set[int]] = {}
    for i, r in enumerate(rules):
        found = by_canon.get(_canonical(r.series), []) if r in exact else r.matching(keys)
        for k in found:
            hits.setdefault(k, set()).add(i)
    return {k: [rules[i] for i in sorted(hits[k])] for k in keys if k in hits}


def current_alerts(points: pd.DataFrame, rules: Mapping[str, Sequence[Rule]],
                   days: float = CURRENT_DAYS, context_days: float = CONTEXT_DAYS) -> pd.DataFrame:
    """Alert episodes per week under ``rules`` over each series' last ``days`` (ending at its last point).

    Each rule that selects a series is replayed (:func:`core.alerting.replay.replay`, causal) over the
    window plus ``context_days`` before it (so a ``for`` duration can be met at the window's start);
    episodes of any level firing that *start* inside the window count. A series' rate is the sum over its
    rules scaled to a week (``episodes / window x 7 days``). A series with less history than ``days`` is
    judged on all of it (the window is shorter and ``alert_notes`` says so); without points, or with a
    single timestamp, the rate is None.

    Returns
    -------
    DataFrame
        ``series, rules`` (names joined by ", "), ``alert_episodes``, ``alerts_per_week``,
        ``window_days`` and ``alert_notes``; one row per series of ``rules``.
    """
    rows = []
    groups = dict(tuple(points.groupby("series", sort=False))) if len(points) else {}
    for key, rs in rules.items():
        pts = groups.get(key)
        n, rate, window = 0, None, 0.0
        notes = []
        if pts is not None and len(pts):
            v = series_values(pts, key)
            end = v.index[-1]
            start = max(end - pd.Timedelta(days=days), v.index[0])
            window = (end - start).total_seconds() / 86400.0
            v = v[v.index >= start - pd.Timedelta(days=context_days)]
            for r in rs:
                try:
                    rep = replay(r, v, series=key)
                    n += int(rep.period(start, None)["episodes"])
                except StudioError as exc:      # a rule the series cannot be replayed under: say so
                    notes.append(f"{r.name}: {exc}")
            if window > 0:
                rate = n / (window * 86400.0 / WEEK_S)
                if window < days - 1e-9:
                    notes.append(f"alerts/week from {window:.1f} days of history (less than {days:g})")
            else:
                notes.append("a single timestamp: no alert rate")
        rows.append({"series": key, "rules": ", ".join(r.name for r in rs), "alert_episodes": n,
                     "alerts_per_week": rate, "window_days": window, "alert_notes": "; ".join(notes)})
    return pd.DataFrame(rows, columns=["series", "rules", "alert_episodes", "alerts_per_week", "window_days",
                                       "alert_notes"])


def slo_coverage(store: Store, version: pol.PolicyVersion | None, keys: Sequence[str], *,
                 fingerprint: tuple[Any, ...] | None = None,
                 cache: MutableMapping[str, list[dict[str, Any]]] | None = None) -> pd.DataFrame:
    """Compliance and budget remaining of every SLO kept with the policy in force, per series it covers.

    A threshold SLI covers every series its key or glob selects; a ratio SLI its errors and total series.
    Where several SLOs cover a series, the one with the least budget left is kept. A threshold SLI's
    per-minute events are aggregated in DuckDB over its window only
    (:func:`core.data.store.fleet.threshold_minute_events`, the same events as
    :func:`core.slo.watch.slo_events`); a ratio SLI's two series are read. With ``fingerprint`` (the
    data's, :func:`core.data.store.fleet.data_fingerprint`) and a ``cache`` mapping, each SLO's rows are
    kept under the fingerprint and the SLO's definition, so only a data change recomputes them. ``budget_remaining``
    is a share (1 = untouched, negative = overspent) and None when the low-traffic guard withholds the
    verdict (``slo_note`` says why).
    """
    cols = ["series", "slo", "slo_compliance", "budget_remaining", "slo_note"]
    rows: list[dict[str, Any]] = []
    if not (version is not None and version.meta.get("slos")):
        return pd.DataFrame(rows, columns=cols)
    from core.slo.model import budget_report, matching_keys, slos_from_meta
    from core.slo.watch import slo_events

    for slo in slos_from_meta(version.meta):
        covered = matching_keys(slo, list(keys)) if slo.sli == "threshold" else [
            k for k in (slo.series, slo.total) if k in set(keys)]
        if not covered:
            continue
        ckey = json.dumps([list(fingerprint or ()), slo.to_dict(), covered], sort_keys=True, default=str) \
            if cache is not None and fingerprint is not None else None
        if ckey is not None and ckey in cache:
            rows += cache[ckey]
            continue
        try:
            ev = (fsql.threshold_minute_events(store, covered, slo.comparator, float(slo.threshold), slo.window_s)
                  if slo.sli == "threshold" else slo_events(store, slo))
            rep = budget_report(slo, ev)
            comp, rem, note = rep.compliance, rep.remaining, rep.reason
        except InsufficientDataError as exc:
            comp, rem, note = None, None, str(exc)
        mine = [{"series": k, "slo": slo.name, "slo_compliance": comp, "budget_remaining": rem, "slo_note": note}
                for k in covered]
        if ckey is not None:
            cache[ckey] = mine
        rows += mine
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    df["_rank"] = df["budget_remaining"].astype(float).fillna(np.inf)
    return df.sort_values(["series", "_rank"], kind="stable").drop_duplicates("series").drop(columns="_rank") \
        .reset_index(drop=True)


def _utc(t: Any) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def drift_status(notices: pd.DataFrame, history: Sequence[pol.PolicyVersion], keys: Sequence[str],
                 now: Any = None) -> pd.DataFrame:
    """Whether each series has an open drift notice.

    ``notices`` is the newest drift notice per series (:func:`core.data.store.fleet.latest_notices`). A
    notice is open until a policy change covering the series (its matching rules changed, as
    :func:`core.policy.drift_watch.last_change` judges) takes effect after the notice was raised: a
    re-tune closes it. Returns ``series, drift, drift_since, drift_notice`` for the series with a notice.
    """
    t = _utc(pd.Timestamp.now(tz="UTC") if now is None else now)
    applied = sorted([v for v in history if v.in_force_from is not None and _utc(v.in_force_from) <= t],
                     key=lambda v: (_utc(v.in_force_from), v.number))
    wanted = set(keys)
    rows = []
    if len(notices):
        from core.policy.drift_watch import last_change
    for r in notices.itertuples(index=False):
        if r.series not in wanted:
            continue
        change = last_change(applied, r.series)
        is_open = change is None or _utc(change.in_force_from) <= _utc(r.created_at)
        rows.append({"series": r.series, "drift": bool(is_open), "drift_since": r.since, "drift_notice": int(r.id)})
    return pd.DataFrame(rows, columns=["series", "drift", "drift_since", "drift_notice"])


def pending_approvals(history: Sequence[pol.PolicyVersion], now: Any = None) -> pd.DataFrame:
    """Policy versions waiting for a second person: ``version, author, created_at, waiting_s, reason,
    significance``, oldest first."""
    t = _utc(pd.Timestamp.now(tz="UTC") if now is None else now)
    rows = [{"version": v.label, "number": v.number, "author": v.author, "created_at": _utc(v.created_at),
             "waiting_s": max(0.0, (t - _utc(v.created_at)).total_seconds()), "reason": v.reason,
             "significance": "; ".join(v.significance)}
            for v in history if v.status == "pending_approval"]
    return pd.DataFrame(rows, columns=["version", "number", "author", "created_at", "waiting_s", "reason",
                                       "significance"]).sort_values("created_at", kind="stable").reset_index(drop=True)


def running_experiments(store: Store) -> pd.DataFrame:
    """Experiments being planned or running (``id, name, series, status, units, created_by, updated_at``),
    running first."""
    df = exp_sql.list_experiments(store)
    df = df[df["status"].isin(["running", "planning"])]
    order = df["status"].map({"running": 0, "planning": 1})
    return df.assign(_o=order).sort_values(["_o", "id"], ascending=[True, False], kind="stable") \
        [["id", "name", "series", "status", "units", "created_by", "updated_at"]].reset_index(drop=True)


def recent_notifications(store: Store, limit: int = 20) -> pd.DataFrame:
    """The newest notices with who was told: ``id, kind, title, created_at, channels`` (``channel:
    status`` per configured channel; empty when no channel was configured)."""
    df = outbox.notices(store, limit)
    return df[["id", "kind", "title", "created_at", "channels"]].reset_index(drop=True)


def fleet_base(store: Store, policy: str = pol.DEFAULT_POLICY, *, series: pd.DataFrame | None = None,
               now: Any = None, notifications: int = 20,
               slo_cache: MutableMapping[str, list[dict[str, Any]]] | None = None) -> FleetBase:
    """The cheap columns and side lists (see the module notes): no raw points are read except the
    series of the SLOs kept with the policy in force.

    Parameters
    ----------
    store : Store
    policy : str
        The policy whose version in force is replayed and whose SLOs are reported.
    series : DataFrame, optional
        ``store.list_series()`` when the caller already holds it.
    now : timestamp-like, optional
        Reference time for the version in force, open drift notices and approval waits (default: now).
    notifications : int
        How many recent notices to list.
    slo_cache : mutable mapping, optional
        Keeps each SLO's result until the data change (see :func:`slo_coverage`).
    """
    clock: dict[str, float] = {}
    t0 = time.perf_counter()
    fp = fsql.data_fingerprint(store)
    series = store.list_series() if series is None else series
    series = series[series["points"] > 0].reset_index(drop=True)
    keys = [str(k) for k in series["key"]]
    history = pol.history(store, policy)
    version = pol.in_force(history, now)
    clock["read"] = time.perf_counter() - t0

    rules = matching_rules(version.rule_dicts if version else [], keys)

    t0 = time.perf_counter()
    slo = slo_coverage(store, version, keys, fingerprint=fp, cache=slo_cache)
    clock["slo"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    drift = drift_status(fsql.latest_notices(store, "drift"), history, keys, now)
    approvals = pending_approvals(history, now)
    exps = running_experiments(store)
    notes = recent_notifications(store, notifications)
    rollbacks = recent_rollbacks(store, policy, now)
    clock["lists"] = time.perf_counter() - t0
    return FleetBase(series, version, history, rules, slo, drift, approvals, exps, notes, fp, seconds=clock,
                     rollbacks=rollbacks)


def recent_rollbacks(store: Store, policy: str = pol.DEFAULT_POLICY, now: Any = None,
                     within_s: float = ROLLBACK_RECENT_S) -> pd.DataFrame:
    """Rollback-trigger firings of ``policy`` in the last ``within_s`` seconds, newest first
    (``version, trigger, fired_at, mode, result_version, evidence``)."""
    df = trig.firing_history(store, policy)
    if df.empty:
        return df
    t = pd.Timestamp(now if now is not None else pd.Timestamp.now(tz="UTC"))
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    fired = pd.to_datetime(df["fired_at"], utc=True)
    return df[(fired >= t - pd.Timedelta(seconds=within_s)) & (fired <= t)].reset_index(drop=True)


# ---------------------------------------------------------------------------------------- the derived part
#: The columns each derived group fills.
GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "quality": ("grade", "quality_score", "quality_issues"),
    "alerts": ("alerts_per_week", "alert_episodes", "alert_notes"),
    "anomalies": ("anomalies_24h", "anomalies_7d", "anomaly_note"),
    "recommendation": ("recommended_warning", "current_warning", "episodes_per_week_now",
                       "predicted_episodes_per_week", "expected_reduction", "recommendation_open",
                       "recommendation_note"),
}
#: Groups that depend on the rules in force (the others only on the data).
RULE_GROUPS = ("alerts", "recommendation")


def signatures(base: FleetBase) -> dict[str, dict[str, str]]:
    """Per series and derived group, what its values depend on, as a string: the stored data as a whole
    (:func:`core.data.store.fleet.data_fingerprint`: any upload, deleted upload or incident change), the
    series' point count, span and kind and, for :data:`RULE_GROUPS`, the rules in force that select it
    and their bounds. Equal signatures mean a kept value is the one a fresh run would give."""
    bounds = dict((base.version.meta.get("bounds") or {}) if base.version else {})
    out: dict[str, dict[str, str]] = {}
    for row in base.series.itertuples(index=False):     # per series (a few hundred)
        data = [list(base.fingerprint), str(row.key), int(row.points), str(row.first_ts), str(row.last_ts),
                str(row.kind)]
        rs = base.rules.get(str(row.key), [])
        rule = data + [[r.to_dict() for r in rs], {r.name: bounds.get(r.name) for r in rs}]
        d, r = json.dumps(data, default=str), json.dumps(rule, sort_keys=True, default=str)
        out[str(row.key)] = {g: (r if g in RULE_GROUPS else d) for g in GROUPS}
    return out


def keep_derived(kept: Mapping[str, Mapping[str, Mapping[str, Any]]], derived: pd.DataFrame,
                 sigs: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Fold a :func:`derive` result into kept values: ``{series: {group: {"sig", "at", "values"}}}``.

    Pure (returns a new mapping): each group a row computed replaces that group's entry; entries
    whose signature no longer matches ``sigs`` (the data or rules changed) are dropped."""
    out = {k: {g: dict(e) for g, e in groups.items() if sigs.get(k, {}).get(g) == e.get("sig")}
           for k, groups in kept.items()}
    for r in derived.to_dict("records") if len(derived) else []:
        k = r["series"]
        for g in str(r.get("groups") or "").split(","):
            if g in GROUP_COLUMNS and k in sigs:
                out.setdefault(k, {})[g] = {"sig": sigs[k][g], "at": r["computed_at"],
                                            "values": {c: r.get(c) for c in GROUP_COLUMNS[g]}}
    return {k: v for k, v in out.items() if v}


def derived_frame(kept: Mapping[str, Mapping[str, Mapping[str, Any]]],
                  sigs: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """The kept values that are still current (signature equal to ``sigs``) as a frame for
    :func:`fleet_table`: one row per series with the columns of its current groups and
    ``computed_at`` (the oldest of its groups)."""
    rows = []
    for k, groups in kept.items():
        row: dict[str, Any] = {"series": k}
        ats = []
        for g, e in groups.items():
            if sigs.get(k, {}).get(g) == e.get("sig"):
                row.update(e["values"])
                ats.append(e["at"])
        if ats:
            row["computed_at"] = min(ats)
            rows.append(row)
    return pd.DataFrame(rows)


def freshness(kept: Mapping[str, Mapping[str, Mapping[str, Any]]], sigs: Mapping[str, Mapping[str, str]],
              keys: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per derived group: ``n`` series with a current value among ``keys`` (default all), ``of`` how many,
    ``oldest`` and ``newest`` computation time (None when none)."""
    keys = list(sigs) if keys is None else list(keys)
    out = {}
    for g in GROUPS:
        ats = [kept[k][g]["at"] for k in keys
               if k in kept and g in kept[k] and kept[k][g].get("sig") == sigs.get(k, {}).get(g)]
        out[g] = {"n": len(ats), "of": len(keys), "oldest": min(ats) if ats else None,
                  "newest": max(ats) if ats else None}
    return out


def anomaly_counts(values: pd.Series, *, kind: str = "gauge", unit: str = "", incidents: pd.DataFrame | None = None,
                   series: str | None = None) -> dict[str, Any]:
    """Alarms of the Trends page's default view of one series in its last 24 h and 7 d.

    Exactly the page's call (:func:`core.analysis.pipeline.analyse_range` over "last 7 days", default
    detector and alarm rule, incidents and detected outages out of the training; causal: each point is
    scored by detectors trained on earlier data only). ``anomalies_24h`` counts alarms opening within
    24 h of the last point. Both are None with ``anomaly_note`` when detection could not run.
    """
    from core.analysis.detect import AlarmRule
    from core.analysis.explore import resolve_range
    from core.analysis.pipeline import analyse_range

    if not len(values):
        return {"anomalies_24h": None, "anomalies_7d": None, "anomaly_note": "no points"}
    start, end = resolve_range(ANOMALY_RANGE, values.index[0], values.index[-1])
    try:
        res = analyse_range(values, start=start, end=end, kind=kind, unit=unit, incidents=incidents, series=series,
                            exclude_incidents=True, exclude_outages=True, horizon_days=None,
                            threshold=AlarmRule(false_alarms_per_week=None))
    except InsufficientDataError as exc:
        return {"anomalies_24h": None, "anomalies_7d": None, "anomaly_note": str(exc)}
    det = res.detections
    if det is None or not det.sufficient:
        return {"anomalies_24h": None, "anomalies_7d": None,
                "anomaly_note": det.reason if det is not None else "detection did not run"}
    ts = pd.DatetimeIndex(pd.to_datetime(res.anomalies["ts"], utc=True))
    return {"anomalies_24h": int((ts > end - pd.Timedelta(hours=24)).sum()), "anomalies_7d": int(len(ts)),
            "anomaly_note": det.note}


def recommendation_summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """The Overview's recommendation columns from one :func:`core.alerting.recommend.fleet.recommend_one`
    result: ``recommended_warning``, ``current_warning``, ``episodes_per_week_now`` (the rule in force on
    the held-out period), ``predicted_episodes_per_week``, ``expected_reduction`` (now minus predicted;
    None without a rule in force) and ``recommendation_open`` (a level differing from the one in force, or
    a series without a rule). An insufficient result is not open and says why in ``recommendation_note``."""
    if result.get("insufficient"):
        return {"recommended_warning": None, "current_warning": (result.get("current") or {}).get("warning"),
                "episodes_per_week_now": None, "predicted_episodes_per_week": None, "expected_reduction": None,
                "recommendation_open": False, "recommendation_note": f"insufficient: {result['insufficient']}"}
    cur = result.get("current") or {}
    now = ((result.get("comparison") or {}).get("current") or {}).get("held_episodes_per_week")
    pred = result.get("predicted_episodes_per_week")
    warn = result.get("warning")
    cw = cur.get("warning")
    is_open = warn is not None and (cw is None or not np.isclose(float(warn), float(cw), rtol=1e-9, atol=0.0))
    return {"recommended_warning": warn, "current_warning": cw, "episodes_per_week_now": now,
            "predicted_episodes_per_week": pred,
            "expected_reduction": (now - pred) if now is not None and pred is not None else None,
            "recommendation_open": bool(is_open), "recommendation_note": ""}


def _batches(sizes: Mapping[str, int], max_points: int) -> list[list[str]]:
    """Keys in order, grouped into batches of at most ``max_points`` points (a larger series alone)."""
    out: list[list[str]] = []
    total = 0
    for k, n in sizes.items():                       # per series (a few hundred), not per point
        if not out or total + n > max_points:
            out.append([])
            total = 0
        out[-1].append(k)
        total += n
    return out


def derive(store: Store, base: FleetBase, keys: Sequence[str], *, groups: Sequence[str] = GROUPS,
           progress: Callable[[int, int], None] | None = None, batch_points: int = 2_000_000) -> pd.DataFrame:
    """The derived columns of ``keys`` for the column ``groups`` (see :data:`GROUPS`).

    Reads the raw points a batch of series at a time (about ``batch_points`` points), then per series:
    ``quality``: :func:`core.data.quality.quality_report` (``grade``, ``quality_score``,
    ``quality_issues``); ``alerts``: :func:`current_alerts` under the rules in force (``alerts_per_week``,
    ``alert_episodes``); ``anomalies``: :func:`anomaly_counts`; ``recommendation``: the balanced
    recommendation (:func:`core.alerting.recommend.fleet.recommend_one`, fitted on the first 70 %, with
    the rule in force and its bounds, as the Recommendations page) summarised by
    :func:`recommendation_summary`. ``progress(done, total)`` after each series.

    Returns one row per series with ``groups`` (the groups computed, comma-joined) and ``computed_at``;
    :func:`keep_derived` keeps them until their :func:`signatures` change.
    """
    from core.alerting.recommend.fleet import recommend_one, split_points

    meta = base.series.set_index("key")
    keys = [k for k in keys if k in meta.index]
    version = base.version
    rules = base.rules
    bounds = dict((version.meta.get("bounds") or {}) if version else {})
    incidents = store.list_incidents()
    rows: list[dict[str, Any]] = []
    done = 0
    for batch in _batches({k: int(meta.loc[k, "points"]) for k in keys}, batch_points):
        pts = store.get_points(batch)
        kinds = {k: str(meta.loc[k, "kind"] or "gauge") for k in batch}
        qual = quality_report(pts, kinds=kinds).set_index("series") if "quality" in groups and len(pts) else None
        alerts = current_alerts(pts, {k: rules[k] for k in batch if k in rules}).set_index("series") \
            if "alerts" in groups else None
        current = {k: rules[k][0] for k in batch if k in rules}
        items = {it[0]: it for it in split_points(pts, incidents, current, bounds)} \
            if "recommendation" in groups and len(pts) else {}
        by_key = dict(tuple(pts.groupby("series", sort=False))) if len(pts) else {}
        for k in batch:
            row = meta.loc[k].to_dict()
            out: dict[str, Any] = {"series": k, "computed_at": pd.Timestamp.now(tz="UTC"),
                                   "groups": ",".join(g for g in GROUPS if g in groups)}
            if qual is not None and k in qual.index:
                out.update(grade=qual.loc[k, "grade"], quality_score=qual.loc[k, "score"],
                           quality_issues="; ".join(qual.loc[k, "issues"]))
            if alerts is not None:
                if k in alerts.index:
                    apw = alerts.loc[k, "alerts_per_week"]
                    out.update(alerts_per_week=None if apw is None or pd.isna(apw) else float(apw),
                               alert_episodes=int(alerts.loc[k, "alert_episodes"]),
                               alert_notes=alerts.loc[k, "alert_notes"])
                else:
                    out.update(alert_notes="no rule in force selects it")
            if "anomalies" in groups and k in by_key:
                unit = row.get("unit")
                inc = incidents[incidents["series"].isna() | (incidents["series"] == k)].reset_index(drop=True)
                out.update(anomaly_counts(series_values(by_key[k], k), kind=kinds[k],
                                          unit="" if unit is None or pd.isna(unit) else str(unit),
                                          incidents=inc, series=k))
            if k in items:
                try:
                    res = recommend_one(items[k], {"preset": PRESET, "train_fraction": TRAIN_FRACTION})
                    out.update(recommendation_summary(res))
                except StudioError as exc:
                    out.update(recommendation_open=False, recommendation_note=f"insufficient: {exc}")
            rows.append(out)
            done += 1
            if progress:
                progress(done, len(keys))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- merge and rank
def fleet_table(base: FleetBase, derived: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per series (:data:`TABLE_COLUMNS`), pure: the series list joined with the rules, SLO and
    drift of ``base`` and whatever ``derived`` rows are given (missing derived values stay None: not
    computed). ``notes`` gathers why a value is absent (insufficient data, a failed replay)."""
    s = base.series
    t = pd.DataFrame({"series": s["key"].astype(str), "kind": s["kind"], "points": s["points"].astype("int64"),
                      "last_ts": s["last_ts"]})
    t["rules"] = [", ".join(r.name for r in base.rules.get(k, [])) or None for k in t["series"]]
    t = t.merge(base.slo, on="series", how="left").merge(base.drift, on="series", how="left")
    if derived is not None and len(derived):
        t = t.merge(derived.drop(columns=[c for c in ("groups", "rules") if c in derived.columns]),
                    on="series", how="left")
    for c in TABLE_COLUMNS:
        if c not in t.columns:
            t[c] = None
    t["drift"] = t["drift"].astype("boolean").fillna(False).astype(bool)
    t["recommendation_open"] = t["recommendation_open"].astype("boolean")
    note_cols = [c for c in ("alert_notes", "slo_note", "anomaly_note", "recommendation_note") if c in t.columns]

    def _notes(r: pd.Series) -> str:
        parts = []
        for c in note_cols:
            v = r[c]
            if isinstance(v, str) and v and (c != "anomaly_note" or r.get("anomalies_7d") is None
                                              or pd.isna(r.get("anomalies_7d"))):
                parts.append(v)
        return "; ".join(parts)

    t["notes"] = t.apply(_notes, axis=1) if len(t) else pd.Series([], dtype=object)
    extra = [c for c in ("computed_at", "quality_issues", "drift_notice", "alert_episodes")
             if c in t.columns]
    return t[TABLE_COLUMNS + extra].reset_index(drop=True)


def needs_attention(table: pd.DataFrame, approvals: pd.DataFrame | None = None,
                    rollbacks: pd.DataFrame | None = None) -> pd.DataFrame:
    """What needs attention first, ordered by urgency (:data:`REASONS`), then by how bad.

    Rules (one item per series and reason; a series may appear under several reasons):

    * ``rollback``: a rollback trigger fired in the last week (``rollbacks``, from
      :func:`recent_rollbacks`): the change it judged was rolled back, or a rollback waits for approval;
    * ``slo_budget``: an SLO covering the series has less than 25 % of its error budget left;
    * ``alert_storm``: more than 21 alert episodes a week (3 a day) under the policy in force;
    * ``pending_approval``: a policy version waits for a second person (one item per version);
    * ``drift``: an open drift notice;
    * ``recommendation``: the open balanced recommendation removes more than half of the episodes of a
      rule firing at least once a week;
    * ``quality``: data-quality grade D or F.

    Returns ``priority`` (1 = first), ``reason`` (a key of :data:`REASONS`), ``subject`` (a series key or
    a policy version), ``detail`` (the reason in words with its numbers) and ``page`` (where to act).
    Values not computed yet (None) raise nothing.
    """
    items: list[tuple[int, float, str, str, str, str]] = []   # (reason rank, badness, reason, subject, detail, page)
    rank = {r: i for i, r in enumerate(REASONS)}
    for r in table.itertuples(index=False):
        rem = r.budget_remaining
        if rem is not None and not pd.isna(rem) and rem < BUDGET_LOW:
            items.append((rank["slo_budget"], float(rem), "slo_budget", r.series,
                          f"SLO {r.slo}: {rem:.0%} of the error budget left"
                          + (" (overspent)" if rem < 0 else ""), "slos"))
        apw = r.alerts_per_week
        if apw is not None and not pd.isna(apw) and apw > ALERT_STORM_PER_WEEK:
            items.append((rank["alert_storm"], -float(apw), "alert_storm", r.series,
                          f"alert storm: {apw:.1f} alert episodes/week under {r.rules} (last 7 days)", "thresholds"))
        if bool(r.drift):
            items.append((rank["drift"], 0.0, "drift", r.series,
                          f"open drift notice (shifted since {r.drift_since})" if r.drift_since else "open drift notice",
                          "recommendations"))
        now, red = r.episodes_per_week_now, r.expected_reduction
        is_open = r.recommendation_open
        if (is_open is not None and not pd.isna(is_open) and bool(is_open) and now is not None and red is not None and not pd.isna(now)
                and not pd.isna(red) and now >= MIN_NOISE_PER_WEEK and red / now > NOISE_CUT):
            items.append((rank["recommendation"], -float(red / now), "recommendation", r.series,
                          f"recommendation cuts {red / now:.0%} of the episodes ({now:.1f} to "
                          f"{r.predicted_episodes_per_week:.1f}/week, balanced)", "recommendations"))
        if isinstance(r.grade, str) and r.grade in POOR_GRADES:
            score = r.quality_score
            items.append((rank["quality"], float(score) if score is not None and not pd.isna(score) else 0.0,
                          "quality", r.series, f"poor data quality: grade {r.grade}"
                          + (f" (score {score:.0f})" if score is not None and not pd.isna(score) else ""), "data"))
    if rollbacks is not None:
        for f in rollbacks.itertuples(index=False):
            ev = f.evidence if isinstance(f.evidence, Mapping) else {}
            what = (f"rolled back to v{f.result_version}" if f.mode == "rollback"
                    else f"a rollback (v{f.result_version}) waits for approval")
            subject = ev.get("series") or f"v{f.version}"
            items.append((rank["rollback"], -pd.Timestamp(f.fired_at).timestamp(), "rollback", str(subject),
                          f"{str(f.trigger).replace('_', ' ')} on v{f.version}: {what}"
                          + (f" (rule {ev['rule']})" if ev.get("rule") else ""), "policies"))
    if approvals is not None:
        for a in approvals.itertuples(index=False):
            items.append((rank["pending_approval"], -float(a.waiting_s), "pending_approval", a.version,
                          f"waits for approval: {a.reason} (by {a.author})", "policies"))
    items.sort(key=lambda x: (x[0], x[1], x[3]))
    return pd.DataFrame([{"priority": i + 1, "reason": it[2], "subject": it[3], "detail": it[4], "page": it[5]}
                         for i, it in enumerate(items)], columns=["priority", "reason", "subject", "detail", "page"])


def filter_series(table: pd.DataFrame, glob: str | None) -> pd.DataFrame:
    """Rows whose series key matches a shell-style glob (case-sensitive; ``*`` around a bare word is
    implied, so ``checkout`` finds ``latency_p95_ms{service="checkout"}``)."""
    if not glob:
        return table
    pat = glob if any(c in glob for c in "*?[") else f"*{glob}*"
    return table[[fnmatch.fnmatchcase(str(k), pat) for k in table["series"]]].reset_index(drop=True)


# ---------------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--series", default=None, help="only series whose key matches this glob")
    parser.add_argument("--derived", action="store_true",
                        help="also compute quality, anomalies and the balanced recommendation (about a "
                             "second a series)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text tables")


def run(args: argparse.Namespace) -> int:
    from core.data.store import Store as _Store

    with _Store(args.db, read_only=True) as store:
        base = fleet_base(store)
        keys = filter_series(base.series.rename(columns={"key": "series"}), args.series)["series"].tolist()
        derived = derive(store, base, keys) if args.derived else None
    table = filter_series(fleet_table(base, derived), args.series)
    att = needs_attention(table, base.approvals, base.rollbacks)
    if args.json:
        print(json.dumps({"table": json.loads(table.to_json(orient="records", date_format="iso")),
                          "attention": att.to_dict(orient="records")}, indent=1, default=str))
        return 0
    cols = ["series", "grade", "anomalies_24h", "anomalies_7d", "alerts_per_week", "budget_remaining",
            "expected_reduction", "drift"]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 1000):
        print(table[cols].to_string(index=False))
        print()
        print("Needs attention first:" if len(att) else "Nothing needs attention.")
        for a in att.itertuples(index=False):
            print(f"  {a.priority}. [{a.reason}] {a.subject}: {a.detail}")
    return 0
