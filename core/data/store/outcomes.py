"""SQL of change predictions and rollback trigger firings (tables ``change_predictions``,
``trigger_firings``; migration 006). Only reads and writes; what is predicted and when a trigger fires
live in :mod:`core.policy.prediction`, :mod:`core.policy.outcomes` and :mod:`core.policy.triggers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from core.data.store.sql import Store, where_clause

PREDICTION_FIELDS = ("policy", "version", "rule", "series", "measure", "predicted", "predicted_low",
                     "predicted_high", "source", "window_start", "window_end", "basis", "note")
FIRING_FIELDS = ("policy", "version", "trigger", "fired_at", "mode", "result_version", "evidence")


def insert_predictions(store: Store, rows: Sequence[dict[str, Any]]) -> int:
    """Insert prediction rows (all of :data:`PREDICTION_FIELDS`); call inside the version's transaction."""
    if not rows:
        return 0
    with store.transaction() as con:
        con.executemany(
            f"INSERT INTO change_predictions ({', '.join(PREDICTION_FIELDS)}) "
            f"VALUES ({', '.join('?' for _ in PREDICTION_FIELDS)})",
            [[r.get(c) for c in PREDICTION_FIELDS] for r in rows])
    return len(rows)


def predictions(store: Store, policy: str, version: int | None = None) -> pd.DataFrame:
    """Stored predictions of a policy (one version, or all), ordered by version, rule, series, measure."""
    where, params = where_clause(("policy = ?", policy), ("version = ?", None if version is None else int(version)))
    return store.query_df(f"SELECT {', '.join(PREDICTION_FIELDS)} FROM change_predictions WHERE {where} "
                          "ORDER BY version, rule, series, measure", params)


def insert_firing(store: Store, row: dict[str, Any]) -> None:
    """Record a trigger firing (all of :data:`FIRING_FIELDS`); a second firing of the same trigger on
    the same version violates the primary key. Call inside the rollback's transaction."""
    with store.transaction() as con:
        con.execute(f"INSERT INTO trigger_firings ({', '.join(FIRING_FIELDS)}) "
                    f"VALUES ({', '.join('?' for _ in FIRING_FIELDS)})", [row[c] for c in FIRING_FIELDS])


def firings(store: Store, policy: str, version: int | None = None) -> pd.DataFrame:
    """Trigger firings of a policy (one version, or all), newest first."""
    where, params = where_clause(("policy = ?", policy), ("version = ?", None if version is None else int(version)))
    return store.query_df(f"SELECT {', '.join(FIRING_FIELDS)} FROM trigger_firings WHERE {where} "
                          "ORDER BY fired_at DESC, version DESC", params)


def fired(store: Store, policy: str, version: int, trigger: str) -> datetime | None:
    """When ``trigger`` fired on ``version`` (None: it has not)."""
    row = store.query_one("SELECT fired_at FROM trigger_firings WHERE policy = ? AND version = ? AND trigger = ?",
                          [policy, int(version), trigger])
    return row[0] if row else None
