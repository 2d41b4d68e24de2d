"""SQL of the notification outbox (tables ``notices``, ``notice_deliveries``, ``notice_log``; migration
005). Only reads and writes; de-duplication, retries and the audit entry of each write live in
:mod:`core.policy.notify`, which calls these inside one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from core.data.store.sql import Store

NOTICE_FIELDS = ("id", "kind", "dedup_key", "title", "body", "payload", "created_at")
DELIVERY_FIELDS = ("notice_id", "channel", "status", "attempts", "next_attempt_at", "last_error", "sent_at")


def recent_duplicate(store: Store, dedup_key: str, since: datetime) -> int | None:
    """Id of a notice with ``dedup_key`` created at or after ``since``, else None."""
    row = store.query_one("SELECT id FROM notices WHERE dedup_key = ? AND created_at >= ? ORDER BY id DESC "
                          "LIMIT 1", [dedup_key, since])
    return int(row[0]) if row else None


def insert_notice(store: Store, row: dict[str, Any], channels: list[str]) -> int:
    """Insert a notice and one pending delivery per channel (due at ``created_at``); returns its id."""
    cols = [f for f in NOTICE_FIELDS if f != "id"]
    with store.transaction() as con:
        nid = int(con.execute(
            f"INSERT INTO notices ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) RETURNING id",
            [row[c] for c in cols]).fetchone()[0])
        if channels:
            con.executemany("INSERT INTO notice_deliveries (notice_id, channel, status, attempts, next_attempt_at) "
                            "VALUES (?, ?, 'pending', 0, ?)", [[nid, c, row["created_at"]] for c in channels])
    return nid


def due(store: Store, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """Pending deliveries due by ``now`` with their notice, oldest first."""
    cols = [f"d.{f}" for f in DELIVERY_FIELDS] + ["n.kind", "n.title", "n.body", "n.payload", "n.created_at"]
    rows = store.query_all(
        f"SELECT {', '.join(cols)} FROM notice_deliveries d JOIN notices n ON n.id = d.notice_id "
        "WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.notice_id LIMIT ?",
        [now, int(limit)])
    names = [*DELIVERY_FIELDS, "kind", "title", "body", "payload", "created_at"]
    return [dict(zip(names, r, strict=True)) for r in rows]


def record_attempt(store: Store, notice_id: int, channel: str, *, attempt: int, now: datetime, ok: bool,
                   http_status: int | None, error: str | None, status: str,
                   next_attempt_at: datetime | None) -> bool:
    """Log one attempt and move the delivery to ``status`` when it is still pending with ``attempt - 1``
    attempts (False, nothing written, when another worker got there first)."""
    with store.transaction() as con:
        rows = con.execute(
            "UPDATE notice_deliveries SET status = ?, attempts = ?, next_attempt_at = coalesce(?, next_attempt_at), "
            "last_error = ?, sent_at = CASE WHEN ? THEN ? ELSE sent_at END "
            "WHERE notice_id = ? AND channel = ? AND status = 'pending' AND attempts = ? RETURNING notice_id",
            [status, attempt, next_attempt_at, error, ok, now, int(notice_id), channel, attempt - 1]).fetchall()
        if not rows:
            return False
        con.execute("INSERT INTO notice_log (notice_id, channel, attempt, ts, ok, http_status, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", [int(notice_id), channel, attempt, now, ok, http_status, error])
    return True


def notices(store: Store, limit: int = 200) -> pd.DataFrame:
    """Notices, newest first, with their delivery state per channel (``channels``: ``name: status``)."""
    return store.query_df(
        f"SELECT {', '.join('n.' + f for f in NOTICE_FIELDS)}, "
        "coalesce(string_agg(d.channel || ': ' || d.status, ', ' ORDER BY d.channel), '') AS channels "
        "FROM notices n LEFT JOIN notice_deliveries d ON d.notice_id = n.id "
        f"GROUP BY {', '.join('n.' + f for f in NOTICE_FIELDS)} ORDER BY n.id DESC LIMIT ?", [int(limit)])


def delivery_log(store: Store, limit: int = 500) -> pd.DataFrame:
    """Every delivery attempt, newest first, with the notice's kind and title."""
    return store.query_df(
        "SELECT l.ts, l.notice_id, n.kind, n.title, l.channel, l.attempt, l.ok, l.http_status, l.error "
        "FROM notice_log l JOIN notices n ON n.id = l.notice_id ORDER BY l.ts DESC, l.notice_id DESC LIMIT ?",
        [int(limit)])


def deliveries(store: Store, notice_id: int) -> list[dict[str, Any]]:
    rows = store.query_all(f"SELECT {', '.join(DELIVERY_FIELDS)} FROM notice_deliveries WHERE notice_id = ? "
                           "ORDER BY channel", [int(notice_id)])
    return [dict(zip(DELIVERY_FIELDS, r, strict=True)) for r in rows]
