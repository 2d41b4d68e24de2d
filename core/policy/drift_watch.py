"""Drift notices: for each stored series, compare its data since the last applied policy change that
covers it (or, without one, since its baseline period) with the data before, using
:func:`core.analysis.drift.drift`, and enqueue a ``drift`` notice when it shifted.

A change *covers* a series when the rules matching the series key (:meth:`Rule.matches`) differ between
an applied version and the version in force before it (the first applied version covers every series
one of its rules matches). Without such a change, the baseline is the whole days in the first 70 % of
the series' time span and the recent window the rest. Notices are de-duplicated by the outbox
(``drift:<series>:<since>``, within the notification window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.analysis.drift import DriftResult, drift
from core.data.store.sql import Store
from core.policy import notify
from core.policy import versions as pol

BASELINE_SHARE = 0.7


@dataclass(frozen=True)
class SeriesDrift:
    """The drift check of one series: ``since`` is where the recent window starts (UTC), ``change`` the
    policy version label that set it (None: the baseline split), ``notice_id`` the enqueued notice
    (None when stable, insufficient or de-duplicated)."""

    key: str
    since: pd.Timestamp
    change: str | None
    result: DriftResult
    notice_id: int | None = None


def _utc(t: Any) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _applied(store: Store, policy: str, now: Any) -> list[pol.PolicyVersion]:
    t = _utc(pd.Timestamp.now(tz="UTC") if now is None else now)
    vs = [v for v in pol.history(store, policy) if v.in_force_from is not None and _utc(v.in_force_from) <= t]
    return sorted(vs, key=lambda v: (_utc(v.in_force_from), v.number))


def _matching(v: pol.PolicyVersion | None, key: str) -> list[dict[str, Any]]:
    if v is None:
        return []
    return [d for d, r in zip(v.rule_dicts, v.rules(), strict=True) if r.matches(key)]


def last_change(applied: list[pol.PolicyVersion], key: str) -> pol.PolicyVersion | None:
    """The newest applied version (in force order) whose rules matching ``key`` differ from those of the
    version in force before it; None when no applied change covers ``key``."""
    prev: pol.PolicyVersion | None = None
    found = None
    for v in applied:
        mine = _matching(v, key)
        if mine != _matching(prev, key):
            found = v
        prev = v
    return found


def baseline_split(ts: pd.DatetimeIndex, share: float = BASELINE_SHARE) -> pd.Timestamp:
    """Start of the recent window without a change: ``share`` of the time span, floored to a UTC day
    boundary when the span covers at least two days (so both sides see whole daily cycles)."""
    t0, t1 = ts.min(), ts.max()
    cut = t0 + (t1 - t0) * share
    if t1 - t0 >= pd.Timedelta(days=2):
        floored = cut.floor("D")
        cut = floored if floored > t0 else cut
    return cut


def check_series(store: Store, key: str, applied: list[pol.PolicyVersion], **kw: Any) -> SeriesDrift | None:
    """Drift of one stored series since its last covering change (or its baseline split); None when the
    series has no points."""
    pts = store.get_points(key)
    if pts.empty:
        return None
    ts = pd.DatetimeIndex(pd.to_datetime(pts["ts"], utc=True))
    s = pd.Series(pts["value"].to_numpy(float), index=ts)
    v = last_change(applied, key)
    since = _utc(v.in_force_from) if v is not None else baseline_split(ts)
    res = drift(s[s.index < since], s[s.index >= since], **kw)
    return SeriesDrift(key, since, v.label if v is not None else None, res)


def check_drift(store: Store, policy: str = pol.DEFAULT_POLICY, *, config: notify.NotifyConfig | None = None,
                now: Any = None, keys: Sequence[str] | None = None, **kw: Any) -> list[SeriesDrift]:
    """Check every stored series (or only ``keys``, e.g. the series an upload changed:
    ``IngestReport.changed_series``) and enqueue a ``drift`` notice for each that shifted. Returns one
    :class:`SeriesDrift` per checked series with points (``kw`` goes to :func:`core.analysis.drift.drift`).
    Each series reads its own points (about 25 ms for 43,200 points), so limiting ``keys`` after an
    upload keeps the check proportional to the upload, not to the store."""
    applied = _applied(store, policy, now)
    stored = store.series_keys()
    if keys is not None:
        wanted = set(keys)
        stored = [k for k in stored if k in wanted]
    out = []
    for key in stored:
        sd = check_series(store, key, applied, **kw)
        if sd is None:
            continue
        if sd.result.verdict == "drift":
            r = sd.result
            since_txt = f"{sd.change} took effect" if sd.change else "its baseline period"
            nid = notify.enqueue(
                store, "drift", f"drift:{key}:{sd.since.isoformat()}",
                f"Drift: {key} has shifted since {since_txt}",
                f"{r.reason}. Sample sizes: {r.n_baseline} baseline and {r.n_recent} recent {r.block} blocks "
                f"({r.points_baseline} and {r.points_recent} points). Suggestion: re-tune its thresholds; "
                f"see the Recommendations page for {key}.",
                {"series": key, "since": sd.since.isoformat(), "change": sd.change, "link": "recommendations",
                 "suggestion": "re-tune", **r.to_dict()}, config=config, now=now)
            sd = SeriesDrift(sd.key, sd.since, sd.change, r, nid)
        out.append(sd)
    return out
