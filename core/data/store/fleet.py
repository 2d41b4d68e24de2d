"""SQL of the fleet-health Overview: cheap aggregates that never pull raw points into Python.

* :func:`data_fingerprint` says whether the stored *data* (points, uploads, incident windows) changed,
  so a derived per-series summary survives writes that do not touch it (an approval, a notice).
* :func:`latest_notices` is the newest notice of a kind per series (drift notices carry the series in
  their payload).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from core.data.store.sql import Store


def data_fingerprint(store: Store) -> tuple[Any, ...]:
    """``(uploads, newest upload id, incident windows, newest incident id, points)``: changes whenever
    points or incident windows are written or deleted, and on nothing else. One cheap query (DuckDB
    keeps ``count(*)`` of a table as metadata)."""
    row = store.query_one(
        "SELECT (SELECT count(*) FROM uploads), (SELECT max(id) FROM uploads), "
        "(SELECT count(*) FROM incidents), (SELECT max(id) FROM incidents), (SELECT count(*) FROM points)")
    return tuple(int(x) if x is not None else None for x in row) if row else ()


def latest_notices(store: Store, kind: str) -> pd.DataFrame:
    """The newest notice of ``kind`` per series (``payload.series``): ``series, id, created_at, title,
    since`` (``payload.since``, text or None), newest first. Notices without a series are left out."""
    return store.query_df(
        "SELECT series, id, created_at, title, since FROM ("
        "  SELECT json_extract_string(payload, '$.series') AS series, id, created_at, title,"
        "         json_extract_string(payload, '$.since') AS since,"
        "         row_number() OVER (PARTITION BY json_extract_string(payload, '$.series')"
        "                            ORDER BY created_at DESC, id DESC) AS k"
        "  FROM notices WHERE kind = ?) "
        "WHERE k = 1 AND series IS NOT NULL ORDER BY created_at DESC, id DESC", [kind])
