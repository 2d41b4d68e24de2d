"""SQL of the fleet-health Overview: cheap aggregates that never pull raw points into Python.

* :func:`data_fingerprint` says whether the stored *data* (points, uploads, incident windows) changed,
  so a derived per-series summary survives writes that do not touch it (an approval, a notice).
* :func:`latest_notices` is the newest notice of a kind per series (drift notices carry the series in
  their payload).
"""

from __future__ import annotations

from typing import Any

import numpy as np
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


#: SQL of the comparators an SLO may use (core.slo.model.SLO validates the comparator against these).
_CMP = {">": ">", ">=": ">=", "<": "<", "<=": "<="}


def threshold_minute_events(store: Store, keys: list[str], comparator: str, threshold: float,
                            window_s: float) -> pd.DataFrame:
    """Per-minute events of a threshold SLI over ``keys``, aggregated in DuckDB: ``bad`` and ``total``
    indexed by the UTC minute, for the minutes within ``window_s`` seconds (plus one minute) of the
    newest finite point of any of ``keys``.

    As :func:`core.slo.model.events` then :func:`core.slo.model.combine_events`: per series, a minute
    with at least one finite point is one event, bad when any finite point in it satisfies
    ``value <comparator> threshold``; events are summed over the series per minute. Minutes without data
    are absent. ``comparator`` must be one of ``>``, ``>=``, ``<``, ``<=``.
    """
    if comparator not in _CMP:
        raise ValueError(f"unknown comparator {comparator!r}")
    empty = pd.DataFrame({"bad": pd.Series(dtype=float), "total": pd.Series(dtype=float)},
                         index=pd.DatetimeIndex([], tz="UTC"))
    if not keys:
        return empty
    ids = "(SELECT id FROM series WHERE key IN (SELECT unnest(?::VARCHAR[])))"
    finite = "p.value IS NOT NULL AND isfinite(p.value)"
    last = store.query_one(f"SELECT max(p.ts) FROM points p WHERE p.series_id IN {ids} AND {finite}", [list(keys)])
    if not last or last[0] is None:
        return empty
    cut = pd.Timestamp(last[0]) - pd.Timedelta(seconds=float(window_s) + 60.0)
    df = store.query_df(
        "SELECT m, CAST(sum(bad) AS DOUBLE) AS bad, CAST(count(*) AS DOUBLE) AS total FROM ("
        "  SELECT p.series_id, epoch_us(p.ts) // 60000000 AS m,"          # the UTC minute, as a number
        f"        max(CASE WHEN p.value {_CMP[comparator]} ? THEN 1 ELSE 0 END) AS bad"
        f"  FROM points p WHERE p.series_id IN {ids} AND {finite} AND p.ts > ?"
        "  GROUP BY 1, 2) GROUP BY m ORDER BY m",
        [float(threshold), list(keys), cut.to_pydatetime()])
    if df.empty:
        return empty
    idx = pd.DatetimeIndex(pd.to_datetime(df["m"].to_numpy(np.int64) * 60, unit="s", utc=True)).as_unit("ns")
    return pd.DataFrame({"bad": df["bad"].to_numpy(float), "total": df["total"].to_numpy(float)}, index=idx)
