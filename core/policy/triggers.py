"""Automatic rollback triggers: act when the change in force does not do what it promised.

Checked for the version in force (its *after window*: from when it came into force until ``now``), on
every new upload (``python -m core ingest``, ``ingest --watch``, the Data page) and by
``python -m core policy check-triggers``:

``alert_storm``
    A rule of the change fires more than ``storm_factor`` (default 2) times the upper bound of its
    predicted episodes/week (the interval re-stated for the hours seen, :mod:`core.policy.outcomes`),
    with at least ``storm_min_hours`` (default 6) hours of data since the change and at least
    ``storm_min_episodes`` (default 3) episodes.
``missed_incident``
    A labelled incident starting after the change that the previous version's rule of the same name
    would have caught and the new rule did not (both replayed on the data after the change).
``slo_burn``
    An SLO kept with the version (``meta["slos"]``) burns its error budget on the data after the change
    (a burn-rate pair of a severity in ``slo_severities``, default ``critical``: the 1 h / 5 m and
    6 h / 30 m pairs). Evaluated by a callable passed in (``slo_burn``; the SLO layer sits above this
    one: :func:`core.slo.watch.check_rollback_triggers` passes it).

Configuration per change, kept with the version in ``meta["rollback_triggers"]`` (inherited by later
versions like the rest of the meta; a policy YAML may set it)::

    rollback_triggers:
      mode: rollback            # or "propose": a rollback version waiting for approval
      enabled: [alert_storm, missed_incident, slo_burn]
      storm_factor: 2.0
      storm_min_hours: 6
      storm_min_episodes: 3
      slo_severities: [critical]

A firing writes, in one transaction: the rollback to the version in force before (in force at once:
an undo needs no approval) or, in ``propose`` mode, the same rollback pending approval; the firing row
(``trigger_firings``, at most one per change and trigger); an audit entry ``policy.trigger`` with the
evidence (trigger, numbers, window); and a ``rollback`` notice in the outbox. A failure anywhere
leaves none of it. At most one trigger acts per change: once one fired, the change is not checked
again. A rollback version itself is never judged (no ping-pong).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.data.frame import series_values
from core.data.store import audit
from core.data.store import outcomes as osql
from core.data.store.sql import Store
from core.errors import ValidationError
from core.fmt import fmt_ts
from core.policy import notify
from core.policy import outcomes as oc
from core.policy.identity import User, os_account
from core.policy.trigger_config import TRIGGERS, TriggerConfig, trigger_config
from core.policy.versions import (
    DEFAULT_POLICY,
    PolicyVersion,
    get_version,
    history,
    latest_number,
    rollback,
)

#: the user a trigger acts as (editor: it writes a rollback version)
TRIGGER_USER = User("rollback-trigger", None, frozenset({"viewer", "editor"}))

#: ``slo_burn(store, version, since, now) -> list of firing burn-rate alerts`` (dicts with at least
#: ``slo, severity, windows, factor, burn_rate, at``) on the data after ``since``.
__all__ = ["TRIGGERS", "TriggerConfig", "trigger_config", "Firing", "SloBurn", "evaluate", "fire",
           "check_triggers", "firing_history", "active_window", "TRIGGER_USER"]

SloBurn = Callable[[Store, PolicyVersion, pd.Timestamp, pd.Timestamp], list[dict[str, Any]]]


@dataclass(frozen=True)
class Firing:
    """A trigger that fired on ``version``: its ``evidence`` (numbers and window) and, once written, the
    rollback version (``result_version``; pending approval in ``propose`` mode)."""

    policy: str
    version: int
    trigger: str
    mode: str
    evidence: dict[str, Any] = field(default_factory=dict)
    result_version: int | None = None

    def summary(self) -> str:
        e = self.evidence
        if self.trigger == "alert_storm":
            return (f"alert storm: {e['rule']} on {e['series']} fired {e['actual_episodes_per_week']:.1f} "
                    f"episodes/week, above {e['factor']:g} x the predicted upper bound "
                    f"{e['predicted_high']:.1f} ({e['episodes']} episodes in {e['hours']:.0f} h since the change)")
        if self.trigger == "missed_incident":
            return (f"missed incident: {e['rule']} on {e['series']} missed the incident starting "
                    f"{e['incident_start']} that v{e['previous_version']} would have caught")
        return (f"SLO budget burn: {e['slo']} burning at {e['burn_rate']:.1f}x over {e['windows']} "
                f"(> {e['factor']:g}x) since the change")


# ---------------------------------------------------------------------------------------- evaluation
def _storm(store: Store, w: oc.ChangeWindow, cfg: TriggerConfig, now: pd.Timestamp,
           pts: pd.DataFrame) -> dict[str, Any] | None:
    preds = osql.predictions(store, w.version.policy, w.version.number)
    preds = preds[(preds["measure"] == "episodes_per_week") & preds["predicted_high"].notna()]
    worst: dict[str, Any] | None = None
    for row in preds.to_dict("records"):
        rule = oc.rule_of(w.version, row["rule"])
        if rule is None:
            continue
        m = oc.measures(oc.replay_window(rule, series_values(pts, row["series"])), pd.DataFrame())
        hours = float(m["hours"])
        if hours < cfg.storm_min_hours or not m["episodes"] or m["episodes"] < cfg.storm_min_episodes:
            continue
        _, hi = oc.restated_interval(row, hours)
        if hi is None:
            continue
        actual = float(m["episodes_per_week"])
        if actual > cfg.storm_factor * hi:
            ev = {"rule": row["rule"], "series": row["series"], "actual_episodes_per_week": actual,
                  "episodes": int(m["episodes"]), "predicted": row["predicted"], "predicted_high": hi,
                  "factor": cfg.storm_factor, "hours": hours, "source": row["source"]}
            if worst is None or actual / max(hi, 1e-9) > worst["actual_episodes_per_week"] / max(worst["predicted_high"], 1e-9):
                worst = ev
    return worst


def _missed(store: Store, w: oc.ChangeWindow, now: pd.Timestamp, pts: pd.DataFrame,
            plan: list[tuple[str, str]]) -> dict[str, Any] | None:
    end = w.until(now)
    for name, key in plan:
        inc = oc.incidents_in(store, key, w.start, end)
        if inc.empty:
            continue
        values = series_values(pts, key)
        old_rule, new_rule = oc.rule_of(w.previous, name), oc.rule_of(w.version, name)
        if old_rule is None or not old_rule.matches(key):
            continue
        before = oc.caught_flags(oc.replay_window(old_rule, values), inc)
        after = (oc.caught_flags(oc.replay_window(new_rule, values), inc)
                 if new_rule is not None and new_rule.matches(key) else before & False)
        missed = before & ~after
        if missed.any():
            i = int(missed.nonzero()[0][0])
            return {"rule": name, "series": key, "previous_version": w.previous.number if w.previous else None,
                    "incident_start": pd.Timestamp(inc["start"].iloc[i]).isoformat(),
                    "incident_end": pd.Timestamp(inc["end"].iloc[i]).isoformat(),
                    "incidents_after": int(len(inc)), "missed_by_new": int(missed.sum()),
                    "caught_by_previous": int(before.sum()), "caught_by_new": int(after.sum())}
    return None


def _plan(w: oc.ChangeWindow, keys: list[str]) -> list[tuple[str, str]]:
    """(rule, series) pairs the change altered: rules added, changed or removed, on the series either
    side selects."""
    old = {r["name"]: r for r in (w.previous.rule_dicts if w.previous else [])}
    new = {r["name"]: r for r in w.version.rule_dicts}
    out = []
    for n in sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)):
        ro, rn = oc.rule_of(w.previous, n), oc.rule_of(w.version, n)
        ks = sorted(set(ro.matching(keys) if ro else []) | set(rn.matching(keys) if rn else []))
        out += [(n, k) for k in ks]
    return out


def active_window(store: Store, policy: str = DEFAULT_POLICY, now: Any = None) -> oc.ChangeWindow | None:
    """The change in force at ``now`` when triggers may judge it (it replaced a version, is not itself a
    rollback); else None."""
    ws = oc.change_windows(history(store, policy), now)
    if not ws or ws[-1].end is not None or ws[-1].previous is None or ws[-1].version.source == "rollback":
        return None
    return ws[-1]


def evaluate(store: Store, policy: str = DEFAULT_POLICY, now: Any = None, *,
             slo_burn: SloBurn | None = None) -> list[Firing]:
    """The triggers that would fire now on the change in force (writes nothing). At most one (the first
    in :data:`TRIGGERS` order), none when a trigger already fired on this change."""
    t = oc.utc(now)
    w = active_window(store, policy, t)
    if w is None or not osql.firings(store, policy, w.version.number).empty:
        return []
    cfg = trigger_config(w.version.meta)
    plan = _plan(w, store.series_keys())
    pts = oc.window_points(store, sorted({k for _, k in plan}), w.start, w.until(t)) if plan else None
    for trig in TRIGGERS:
        if trig not in cfg.enabled:
            continue
        ev: dict[str, Any] | None = None
        if trig == "alert_storm" and pts is not None:
            ev = _storm(store, w, cfg, t, pts)
        elif trig == "missed_incident" and pts is not None:
            ev = _missed(store, w, t, pts, plan)
        elif trig == "slo_burn" and slo_burn is not None:
            alerts = [a for a in slo_burn(store, w.version, w.start, t) if a.get("severity") in cfg.slo_severities]
            ev = dict(alerts[0]) if alerts else None
        if ev is not None:
            ev["window"] = [w.start.isoformat(), t.isoformat()]
            return [Firing(policy, w.version.number, trig, cfg.mode, ev)]
    return []


# ---------------------------------------------------------------------------------------- acting
def fire(store: Store, firing: Firing, now: Any = None, *, notify_config: notify.NotifyConfig | None = None,
         user: User = TRIGGER_USER) -> Firing:
    """Act on a firing in one transaction: the rollback (in force, or pending approval in ``propose``
    mode), the firing row, its audit entry with the evidence, and a ``rollback`` notice. Any failure
    rolls all of it back. Returns the firing with ``result_version``."""
    t = oc.utc(now)
    v = get_version(store, firing.policy, firing.version)
    ws = [w for w in oc.change_windows(history(store, firing.policy), t) if w.version.number == firing.version]
    prev = ws[-1].previous if ws else None
    if prev is None:
        raise ValidationError(f"v{firing.version} of {firing.policy!r} replaced no version; nothing to roll back to",
                              path="version")
    # The trigger is an automaton, not a person: its OS account is marked so that the operator's own
    # account may approve a proposal it wrote (approval still needs a person with the approver role).
    actor = User(user.name, user.email, user.roles, user.authenticated, os_account=f"trigger:{os_account()}")
    why = firing.summary()
    with store.transaction():
        new = rollback(store, firing.policy, prev.number, actor, f"automatic ({firing.trigger}): {why}",
                       latest_number(store, firing.policy), now=t,
                       propose=f"proposed by the {firing.trigger} trigger on v{v.number}" if firing.mode == "propose" else None,
                       extra_detail={"trigger": firing.trigger, "trigger_version": v.number})
        done = Firing(firing.policy, firing.version, firing.trigger, firing.mode, firing.evidence, new.number)
        osql.insert_firing(store, {"policy": firing.policy, "version": firing.version, "trigger": firing.trigger,
                                   "fired_at": t.to_pydatetime(), "mode": firing.mode, "result_version": new.number,
                                   "evidence": audit.canonical_json(firing.evidence)})
        audit.record(store, actor.id, "policy.trigger", object=f"policy:{firing.policy}@v{v.number}", reason=why,
                     detail={"trigger": firing.trigger, "mode": firing.mode, "version": v.number,
                             "rollback_to": prev.number, "result_version": new.number,
                             "status": new.status, "evidence": firing.evidence}, now=t)
        verb = "rolled back" if new.status == "approved" else "proposes a rollback (waiting for approval)"
        notify.enqueue(store, "rollback", f"rollback:{firing.policy}@v{v.number}:{firing.trigger}",
                       f"{firing.policy} v{v.number}: {firing.trigger.replace('_', ' ')} trigger {verb}",
                       f"{why}. v{new.number} restores the rules of v{prev.number}"
                       + ("" if new.status == "approved" else "; an approver must approve it on the Policies page")
                       + f". Window {fmt_ts(firing.evidence['window'][0])} to {fmt_ts(firing.evidence['window'][1])}.",
                       {"policy": firing.policy, "version": v.number, "trigger": firing.trigger, "mode": firing.mode,
                        "result_version": new.number, "status": new.status, "evidence": firing.evidence},
                       config=notify_config, now=t, actor=actor.id)
    return done


def check_triggers(store: Store, policy: str = DEFAULT_POLICY, now: Any = None, *, slo_burn: SloBurn | None = None,
                   dry_run: bool = False, notify_config: notify.NotifyConfig | None = None) -> list[Firing]:
    """Evaluate the triggers of the change in force and act on a firing (unless ``dry_run``). Returns the
    firings (with ``result_version`` when written). Without ``slo_burn`` the SLO trigger is not checked
    (:func:`core.slo.watch.check_rollback_triggers` passes it)."""
    found = evaluate(store, policy, now, slo_burn=slo_burn)
    if dry_run:
        return found
    return [fire(store, f, now, notify_config=notify_config) for f in found]


def firing_history(store: Store, policy: str = DEFAULT_POLICY) -> pd.DataFrame:
    """Every trigger firing of ``policy``, newest first: ``version, trigger, fired_at, mode,
    result_version, evidence`` (a dict)."""
    df = osql.firings(store, policy)
    if len(df):
        df["evidence"] = df["evidence"].map(lambda s: json.loads(s or "{}"))
    return df.drop(columns=["policy"])
