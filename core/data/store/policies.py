"""SQL of threshold policies (tables ``policies``, ``policy_versions``, ``approvals``; migration 002).

Version rows are never updated. A version's status is derived: ``approved`` when it needed no
approval or a second person approved it, ``rejected``, or ``pending_approval``. It is in force from
``in_force_from`` = its effective time (``effective_at`` or ``created_at``), or the approval time if
that is later. The active version at ``now`` is the highest-numbered version in force by ``now``.
Rules about who may write what live in :mod:`core.policy.versions`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.data.store.base import Store

VERSION_COLUMNS = ("policy_id", "number", "parent_number", "author", "created_at", "reason", "content",
                   "content_hash", "effective_at", "requires_approval", "significance", "source",
                   "experiment_id", "meta")

_SELECT = """
SELECT p.name AS policy, v.number, v.parent_number, v.author, v.created_at, v.reason, v.content,
       v.content_hash, v.effective_at, v.requires_approval, v.significance, v.source, v.experiment_id,
       v.meta,
       CASE WHEN NOT v.requires_approval THEN 'approved'
            WHEN a.decision IS NULL THEN 'pending_approval'
            ELSE a.decision END AS status,
       a.actor AS decided_by, a.reason AS decision_reason, a.decided_at,
       CASE WHEN NOT v.requires_approval THEN coalesce(v.effective_at, v.created_at)
            WHEN a.decision = 'approved' THEN greatest(coalesce(v.effective_at, v.created_at), a.decided_at)
       END AS in_force_from
FROM policy_versions v
JOIN policies p ON p.id = v.policy_id
LEFT JOIN approvals a ON a.policy_id = v.policy_id AND a.version_number = v.number
"""
ROW_FIELDS = ("policy", "number", "parent_number", "author", "created_at", "reason", "content", "content_hash",
              "effective_at", "requires_approval", "significance", "source", "experiment_id", "meta", "status",
              "decided_by", "decision_reason", "decided_at", "in_force_from")


def _rows(store: Store, where: str, params: list[Any], tail: str = "") -> list[dict[str, Any]]:
    rows = store.query_all(f"SELECT * FROM ({_SELECT}) WHERE {where} {tail}", params)
    return [dict(zip(ROW_FIELDS, r, strict=True)) for r in rows]


def list_policies(store: Store) -> list[str]:
    return [r[0] for r in store.query_all("SELECT name FROM policies ORDER BY name")]


def policy_id(store: Store, name: str) -> int | None:
    row = store.query_one("SELECT id FROM policies WHERE name = ?", [name])
    return int(row[0]) if row else None


def ensure_policy(store: Store, name: str, description: str | None = None) -> int:
    """Id of the named policy, creating it if needed (inside the caller's transaction)."""
    with store.transaction() as con:
        pid = policy_id(store, name)
        if pid is None:
            pid = int(con.execute("INSERT INTO policies (name, description) VALUES (?, ?) RETURNING id",
                                  [name, description]).fetchone()[0])
        return pid


def latest_number(store: Store, name: str) -> int:
    """Highest version number of a policy whatever its status; 0 when it has none."""
    row = store.query_one(
        "SELECT coalesce(max(v.number), 0) FROM policy_versions v JOIN policies p ON p.id = v.policy_id "
        "WHERE p.name = ?", [name])
    return int(row[0]) if row else 0


def insert_version(store: Store, row: dict[str, Any]) -> None:
    """Insert one version row (all of :data:`VERSION_COLUMNS`). Call inside a transaction."""
    with store.transaction() as con:
        con.execute(
            f"INSERT INTO policy_versions ({', '.join(VERSION_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in VERSION_COLUMNS)})",
            [row[c] for c in VERSION_COLUMNS],
        )


def insert_decision(store: Store, pid: int, number: int, decision: str, actor: str, reason: str,
                    decided_at: datetime) -> None:
    with store.transaction() as con:
        con.execute(
            "INSERT INTO approvals (policy_id, version_number, decision, actor, reason, decided_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", [pid, number, decision, actor, reason, decided_at])


def get_version(store: Store, name: str, number: int) -> dict[str, Any] | None:
    rows = _rows(store, "policy = ? AND number = ?", [name, int(number)])
    return rows[0] if rows else None


def versions(store: Store, name: str) -> list[dict[str, Any]]:
    """Every version of a policy, oldest first."""
    return _rows(store, "policy = ?", [name], "ORDER BY number")


def has_approved(store: Store, name: str) -> bool:
    """Whether any version of the policy was approved (in force now, earlier, or scheduled)."""
    row = store.query_one(f"SELECT count(*) FROM ({_SELECT}) WHERE policy = ? AND status = 'approved'", [name])
    return bool(row and row[0])


def active(store: Store, name: str, now: datetime) -> dict[str, Any] | None:
    """The version in force at ``now`` (see module doc), or None."""
    rows = _rows(store, "policy = ? AND in_force_from IS NOT NULL AND in_force_from <= ?", [name, now],
                 "ORDER BY number DESC LIMIT 1")
    return rows[0] if rows else None
