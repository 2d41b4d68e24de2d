"""Read labelled incident windows (CSV or the NAB ``windows.json`` shape) into one frame.

Result columns: ``series`` (series key, or None for a global incident that applies to every
series), ``start`` and ``end`` (UTC timestamps, inclusive window), ``kind`` and ``note`` (text or
None).

CSV
    Header with ``series,start,end`` and optionally ``note`` and ``kind`` (any order, names
    case-insensitive; other columns are ignored). An empty ``series`` cell means global.
NAB windows.json
    ``{"<category>/<file>.csv": [["start", "end"], ...], ...}``. The series is the file stem
    (``realKnownCause/nyc_taxi.csv`` -> ``nyc_taxi``), the key a NAB file gets when ingested by path.
    ``kind`` is ``"anomaly_window"`` and ``note`` the NAB category.

Timestamps are ISO 8601 with or without a zone (without one, UTC is assumed) or epoch numbers
(seconds; values above 1e11 are taken as milliseconds). Bad input raises
:class:`core.errors.IngestError` naming the row (1-based file line, header = 1) and column, with
nothing returned.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from core.errors import IngestError
from core.ingest import load_source

COLUMNS = ["series", "start", "end", "kind", "note"]
REQUIRED = ("series", "start", "end")
NAB_KIND = "anomaly_window"
_EPOCH_RE = re.compile(r"^[+-]?\d+(\.\d*)?$")
_MS_THRESHOLD = 1e11


def empty_incidents() -> pd.DataFrame:
    return pd.DataFrame({
        "series": pd.Series([], dtype=object),
        "start": pd.Series([], dtype="datetime64[ns, UTC]"),
        "end": pd.Series([], dtype="datetime64[ns, UTC]"),
        "kind": pd.Series([], dtype=object),
        "note": pd.Series([], dtype=object),
    })


def parse_times(cells: pd.Series, *, column: str, file: str | None,
                rows: np.ndarray | None = None) -> pd.Series:
    """Parse a column of timestamp cells to UTC; raise :class:`IngestError` at the first bad one.

    ``rows`` gives the file line of each cell for the message (default: header + 1-based index).
    Each cell may be ISO 8601 (zone optional, UTC assumed) or an epoch number in seconds or ms.
    """
    text = cells.astype(object).where(cells.notna(), "").astype(str).str.strip()
    text = text.reset_index(drop=True)
    if rows is None:
        rows = np.arange(len(text)) + 2
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    is_epoch = text.str.match(_EPOCH_RE)
    if is_epoch.any():
        num = text[is_epoch].astype(np.float64)
        ms = num.abs() > _MS_THRESHOLD
        ns = np.where(ms, num * 1e6, num * 1e9)
        out[is_epoch] = pd.to_datetime(np.round(ns).astype(np.int64), unit="ns", utc=True)
    iso = ~is_epoch & (text != "")
    if iso.any():
        out[iso] = pd.to_datetime(text[iso], format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(out.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        what = "is empty" if text.iloc[i] == "" else f"{text.iloc[i]!r} is not a time"
        raise IngestError(f"{what}; expected ISO 8601 (e.g. 2026-01-31T12:00:00Z; no zone = UTC) "
                          "or epoch seconds", file=file, row=int(rows[i]), column=column)
    return out


def _check_order(df: pd.DataFrame, file: str | None, rows: np.ndarray, column: str = "end") -> None:
    bad = np.flatnonzero((df["end"] < df["start"]).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise IngestError(f"incident ends ({df['end'].iloc[i].isoformat()}) before it starts "
                          f"({df['start'].iloc[i].isoformat()}); expected end >= start",
                          file=file, row=int(rows[i]), column=column)


def _clean_text(col: pd.Series) -> pd.Series:
    """Stripped text cells as Python str, empty/missing cells as None (object dtype)."""
    vals = [None if (x is None or (isinstance(x, float) and np.isnan(x)) or str(x).strip() == "")
            else str(x).strip() for x in col.tolist()]
    return pd.Series(vals, dtype=object)


def _read_csv(data: bytes, name: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise IngestError("the file is empty; expected a header series,start,end[,note][,kind]",
                          file=name, row=1) from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise IngestError(f"not a readable CSV ({exc})", file=name) from exc
    raw.columns = [str(c).replace("\ufeff", "").strip().lower() for c in raw.columns]
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise IngestError(f"missing column(s) {missing}; found {list(raw.columns)}, expected "
                          "series,start,end[,note][,kind]", file=name, row=1, column=missing[0])
    rows = np.arange(len(raw)) + 2
    out = pd.DataFrame({
        "series": _clean_text(raw["series"]),
        "start": parse_times(raw["start"], column="start", file=name, rows=rows),
        "end": parse_times(raw["end"], column="end", file=name, rows=rows),
        "kind": _clean_text(raw["kind"]) if "kind" in raw.columns else pd.Series([None] * len(raw), dtype=object),
        "note": _clean_text(raw["note"]) if "note" in raw.columns else pd.Series([None] * len(raw), dtype=object),
    })
    _check_order(out, name, rows)
    return out[COLUMNS]


def _read_nab(obj: Any, name: str) -> pd.DataFrame:
    if not isinstance(obj, dict):
        raise IngestError(f"top level is a {type(obj).__name__}; expected an object "
                          '{"<category>/<file>.csv": [["start", "end"], ...]}', file=name, column="$")
    series, starts, ends, notes, paths = [], [], [], [], []
    for key, windows in obj.items():
        if not isinstance(windows, list):
            raise IngestError(f"expected a list of [start, end] pairs, got {type(windows).__name__}",
                              file=name, column=key)
        p = PurePosixPath(str(key))
        for j, w in enumerate(windows):
            if not (isinstance(w, (list, tuple)) and len(w) == 2):
                raise IngestError(f"expected a [start, end] pair, got {w!r}", file=name, column=f"{key}[{j}]")
            series.append(p.stem)
            starts.append(w[0])
            ends.append(w[1])
            notes.append(str(p.parent) if str(p.parent) != "." else None)
            paths.append(f"{key}[{j}]")
    if not series:
        return empty_incidents()
    out = pd.DataFrame({"series": pd.Series(series, dtype=object)})
    for col, cells, idx in (("start", starts, 0), ("end", ends, 1)):
        try:
            out[col] = parse_times(pd.Series(cells, dtype=object), column=col, file=name)
        except IngestError as exc:
            i = exc.row - 2
            raise IngestError(exc.reason, file=name, column=f"{paths[i]}[{idx}]") from None
    bad = np.flatnonzero((out["end"] < out["start"]).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise IngestError("incident ends before it starts; expected end >= start", file=name,
                          column=f"{paths[i]}[1]")
    out["kind"] = pd.Series([NAB_KIND] * len(out), dtype=object)
    out["note"] = pd.Series(notes, dtype=object)
    return out[COLUMNS]


def read_incidents(source: Any, name: str | None = None) -> pd.DataFrame:
    """Read incident windows from a CSV or NAB ``windows.json`` (path, bytes, file-like or dict).

    Parameters
    ----------
    source : path, bytes, file-like or dict
        A dict is taken as an already parsed NAB windows object.
    name : str, optional
        Display name for messages (default: the file name).

    Returns
    -------
    DataFrame
        Columns ``series, start, end, kind, note``; ``start``/``end`` are UTC.

    Raises
    ------
    IngestError
        Missing columns, unparseable times, or an end before its start (row and column named).
    """
    if isinstance(source, dict):
        return _read_nab(source, name or "windows.json")
    data, name = load_source(source, name)
    head = data.lstrip()[:1]
    if head in (b"{", b"[") or str(name).lower().endswith(".json"):
        try:
            obj = json.loads(data.decode("utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IngestError(f"not valid JSON ({exc}); expected NAB windows "
                              '{"<category>/<file>.csv": [["start", "end"], ...]}', file=name) from exc
        return _read_nab(obj, name)
    return _read_csv(data, name)


def import_incidents(store: Any, source: Any, name: str | None = None, *, actor: str | None = None,
                     replace: bool = False) -> pd.DataFrame:
    """Read incidents and store them (``Store.add_incidents``) with ``source`` = the file name.

    With ``replace`` the windows previously imported from a file of the same name are deleted
    first, so importing a file again does not double its windows. Returns the frame stored.
    """
    if isinstance(source, dict):
        name = name or "windows.json"
        df = read_incidents(source, name)
    else:
        data, name = load_source(source, name)
        df = read_incidents(data, name)
    with store.transaction():
        if replace:
            old = store.list_incidents()
            ids = old.loc[old["source"] == name, "id"].tolist()
            if ids:
                store.delete_incidents(ids, actor=actor)
        if len(df):
            store.add_incidents(df, source=name, actor=actor)
    return df
