"""The points frame: the one in-memory shape of metric data, validated once at the door.

A points frame has columns ``series`` (str), ``ts`` (``datetime64[ns, UTC]``) and ``value``
(``float64``; NaN is a reported-but-missing value, never filled). A series key is the metric name
followed by its labels in Prometheus notation, labels sorted by name: ``cpu_pct{host="a",zone="b"}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from core.errors import ValidationError

COLUMNS = ["series", "ts", "value"]
_LABEL_RE = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _unescape(v: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def make_key(name: str, labels: Mapping[str, object] | None = None) -> str:
    """Series key from a metric name and labels (labels sorted; empty/None labels dropped)."""
    name = str(name).strip()
    if not labels:
        return name
    items = sorted((str(k), str(v)) for k, v in labels.items() if v is not None and str(v) != "")
    if not items:
        return name
    return name + "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """Inverse of :func:`make_key`: ``(name, labels)``. A key without braces has no labels."""
    key = str(key)
    i = key.find("{")
    if i < 0 or not key.endswith("}"):
        return key, {}
    name, body = key[:i], key[i + 1 : -1]
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        m = _LABEL_RE.match(body, pos)
        if not m:
            return key, {}
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return name, labels


def empty_points() -> pd.DataFrame:
    """An empty, correctly typed points frame."""
    return pd.DataFrame({
        "series": pd.Series([], dtype=object),
        "ts": pd.Series([], dtype="datetime64[ns, UTC]"),
        "value": pd.Series([], dtype="float64"),
    })


def validate_points(df: pd.DataFrame) -> pd.DataFrame:
    """Check a points frame once at the door and return it with canonical dtypes.

    Raises :class:`ValidationError` naming the column when the shape is wrong. Values are not
    filled or clipped: NaN and +/-inf pass through for the quality report to count.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValidationError(f"points frame lacks column(s) {missing}; expected {COLUMNS}", path="columns")
    out = df[COLUMNS].copy()
    ts = out["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValidationError("timestamps must be tz-aware (UTC)", path="ts")
    out["ts"] = ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if out["ts"].isna().any():
        raise ValidationError("timestamps must not be missing", path="ts")
    out["value"] = pd.to_numeric(out["value"], errors="raise").astype("float64")
    out["series"] = out["series"].astype(str).astype(object)
    return out.reset_index(drop=True)


def drop_repeated(points: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rule every reader shares for a (series, ts) sent more than once: the last row wins.

    Returns the points without the earlier repeats (order otherwise kept) and how many rows were
    rejected. This is what :meth:`core.data.store.Store.write_points` stores, so a file read by any
    command gives the same points as its upload.
    """
    mask = points.duplicated(["series", "ts"], keep="last").to_numpy()
    rejected = int(mask.sum())
    return (points[~mask].reset_index(drop=True) if rejected else points), rejected


def series_values(df: pd.DataFrame, key: str | None = None) -> pd.Series:
    """One series of a points frame as a float Series indexed by UTC timestamp, sorted by time."""
    if key is not None:
        df = df[df["series"] == key]
    s = pd.Series(df["value"].to_numpy(dtype=np.float64), index=pd.DatetimeIndex(df["ts"]), name=key)
    return s.sort_index()


def ts_ns(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC), whatever their stored resolution."""
    idx = pd.DatetimeIndex(ts)
    return idx.as_unit("ns").asi8


def insert_gap_breaks(df: pd.DataFrame, factor: float = 3.0) -> pd.DataFrame:
    """Add a NaN row inside every gap longer than ``factor`` x the median step, so a line chart
    breaks there instead of drawing across missing data. Expects columns ``ts`` and ``value``."""
    if len(df) < 3:
        return df
    dt = np.diff(ts_ns(df["ts"]))
    step = np.median(dt)
    if step <= 0:
        return df
    idx = np.flatnonzero(dt > factor * step)
    if idx.size == 0:
        return df
    breaks = pd.DataFrame({"ts": df["ts"].iloc[idx].to_numpy() + pd.Timedelta(int(step), "ns"),
                           "value": np.nan})
    return pd.concat([df[["ts", "value"]], breaks], ignore_index=True).sort_values("ts", kind="stable")


def downsample_minmax(df: pd.DataFrame, buckets: int = 2000) -> pd.DataFrame:
    """Reduce a ``ts, value`` frame to at most about ``2 * buckets`` rows for charting.

    Each time bucket keeps the rows holding its minimum and its maximum (so spikes survive) and its
    first NaN row (so gaps drawn by :func:`insert_gap_breaks` survive). Order is by time.
    """
    n = len(df)
    if n <= 2 * buckets:
        return df.reset_index(drop=True)
    df = df.sort_values("ts", kind="stable").reset_index(drop=True)
    t = ts_ns(df["ts"])
    span = int(t[-1] - t[0]) + 1
    b = ((t - t[0]).astype(np.float64) * buckets / span).astype(np.int64)
    v = df["value"].to_numpy(dtype=np.float64)
    finite = np.isfinite(v)
    keep = []
    if finite.any():
        g = pd.Series(v[finite], index=np.flatnonzero(finite)).groupby(b[finite])
        keep += [g.idxmin().to_numpy(), g.idxmax().to_numpy()]
    if (~finite).any():
        nan_idx = np.flatnonzero(~finite)
        first = pd.Series(nan_idx).groupby(b[nan_idx]).min().to_numpy()
        keep.append(first)
    rows = np.unique(np.concatenate(keep))
    return df.iloc[rows].reset_index(drop=True)
