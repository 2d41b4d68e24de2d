"""Experiment lifecycle in the store: planning -> running -> completed, or stopped with a reason.

======================  =====================================  ===============================
transition              function                               audit action
======================  =====================================  ===============================
(new) -> planning       :func:`create`                         ``experiment.create``
planning -> planning    :func:`replan` (the plan may change)   ``experiment.plan``
planning -> running     :func:`start` (the plan is frozen)     ``experiment.start``
running -> running      :func:`advance` (units recorded)       ``experiment.advance``
running -> completed    :func:`advance` reaching a verdict     ``experiment.complete``
planning/running ->     :func:`stop` (reason required)         ``experiment.stop``
stopped
======================  =====================================  ===============================

``completed`` and ``stopped`` are final. Any other transition is refused with a
:class:`~core.errors.ValidationError` naming the status, and nothing is written. Each transition is
written with its audit entry (:func:`core.data.store.audit.record`) in one transaction, and only
if the experiment is still in the status it was read in (otherwise :class:`~core.errors.ConflictError`).

Running: the experiment's simulation is seeded (``settings["seed"]``), so the caller simulates the
whole horizon once (:func:`core.experiment.simulate.simulate`) and :func:`advance` records the next
units of it, one day or several at a time, deciding after each batch under the plan's stopping rule
(:func:`core.experiment.analyse.decide`): a verdict of adopt or reject completes the experiment;
``extend`` keeps it running until the 60-day limit, where it completes as reject.

Adopting: :func:`adoption` hands rule B of a completed experiment whose verdict is adopt to the
policy's apply preview (:func:`core.policy.versions.preview`): B takes the place of the policy rule
named like A. Applying it stays a separate, confirmed step (``versions.apply(..., source="experiment")``).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from core.alerting.rules import Rule
from core.data.store import audit
from core.data.store import experiments as sql
from core.errors import ConflictError, NotFound, ValidationError
from core.experiment.analyse import DEFAULT_DELAY_MARGIN_S, Decision, decide
from core.experiment.plan import MAX_DAYS, Plan
from core.policy.versions import DEFAULT_POLICY, Preview, active_version, preview

__all__ = ["STATUSES", "TRANSITIONS", "create", "replan", "start", "advance", "stop", "get", "plan_of",
           "list_all", "recorded_units", "adoption"]

STATUSES = ("planning", "running", "completed", "stopped")
#: audit action -> (statuses it may start from, status it leads to)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "experiment.plan": (("planning",), "planning"),
    "experiment.start": (("planning",), "running"),
    "experiment.advance": (("running",), "running"),
    "experiment.complete": (("running",), "completed"),
    "experiment.stop": (("planning", "running"), "stopped"),
}


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("us")


def _json(obj: Any) -> str:
    return audit.canonical_json(obj)


def get(store: Any, experiment_id: int) -> dict[str, Any]:
    """The experiment as a dict (``rule_a``, ``rule_b``, ``plan``, ``settings``, ``result`` parsed)."""
    row = sql.get_experiment(store, experiment_id)
    if row is None:
        raise NotFound(f"experiment {experiment_id} does not exist")
    for k in ("rule_a", "rule_b", "plan", "settings", "result"):
        if row[k] is not None:
            row[k] = json.loads(row[k])
    return row


def plan_of(row: dict[str, Any]) -> Plan:
    """The stored plan as a :class:`Plan`."""
    return Plan(**row["plan"])


def list_all(store: Any) -> pd.DataFrame:
    """Every experiment (id, name, series, status, units so far, verdict), newest first."""
    df = sql.list_experiments(store)
    df["action"] = [json.loads(r)["action"] if isinstance(r, str) else None for r in df["result"]]
    return df[["id", "name", "series", "status", "units", "action", "stop_reason", "created_by", "created_at",
               "updated_at"]]


def recorded_units(store: Any, experiment_id: int) -> pd.DataFrame:
    return sql.units(store, experiment_id)


def _check(row: dict[str, Any], action: str) -> str:
    """The status ``action`` leads to; :class:`ValidationError` when the experiment's status forbids it."""
    allowed, to = TRANSITIONS[action]
    if row["status"] not in allowed:
        verb = action.split(".", 1)[1]
        raise ValidationError(f"experiment {row['id']} is {row['status']}: '{verb}' (to {to}) is allowed only "
                              f"from {' or '.join(allowed)}", path="status")
    return to


def _move(store: Any, row: dict[str, Any], action: str, actor: str | None, *,
          reason: str | None = None, detail: dict[str, Any] | None = None, **fields: Any) -> None:
    """Check and write one transition with its audit entry (call inside a transaction)."""
    frm, to = row["status"], _check(row, action)
    now = _now()
    if not sql.update_experiment(store, row["id"], frm, now.to_pydatetime(), status=to, **fields):
        raise ConflictError(f"experiment {row['id']} changed while you were working on it; reload it")
    audit.record(store, actor, action, object=f"experiment:{row['id']}", reason=reason,
                 detail={"from": frm, "to": to, **(detail or {})}, now=now)


def create(store: Any, *, name: str, series: str, rule_a: Rule, rule_b: Rule, plan: Plan,
           settings: dict[str, Any] | None = None, actor: str | None = None) -> int:
    """Store a new experiment in ``planning``; returns its id."""
    if not name or not str(name).strip():
        raise ValidationError("an experiment needs a name", path="name")
    if rule_a == rule_b:
        raise ValidationError("rule B is the same as rule A: that is an A/A check, not an experiment",
                              path="rule_b")
    now = _now()
    with store.transaction():
        eid = sql.insert_experiment(store, {
            "name": str(name).strip(), "series": series, "rule_a": _json(rule_a.to_dict()),
            "rule_b": _json(rule_b.to_dict()), "plan": _json(plan.to_dict()), "settings": _json(settings or {}),
            "status": "planning", "created_by": str(actor or "unknown"), "created_at": now.to_pydatetime(),
            "updated_at": now.to_pydatetime()})
        audit.record(store, actor, "experiment.create", object=f"experiment:{eid}",
                     detail={"to": "planning", "name": str(name).strip(), "series": series,
                             "stopping": plan.stopping, "units": plan.units}, now=now)
    return eid


def replan(store: Any, experiment_id: int, plan: Plan, *, actor: str | None = None) -> None:
    """Replace the plan while the experiment is still planning (refused once it runs)."""
    with store.transaction():
        row = get(store, experiment_id)
        _move(store, row, "experiment.plan", actor, plan=_json(plan.to_dict()),
              detail={"stopping": plan.stopping, "units": plan.units, "previous_units": row["plan"]["units"]})


def start(store: Any, experiment_id: int, *, actor: str | None = None) -> None:
    """planning -> running; the plan and its stopping rule are frozen from here on."""
    with store.transaction():
        row = get(store, experiment_id)
        _move(store, row, "experiment.start", actor,
              detail={"stopping": row["plan"]["stopping"], "units": row["plan"]["units"]})


def stop(store: Any, experiment_id: int, reason: str, *, actor: str | None = None) -> None:
    """planning/running -> stopped, with the reason (required)."""
    if not reason or not str(reason).strip():
        raise ValidationError("stopping an experiment needs a reason", path="reason")
    with store.transaction():
        row = get(store, experiment_id)
        _move(store, row, "experiment.stop", actor, reason=str(reason).strip(),
              stop_reason=str(reason).strip())


def advance(store: Any, experiment_id: int, outcomes: pd.DataFrame, *, units: int | None = 1,
            actor: str | None = None, delay_margin_s: float = DEFAULT_DELAY_MARGIN_S) -> Decision:
    """Record the next ``units`` units of the simulated ``outcomes`` (None: up to the verdict) and decide.

    Parameters
    ----------
    outcomes : DataFrame
        The whole simulated run (:attr:`core.experiment.simulate.Simulation.outcomes`); units already
        recorded are skipped, so calling this day by day walks through it.
    units : int or None
        Units to add in this step; None runs on, unit by unit, until a verdict or the end of ``outcomes``.
        With several units at once the batch is recorded whole; the verdict names the look it stopped
        at (``Decision.units``), which may lie inside the batch.

    Returns
    -------
    Decision
        The verdict on the units recorded so far. Adopt or reject completes the experiment (the
        verdict is stored as its result); so does reaching 60 days. ``extend`` leaves it running.
    """
    if units is not None and int(units) < 1:
        raise ValidationError("units to add must be >= 1", path="units")
    with store.transaction():
        row = get(store, experiment_id)
        if row["status"] == "planning":
            raise ValidationError(f"experiment {experiment_id} is planning: start it first", path="status")
        _check(row, "experiment.advance")
        plan = plan_of(row)
        done = sql.units(store, experiment_id)
        n0 = len(done)
        limit = MAX_DAYS * plan.units_per_day
        if n0 and not (done["arm"].to_numpy() == outcomes["arm"].iloc[:n0].to_numpy()).all():
            raise ValidationError("these outcomes do not continue the recorded units; simulate with the "
                                  "experiment's settings and seed", path="outcomes")
        if n0 >= len(outcomes):
            raise ValidationError(f"all {len(outcomes)} simulated units are recorded already", path="outcomes")
        step = len(outcomes) - n0 if units is None else int(units)
        n1 = min(n0 + step, len(outcomes), limit)
        seen = pd.concat([done, outcomes.iloc[n0:n1]], ignore_index=True) if n0 else outcomes.iloc[:n1]
        dec = decide(plan, seen, delay_margin_s=delay_margin_s)
        if units is None:                      # run to the verdict: stop at the first look that decides
            for k in range(max(n0 + 1, 2), n1 + 1):
                d = decide(plan, outcomes.iloc[:k], delay_margin_s=delay_margin_s)
                if d.action != "extend":
                    n1, dec = k, d
                    break
        sql.insert_units(store, experiment_id, outcomes.iloc[n0:n1])
        final = dec.action != "extend" or n1 >= limit
        if final and dec.action == "extend":
            dec = Decision("reject", f"reached the {MAX_DAYS}-day limit without a verdict ({dec.reason}); keep A",
                           dec.units, False, dec.primary, dec.guardrails, dec.path)
        _move(store, row, "experiment.advance", actor, detail={"units": [n0, n1]})
        if final:
            result = dec.to_dict()
            result.pop("path")
            row["status"] = "running"
            _move(store, row, "experiment.complete", actor, reason=dec.reason,
                  result=_json(result), detail={"action": dec.action, "units": n1})
    return dec


def adoption(store: Any, experiment_id: int, policy: str = DEFAULT_POLICY,
             now: Any = None) -> tuple[list[dict[str, Any]], Preview]:
    """The policy's rules with rule B in place of rule A, and the apply preview of that change.

    Only for a completed experiment whose verdict is adopt (:class:`ValidationError` otherwise).
    B keeps A's name so the policy's rule is replaced, not duplicated; when the policy in force has
    no rule of that name, B is added. Writes nothing.
    """
    row = get(store, experiment_id)
    if row["status"] != "completed" or (row["result"] or {}).get("action") != "adopt":
        verdict = (row["result"] or {}).get("action")
        raise ValidationError(f"experiment {experiment_id} is {row['status']}"
                              f"{f' with verdict {verdict}' if verdict else ''}: only a completed experiment "
                              "whose verdict is adopt hands rule B to the policy", path="status")
    name_a = row["rule_a"]["name"]
    b = Rule.from_dict({**row["rule_b"], "name": name_a}, path="rule_b").to_dict()
    active = active_version(store, policy, now)
    rules = [dict(r) for r in active.rule_dicts] if active else []
    at = next((i for i, r in enumerate(rules) if r["name"] == name_a), None)
    if at is None:
        rules.append(b)
    else:
        rules[at] = b
    return rules, preview(store, policy, rules, now)
