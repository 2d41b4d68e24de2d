"""SLO budget alerts as notices: evaluate the SLOs kept with the policy in force on the stored data and
enqueue a notice for every burn-rate pair firing at the newest minute (de-duplicated by SLO and pair
within the notification window, so a pair that keeps firing is announced once per window)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from core.data.store.sql import Store
from core.errors import InsufficientDataError
from core.policy import notify, triggers
from core.policy import versions as pol
from core.slo.model import (
    SLO,
    budget_alerts,
    budget_report,
    combine_events,
    events,
    matching_keys,
    slos_from_meta,
)


def _points(store: Any, key: str) -> pd.Series:
    pts = store.get_points(key)
    return pd.Series(pts["value"].to_numpy(float), index=pd.DatetimeIndex(pts["ts"]), name=key)


def slo_events(store: Any, slo: SLO) -> pd.DataFrame:
    """Per-minute events of ``slo`` over the stored history (every series its glob selects)."""
    if slo.sli == "ratio":
        return events(slo, _points(store, slo.series), _points(store, slo.total))  # type: ignore[arg-type]
    keys = matching_keys(slo, list(store.series_keys()))
    return combine_events([events(slo, _points(store, k)) for k in keys])


def check_budget_alerts(store: Store, policy: str = pol.DEFAULT_POLICY, *, config: notify.NotifyConfig | None = None,
                        now: Any = None) -> list[dict[str, Any]]:
    """Enqueue a ``slo_budget`` notice per firing burn-rate pair of every SLO in force. Returns the
    alerts found, each with ``notice_id`` (None when de-duplicated). An SLO without data is skipped."""
    v = pol.active_version(store, policy, now=now)
    out = []
    for slo in slos_from_meta(v.meta if v else {}):
        ev = slo_events(store, slo)
        if ev.empty:
            continue
        try:
            rep = budget_report(slo, ev)
        except InsufficientDataError:
            continue
        for a in budget_alerts(slo, ev):
            left = "" if rep.remaining is None else f"; {rep.remaining:.1%} of the {slo.window_days}-day budget left"
            a["notice_id"] = notify.enqueue(
                store, "slo_budget", f"slo_budget:{slo.name}:{a['windows']}",
                f"SLO {slo.name}: burning its error budget at {a['burn_rate']:.1f}x ({a['windows']})",
                f"{a['severity']}: burn rate over {a['windows']} above {a['factor']:g}x at {a['at']}{left}.",
                {**a, "remaining": rep.remaining}, config=config, now=now)
            out.append(a)
    return out


def burn_since(store: Any, version: pol.PolicyVersion, since: Any, now: Any = None) -> list[dict[str, Any]]:
    """Burn-rate pairs of the SLOs kept with ``version`` firing at the newest minute, computed on the events
    from ``since`` to ``now`` only (the data after a change). The :data:`core.policy.triggers.SloBurn`
    callable of the ``slo_burn`` rollback trigger."""
    t0 = pd.Timestamp(since)
    t1 = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    out = []
    for slo in slos_from_meta(version.meta):
        ev = slo_events(store, slo)
        ev = ev[(ev.index >= t0) & (ev.index <= t1)]
        out += budget_alerts(slo, ev)
    return out


def check_rollback_triggers(store: Store, policy: str = pol.DEFAULT_POLICY, now: Any = None, *,
                            dry_run: bool = False, notify_config: notify.NotifyConfig | None = None) -> list[Any]:
    """:func:`core.policy.triggers.check_triggers` with the SLO budget-burn trigger (:func:`burn_since`)."""
    return triggers.check_triggers(store, policy, now, slo_burn=burn_since, dry_run=dry_run,
                                   notify_config=notify_config)
