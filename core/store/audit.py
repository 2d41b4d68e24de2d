"""SQL of the audit trail (table ``audit``, migration 002). Hashing and policy live in :mod:`core.audit`.

Every function takes a :class:`~core.store.base.Store`; writes run inside ``store.transaction()``,
which is re-entrant, so an entry recorded during another write joins that write's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from core.store.base import Store, _where

COLUMNS = ("seq", "ts", "actor", "action", "object", "reason", "detail", "before_hash", "after_hash",
           "prev_hash", "entry_hash")


def last_entry(store: Store) -> tuple[int, str] | None:
    """``(seq, entry_hash)`` of the newest entry, or None for an empty trail."""
    row = store.query_one("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1")
    return (int(row[0]), str(row[1])) if row else None


def insert_entry(store: Store, entry: dict[str, Any]) -> None:
    """Append one fully formed entry (all of :data:`COLUMNS`). Call inside a transaction."""
    with store.transaction() as con:
        con.execute(
            f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})",
            [entry[c] for c in COLUMNS],
        )


def all_entries(store: Store) -> list[tuple]:
    """Every entry as a tuple in :data:`COLUMNS` order, oldest first (for verification)."""
    return store.query_all(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq")


def select_entries(store: Store, *, actor: str | None = None, action: str | None = None,
                   object_prefix: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, limit: int | None = None) -> pd.DataFrame:
    """Entries matching every given filter, newest first."""
    where, params = _where(("actor = ?", actor), ("action = ?", action),
                           ("starts_with(coalesce(object, ''), ?)", object_prefix),
                           ("ts >= ?", since), ("ts <= ?", until))
    sql = f"SELECT {', '.join(COLUMNS)} FROM audit WHERE {where} ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return store.query_df(sql, params)
