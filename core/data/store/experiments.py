"""SQL of simulated experiments (tables ``experiments``, ``experiment_units``; migration 004).

Only reads and writes; which status changes are allowed, and the audit entry of each, live in
:mod:`core.experiment.lifecycle`, which calls these inside one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from core.data.store.sql import Store

FIELDS = ("id", "name", "series", "rule_a", "rule_b", "plan", "settings", "status", "result", "stop_reason",
          "created_by", "created_at", "updated_at")
UNIT_COLUMNS = ("unit", "day", "arm", "episodes", "false_episodes", "incidents", "caught", "missed", "delay_s")


def insert_experiment(store: Store, row: dict[str, Any]) -> int:
    """Insert an experiment (every field of :data:`FIELDS` but ``id``); returns its id."""
    cols = [f for f in FIELDS if f != "id"]
    with store.transaction() as con:
        return int(con.execute(
            f"INSERT INTO experiments ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) RETURNING id",
            [row.get(c) for c in cols]).fetchone()[0])


def get_experiment(store: Store, experiment_id: int) -> dict[str, Any] | None:
    row = store.query_one(f"SELECT {', '.join(FIELDS)} FROM experiments WHERE id = ?", [int(experiment_id)])
    return dict(zip(FIELDS, row, strict=True)) if row else None


def list_experiments(store: Store) -> pd.DataFrame:
    """Every experiment with its unit count, newest first."""
    return store.query_df(
        f"SELECT {', '.join('e.' + f for f in FIELDS)}, "
        "(SELECT count(*) FROM experiment_units u WHERE u.experiment_id = e.id) AS units "
        "FROM experiments e ORDER BY e.id DESC")


def update_experiment(store: Store, experiment_id: int, expected_status: str, now: datetime,
                      **fields: Any) -> bool:
    """Set ``fields`` (and ``updated_at``) when the experiment is still in ``expected_status``.

    Returns False when it is not (someone else moved it meanwhile): nothing is written then.
    """
    allowed = {"status", "plan", "result", "stop_reason", "settings"}
    bad = set(fields) - allowed
    if bad:
        raise KeyError(f"cannot update {sorted(bad)}")
    sets = [f"{k} = ?" for k in fields] + ["updated_at = ?"]
    with store.transaction() as con:
        rows = con.execute(
            f"UPDATE experiments SET {', '.join(sets)} WHERE id = ? AND status = ? RETURNING id",
            [*fields.values(), now, int(experiment_id), expected_status]).fetchall()
    return bool(rows)


def insert_units(store: Store, experiment_id: int, units: pd.DataFrame) -> int:
    """Append per-unit outcomes (columns :data:`UNIT_COLUMNS`); returns the rows written."""
    rows = [[int(experiment_id), int(r[0]), r[1], str(r[2]), *(float(x) for x in r[3:8]),
             None if pd.isna(r[8]) else float(r[8])]
            for r in units[list(UNIT_COLUMNS)].itertuples(index=False, name=None)]
    if rows:
        with store.transaction() as con:
            con.executemany(
                f"INSERT INTO experiment_units (experiment_id, {', '.join(UNIT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in range(len(UNIT_COLUMNS) + 1))})", rows)
    return len(rows)


def units(store: Store, experiment_id: int) -> pd.DataFrame:
    """Per-unit outcomes in unit order (``delay_s`` NaN where none was caught)."""
    df = store.query_df(f"SELECT {', '.join(UNIT_COLUMNS)} FROM experiment_units WHERE experiment_id = ? "
                        "ORDER BY unit", [int(experiment_id)])
    if not df.empty:
        df["day"] = df["day"].astype("datetime64[ns, UTC]")
        df["delay_s"] = df["delay_s"].astype(float)
    return df
