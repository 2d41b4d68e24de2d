"""Read metric exports into a points frame. (Minimal first cut: long and NAB-style CSV.)"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.errors import IngestError

FORMATS = ("long", "nab", "wide", "prometheus", "cloudwatch", "datadog")


@dataclass
class ParsedMetrics:
    """Result of :func:`read_metrics`: the points frame, the format used and the data rows read."""

    points: pd.DataFrame
    format: str
    rows: int
    warnings: list[str] = field(default_factory=list)


def load_source(source: Any, name: str | None = None) -> tuple[bytes, str]:
    """Bytes and a display name from a path, bytes or a file-like object (e.g. a Streamlit upload)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "upload"
    if isinstance(source, (str, Path)):
        p = Path(source)
        try:
            return p.read_bytes(), name or p.name
        except OSError as exc:
            raise IngestError(f"cannot read file: {exc.strerror}", file=str(source)) from exc
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, str):
            data = data.encode()
        return bytes(data), name or getattr(source, "name", "upload")
    raise IngestError(f"cannot read a {type(source).__name__}; expected a path, bytes or a file", file=name)


def read_metrics(source: Any, fmt: str = "auto", name: str | None = None) -> ParsedMetrics:
    """Parse a metric export into a points frame ``[series, ts, value]`` (ts UTC, NaN kept)."""
    data, name = load_source(source, name)
    df = pd.read_csv(io.BytesIO(data))
    if list(df.columns) == ["timestamp", "value"]:
        df.insert(0, "series", Path(name).stem)
        fmt = "nab"
    else:
        fmt = "long"
    df["ts"] = pd.to_datetime(df["timestamp"], utc=True)
    return ParsedMetrics(df[["series", "ts", "value"]], fmt, len(df))
