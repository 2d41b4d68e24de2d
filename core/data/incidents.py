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

Timestamps follow the metric reader's rule (:func:`core.data.ingest.parse_times`, one format per
column): ISO 8601 with or without a zone (without one, UTC is assumed, with a warning) or epoch
numbers whose unit (s, ms, us, ns) comes from their size and which must land in 2000-2100; an
earlier epoch time is refused as a likely misread. Bad input raises
:class:`core.errors.IngestError` naming the row (1-based file line, header = 1) and column, with
nothing returned. Warnings are in ``frame.attrs["warnings"]``.

Storing (:func:`import_incidents`) records each import's ``source`` as ``"<label> [sha256:<hex>]"``:
the label is the upload's name or the file's absolute path, the hash that of the windows read
(:func:`windows_sha256`). The same windows are never stored twice, whatever the file is called.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from core.data import ingest
from core.data.ingest import load_source
from core.errors import ConflictError, IngestError

COLUMNS = ["series", "start", "end", "kind", "note"]
REQUIRED = ("series", "start", "end")
NAB_KIND = "anomaly_window"
_SOURCE_RE = re.compile(r"^(?P<label>.*) \[sha256:(?P<sha>[0-9a-f]{64})\]$", re.DOTALL)
_HASH_VERSION = b"threshold-studio incidents v1\n"


def empty_incidents() -> pd.DataFrame:
    return pd.DataFrame({
        "series": pd.Series([], dtype=object),
        "start": pd.Series([], dtype="datetime64[ns, UTC]"),
        "end": pd.Series([], dtype="datetime64[ns, UTC]"),
        "kind": pd.Series([], dtype=object),
        "note": pd.Series([], dtype=object),
    })


def parse_times(cells: Any, *, column: str, file: str | None,
                rows: np.ndarray | None = None) -> tuple[pd.Series, list[str]]:
    """Parse a column of timestamp cells to UTC with :func:`core.data.ingest.parse_times` (same rules).

    ``rows`` gives the file line of each cell for messages (default: header + 1-based index).
    Returns the times (``datetime64[ns, UTC]``) and the reader's warnings. Raises
    :class:`IngestError` at the first bad cell (empty, not a time, pre-2000 epoch, mixed formats).
    """
    cells = np.asarray(cells, dtype=object)
    if len(cells) == 0:
        return pd.Series([], dtype="datetime64[ns, UTC]"), []
    if rows is None:
        rows = np.arange(len(cells)) + 2
    ns, warnings = ingest.parse_times(cells, rows, file=file, column=column)
    return pd.Series(pd.to_datetime(np.asarray(ns, dtype=np.int64), unit="ns", utc=True)), warnings


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
    start, w1 = parse_times(raw["start"], column="start", file=name, rows=rows)
    end, w2 = parse_times(raw["end"], column="end", file=name, rows=rows)
    out = pd.DataFrame({
        "series": _clean_text(raw["series"]),
        "start": start,
        "end": end,
        "kind": _clean_text(raw["kind"]) if "kind" in raw.columns else pd.Series([None] * len(raw), dtype=object),
        "note": _clean_text(raw["note"]) if "note" in raw.columns else pd.Series([None] * len(raw), dtype=object),
    })
    _check_order(out, name, rows)
    return _with_warnings(out[COLUMNS], w1 + w2)


def _with_warnings(df: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    df.attrs["warnings"] = list(dict.fromkeys(warnings))   # each once, in order
    return df


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
        return _with_warnings(empty_incidents(), [])
    out = pd.DataFrame({"series": pd.Series(series, dtype=object)})
    warnings: list[str] = []
    for col, cells, idx in (("start", starts, 0), ("end", ends, 1)):
        try:
            out[col], w = parse_times(cells, column=col, file=name)
            warnings += w
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
    return _with_warnings(out[COLUMNS], warnings)


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


def windows_sha256(df: pd.DataFrame) -> str:
    """SHA-256 (hex) of a set of incident windows, independent of row order and file layout.

    Hashes each window's ``series`` (None for global), ``start`` and ``end`` (to the microsecond,
    the precision the store keeps), ``kind`` and ``note``, sorted, so the same labels saved as CSV
    with other line endings, column order or time zones hash alike.
    """
    def text(col: str) -> list[Any]:
        if col not in df.columns:
            return [None] * len(df)
        return [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in df[col].tolist()]

    def micros(col: str) -> np.ndarray:
        return pd.DatetimeIndex(pd.to_datetime(df[col], utc=True)).as_unit("us").asi8

    recs = sorted(json.dumps([s, int(a), int(b), k, n]) for s, a, b, k, n in
                  zip(text("series"), micros("start"), micros("end"), text("kind"), text("note"), strict=True))
    return hashlib.sha256(_HASH_VERSION + "\n".join(recs).encode("utf-8")).hexdigest()


def make_source(label: str, sha256: str) -> str:
    """The stored ``source`` of an import: ``"<label> [sha256:<hex>]"``."""
    return f"{label} [sha256:{sha256}]"


def split_source(source: pd.Series) -> pd.DataFrame:
    """Columns ``label`` and ``sha256`` of stored ``source`` values; ``sha256`` is None for rows
    stored before hashes were recorded (their label is the whole source)."""
    src = pd.Series(source, dtype=object).reset_index(drop=True).astype(str)
    parts = src.str.extract(_SOURCE_RE)
    label = parts["label"].where(parts["label"].notna(), src)
    sha = parts["sha"].astype(object).where(parts["sha"].notna(), None)
    return pd.DataFrame({"label": label.astype(object), "sha256": sha})


@dataclass(frozen=True)
class IncidentImport:
    """What :func:`import_incidents` did.

    ``stored`` windows were written, ``replaced`` deleted first; ``duplicate`` means the same windows
    were already stored (``already`` of them) and nothing changed.
    """

    windows: pd.DataFrame
    label: str
    sha256: str
    source: str
    stored: int = 0
    replaced: int = 0
    duplicate: bool = False
    already: int = 0

    @property
    def warnings(self) -> list[str]:
        return list(self.windows.attrs.get("warnings", []))

    @property
    def message(self) -> str:
        if self.duplicate:
            return (f"{self.label}: its windows are already stored ({self.already} window(s) with the same "
                    f"content, sha256 {self.sha256[:12]}); nothing imported.")
        extra = f" (replacing {self.replaced} imported earlier)" if self.replaced else ""
        return f"{self.label}: {self.stored} incident window(s) stored{extra}."


def _label(source: Any, name: str | None, loaded_name: str) -> str:
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return str(Path(source).resolve())
    return loaded_name


def import_incidents(store: Any, source: Any, name: str | None = None, *, actor: str | None = None,
                     replace: bool = False) -> IncidentImport:
    """Read incidents and store them (``Store.add_incidents``), never storing the same windows twice.

    Parameters
    ----------
    store : Store
    source : path, bytes, file-like or dict
        As for :func:`read_incidents`.
    name : str, optional
        Label recorded in ``source`` and shown in messages (default: the absolute path of a file
        path, else the upload's name).
    actor : str, optional
        Who imports (audit trail).
    replace : bool
        Delete first the windows imported earlier under the same label or with the same content.

    Rules (one check, inside the write transaction, used by the CLI and the Data page):

    * windows with the same content hash already stored: nothing is written (``duplicate``), with or
      without ``replace`` when they are all this label's windows;
    * otherwise, without ``replace``, windows already stored under the same label raise
      :class:`ConflictError` (the file changed: say replace, or rename it); rows stored before hashes
      were recorded count as the same content when their windows hash alike;
    * with ``replace``, the label's windows and any copy of the same content are deleted, then the
      file's windows are added.

    Raises
    ------
    IngestError
        The file cannot be read (nothing stored).
    ConflictError
        The label was imported before with other windows and ``replace`` is False.
    """
    if isinstance(source, dict):
        label = name or "windows.json"
        df = read_incidents(source, label)
    else:
        data, loaded = load_source(source, name)
        label = _label(source, name, loaded)
        df = read_incidents(data, loaded)
    sha = windows_sha256(df)
    src = make_source(label, sha)
    with store.transaction():
        old = store.list_incidents()
        parts = split_source(old["source"])
        ids = old["id"].to_numpy()
        mine = (parts["label"] == label).to_numpy()
        same = np.array(parts["sha256"] == sha, dtype=bool)
        legacy = mine & parts["sha256"].isna().to_numpy()
        if legacy.any() and windows_sha256(old[legacy]) == sha:
            same |= legacy
        if same.any() and (not replace or not (mine & ~same).any()):
            return IncidentImport(df, label, sha, src, duplicate=True, already=int(same.sum()))
        if not replace and mine.any():
            raise ConflictError(
                f"{int(mine.sum())} incident window(s) imported earlier from {label!r} are stored and this "
                f"file's windows differ; nothing imported. To replace them, import again with replace "
                f"(python -m core incidents FILE --replace); to keep both, give this file another name")
        gone = 0
        drop = ids[mine | same] if replace else ids[:0]
        if len(drop):
            gone = store.delete_incidents(drop.tolist(), actor=actor)
        n = store.add_incidents(df, source=src, actor=actor) if len(df) else 0
    return IncidentImport(df, label, sha, src, stored=int(n), replaced=int(gone))
