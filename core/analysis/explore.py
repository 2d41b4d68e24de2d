"""Choices for looking at one series: key search, time ranges, and what a chart is drawn from.

Pure functions (no Streamlit): the Trends page's controls call these, and so can a notebook.

* :func:`resolve_range` turns a range choice into ``(start, end)``, counting back from the series'
  last point (exports are often older than today).
* :func:`display_values` gives the rows a chart draws at a resolution: the raw points, or one value
  per bucket computed from the raw points in it (:func:`core.analysis.baseline.aggregate`), never from
  earlier aggregates. A histogram-quantile series (a p95 exported per scrape) is never averaged:
  :func:`aggregations` offers only the median and the max of its raw points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.analysis.baseline import _as_series, _check_kind, aggregate, counter_to_rate
from core.errors import ValidationError

RANGES: dict[str, float | None] = {"last 1 day": 1, "last 7 days": 7, "last 30 days": 30, "all": None,
                                   "date range": None}
DEFAULT_RANGE = "last 7 days"
RESOLUTIONS: dict[str, str | None] = {"raw": None, "5m": "5min", "15m": "15min", "1h": "1h"}


def filter_keys(keys: Sequence[str], text: str) -> list[str]:
    """Keys containing every whitespace-separated word of ``text`` (case-insensitive), in order."""
    words = [w.lower() for w in str(text or "").split()]
    return [k for k in keys if all(w in k.lower() for w in words)]


def aggregations(kind: str) -> tuple[str, ...]:
    """Bucket aggregations offered for a series kind (``median`` first). A histogram-quantile series
    gets only ``median`` and ``max`` of its raw points per bucket: averaging percentiles is wrong."""
    _check_kind(kind)
    return ("median", "max") if kind == "histogram_quantile" else ("median", "mean", "max", "min", "p95")


def utc(x: Any) -> pd.Timestamp:
    """A timestamp in UTC (a naive one is taken as UTC)."""
    ts = pd.Timestamp(x)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def resolve_range(choice: str, first: Any, last: Any, dates: Sequence[Any] | None = None
                  ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(start, end)`` (UTC, inclusive) of a range choice for a series spanning ``first..last``.

    "last N days" counts back from the series' last point, clipped to its first; "date range" takes
    the whole UTC days ``dates[0]`` to ``dates[-1]``; "all" (or "date range" without dates) is the
    whole span.
    """
    if choice not in RANGES:
        raise ValidationError(f"range must be one of {list(RANGES)}, not {choice!r}", path="range")
    first, last = utc(first), utc(last)
    if choice == "date range" and dates:
        a, b = utc(dates[0]).normalize(), utc(dates[-1]).normalize()
        return a, b + pd.Timedelta("1D") - pd.Timedelta("1ns")
    days = RANGES[choice]
    if days is None:
        return first, last
    return max(first, last - pd.Timedelta(days=days)), last


def display_values(values: pd.Series, kind: str = "gauge", start: Any = None, end: Any = None,
                   resolution: str = "raw", how: str = "median") -> pd.DataFrame:
    """``ts, value`` rows of ``[start, end]`` at a resolution (see the module notes).

    Counters are shown as per-second rates (a range's first rate uses the point before it). Buckets
    without points stay NaN (never filled). Raises :class:`ValidationError` for an unknown
    resolution or aggregation, and for ``how="mean"`` on a histogram-quantile series.
    """
    _check_kind(kind)
    if resolution not in RESOLUTIONS:
        raise ValidationError(f"resolution must be one of {list(RESOLUTIONS)}, not {resolution!r}",
                              path="resolution")
    s = _as_series(values)
    if kind == "counter":
        s = counter_to_rate(s)
    keep = np.ones(len(s), dtype=bool)
    if start is not None:
        keep &= np.asarray(s.index >= utc(start))
    if end is not None:
        keep &= np.asarray(s.index <= utc(end))
    s = s[keep]
    freq = RESOLUTIONS[resolution]
    if freq is not None and len(s):
        s = aggregate(s, freq, how, "rate" if kind == "counter" else kind)
    return pd.DataFrame({"ts": s.index, "value": s.to_numpy(dtype=np.float64)})
