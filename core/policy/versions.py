"""Versioned threshold policies: diff, preview, apply with optimistic concurrency, approvals, rollback.

A policy is the set of alert rules in force (the app uses one named ``"default"``). Every change
creates a new, immutable :class:`PolicyVersion` numbered 1..n; nothing is edited in place and a
rollback is a new version whose content equals an older one.

Concurrency: a writer names the version its change was based on (``base_version``, the policy's
highest version number when the user started editing). If another version landed meanwhile,
:func:`apply` raises :class:`ConflictError` and writes nothing; the check and the insert happen in
one transaction.

Approval: a *significant* change (see :class:`SignificanceConfig`) is stored as
``pending_approval`` and comes into force only when a second person with the ``approver`` role
approves it. The version in force at a time ``now`` is the highest-numbered approved version whose
``effective_at`` (or creation, or approval if later) is not after ``now``; it is computed when asked,
so a scheduled change needs no scheduler. The first change of a policy with no approved version
(a bootstrap) needs no approval, so a lone operator can start; the audit trail says so. Threshold
moves are measured against the last *reviewed* version (approved by a second person, or the
bootstrap), so small steps cannot creep past the limit; changes to how a rule fires or is routed and
any removal are significant. A rollback that undoes the current version (restores the one in force
before it) takes effect at once; any other rollback is judged like a change.

Every write records an audit entry (:mod:`core.data.store.audit`) in the same transaction.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.alerting.prometheus import PromMapping
from core.alerting.replay import replay
from core.alerting.rules import Rule, normalise_rules, rule_to_dict
from core.data.frame import series_values
from core.data.store import audit
from core.data.store import outcomes as osql
from core.data.store import policies as sql
from core.data.store.base import CONCURRENT_WRITE_ERRORS, Store
from core.errors import ConflictError, NotFound, PermissionDenied, StudioError, ValidationError
from core.policy import notify
from core.policy.identity import User, os_account, require
from core.policy.policy_yaml import policy_from_yaml
from core.policy.prediction import predict_impact

DEFAULT_POLICY = "default"
DEMO_POLICY_PATH = Path(__file__).resolve().parents[2] / "data" / "demo_policy.yaml"
THRESHOLD_FIELDS = ("warning", "critical")


# ---------------------------------------------------------------------------------------- rules
def canonical_content(rule_dicts: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """``(canonical JSON, sha256 hex)`` of normalised rule dicts."""
    text = audit.canonical_json(list(rule_dicts))
    return text, audit.sha256_text(text)


def to_rules(rule_dicts: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """Rule objects from dicts."""
    return [Rule.from_dict(dict(d), path=f"rules[{i}]") for i, d in enumerate(rule_dicts)]


# ---------------------------------------------------------------------------------------- versions
@dataclass(frozen=True)
class PolicyVersion:
    """One immutable version of a policy. ``status`` is approved, pending_approval or rejected."""

    policy: str
    number: int
    parent_number: int | None
    author: str
    created_at: datetime
    reason: str
    content: str
    content_hash: str
    effective_at: datetime | None
    status: str
    requires_approval: bool
    significance: tuple[str, ...] = ()
    source: str = "apply"
    meta: dict[str, Any] = field(default_factory=dict)
    decided_by: str | None = None
    decision_reason: str | None = None
    decided_at: datetime | None = None
    in_force_from: datetime | None = None
    experiment_id: int | None = None

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> PolicyVersion:
        return cls(
            policy=row["policy"], number=int(row["number"]),
            parent_number=None if row["parent_number"] is None else int(row["parent_number"]),
            author=row["author"], created_at=row["created_at"], reason=row["reason"], content=row["content"],
            content_hash=row["content_hash"], effective_at=row["effective_at"], status=row["status"],
            requires_approval=bool(row["requires_approval"]),
            significance=tuple(json.loads(row["significance"] or "[]")), source=row["source"],
            meta=json.loads(row["meta"] or "{}"), decided_by=row["decided_by"],
            decision_reason=row["decision_reason"], decided_at=row["decided_at"],
            in_force_from=row["in_force_from"], experiment_id=row["experiment_id"])

    @property
    def rule_dicts(self) -> list[dict[str, Any]]:
        return json.loads(self.content)

    def rules(self) -> list[Any]:
        """The rules as :class:`core.alerting.rules.Rule` objects."""
        return to_rules(self.rule_dicts)

    @property
    def label(self) -> str:
        return f"{self.policy} v{self.number}"


def _now(now: Any = None) -> datetime:
    t = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.floor("us").to_pydatetime()


def history(store: Store, policy: str = DEFAULT_POLICY) -> list[PolicyVersion]:
    """Every version of a policy, oldest first (empty if the policy has none)."""
    return [PolicyVersion._from_row(r) for r in sql.versions(store, policy)]


def get_version(store: Store, policy: str, number: int) -> PolicyVersion:
    row = sql.get_version(store, policy, number)
    if row is None:
        latest = sql.latest_number(store, policy)
        raise NotFound(f"policy {policy!r} has no version {number} (versions are 1..{latest})"
                       if latest else f"policy {policy!r} has no versions yet")
    return PolicyVersion._from_row(row)


def active_version(store: Store, policy: str = DEFAULT_POLICY, now: Any = None) -> PolicyVersion | None:
    """The version in force at ``now`` (default: the current time), or None when none is."""
    row = sql.active(store, policy, _now(now))
    return PolicyVersion._from_row(row) if row else None


def in_force(versions: list[PolicyVersion], now: Any = None) -> PolicyVersion | None:
    """The version in force at ``now`` among ``versions`` (one policy's :func:`history`): the same
    answer as :func:`active_version` without a database read, for a caller that holds the history."""
    t = _now(now)
    live = [v for v in versions if v.in_force_from is not None and pd.Timestamp(v.in_force_from) <= t]
    return max(live, key=lambda v: v.number) if live else None


def rollback_targets(versions: list[PolicyVersion]) -> list[int]:
    """Version numbers a rollback may restore, newest first: approved versions (the only ones
    :func:`rollback` accepts) whose rules differ from the latest version's."""
    if not versions:
        return []
    latest = max(versions, key=lambda v: v.number)
    return [v.number for v in sorted(versions, key=lambda v: -v.number)
            if v.status == "approved" and v.content_hash != latest.content_hash]


def scheduled(versions: list[PolicyVersion], now: Any = None) -> list[PolicyVersion]:
    """Versions that take effect after ``now`` (default the current time) and were not rejected."""
    t = _now(now)
    return [v for v in versions if v.effective_at is not None and pd.Timestamp(v.effective_at) > t
            and v.status != "rejected"]


def latest_number(store: Store, policy: str = DEFAULT_POLICY) -> int:
    """The highest version number (any status): the ``base_version`` for the next change; 0 if none."""
    return sql.latest_number(store, policy)


# ---------------------------------------------------------------------------------------- diff
@dataclass(frozen=True)
class RuleChange:
    """A rule present on both sides with ``fields``: field -> (before, after). Nested mappings such as
    labels and annotations are compared per key (``labels.team``)."""

    name: str
    fields: dict[str, tuple[Any, Any]]


@dataclass(frozen=True)
class PolicyDiff:
    added: tuple[dict[str, Any], ...] = ()
    removed: tuple[dict[str, Any], ...] = ()
    changed: tuple[RuleChange, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    @property
    def affected(self) -> list[str]:
        """Names of rules added, removed or changed, sorted."""
        return sorted([r["name"] for r in self.added] + [r["name"] for r in self.removed]
                      + [c.name for c in self.changed])

    def summary(self) -> str:
        if self.is_empty:
            return "no changes"
        parts = []
        if self.added:
            parts.append(f"{len(self.added)} added ({', '.join(r['name'] for r in self.added)})")
        if self.removed:
            parts.append(f"{len(self.removed)} removed ({', '.join(r['name'] for r in self.removed)})")
        for c in self.changed:
            fs = "; ".join(f"{f}: {b!r} -> {a!r}" for f, (b, a) in c.fields.items())
            parts.append(f"{c.name}: {fs}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"added": [r["name"] for r in self.added], "removed": [r["name"] for r in self.removed],
                "changed": {c.name: {f: [b, a] for f, (b, a) in c.fields.items()} for c in self.changed}}


_MISSING = object()


# Values a rule dict (Rule.to_dict leaves defaults out) has when a field is absent, so a diff says
# "for: 0s -> 5m" rather than "for: None -> 5m".
_RULE_DEFAULTS = {"comparator": ">", "warning": None, "critical": None, "for": "0s", "keep_firing_for": "0s",
                  "recovery": None, "consecutive": 1, "missing": "nodata", "unit": None, "interval": None}


def _flatten(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(_RULE_DEFAULTS)
    for k, v in d.items():
        if isinstance(v, Mapping):
            for k2, v2 in v.items():
                out[f"{k}.{k2}"] = v2
        else:
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _as_dicts(x: Any) -> list[dict[str, Any]]:
    if x is None:
        return []
    if isinstance(x, PolicyVersion):
        return x.rule_dicts
    return normalise_rules(x)


def diff(a: Any, b: Any) -> PolicyDiff:
    """What changes going from ``a`` to ``b`` (each a :class:`PolicyVersion`, a list of rules, or None).

    Rules are matched by name. A changed rule lists each differing field with its before/after value
    (``None`` for a field present on one side only).
    """
    da = {r["name"]: r for r in _as_dicts(a)}
    db = {r["name"]: r for r in _as_dicts(b)}
    added = tuple(db[n] for n in sorted(db.keys() - da.keys()))
    removed = tuple(da[n] for n in sorted(da.keys() - db.keys()))
    changed, unchanged = [], []
    for n in sorted(da.keys() & db.keys()):
        fa, fb = _flatten(da[n]), _flatten(db[n])
        fields = {}
        for f in sorted(fa.keys() | fb.keys()):
            va, vb = fa.get(f, _MISSING), fb.get(f, _MISSING)
            if not _same(va, vb):
                fields[f] = (None if va is _MISSING else va, None if vb is _MISSING else vb)
        if fields:
            changed.append(RuleChange(n, fields))
        else:
            unchanged.append(n)
    return PolicyDiff(added, removed, tuple(changed), tuple(unchanged))


# ---------------------------------------------------------------------------------------- significance
# Fields whose change alters when an alert fires, what it watches or where it is routed. Annotations and
# the unit are descriptive and never significant on their own.
BEHAVIOUR_FIELDS = ("series", "matchers", "comparator", "for", "keep_firing_for", "consecutive", "missing",
                    "recovery", "interval", "labels", "severity_labels")


@dataclass(frozen=True)
class SignificanceConfig:
    """When a change needs a second person's approval.

    Parameters
    ----------
    threshold_change_pct : float
        A warning or critical threshold more than this percentage away from its *last reviewed* value
        (or being added to / removed from a rule) is significant. Default 20 (percent). The last
        reviewed value is the one in the newest version in force that a second person approved (or
        the bootstrap version), not the one in the immediate base, so creeping up in small steps
        (+19%, +19%, ...) needs approval once the total passes the limit.
    critical_rules : bool
        Any change to a rule that has a critical threshold (before or after), and adding or removing such
        a rule, is significant. Default True.
    behaviour_fields : tuple of str
        Rule fields whose change is significant on any rule (a nested field such as ``labels.team``
        counts under ``labels``). Default :data:`BEHAVIOUR_FIELDS`: series, matchers, comparator, for,
        keep_firing_for, consecutive, missing, recovery, interval, labels, severity_labels. Pass ``()``
        to judge thresholds only.
    removals : bool
        Removing any rule (renaming is a removal plus an addition) is significant. Default True.
    """

    threshold_change_pct: float = 20.0
    critical_rules: bool = True
    behaviour_fields: tuple[str, ...] = BEHAVIOUR_FIELDS
    removals: bool = True


def _has_critical(rule: Mapping[str, Any]) -> bool:
    v = rule.get("critical")
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _fmt(v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:g}"
    return "(none)" if v is None else v if isinstance(v, str) else repr(v)


def significant_changes(old: Any, new: Any, config: SignificanceConfig | None = None, *,
                        reviewed: Any = None) -> list[str]:
    """Reasons why going from ``old`` (the rules in force) to ``new`` needs approval (empty: it does not).

    Parameters
    ----------
    old, new : PolicyVersion, list of rules, or None
    config : SignificanceConfig, optional
    reviewed : PolicyVersion or list of rules, optional
        The last reviewed rules (see :class:`SignificanceConfig`); a threshold that changes is measured
        against its value there when the rule has it, else against ``old``. Default: ``old``.
    """
    cfg = config or SignificanceConfig()
    d = diff(old, new)
    reasons: list[str] = []
    if cfg.critical_rules:
        reasons += [f"adds rule {r['name']!r} with a critical threshold" for r in d.added if _has_critical(r)]
    for r in d.removed:
        if cfg.removals or (cfg.critical_rules and _has_critical(r)):
            reasons.append(f"removes rule {r['name']!r}" + (" with a critical threshold" if _has_critical(r)
                                                              else ""))
    old_by = {r["name"]: r for r in _as_dicts(old)}
    new_by = {r["name"]: r for r in _as_dicts(new)}
    ref_by = old_by if reviewed is None else {r["name"]: r for r in _as_dicts(reviewed)}
    for c in d.changed:
        o, n = old_by[c.name], new_by[c.name]
        if cfg.critical_rules and (_has_critical(o) or _has_critical(n)):
            reasons.append(f"changes rule {c.name!r}, which has a critical threshold "
                           f"({', '.join(c.fields)})")
            continue
        behaviour = [f for f in c.fields if f.split(".", 1)[0] in cfg.behaviour_fields]
        if behaviour:
            reasons.append(f"changes how rule {c.name!r} fires or is routed ("
                           + "; ".join(f"{f}: {_fmt(c.fields[f][0])} -> {_fmt(c.fields[f][1])}"
                                       for f in behaviour) + ")")
        for f in THRESHOLD_FIELDS:
            if f not in c.fields:
                continue
            before, after = c.fields[f]
            if before is None or after is None:
                reasons.append(f"{'adds' if before is None else 'removes'} the {f} threshold of {c.name!r}")
                continue
            ref = (ref_by.get(c.name) or {}).get(f)
            base = before if ref is None else ref
            pct = (0.0 if after == base else math.inf) if base == 0 else abs(after - base) / abs(base) * 100.0
            if pct > cfg.threshold_change_pct:
                why = f"{pct:.0f}%" if base == before else f"{pct:.0f}% away from {base:g}, the value last reviewed,"
                reasons.append(f"moves the {f} threshold of {c.name!r} from {before:g} to {after:g} "
                               f"({why} > {cfg.threshold_change_pct:g}%)")
    return reasons


def _reviewed_row(rows: Sequence[Mapping[str, Any]], active: Mapping[str, Any] | None,
                  now: datetime) -> Mapping[str, Any] | None:
    """The newest version in force by ``now`` (at or below the active one) that a person reviewed: one a
    second person approved, or the bootstrap (the first approved version). None when nothing is in force."""
    if active is None:
        return None
    approved = [r for r in rows if r["status"] == "approved"]
    if not approved:
        return None
    first = approved[0]["number"]
    cands = [r for r in approved if r["number"] <= active["number"] and r["in_force_from"] is not None
             and r["in_force_from"] <= now and (r["decided_by"] is not None or r["number"] == first)]
    return cands[-1] if cands else None


def _previous_in_force(rows: Sequence[Mapping[str, Any]], active: Mapping[str, Any] | None
                       ) -> Mapping[str, Any] | None:
    """The version that was in force when ``active`` took over (None: none was)."""
    if active is None:
        return None
    cands = [r for r in rows if r["status"] == "approved" and r["number"] < active["number"]
             and r["in_force_from"] is not None and r["in_force_from"] <= active["in_force_from"]]
    return cands[-1] if cands else None


@dataclass(frozen=True)
class _Judgement:
    significance: list[str]
    before: dict[str, Any] | None          # the version in force at ``now``
    bootstrap: bool = False
    undo_of: int | None = None             # a rollback that restores the version in force before this one
    reviewed: int | None = None            # number of the last reviewed version the thresholds were measured on


def _judge(store: Store, policy: str, rule_dicts: list[dict[str, Any]], now: datetime,
           cfg: SignificanceConfig | None, *, undo_ok: bool = False) -> _Judgement:
    """Whether writing ``rule_dicts`` at ``now`` needs approval, and why (reads only; call inside the
    write transaction). ``cfg`` None: no approval needed (the seed)."""
    before = sql.active(store, policy, now)
    if cfg is None:
        return _Judgement([], before)
    if before is None and not sql.has_approved(store, policy):
        # Bootstrap: with no approved version at all (none in force, none scheduled) there is nothing a
        # change could weaken, and a lone local operator must be able to start; it needs no approval.
        return _Judgement([], None, bootstrap=True)
    rows = sql.versions(store, policy)
    if undo_ok:
        prev = _previous_in_force(rows, before)
        if prev is not None and prev["content_hash"] == canonical_content(rule_dicts)[1]:
            return _Judgement([], before, undo_of=int(before["number"]))
    rev = _reviewed_row(rows, before, now)
    reasons = significant_changes(json.loads(before["content"]) if before else None, rule_dicts, cfg,
                                  reviewed=json.loads(rev["content"]) if rev else None)
    return _Judgement(reasons, before, reviewed=int(rev["number"]) if rev else None)


# ---------------------------------------------------------------------------------------- writes
def _check_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("a reason is required for every policy change (it goes into the audit trail)",
                              path="reason")
    return reason.strip()


def _conflict_message(store: Store, policy: str, base_version: int, latest: int) -> str:
    if latest < base_version:
        return (f"policy {policy!r} has no version {base_version} (latest is {latest}); "
                "nothing was written")
    row = sql.get_version(store, policy, latest)
    who = f" ({row['author']}: {row['reason']!r})" if row else ""
    return (f"policy {policy!r} changed while you were editing: your change was based on v{base_version} "
            f"but v{latest} now exists{who}. Nothing was written; reload, review the diff and apply again.")


def _write_version(store: Store, policy: str, rule_dicts: list[dict[str, Any]], *, base_version: int,
                   author: str, reason: str, effective_at: datetime | None, now: datetime,
                   judge: SignificanceConfig | None, source: str, action: str,
                   meta: dict[str, Any] | None, extra_detail: dict[str, Any] | None = None,
                   undo_ok: bool = False, actor: str | None = None,
                   os_user: str | None = None, experiment_id: int | None = None,
                   supplied: Mapping[str, Mapping[str, Any]] | None = None,
                   review_reason: str | None = None) -> PolicyVersion:
    """Check-and-insert one version plus its audit entry in one transaction. ``judge`` None: no approval
    needed; else significance is judged (:func:`_judge`) against the version in force at ``now`` and the
    last reviewed one, inside the transaction. ``undo_ok``: restoring the version in force before the
    current one needs no approval (a rollback's undo). ``actor``: who the audit entry names (default the
    author). ``os_user``: the OS account recorded with it (default this process's, :func:`os_account`).
    The predicted impact (:func:`core.policy.prediction.predict_impact`, against the version in force at
    ``now``; ``supplied``: recommendation predictions by series) is computed before the transaction and
    stored inside it. ``review_reason``: the version waits for approval whatever its significance (a
    rollback a trigger only proposes)."""
    content, chash = canonical_content(rule_dicts)
    in_force = sql.active(store, policy, now)
    predicted = predict_impact(store, json.loads(in_force["content"]) if in_force else [], rule_dicts, now,
                               supplied=supplied)
    try:
        with store.transaction():
            latest = sql.latest_number(store, policy)
            if latest != int(base_version):
                raise ConflictError(_conflict_message(store, policy, int(base_version), latest))
            base = sql.get_version(store, policy, latest) if latest else None
            if base is not None and base["content_hash"] == chash and effective_at is None:
                raise ValidationError(f"nothing to apply: the rules equal v{latest} of {policy!r}",
                                      path="rules")
            if meta is None:
                meta = json.loads(base["meta"]) if base else {}
            j = _judge(store, policy, rule_dicts, now, judge, undo_ok=undo_ok)
            before, bootstrap, significance = j.before, j.bootstrap, j.significance
            if review_reason:
                significance = [review_reason, *significance]
            requires_approval = bool(significance)
            pid = sql.ensure_policy(store, policy)
            number = latest + 1
            sql.insert_version(store, {
                "policy_id": pid, "number": number, "parent_number": latest or None, "author": author,
                "created_at": now, "reason": reason, "content": content, "content_hash": chash,
                "effective_at": effective_at, "requires_approval": bool(requires_approval),
                "significance": audit.canonical_json(significance), "source": source,
                "experiment_id": None if experiment_id is None else int(experiment_id),
                "meta": audit.canonical_json(meta),
            })
            osql.insert_predictions(store, [{**r, "policy": policy, "version": number} for r in predicted])
            d = diff(json.loads(before["content"]) if before else None, rule_dicts)
            detail = {"version": number, "base_version": int(base_version), "diff": d.to_dict(),
                      "status": "pending_approval" if requires_approval else "approved",
                      "significance": significance, "effective_at": effective_at, "source": source,
                      "os_account": os_user or os_account(), "predictions": len(predicted),
                      "predictions_sha256": audit.sha256_text(audit.canonical_json(predicted)),
                      **(extra_detail or {})}
            if bootstrap:
                detail["bootstrap"] = True
            if j.undo_of is not None:
                detail["undo_of"] = j.undo_of
            if j.reviewed is not None:
                detail["reviewed_version"] = j.reviewed
            audit.record(store, actor or author, action, object=f"policy:{policy}@v{number}",
                         reason=f"{reason} (bootstrap: no policy in force)" if bootstrap else reason,
                         detail=detail, before_hash=before["content_hash"] if before else None,
                         after_hash=chash, now=now)
            if requires_approval:
                notify.enqueue(store, "pending_approval", f"pending_approval:{policy}@v{number}",
                               f"{policy} v{number} waits for approval",
                               f"{author} changed policy {policy!r} ({reason}); it needs a second person's "
                               f"approval: {'; '.join(significance)}",
                               {"policy": policy, "version": number, "author": author, "significance": significance},
                               now=now, actor=actor or author)
    except CONCURRENT_WRITE_ERRORS as exc:
        # Another connection to the same database inserted the same version number first.
        raise ConflictError(f"policy {policy!r} changed while you were editing (a concurrent write to "
                            f"v{int(base_version) + 1} won). Nothing was written; reload and apply again. "
                            f"[{type(exc).__name__}]") from exc
    return get_version(store, policy, number)


def _effective(effective_at: Any, now: datetime) -> datetime | None:
    if effective_at is None:
        return None
    t = _now(effective_at)
    if t < now:
        raise ValidationError(f"effective_at {t.isoformat()} is in the past (now is {now.isoformat()}); "
                              "a change can only be scheduled for now or later", path="effective_at")
    return t


def apply(store: Store, policy: str, new_rules: Iterable[Any], *, base_version: int, user: User, reason: str,
          effective_at: Any = None, now: Any = None, meta: dict[str, Any] | None = None,
          significance: SignificanceConfig | None = None, source: str = "apply",
          experiment_id: int | None = None,
          predictions: Mapping[str, Mapping[str, Any]] | None = None) -> PolicyVersion:
    """Create a new version of ``policy`` holding ``new_rules``.

    Parameters
    ----------
    base_version : int
        The version number the change was prepared against (:func:`latest_number` when editing began;
        0 for a policy with no versions). If another version landed since, :class:`ConflictError` is
        raised and nothing is written.
    user : User
        Needs the ``editor`` role (:class:`PermissionDenied` otherwise).
    reason : str
        Why; required, recorded in the version and the audit trail.
    effective_at : datetime-like, optional
        Schedule the change (UTC); it is in force only from then on. Default: at once.
    now : datetime-like, optional
        The current time (for tests and replays); default the clock.
    meta : dict, optional
        Policy-level settings kept with the version (from YAML); default: those of the base version.
    significance : SignificanceConfig, optional
        What counts as a significant change, judged against the version in force now. When the
        policy has no approved version at all (nothing in force or scheduled), the change is a
        bootstrap: it takes effect without approval and its audit reason says
        ``"bootstrap: no policy in force"``.
    experiment_id : int, optional
        The A/B experiment whose rule B this version adopts (kept as ``experiment_id``).
    predictions : mapping, optional
        Recommendation predictions by series key (``predicted_episodes_per_week``,
        ``predicted_interval``) stored as the change's predicted episodes/week; everything else is
        predicted by replay (:mod:`core.policy.prediction`) and stored in the same transaction.

    Returns
    -------
    PolicyVersion
        Status ``approved`` (in force from ``effective_at`` or now) or ``pending_approval``.
    """
    require(user, "editor")
    reason = _check_reason(reason)
    t = _now(now)
    eff = _effective(effective_at, t)
    dicts = normalise_rules(new_rules)
    return _write_version(store, policy, dicts, base_version=base_version, author=user.id, reason=reason,
                          effective_at=eff, now=t, judge=significance or SignificanceConfig(),
                          source=source, action=f"policy.{source}", meta=meta, os_user=user.os_account,
                          experiment_id=experiment_id, supplied=predictions)


def _rollback_target(store: Store, policy: str, to_version: int) -> PolicyVersion:
    target = get_version(store, policy, to_version)
    if target.status != "approved":
        raise ValidationError(f"cannot roll back to v{to_version} of {policy!r}: it is {target.status}; only a "
                              "version that was approved can be restored", path="to_version")
    return target


def rollback(store: Store, policy: str, to_version: int, user: User, reason: str, base_version: int, *,
             now: Any = None, significance: SignificanceConfig | None = None,
             propose: str | None = None, extra_detail: dict[str, Any] | None = None) -> PolicyVersion:
    """Create a new version whose rules equal those of ``to_version`` (history is never rewritten).

    Only a version that was approved (needed no approval, or was approved) can be rolled back to.

    Approval: an *undo* (the rules of the version that was in force just before the current one took
    over) takes effect at once, so a change that misbehaves can be reverted without waiting for a
    second person; that content was in force moments ago. Any other rollback is judged like
    :func:`apply` (against the version in force, thresholds against the last reviewed values): going
    back to old rules can undo reviewed changes, so a far rollback may wait for approval. The audit
    detail says ``undo_of`` when the undo rule applied. The version's reason reads
    ``"rollback to vN: <reason>"``. ``propose`` (a reason): the rollback waits for approval in any case
    (a rollback trigger in ``propose`` mode); ``extra_detail`` is added to the audit entry.
    """
    require(user, "editor")
    reason = _check_reason(reason)
    target = _rollback_target(store, policy, to_version)
    t = _now(now)
    return _write_version(store, policy, target.rule_dicts, base_version=base_version, author=user.id,
                          reason=f"rollback to v{to_version}: {reason}", effective_at=None, now=t,
                          judge=significance or SignificanceConfig(), source="rollback",
                          action="policy.rollback", meta=dict(target.meta),
                          extra_detail={"rollback_to": int(to_version), **(extra_detail or {})}, undo_ok=True,
                          os_user=user.os_account, review_reason=propose)


def rollback_reasons(store: Store, policy: str, to_version: int, now: Any = None,
                     significance: SignificanceConfig | None = None) -> list[str]:
    """Why rolling back to ``to_version`` at ``now`` would need approval (empty: it takes effect at once);
    the same judgement :func:`rollback` makes. Writes nothing."""
    target = _rollback_target(store, policy, to_version)
    return _judge(store, policy, target.rule_dicts, _now(now), significance or SignificanceConfig(),
                  undo_ok=True).significance


def _decide(store: Store, version: PolicyVersion | int, user: User, reason: str, decision: str,
            policy: str, now: Any) -> PolicyVersion:
    reason = _check_reason(reason)
    number = version.number if isinstance(version, PolicyVersion) else int(version)
    policy = version.policy if isinstance(version, PolicyVersion) else policy
    t = _now(now)
    with store.transaction():
        v = get_version(store, policy, number)
        if v.status != "pending_approval":
            what = "needed no approval" if not v.requires_approval else f"was already {v.status} by {v.decided_by}"
            raise ConflictError(f"v{number} of {policy!r} {what}; nothing to {decision[:-1]}")
        is_author = v.author in {user.id, user.name}
        me = user.os_account or os_account()
        author_os = author_os_account(store, policy, number)
        if decision == "approved":
            require(user, "approver")
            if is_author:
                raise PermissionDenied(f"{user.id} wrote v{number} of {policy!r} and cannot approve their own "
                                       "change; a second person with the approver role must approve it")
            why = _same_os_blocker(user, me, author_os, v)
            if why:
                raise PermissionDenied(why)
            newer = [h for h in history(store, policy) if h.number > number and h.status != "rejected"]
            if newer:
                raise ConflictError(f"v{number} of {policy!r} was superseded by v{newer[0].number}; approving it "
                                    "would have no effect. Reject it, or re-apply its changes on top of the "
                                    "latest version")
        elif not (is_author or user.has("approver")):
            raise PermissionDenied(f"{user.id} may not reject v{number} of {policy!r}: that needs the approver "
                                   "role (or being its author, to withdraw it)")
        pid = sql.policy_id(store, policy)
        before = sql.active(store, policy, t)
        sql.insert_decision(store, pid, number, decision, user.id, reason, t)
        after = sql.active(store, policy, t)
        audit.record(store, user.id, "policy.approve" if decision == "approved" else "policy.reject",
                     object=f"policy:{policy}@v{number}", reason=reason,
                     detail={"version": number, "author": v.author, "decision": decision,
                             "significance": list(v.significance), "effective_at": v.effective_at,
                             "os_account": me, "author_os_account": author_os,
                             "authenticated": bool(user.authenticated)},
                     before_hash=before["content_hash"] if before else None,
                     after_hash=after["content_hash"] if after else None, now=t)
    return get_version(store, policy, number)


_CREATE_ACTIONS = ("policy.apply", "policy.import", "policy.rollback", "policy.seed", "policy.experiment")


def author_os_account(store: Store, policy: str, number: int) -> str | None:
    """The OS account recorded when v``number`` of ``policy`` was written (None: not recorded, e.g. a
    version written before the studio recorded it)."""
    df = audit.list_audit(store, object=f"policy:{policy}@v{int(number)}")
    for obj, action, detail in zip(df["object"], df["action"], df["detail"], strict=True):
        if obj == f"policy:{policy}@v{int(number)}" and action in _CREATE_ACTIONS:
            return detail.get("os_account")
    return None


def _same_os_blocker(user: User, me: str, author_os: str | None, v: PolicyVersion) -> str | None:
    """In local mode (no OIDC login) the approver's name is only claimed, so the OS account decides
    whether the approver is a second person: refused when it equals the author's, or is unknown."""
    if user.authenticated:
        return None
    if author_os is None:
        return (f"v{v.number} has no recorded OS account, so a local approval cannot show it comes from "
                "a second person; approve it logged in through OIDC, or re-apply the change and approve that")
    if author_os == me:
        return (f"v{v.number} was written from OS account {author_os!r} and this approval comes from the same "
                f"account; without login the name {user.id!r} is not proof of identity, so the second person "
                "must approve from their own OS account (or log in through OIDC)")
    return None


def approval_blocker(user: User, version: PolicyVersion, store: Store | None = None) -> str | None:
    """Why ``user`` may not approve ``version`` now, in words (None: they may). Mirrors :func:`approve`
    except the superseded check; the OS-account check of a local approval needs ``store``."""
    if version.status != "pending_approval":
        return f"v{version.number} is {version.status}; only a pending version can be approved"
    if not user.has("approver"):
        return (f"{user.id} may not approve: that needs the 'approver' role (they have "
                f"{', '.join(sorted(user.roles))})")
    if version.author in {user.id, user.name}:
        return f"{user.id} wrote v{version.number}; a second person with the approver role must approve it"
    if store is not None:
        return _same_os_blocker(user, user.os_account or os_account(),
                                author_os_account(store, version.policy, version.number), version)
    return None


def rejection_blocker(user: User, version: PolicyVersion) -> str | None:
    """Why ``user`` may not reject ``version`` (None: they may: an approver, or its author withdrawing it)."""
    if version.status != "pending_approval":
        return f"v{version.number} is {version.status}; only a pending version can be rejected"
    if not (user.has("approver") or version.author in {user.id, user.name}):
        return (f"{user.id} may not reject: that needs the 'approver' role (or being the author, to "
                "withdraw it)")
    return None


def approve(store: Store, version: PolicyVersion | int, user: User, reason: str, *,
            policy: str = DEFAULT_POLICY, now: Any = None) -> PolicyVersion:
    """Approve a pending version. ``user`` needs the approver role and must not be its author.

    In local mode (``user.authenticated`` False) the approval is also refused when it comes from the OS
    account that wrote the version (or that account was not recorded): the claimed name proves nothing.
    The audit entry records the approver's OS account next to the claimed name.

    The version comes into force at its ``effective_at`` or now, whichever is later. Approving a version
    that a newer version already superseded raises :class:`ConflictError`.
    """
    return _decide(store, version, user, reason, "approved", policy, now)


def reject(store: Store, version: PolicyVersion | int, user: User, reason: str, *,
           policy: str = DEFAULT_POLICY, now: Any = None) -> PolicyVersion:
    """Reject a pending version (an approver, or its author withdrawing it). It never comes into force."""
    return _decide(store, version, user, reason, "rejected", policy, now)


# ---------------------------------------------------------------------------------------- preview
#: Replayed numbers per side of a preview row. ``episodes`` (alert episodes, any level) is the count the
#: UI needs to gate precision (a precision over a handful of episodes is not a number to act on).
IMPACT_METRICS = ("episodes", "episodes_per_week", "time_in_alert_pct", "incidents", "incidents_caught",
                  "recall", "precision")


def _replay_metrics(rule: Any, values: pd.Series, incidents: pd.DataFrame,
                    lookback_s: float) -> tuple[dict[str, Any], list[str]]:
    """Replay one rule on one series; the impact metrics (None where the replay cannot say) and notes.
    ``lookback_s``: the export's lookback (how long ``missing: keep_last`` carries a value)."""
    rep = replay(rule, values, lookback_s=lookback_s)
    s = rep.summary(incidents=incidents if len(incidents) else None)
    out = {k: s.get(k) for k in IMPACT_METRICS}
    if len(incidents) and s.get("fn") is not None:
        out["incidents_caught"] = int(s["incidents"]) - int(s["fn"])
    else:
        out["incidents"] = 0
    return out, list(s.get("notes") or [])


@dataclass(frozen=True)
class Preview:
    """What applying ``new_rules`` would change.

    Attributes
    ----------
    diff : PolicyDiff
        Active version -> new rules.
    impact : pandas.DataFrame
        One row per (rule, series) of an affected rule with ``old_*`` and ``new_*`` replay metrics
        (:data:`IMPACT_METRICS`): alert episodes (count, any level), episodes per week, time in alert
        (percent), incidents caught / total, recall, precision. None where a side has no such rule or
        the replay could not say (``notes`` says why).
    significance : list of str
        Why the change would need approval (empty: it takes effect at once).
    base_version : int
        Pass this to :func:`apply` as ``base_version``.
    notes : list of str
        Series matched by nothing, replays that failed for thin data, and the like.
    lookback_s : float
        The export lookback (seconds) the replays used: ``missing: keep_last`` carries a value for
        ``max(lookback, for + (consecutive - 1) x interval)``, as the Prometheus export does.
    """

    policy: str
    active_number: int | None
    base_version: int
    diff: PolicyDiff
    impact: pd.DataFrame
    significance: list[str]
    notes: list[str]
    lookback_s: float = PromMapping().lookback_s

    @property
    def requires_approval(self) -> bool:
        return bool(self.significance)


def matching_series(rule: Any, keys: Iterable[str]) -> list[str]:
    """Stored series keys a rule selects (``Rule.matching``: exact key or glob, plus matchers)."""
    if hasattr(rule, "matching"):
        return list(rule.matching(keys))
    pattern = rule_to_dict(rule).get("series", "")
    keys = list(keys)
    if pattern in keys:
        return [pattern]
    return sorted(k for k in keys if any(c in pattern for c in "*?") and fnmatch.fnmatchcase(k, pattern))


def approval_reasons(store: Store, policy: str, new_rules: Iterable[Any], now: Any = None,
                     significance: SignificanceConfig | None = None) -> list[str]:
    """Why applying ``new_rules`` at ``now`` would need approval (empty: it would take effect at once).

    Judged as :func:`apply` does: against the version in force, thresholds against their last reviewed
    values; a bootstrap (no approved version at all) needs none.
    """
    return _judge(store, policy, normalise_rules(new_rules), _now(now),
                  significance or SignificanceConfig()).significance


def preview(store: Store, policy: str, new_rules: Iterable[Any], now: Any = None,
            significance: SignificanceConfig | None = None, *, mapping: PromMapping | None = None) -> Preview:
    """Diff of the active version against ``new_rules`` and the replayed impact of both over the stored
    history (all of it, with the stored incidents), for the series of affected rules only. Writes nothing.

    ``mapping`` is the :class:`core.alerting.prometheus.PromMapping` the rules are exported with (default
    ``PromMapping()``); its lookback bounds how long ``missing: keep_last`` carries a value, so the
    preview replays what the export will do. A replay that cannot give an honest number (e.g. too
    little data) leaves NaN and adds a note.
    """
    lookback_s = (mapping if mapping is not None else PromMapping()).lookback_s
    t = _now(now)
    dicts = normalise_rules(new_rules)
    active = active_version(store, policy, t)
    old = active.rule_dicts if active else []
    d = diff(old, dicts)
    reasons = approval_reasons(store, policy, dicts, t, significance)
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    if not d.is_empty:
        try:
            import core.alerting.replay  # noqa: F401
        except ImportError:
            notes.append("impact not computed: core.alerting.replay is not available")
        else:
            keys = store.series_keys()
            old_objs = {r["name"]: o for r, o in zip(old, to_rules(old), strict=True)}
            new_objs = {r["name"]: o for r, o in zip(dicts, to_rules(dicts), strict=True)}
            plan: list[tuple[str, str, str]] = []
            for name in d.affected:
                change = "added" if name not in old_objs else "removed" if name not in new_objs else "changed"
                matched = sorted(set(matching_series(old_objs[name], keys) if name in old_objs else [])
                                 | set(matching_series(new_objs[name], keys) if name in new_objs else []))
                if not matched:
                    pattern = (new_objs.get(name) or old_objs[name]).series
                    notes.append(f"rule {name!r}: no stored series matches {pattern!r}; no impact to show")
                plan += [(name, change, k) for k in matched]
            points = store.get_points(sorted({k for _, _, k in plan})) if plan else None
            for name, change, key in plan:
                values = series_values(points, key)
                incidents = store.list_incidents(key)
                row: dict[str, Any] = {"rule": name, "series": key, "change": change,
                                       "points": int(values.notna().sum())}
                for side, objs in (("old", old_objs), ("new", new_objs)):
                    metrics: dict[str, Any] = dict.fromkeys(IMPACT_METRICS)
                    rule = objs.get(name)
                    if rule is not None and rule.matches(key):
                        try:
                            metrics, more = _replay_metrics(rule, values, incidents, lookback_s)
                            notes += [f"{name} on {key} ({side}): {m}" for m in more]
                        except StudioError as exc:  # e.g. InsufficientDataError: say so, show no number
                            notes.append(f"{name} on {key} ({side}): {exc}")
                    row.update({f"{side}_{k}": v for k, v in metrics.items()})
                rows.append(row)
    notes = list(dict.fromkeys(notes))
    cols = ["rule", "series", "change", "points"] + [f"{s}_{k}" for s in ("old", "new") for k in IMPACT_METRICS]
    impact = pd.DataFrame(rows, columns=cols)
    return Preview(policy, active.number if active else None, latest_number(store, policy), d, impact,
                   reasons, notes, lookback_s)


# ---------------------------------------------------------------------------------------- import / seed
def import_yaml(store: Store, text: str, *, user: User, reason: str, base_version: int | None = None,
                policy: str | None = None, now: Any = None, source: str = "import",
                file: str | None = None) -> PolicyVersion:
    """Parse a policy YAML (:func:`core.policy.policy_yaml.policy_from_yaml`) and apply it as a new version.

    ``base_version`` defaults to the latest version at the time of the call. The policy name comes from
    ``policy``, else the file's ``policy:`` field, else ``"default"``. ``file`` (its name) starts the
    message of a :class:`ValidationError` in the YAML.
    """
    rules, meta = policy_from_yaml(text, source=file)
    name = policy or meta.get("policy") or DEFAULT_POLICY
    base = latest_number(store, name) if base_version is None else base_version
    return apply(store, name, rules, base_version=base, user=user, reason=reason, now=now, meta=meta,
                 source=source)


@dataclass(frozen=True)
class RuleImportPlan:
    """What importing deployed rule files would make the policy (see :func:`plan_rule_import`).

    ``rules`` and ``meta`` are what :func:`import_rules` applies (``meta["carried_rules"]`` holds the rules
    kept unchanged); ``notes`` say what a reader should know (not tunable, unmapped, no stored series).
    """

    policy: str
    rules: list[Rule]
    meta: dict[str, Any]
    notes: list[str]
    base_version: int

    @property
    def carried(self) -> list[dict[str, Any]]:
        return list(self.meta.get("carried_rules") or [])


def _carried_key(c: Mapping[str, Any]) -> tuple[str, str, str]:
    return str(c.get("source")), str(c.get("group")), str(c.get("name"))


def plan_rule_import(store: Store, result: Any, *, policy: str = DEFAULT_POLICY, merge: bool = False,
                     now: Any = None) -> RuleImportPlan:
    """The rules and meta a rule-file import (:func:`core.alerting.rule_import.import_rule_files`) gives.

    Without ``merge`` the imported rules replace the policy's rules and carried rules; with ``merge`` they
    replace only the rules (and carried rules) of the same name and keep the others. Writes nothing;
    pass the plan's rules to :func:`preview` to see the diff and replayed impact.
    """
    active = active_version(store, policy, now)
    base_meta = dict(active.meta) if active else {}
    rules = {r.name: r for r in (active.rules() if active and merge else [])}
    rules.update({r.name: r for r in result.rules})
    carried = {_carried_key(c): dict(c) for c in (base_meta.get("carried_rules") or []) if merge}
    new_names = {r.name for r in result.rules}
    for name in result_names(result) - new_names:  # now carried: the old tunable rule goes
        rules.pop(name, None)
    for k in [k for k in carried if k[2] in result_names(result)]:
        del carried[k]
    carried.update({_carried_key(c): dict(c) for c in result.carried})
    meta = {**base_meta, "carried_rules": list(carried.values())}
    if not meta["carried_rules"]:
        meta.pop("carried_rules")
    keys = store.series_keys()
    notes = list(result.notes)
    notes += [f"{r.name}: matches no stored series yet (series {r.series!r}); kept, and replayed once that "
              "data is loaded" for r in result.rules if not r.matching(keys)]
    return RuleImportPlan(policy, sorted(rules.values(), key=lambda r: r.name), meta, notes,
                          latest_number(store, policy))


def result_names(result: Any) -> set[str]:
    """Every rule name an import result holds (tunable and carried)."""
    return {r.name for r in result.rules} | {str(c.get("name")) for c in result.carried}


def import_rules(store: Store, plan: RuleImportPlan, *, user: User, reason: str,
                 base_version: int | None = None, now: Any = None) -> PolicyVersion:
    """Apply a :class:`RuleImportPlan` as a new policy version (source ``import``; approval as usual).

    ``base_version`` defaults to the version the plan was made against; a newer one is a conflict.
    """
    base = plan.base_version if base_version is None else base_version
    return apply(store, plan.policy, plan.rules, base_version=base, user=user, reason=reason, now=now,
                 meta=plan.meta, source="import")


def seed_demo_policy(store: Store, path: str | Path | None = None, now: Any = None, *,
                     actor: str = "seed") -> PolicyVersion | None:
    """Import ``data/demo_policy.yaml`` as version 1 of ``default`` if the store has no policy yet.

    The seed is a bootstrap, not a change to rules in force, so it needs no approval. The version's
    author is always ``"seed"`` (it marks the bootstrap content); ``actor`` is who the audit entry names
    as having performed it (``data.generate.write_demo`` passes ``"demo-generator"``). Returns the new
    version, or None when a policy already existed.
    """
    if latest_number(store, DEFAULT_POLICY) > 0:
        return None
    p = Path(path) if path is not None else DEMO_POLICY_PATH
    rules, meta = policy_from_yaml(p.read_text(encoding="utf-8"))
    dicts = normalise_rules(rules)
    try:
        return _write_version(store, DEFAULT_POLICY, dicts, base_version=0, author="seed",
                              reason=f"demo policy from {p.name}", effective_at=None, now=_now(now),
                              judge=None, source="seed", action="policy.seed",
                              meta=meta, actor=actor)
    except ConflictError:  # another session seeded it first
        return None
