"""Points as Parquet partitions for workers elsewhere (the fleet's Dask runs), written by DuckDB.

:func:`export_points` writes a points frame ``series, ts, value`` with DuckDB's ``COPY ... TO ...
(FORMAT PARQUET, PARTITION_BY (batch))``: one Hive-style directory ``DIR/batch=K/`` per batch of
series, each task of a fleet run reading only its own (:func:`read_partition`, pandas over pyarrow,
no SQL). ``DIR`` is any path DuckDB can write and the workers can read: a local directory for a
``LocalCluster``, a shared filesystem mount for a real cluster. Writing uses an in-memory DuckDB
connection, never the studio's database file, so it works for a fleet read from files too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from core.errors import ValidationError

__all__ = ["export_points", "partition_path", "read_partition"]


def partition_path(directory: str, batch: int) -> str:
    """The directory holding batch ``batch`` under ``directory`` (``DIR/batch=K``; URLs kept as text)."""
    return f"{str(directory).rstrip('/')}/batch={int(batch)}"


def export_points(points: pd.DataFrame, directory: str, batch: Sequence[int] | np.ndarray) -> dict[int, str]:
    """Write ``points`` (``series, ts, value``; ``batch`` gives each row's batch number) as Parquet,
    partitioned by batch, under ``directory`` (created; existing files of the same batches are
    replaced). Returns ``{batch: partition directory}``.

    Timestamps are stored as UTC microseconds; missing values stay missing (NULL in Parquet, NaN when
    read back), never filled.
    """
    for col in ("series", "ts", "value"):
        if col not in points.columns:
            raise ValidationError(f"points frame lacks column {col!r}; expected series, ts, value", path=f"points.{col}")
    b = np.asarray(batch, dtype=np.int64)
    if b.shape != (len(points),):
        raise ValidationError(f"batch has {b.size} entries; expected one per point ({len(points)})", path="batch")
    frame = pd.DataFrame({"batch": b, "series": points["series"].astype(str).to_numpy(),
                          "ts": pd.DatetimeIndex(points["ts"]).tz_convert("UTC"),
                          "value": points["value"].to_numpy(dtype=np.float64, na_value=np.nan)})
    if "://" not in str(directory):             # a local or mounted path (DuckDB creates only the last level)
        os.makedirs(os.path.dirname(str(directory).rstrip("/")) or ".", exist_ok=True)
    target = str(directory).rstrip("/").replace("'", "''")
    con = duckdb.connect(":memory:")
    try:
        con.register("fleet_points", frame)
        con.execute("COPY (SELECT batch, series, ts, value FROM fleet_points) "      # readers sort their part
                    f"TO '{target}' (FORMAT PARQUET, PARTITION_BY (batch), OVERWRITE_OR_IGNORE)")
    except duckdb.Error as exc:
        raise ValidationError(f"cannot write Parquet partitions under {directory}: {exc}", path="parquet_dir") from exc
    finally:
        con.close()
    return {int(k): partition_path(directory, int(k)) for k in np.unique(b)}


def read_partition(path: str, **kw: Any) -> pd.DataFrame:
    """One partition as a points frame ``series, ts, value`` (``ts`` UTC nanoseconds), sorted by series
    then time (pandas over pyarrow; ``kw`` go to :func:`pandas.read_parquet`, e.g. storage options)."""
    df = pd.read_parquet(path, columns=["series", "ts", "value"], **kw)
    df["series"] = df["series"].astype(str)
    df["ts"] = pd.DatetimeIndex(df["ts"]).tz_convert("UTC").as_unit("ns")
    df["value"] = df["value"].astype("float64")
    return df.sort_values(["series", "ts"], kind="stable").reset_index(drop=True)
