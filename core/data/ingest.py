"""Read metric exports into a points frame.

Layouts (``FORMATS``), detected from the content unless ``fmt`` overrides it:

``long``
    CSV with a time column, a series column (``series``, ``metric`` or ``name``) and ``value``; any
    other column is a label of the series key (``cpu{host="a"}``). Grafana's "Series as rows"
    download (``Series;Time;Value``) is this layout.
``nab``
    CSV ``timestamp,value`` (Numenta Anomaly Benchmark style); the series is named after the file stem.
``wide``
    CSV with a time column and one column per series, as Grafana's panel "Download CSV" writes it
    ("Series joined by time"). A blank cell is no point; ``NaN``/``null`` is a missing point.
``prometheus``
    JSON of the HTTP API ``query_range`` (``resultType: matrix``); ``__name__`` and labels make the key.
``cloudwatch``
    CloudWatch JSON (``aws cloudwatch get-metric-data`` / ``get-metric-statistics`` output) or the
    console's CSV download: a time column and one column per metric label, where a label is read as
    words (the metric name), ``Dimension=value`` pairs, an ``AWS/...`` namespace and a statistic.
``datadog``
    Datadog CSV (a time column, often epoch milliseconds, and one column per query such as
    ``avg:system.cpu.user{host:web-1}``) or the v1 query API JSON (``series[].pointlist``).

Timestamps may be ISO 8601 between 1970 and 2100 (no zone = UTC, reported in ``warnings``), or
epoch seconds, milliseconds, microseconds or nanoseconds (unit from the magnitude; one unit per file)
between 2000 and 2100. The unit of an epoch number is a guess from its size, so an epoch time before
2000 is refused rather than read: it is nearly always something else, such as a compact date
``20260101`` that would otherwise land in 1970. A column whose every cell is a compact date of one
shape, ``YYYYMMDD``, ``YYYYMMDDHHMM`` or ``YYYYMMDDHHMMSS`` (UTC), is read as such (no epoch reading of
those numbers falls between 2000 and 2100, so this is never ambiguous) and ``warnings`` says so.
(Prometheus and Datadog JSON state their unit, so they keep the 1970 lower bound.)

A value that is empty, ``NaN``, ``null``, ``None`` or ``NA`` is a missing value and stays NaN.
``;`` and tab delimiters are handled. A decimal comma is read only when the delimiter is not a comma,
and then each value column keeps one convention: its first value with a ``,`` or ``.`` decides, and
a later value in the other convention is refused (``1.234`` next to ``12,5`` may be a thousands
separator; the reader does not guess). Thousands separators are never read.

Every failure is a :class:`core.errors.IngestError` naming the file, the 1-based line (the header is
line 1), the column and what was expected. Nothing here writes anywhere: see ``Store.ingest``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.frame import drop_repeated, empty_points, make_key, parse_key
from core.errors import IngestError

FORMATS = ("long", "nab", "wide", "prometheus", "cloudwatch", "datadog")
CSV_FORMATS = ("long", "nab", "wide", "cloudwatch", "datadog")

TIME_COLUMNS = ("timestamp", "time", "ts", "date", "datetime", "time (utc)", "@timestamp", "label")
SERIES_COLUMNS = ("series", "metric", "name", "__name__")
VALUE_COLUMNS = ("value",)
MISSING_TOKENS = frozenset({"", "nan", "-nan", "+nan", "null", "none", "na", "n/a", "#n/a"})
POS_INF_TOKENS = frozenset({"inf", "+inf", "infinity", "+infinity"})
NEG_INF_TOKENS = frozenset({"-inf", "-infinity"})
TS_MIN = pd.Timestamp("1970-01-01", tz="UTC")
TS_MAX = pd.Timestamp("2100-01-01", tz="UTC")
_TS_MIN_NS = TS_MIN.value
_TS_MAX_NS = TS_MAX.value
# Epoch magnitude bands: below 1e11 seconds, below 1e14 ms, below 1e17 us, else ns.
_EPOCH_UNITS = ("seconds", "milliseconds", "microseconds", "nanoseconds")
_EPOCH_NS_PER_UNIT = (1_000_000_000, 1_000_000, 1_000, 1)
_EPOCH_BANDS = (1e11, 1e14, 1e17)
EPOCH_MIN = pd.Timestamp("2000-01-01", tz="UTC")   # earliest time an epoch number may denote
_EPOCH_MIN_NS = EPOCH_MIN.value
# Compact dates (digits only): length -> strptime format.
_COMPACT_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
_COMPACT_SHAPES = {8: "YYYYMMDD", 12: "YYYYMMDDHHMM", 14: "YYYYMMDDHHMMSS"}
# Decimal conventions of one value (files separated by ';' or tab).
_COMMA_NUM = r"[+-]?\d+,\d+(?:[eE][+-]?\d+)?"
_POINT_NUM = r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?"

EXPECT_TS = ("expected an ISO 8601 time such as 2026-01-01T00:00:00Z or an epoch number "
             "(seconds, milliseconds or nanoseconds)")
EXPECT_NUM = "expected a decimal number such as 12.5 (empty, NaN or null for a missing value)"
CW_STATS = re.compile(r"^(Average|Sum|Minimum|Maximum|SampleCount|IQM|[pP]\d+(\.\d+)?|[tT][mMcCsS]\d+(\.\d+)?)$")
_DD_COL = re.compile(r"^(?:(avg|sum|min|max|count):)?([A-Za-z_][\w.]*)(?:\{([^{}]*)\})?$")
_ZONE_RE = r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"
_LABEL_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass
class ParsedMetrics:
    """Result of :func:`read_metrics`.

    Attributes
    ----------
    points : DataFrame
        Points frame ``series, ts, value`` (ts UTC, value float64, NaN = missing), in file order.
    format : str
        Layout read, one of :data:`FORMATS`.
    rows : int
        Data rows read (CSV lines after the header, blank lines not counted; JSON samples).
    warnings : list of str
        Things the user should know (e.g. timestamps without a zone read as UTC).
    kinds : dict
        Series key -> kind (``counter``, ``histogram_quantile``) where the name makes it obvious.
    units : dict
        Series key -> unit, where the file says (CloudWatch ``Unit``).
    """

    points: pd.DataFrame
    format: str
    rows: int
    warnings: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- bytes in
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
        return bytes(data), name or Path(str(getattr(source, "name", "upload"))).name
    raise IngestError(f"cannot read a {type(source).__name__}; expected a path, bytes or a file", file=name)


def decode_bytes(data: bytes, file: str | None = None) -> tuple[str, str, list[str]]:
    """Text, encoding used and warnings. Tries UTF-8 (with or without BOM), UTF-16 with a BOM, then
    Windows-1252 / Latin-1 with a warning. Refuses empty, compressed and binary input."""
    if not data or not data.strip():
        raise IngestError("file is empty; expected a header line and data rows", file=file)
    if data[:2] == b"\x1f\x8b":
        raise IngestError("file is gzip-compressed; expected plain CSV or JSON (decompress it first)", file=file)
    if data[:4] == b"PK\x03\x04":
        raise IngestError("file is a zip archive or an Excel workbook; expected CSV or JSON "
                          "(in Excel use 'Save as CSV')", file=file)
    warnings: list[str] = []
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            text, enc = data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise IngestError(f"file starts with a UTF-16 mark but is not valid UTF-16 ({exc.reason}); "
                              "expected UTF-8 text", file=file) from exc
        warnings.append("file is UTF-16 text; read it as such")
    else:
        nul = data.find(b"\x00")
        if nul >= 0:
            raise IngestError("file contains NUL bytes: it looks binary (or UTF-16 without a byte-order mark); "
                              "expected UTF-8 text", file=file, row=data[:nul].count(b"\n") + 1)
        try:
            text, enc = data.decode("utf-8-sig"), "utf-8"
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            try:
                text, enc = data.decode("cp1252"), "windows-1252"
            except UnicodeDecodeError:
                text, enc = data.decode("latin-1"), "latin-1"
            warnings.append(f"file is not valid UTF-8 (first bad byte on row {line}); read it as {enc}")
    m = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if m:
        raise IngestError(f"contains control character 0x{ord(m.group()):02x}: the file looks binary or damaged; "
                          "expected text", file=file, row=text.count("\n", 0, m.start()) + 1)
    return text, enc, warnings


# ---------------------------------------------------------------------------------------- public
@dataclass
class LoadedMetrics(ParsedMetrics):
    """Result of :func:`load_metrics`: :class:`ParsedMetrics` after the store's rules.

    ``points`` is sorted by series and time, with one row per (series, ts); ``rejected`` rows repeated
    an earlier row's (series, ts) and were dropped (the last one is kept, as an upload keeps it).
    """

    name: str = ""
    rejected: int = 0

    def report(self) -> str:
        """One line for a command's stderr: what was read, kept and rejected."""
        n = self.points["series"].nunique() if len(self.points) else 0
        text = (f"{self.name}: {self.rows:,} rows read as {self.format}, {len(self.points):,} points in "
                f"{n} series")
        if self.rejected:
            text += (f"; {self.rejected:,} rejected (a repeated timestamp in a series: the last value is kept, "
                     "as an upload keeps it)")
        return text


def load_metrics(source: Any, fmt: str = "auto", name: str | None = None) -> LoadedMetrics:
    """Read a metric file exactly as :meth:`core.data.store.Store.ingest` would store it, without a database.

    Same format detection, parsing and errors as :func:`read_metrics`; then a repeated (series, ts)
    keeps its last row (counted in ``rejected``) and points are sorted by series and time, so a file
    that ``ingest`` accepts never stops another command. Gaps stay gaps; nothing is filled.

    Raises
    ------
    IngestError
        On malformed input, naming file, row and column.
    """
    data, name = load_source(source, name)
    parsed = read_metrics(data, fmt=fmt, name=name)
    points, rejected = drop_repeated(parsed.points)
    points = points.sort_values(["series", "ts"], kind="stable").reset_index(drop=True)
    return LoadedMetrics(points=points, format=parsed.format, rows=parsed.rows, warnings=list(parsed.warnings),
                         kinds=dict(parsed.kinds), units=dict(parsed.units), name=name, rejected=rejected)


def read_metrics(source: Any, fmt: str = "auto", name: str | None = None) -> ParsedMetrics:
    """Parse a metric export into a points frame ``[series, ts, value]`` (ts UTC, NaN kept).

    Parameters
    ----------
    source : path, bytes or file-like
        The export.
    fmt : str
        ``"auto"`` (detect) or one of :data:`FORMATS`.
    name : str, optional
        Display name (file name); its stem names the series of a NAB-style file.

    Raises
    ------
    IngestError
        On any malformed input, naming file, row (1-based line), column and what was expected.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; expected 'auto' or one of {', '.join(FORMATS)}", file=name)
    data, name = load_source(source, name)
    text, _enc, warnings = decode_bytes(data, name)
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        if fmt not in ("auto", "prometheus", "cloudwatch", "datadog"):
            raise IngestError(f"format {fmt!r} expects CSV but the file is JSON", file=name)
        parsed = _read_json(text, fmt, name)
    else:
        if fmt == "prometheus":
            raise IngestError(f"format 'prometheus' expects JSON but the file starts with {stripped[:20]!r}",
                              file=name)
        table = _parse_csv(text, name)
        parsed = _read_table(table, fmt, name)
        warnings += table.warnings
    parsed.warnings[:0] = warnings
    return _finish(parsed, name)


def infer_kind(key: str) -> str | None:
    """Kind of a series when its name makes it obvious, else None (a gauge).

    ``..._total``, ``_count``, ``_sum``, ``_bucket`` -> ``counter``; ``histogram_quantile``, a
    ``quantile`` label, ``p95``/``p99``-style names or a CloudWatch percentile statistic ->
    ``histogram_quantile`` (never average these across series or windows).
    """
    name, labels = parse_key(key)
    low = name.lower()
    stat = str(labels.get("stat", ""))
    if ("histogram_quantile" in low or "quantile" in labels or re.search(r"(^|[_.\s-])p\d{2}(\.\d+)?($|[_.\s-])", low)
            or re.fullmatch(r"[pP]\d+(\.\d+)?", stat)):
        return "histogram_quantile"
    if low.endswith(("_total", "_count", "_sum", "_bucket", ".count")):
        return "counter"
    return None


# ---------------------------------------------------------------------------------------- CSV table
@dataclass
class _Table:
    header: list[str]
    cells: np.ndarray          # object, shape (rows, columns), raw strings
    lines: np.ndarray          # 1-based file line of each data row
    header_line: int
    delimiter: str
    warnings: list[str] = field(default_factory=list)

    def col(self, j: int) -> np.ndarray:
        return self.cells[:, j]


def _sniff_delimiter(line: str) -> str:
    counts = {}
    for d in (",", ";", "\t", "|"):
        inside, n = False, 0
        for ch in line:
            if ch == '"':
                inside = not inside
            elif ch == d and not inside:
                n += 1
        counts[d] = n
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _looks_like_data(cell: str) -> bool:
    c = cell.strip().strip('"')
    return bool(re.fullmatch(r"[+-]?\d[\d.,:eE+\-TZ ]*", c)) and any(ch.isdigit() for ch in c)


def _parse_csv(text: str, file: str | None) -> _Table:
    """Split CSV text into a header and a rectangular cell matrix, with file line numbers."""
    lines_iter = text.splitlines()
    first = next((i for i, ln in enumerate(lines_iter) if ln.strip()), None)
    if first is None:
        raise IngestError("file is empty; expected a header line and data rows", file=file)
    skip_line = None
    head_line = lines_iter[first]
    m = re.fullmatch(r'"?sep=(.)"?\s*', head_line)
    if m:  # Excel's delimiter hint (some Grafana versions write it)
        delim, skip_line = m.group(1), first + 1
    else:
        delim = _sniff_delimiter(head_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    rows: list[list[str]] = []
    nums: list[int] = []
    try:
        for rec in reader:
            if reader.line_num == skip_line:
                continue
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            rows.append(rec)
            nums.append(reader.line_num)
    except csv.Error as exc:
        start = (nums[-1] + 1) if nums else 1
        raise IngestError(f"malformed CSV ({exc}) in the record starting on row {start} or after; expected fields "
                          f"separated by {delim!r} with balanced double quotes", file=file, row=start) from exc
    header = [h.strip() for h in rows[0]]
    header_line = nums[0]
    if len(header) < 2:
        raise IngestError(f"only one column ({header[0][:40]!r}); expected a header with a time column and at "
                          "least one value column, separated by ',', ';' or tab", file=file, row=header_line)
    if _looks_like_data(header[0]) and _find([h.lower() for h in header], TIME_COLUMNS) is None:
        raise IngestError(f"no header: the first line starts with {header[0][:30]!r}, which looks like data; "
                          "expected a header line such as 'timestamp,value'", file=file, row=header_line)
    for j, h in enumerate(header):
        if not h:
            raise IngestError(f"column {j + 1} has no name; expected a name for every column",
                              file=file, row=header_line, column=f"#{j + 1}")
    low = [h.lower() for h in header]
    seen: dict[str, int] = {}
    for j, h in enumerate(low):
        if h in seen:
            raise IngestError(f"column name appears twice (columns {seen[h] + 1} and {j + 1}); expected unique "
                              "column names", file=file, row=header_line, column=header[j])
        seen[h] = j
    data = rows[1:]
    if not data:
        raise IngestError("no data rows after the header; expected at least one row of values",
                          file=file, row=header_line)
    n = len(header)
    lengths = np.fromiter((len(r) for r in data), dtype=np.int64, count=len(data))
    bad = np.flatnonzero(lengths != n)
    if bad.size:
        i = int(bad[0])
        raise IngestError(f"has {lengths[i]} fields but the header has {n} ({', '.join(header)}); "
                          f"expected {n} fields separated by {delim!r} on every row", file=file, row=nums[i + 1])
    cells = np.empty((len(data), n), dtype=object)
    cells[:] = data
    return _Table(header, cells, np.asarray(nums[1:], dtype=np.int64), header_line, delim)


def _find(low: list[str], names: tuple[str, ...]) -> int | None:
    """Index of the first of ``names`` (in their order of preference) present in ``low``."""
    for n in names:
        if n in low:
            return low.index(n)
    return None


def _is_datadog_col(h: str) -> bool:
    m = _DD_COL.match(h.strip())
    return bool(m and (m.group(1) or (m.group(3) is not None and "=" not in m.group(3))))


def _is_cloudwatch_col(h: str) -> bool:
    toks = h.split()
    return any(t.startswith("AWS/") for t in toks) or (len(toks) > 1 and bool(CW_STATS.match(toks[-1])))


def _detect_csv(table: _Table) -> str:
    low = [h.lower() for h in table.header]
    t = _find(low, TIME_COLUMNS)
    if t is None:
        return "unknown"
    s, v = _find(low, SERIES_COLUMNS), _find(low, VALUE_COLUMNS)
    if v is not None and s is not None:
        return "long"
    if v is not None and len(low) == 2:
        return "nab"
    if v is not None:
        return "long"   # time, value and labels: the series is named after the file
    others = [h for j, h in enumerate(table.header) if j != t]
    if any(_is_datadog_col(h) for h in others):
        return "datadog"
    if any(_is_cloudwatch_col(h) for h in others):
        return "cloudwatch"
    return "wide"


def _read_table(table: _Table, fmt: str, file: str | None) -> ParsedMetrics:
    detected = _detect_csv(table)
    if detected == "unknown":
        raise IngestError(f"unknown layout: no time column among {table.header}; expected a column named "
                          "timestamp, time or date (long: timestamp,series,value; wide: time plus one column "
                          "per series)", file=file, row=table.header_line)
    if fmt == "auto":
        fmt = detected
    low = [h.lower() for h in table.header]
    t = _find(low, TIME_COLUMNS)
    if fmt in ("long", "nab"):
        v = _find(low, VALUE_COLUMNS)
        if v is None:
            raise IngestError(f"format {fmt!r} needs a 'value' column; found {table.header}",
                              file=file, row=table.header_line)
        if fmt == "nab" and len(low) != 2:
            raise IngestError(f"format 'nab' needs exactly two columns (timestamp,value); found {table.header}",
                              file=file, row=table.header_line)
        return _read_long(table, t, _find(low, SERIES_COLUMNS) if fmt == "long" else None, v, fmt, file)
    return _read_wide(table, t, fmt, file)


# ---------------------------------------------------------------------------------------- cells
def parse_times(raw: Any, lines: np.ndarray | None = None, *, file: str | None = None,
                column: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Timestamps (strings or numbers) to int64 nanoseconds since the epoch (UTC), and warnings.

    ISO 8601 without a zone is read as UTC (a warning says how many); ISO times lie in 1970-2100.
    Epoch numbers take their unit from the magnitude (< 1e11 seconds, < 1e14 ms, < 1e17 us, else ns),
    one unit per column, and must land in 2000-2100: an earlier epoch time is refused, naming a
    compact date when it looks like one. A column of compact dates only (``YYYYMMDD``,
    ``YYYYMMDDHHMM`` or ``YYYYMMDDHHMMSS``, one shape) is read as UTC dates with a warning. Raises
    :class:`IngestError` naming the first bad row. Vectorised; not causal-relevant (pure parsing).
    """
    s = pd.Series(np.asarray(raw, dtype=object)).astype(str).str.strip()
    n = len(s)
    rows = np.arange(1, n + 1) if lines is None else np.asarray(lines)
    warnings: list[str] = []

    def fail(i: int, msg: str) -> IngestError:
        return IngestError(msg, file=file, row=int(rows[i]), column=column)

    empty = (s == "").to_numpy()
    if empty.any():
        raise fail(int(np.argmax(empty)), f"timestamp is empty; {EXPECT_TS}")
    num = pd.to_numeric(s, errors="coerce")
    is_num = num.notna().to_numpy()
    if is_num[0]:
        if not is_num.all():
            i = int(np.argmax(~is_num))
            raise fail(i, f"{s.iloc[i][:40]!r} is not an epoch number like the rows above it; {EXPECT_TS} "
                          "(one format per file)")
        compact = _compact_dates(s)
        if compact is not None:
            shape = _COMPACT_SHAPES[len(s.iloc[0])]
            warnings.append(f"timestamps read as compact dates {shape} (e.g. {s.iloc[0]!r}) with no time zone; "
                            "read as UTC")
            return compact, warnings
        vals = num.to_numpy(dtype=np.float64)
        neg = vals < 0
        if neg.any():
            i = int(np.argmax(neg))
            raise fail(i, f"timestamp {s.iloc[i]} is before 1970; expected a time between 1970 and 2100")
        unit = np.searchsorted(np.asarray(_EPOCH_BANDS), vals, side="right")
        approx = vals * np.asarray(_EPOCH_NS_PER_UNIT, dtype=np.float64)[unit]
        mixed = unit != unit[0]
        early = approx < _EPOCH_MIN_NS
        late = approx >= _TS_MAX_NS
        off = mixed | early | late
        if off.any():   # the first offending row, whatever is wrong with it
            i = int(np.argmax(off))
            cell, ui = s.iloc[i], int(unit[i])
            hint = _compact_hint(cell)
            if hint:
                raise fail(i, hint)
            if mixed[i]:
                raise fail(i, f"mixed epoch units: {cell} looks like {_EPOCH_UNITS[ui]} but row "
                              f"{int(rows[0])} ({s.iloc[0]}) looks like {_EPOCH_UNITS[unit[0]]}; expected one unit "
                              "for the whole column")
            if late[i]:
                raise fail(i, f"timestamp {cell} (epoch {_EPOCH_UNITS[ui]}) is after 2100; expected an epoch "
                              "time between 2000 and 2100")
            when = pd.Timestamp(int(approx[i]), tz="UTC").strftime("%Y-%m-%d")
            raise fail(i, f"timestamp {cell} read as epoch {_EPOCH_UNITS[ui]} is {when}, before 2000: the unit "
                          "of an epoch number is guessed from its size, so times before 2000 are refused; "
                          "expected an epoch time between 2000 and 2100 such as 1767225600 (write earlier "
                          "times as ISO 8601, e.g. 1999-12-31T23:59:00Z)")
        u = int(unit[0])
        scale = _EPOCH_NS_PER_UNIT[u]
        if num.dtype.kind in "iu":
            ns = num.to_numpy(dtype=np.int64) * np.int64(scale)
        elif u < 3:  # fractional epoch: round to the microsecond (what the store keeps), exact for floats
            ns = np.round(vals * (scale // 1000)).astype(np.int64) * 1000
        else:
            ns = np.round(vals).astype(np.int64)
        warnings.append(f"timestamps read as epoch {_EPOCH_UNITS[u]}")
        return ns, warnings
    if is_num.any():
        i = int(np.argmax(is_num))
        raise fail(i, f"{s.iloc[i]} is an epoch number but the rows above are date text; {EXPECT_TS} "
                      "(one format per file)")
    s2 = s.str.replace(r"\s*(?:UTC|GMT)$", "Z", regex=True)
    has_zone = s2.str.contains(_ZONE_RE, regex=True).to_numpy()
    dt = pd.to_datetime(s2, utc=True, errors="coerce", format="ISO8601")
    bad = dt.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        y = re.match(r"^\s*(\d{4,})-\d\d", s.iloc[i])
        if y and not 1970 <= int(y.group(1)) < 2100:
            raise fail(i, f"timestamp {s.iloc[i][:40]!r} is outside 1970-2100; expected a time between 1970 and 2100")
        raise fail(i, f"{s.iloc[i][:40]!r} is not a timestamp; {EXPECT_TS}")
    early = (dt < TS_MIN).to_numpy()
    late = (dt >= TS_MAX).to_numpy()
    if early.any() or late.any():
        i = int(np.argmax(early | late))
        word = "before 1970" if early[i] else "after 2100"
        raise fail(i, f"timestamp {s.iloc[i][:40]!r} is {word}; expected a time between 1970 and 2100")
    nz = int((~has_zone).sum())
    if nz:
        warnings.append(f"{nz:,} timestamp(s) have no time zone (e.g. {s.iloc[int(np.argmax(~has_zone))]!r}); "
                        "read as UTC")
    return pd.DatetimeIndex(dt).as_unit("ns").asi8, warnings


def _compact_dates(s: pd.Series) -> np.ndarray | None:
    """Int64 ns (UTC) when every cell of ``s`` (stripped strings) is a compact date of one shape
    (``YYYYMMDD``, ``YYYYMMDDHHMM`` or ``YYYYMMDDHHMMSS``) between 1970 and 2100; else None."""
    n0 = len(s.iloc[0])
    fmt = _COMPACT_FORMATS.get(n0)
    if fmt is None or not ((s.str.len() == n0) & s.str.fullmatch(r"[0-9]+")).all():
        return None
    dt = pd.to_datetime(s, format=fmt, errors="coerce", utc=True)
    if dt.isna().any() or (dt < TS_MIN).any() or (dt >= TS_MAX).any():
        return None
    return pd.DatetimeIndex(dt).as_unit("ns").asi8


def _compact_hint(cell: str) -> str | None:
    """The error for an epoch-looking number that is really a compact date, or None if it is not one."""
    fmt = _COMPACT_FORMATS.get(len(cell))
    if fmt is None or not re.fullmatch(r"[0-9]+", cell):
        return None
    t = pd.to_datetime(cell, format=fmt, errors="coerce", utc=True)
    if pd.isna(t) or not TS_MIN <= t < TS_MAX:
        return None
    iso = t.strftime("%Y-%m-%d") if len(cell) == 8 else t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"{cell} looks like a compact date {_COMPACT_SHAPES[len(cell)]}, not an epoch; write it as {iso} or "
            "as epoch seconds (expected one time format per column: a column holding only compact dates of "
            "one shape is read as dates)")


def parse_values(raw: Any, lines: np.ndarray | None = None, *, file: str | None = None,
                 column: str | None = None, decimal_comma: bool = False) -> np.ndarray:
    """Cell strings to float64: missing tokens (empty, NaN, null, None, NA) -> NaN, ``+Inf``/``-Inf`` ->
    +-inf, numbers as written. Overflow, units and text raise :class:`IngestError` at the first bad row.

    ``decimal_comma`` (only for files not separated by commas) accepts ``12,5``; the cells are then
    one column, which keeps one decimal convention: the first cell with a ``,`` or ``.`` decides, and
    the first cell in the other convention raises ("mixes decimal comma and decimal point"), since
    ``1.234`` there may be a thousands separator. Integers fit either convention. Vectorised."""
    s = pd.Series(np.asarray(raw, dtype=object)).astype(str).str.strip()
    rows = np.arange(1, len(s) + 1) if lines is None else np.asarray(lines)
    low = s.str.lower()
    missing = low.isin(MISSING_TOKENS).to_numpy()
    pinf = low.isin(POS_INF_TOKENS).to_numpy()
    ninf = low.isin(NEG_INF_TOKENS).to_numpy()
    rest = ~(missing | pinf | ninf)
    out = np.full(len(s), np.nan, dtype=np.float64)
    out[pinf] = np.inf
    out[ninf] = -np.inf
    if rest.any():
        t = s[rest]
        mixed = np.zeros(len(t), dtype=bool)
        if decimal_comma:
            comma = t.str.fullmatch(_COMMA_NUM).to_numpy(dtype=bool)
            point = t.str.fullmatch(_POINT_NUM).to_numpy(dtype=bool)
            first = int(np.argmax(comma | point))
            if comma.any() and point.any():
                mixed = point if comma[first] else comma
            t = t.where(~comma, t.str.replace(",", ".", regex=False))
        num = pd.to_numeric(t, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(num) | ~t.str.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?").to_numpy() | mixed
        if bad.any():
            k = int(np.argmax(bad))
            i = int(np.flatnonzero(rest)[k])
            cell = s.iloc[i]
            if mixed[k]:
                j = int(np.flatnonzero(rest)[first])
                this, that = ("point", "comma") if point[k] else ("comma", "point")
                why = (f"{cell[:40]!r} has a decimal {this} but row {int(rows[j])} ({s.iloc[j][:40]!r}) has a "
                       f"decimal {that}: the column mixes decimal comma and decimal point ('1.234' may be a "
                       f"thousands separator); expected one convention per column, e.g. 12,5 and 1234,0 or "
                       "12.5 and 1234.0")
            elif decimal_comma and "," in cell and "." in cell and re.fullmatch(r"[+-]?[\d.,]+", cell):
                why = (f"{cell[:40]!r} has both '.' and ',': thousands separators are not read; expected a "
                       "number such as 1234,5 or 1234.5")
            elif re.fullmatch(r"[+-]?[\d.,]+\s*[A-Za-z%µ/]+[\w/%]*", cell):
                why = (f"{cell[:40]!r} carries a unit; expected a plain number (in Grafana, download with "
                       "'Formatted data' off)")
            elif "," in cell and re.fullmatch(r"[+-]?[\d.,]+", cell):
                why = (f"{cell[:40]!r} uses a comma: decimal comma or thousands separator? A decimal comma is read "
                       "only in files separated by ';' or tab; expected a number such as 12.5")
            else:
                why = f"{cell[:40]!r} is not a number; {EXPECT_NUM}"
            raise IngestError(why, file=file, row=int(rows[i]), column=column)
        over = np.isinf(num)
        if over.any():
            i = int(np.flatnonzero(rest)[int(np.argmax(over))])
            raise IngestError(f"{s.iloc[i][:40]!r} is too large for a 64-bit float (max about 1.8e308); "
                              "expected a finite number (write +Inf for infinity)", file=file,
                              row=int(rows[i]), column=column)
        out[rest] = num
    return out


def _clean_label_name(n: str) -> str:
    n = _LABEL_NAME_BAD.sub("_", n.strip())
    return n if re.match(r"[A-Za-z_]", n) else "_" + n


# ---------------------------------------------------------------------------------------- layouts
def _points(series: np.ndarray, ns: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({
        "series": pd.Series(series, dtype=object),
        "ts": pd.to_datetime(ns, unit="ns", utc=True),
        "value": pd.Series(values, dtype="float64"),
    })


def _read_long(table: _Table, t: int, s: int | None, v: int, fmt: str, file: str | None) -> ParsedMetrics:
    h = table.header
    ns, warnings = parse_times(table.col(t), table.lines, file=file, column=h[t])
    dec = table.delimiter != ","
    values = parse_values(table.col(v), table.lines, file=file, column=h[v], decimal_comma=dec)
    label_cols = [j for j in range(len(h)) if j not in (t, v) and j != s]
    stem = Path(file or "series").stem or "series"
    if s is None:
        names = np.full(len(ns), stem, dtype=object)
        if fmt == "long":
            warnings.append(f"no series column; series named after the file: {stem!r}")
    else:
        names = pd.Series(table.col(s), dtype=object).str.strip().to_numpy()
        empty = names == ""
        if empty.any():
            i = int(np.argmax(empty))
            raise IngestError("series name is empty; expected a metric name or key such as cpu_pct{host=\"a\"}",
                              file=file, row=int(table.lines[i]), column=h[s])
    lab_names = [_clean_label_name(h[j]) for j in label_cols]
    for j, ln in zip(label_cols, lab_names, strict=True):
        if ln != h[j]:
            warnings.append(f"label column {h[j]!r} renamed {ln!r} (label names allow letters, digits, _ . -)")
    if label_cols:
        parts = [pd.Series(names, dtype=object)] + [pd.Series(table.col(j), dtype=object).str.strip()
                                                    for j in label_cols]
        combo = parts[0].str.cat(parts[1:], sep="\x1f")
        codes, uniq = pd.factorize(combo)
    else:
        codes, uniq = pd.factorize(pd.Series(names, dtype=object))
    keys = []
    for u in uniq:
        bits = str(u).split("\x1f") if label_cols else [str(u)]
        name, labels = parse_key(bits[0])
        for ln, val in zip(lab_names, bits[1:], strict=True):
            if val:
                labels[ln] = val
        keys.append(make_key(name, labels))
    series = np.asarray(keys, dtype=object)[codes]
    return ParsedMetrics(_points(series, ns, values), fmt, len(ns), warnings)


def _wide_key(h: str, fmt: str, stem: str) -> tuple[str, str | None]:
    """(series key, aggregator) of a wide/datadog/cloudwatch column header."""
    h = h.strip()
    if fmt == "datadog":
        m = _DD_COL.match(h)
        if m:
            labels = {}
            for tag in (m.group(3) or "").split(","):
                tag = tag.strip()
                if not tag or tag == "*":
                    continue
                k, _, val = tag.partition(":")
                labels[_clean_label_name(k)] = val if _ else "true"
            return make_key(m.group(2), labels), m.group(1)
    if fmt == "cloudwatch":
        words, labels = [], {}
        for tok in h.split():
            if "=" in tok:
                k, _, val = tok.partition("=")
                labels[_clean_label_name(k)] = val
            elif tok.startswith("AWS/"):
                labels["namespace"] = tok
            elif CW_STATS.match(tok) and (words or labels):
                labels["stat"] = tok
            else:
                words.append(tok)
        return make_key(" ".join(words) or stem, labels), None
    name, labels = parse_key(h)
    if "__name__" in labels:
        name = labels.pop("__name__")
    return make_key(name or stem, labels), None


def _read_wide(table: _Table, t: int, fmt: str, file: str | None) -> ParsedMetrics:
    h = table.header
    ns_all, warnings = parse_times(table.col(t), table.lines, file=file, column=h[t])
    stem = Path(file or "series").stem or "series"
    cols = [j for j in range(len(h)) if j != t]
    parsed = [_wide_key(h[j], fmt, stem) for j in cols]
    keys = [k for k, _ in parsed]
    if len(set(keys)) < len(keys) and fmt == "datadog":  # e.g. avg: and max: of one metric
        keys = [make_key(*_merge(parse_key(k), {"agg": a or "avg"})) for k, a in parsed]
    seen: dict[str, str] = {}
    for j, k in zip(cols, keys, strict=True):
        if k in seen:
            raise IngestError(f"columns {seen[k]!r} and {h[j]!r} name the same series {k!r}; expected one "
                              "column per series", file=file, row=table.header_line, column=h[j])
        seen[k] = h[j]
    dec = table.delimiter != ","
    out_s, out_t, out_v = [], [], []
    for j, k in zip(cols, keys, strict=True):
        raw = pd.Series(table.col(j), dtype=object).str.strip().to_numpy()
        present = raw != ""
        if not present.any():
            warnings.append(f"column {h[j]!r} has no values")
            continue
        vals = parse_values(raw[present], table.lines[present], file=file, column=h[j], decimal_comma=dec)
        out_s.append(np.full(int(present.sum()), k, dtype=object))
        out_t.append(ns_all[present])
        out_v.append(vals)
    if not out_s:
        raise IngestError("every value cell is blank; expected at least one value", file=file)
    return ParsedMetrics(_points(np.concatenate(out_s), np.concatenate(out_t), np.concatenate(out_v)),
                         fmt, len(ns_all), warnings)


def _merge(parsed: tuple[str, dict[str, str]], extra: dict[str, str]) -> tuple[str, dict[str, str]]:
    name, labels = parsed
    return name, {**labels, **extra}


# ---------------------------------------------------------------------------------------- JSON
def _read_json(text: str, fmt: str, file: str | None) -> ParsedMetrics:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"not valid JSON ({exc.msg}); expected a Prometheus, CloudWatch or Datadog JSON export",
                          file=file, row=exc.lineno, column=f"char {exc.colno}") from exc
    except (ValueError, RecursionError) as exc:
        raise IngestError(f"JSON cannot be read ({type(exc).__name__}: {str(exc)[:80]}); expected a metric export",
                          file=file) from exc
    if fmt == "auto":
        if isinstance(doc, dict) and ("data" in doc or doc.get("status") in ("success", "error")):
            fmt = "prometheus"
        elif isinstance(doc, dict) and ("MetricDataResults" in doc or "Datapoints" in doc):
            fmt = "cloudwatch"
        elif isinstance(doc, dict) and isinstance(doc.get("series"), list):
            fmt = "datadog"
        else:
            keys = list(doc)[:5] if isinstance(doc, dict) else f"a list of {len(doc)}"
            raise IngestError(f"unknown JSON layout (top level: {keys}); expected Prometheus query_range "
                              "({'status','data':{'resultType':'matrix','result':[...]}}), CloudWatch "
                              "get-metric-data ({'MetricDataResults':[...]}) or Datadog ({'series':[...]})",
                              file=file)
    if not isinstance(doc, dict):
        raise IngestError(f"JSON top level is a {type(doc).__name__}; expected an object", file=file, column="$")
    reader = {"prometheus": _read_prometheus, "cloudwatch": _read_cloudwatch_json, "datadog": _read_datadog_json}
    try:
        return reader[fmt](doc, file)
    except IngestError:
        raise
    except (TypeError, KeyError, IndexError, AttributeError, ValueError, OverflowError) as exc:
        raise IngestError(f"unexpected JSON structure ({type(exc).__name__}: {str(exc)[:80]}); expected a {fmt} "
                          "export", file=file) from exc


def _need(cond: bool, msg: str, file: str | None, path: str) -> None:
    if not cond:
        raise IngestError(msg, file=file, column=path)


def _json_points(chunks: list[tuple[str, str, list[Any], list[Any]]], file: str | None, fmt: str,
                 ts_kind: str) -> ParsedMetrics:
    """chunks: (key, json path, timestamps, values) -> points; timestamps are parsed per chunk."""
    out_s, out_t, out_v, warnings = [], [], [], []
    for key, path, ts, vals in chunks:
        if not ts:
            continue
        if ts_kind == "seconds":
            arr = np.asarray(ts, dtype=np.float64)
            bad = ~np.isfinite(arr) | (arr < 0) | (arr * 1e9 >= _TS_MAX_NS)
            if bad.any():
                i = int(np.argmax(bad))
                raise IngestError(f"timestamp {ts[i]!r} is not an epoch time between 1970 and 2100; expected "
                                  "seconds since 1970 such as 1767225600", file=file, column=f"{path}[{i}][0]")
            ns = (np.round(arr * 1e6).astype(np.int64)) * 1000
        else:
            try:
                ns, w = parse_times(np.asarray(ts, dtype=object), file=file, column=f"{path}.timestamps")
            except IngestError as exc:
                raise IngestError(exc.reason, file=file, column=f"{path}[{(exc.row or 1) - 1}] timestamp") from exc
            warnings += [x for x in w if x not in warnings]
        strs = np.asarray(["" if v is None else (repr(v) if isinstance(v, float) else str(v)) for v in vals],
                          dtype=object)
        try:
            v = parse_values(strs, file=file, column=f"{path} value")
        except IngestError as exc:
            raise IngestError(exc.reason, file=file, column=f"{path}[{(exc.row or 1) - 1}] value") from exc
        out_s.append(np.full(len(ns), key, dtype=object))
        out_t.append(ns)
        out_v.append(v)
    if not out_s:
        raise IngestError("the export holds no samples; expected at least one data point", file=file)
    n = sum(len(x) for x in out_s)
    return ParsedMetrics(_points(np.concatenate(out_s), np.concatenate(out_t), np.concatenate(out_v)), fmt, n,
                         warnings)


def _read_prometheus(doc: dict, file: str | None) -> ParsedMetrics:
    if doc.get("status") == "error":
        raise IngestError(f"the query failed: {doc.get('errorType', '')} {doc.get('error', '')}".strip()
                          + "; expected a successful query_range response", file=file, column="status")
    data = doc.get("data")
    _need(isinstance(data, dict), "missing 'data' object; expected {'status':'success','data':{...}}", file, "data")
    rtype = data.get("resultType")
    _need(rtype == "matrix", f"resultType is {rtype!r}; expected 'matrix' (use the query_range API, not query)",
          file, "data.resultType")
    result = data.get("result")
    _need(isinstance(result, list), "'result' is not a list; expected a list of series", file, "data.result")
    stem = Path(file or "series").stem or "series"
    chunks, seen = [], {}
    for i, r in enumerate(result):
        path = f"data.result[{i}]"
        _need(isinstance(r, dict) and isinstance(r.get("metric", {}), dict), "series entry is not an object "
              "with a 'metric' object", file, path)
        if "values" not in r and "histograms" in r:
            raise IngestError("native histograms are not supported; expected float samples in 'values' "
                              "(query histogram_quantile(...) instead)", file=file, column=f"{path}.histograms")
        vals = r.get("values")
        _need(isinstance(vals, list), "missing 'values' list; expected [[timestamp, \"value\"], ...]", file,
              f"{path}.values")
        for k, pair in enumerate(vals):
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (int, float))
                    and not isinstance(pair[0], bool)):
                raise IngestError(f"sample {str(pair)[:40]} is not [timestamp, \"value\"]; expected a pair of "
                                  "epoch seconds and a value string", file=file, column=f"{path}.values[{k}]")
        labels = {str(k): str(v) for k, v in r.get("metric", {}).items()}
        name = labels.pop("__name__", None) or stem
        key = make_key(name, labels)
        if key in seen:
            raise IngestError(f"series {key!r} appears twice (also {seen[key]}); expected each series once",
                              file=file, column=path)
        seen[key] = path
        chunks.append((key, f"{path}.values", [p[0] for p in vals], [p[1] for p in vals]))
    return _json_points(chunks, file, "prometheus", "seconds")


def _read_cloudwatch_json(doc: dict, file: str | None) -> ParsedMetrics:
    chunks, units = [], {}
    stem = Path(file or "series").stem or "series"
    if "MetricDataResults" in doc:
        res = doc["MetricDataResults"]
        _need(isinstance(res, list), "'MetricDataResults' is not a list", file, "MetricDataResults")
        labels = [str(r.get("Label") or r.get("Id") or stem) for r in res]
        dup = len(set(labels)) < len(labels)
        for i, r in enumerate(res):
            path = f"MetricDataResults[{i}]"
            ts, vals = r.get("Timestamps"), r.get("Values")
            _need(isinstance(ts, list) and isinstance(vals, list) and len(ts) == len(vals),
                  "needs 'Timestamps' and 'Values' lists of equal length", file, path)
            key = make_key(labels[i], {"id": r.get("Id")} if dup else None)
            chunks.append((key, path, ts, vals))
    else:
        dps = doc.get("Datapoints")
        _need(isinstance(dps, list), "'Datapoints' is not a list", file, "Datapoints")
        label = str(doc.get("Label") or stem)
        stats: dict[str, tuple[list, list]] = {}
        for i, dp in enumerate(dps):
            _need(isinstance(dp, dict) and "Timestamp" in dp, "datapoint lacks 'Timestamp'", file, f"Datapoints[{i}]")
            items = [(k, v) for k, v in dp.items() if k not in ("Timestamp", "Unit", "ExtendedStatistics")]
            items += list((dp.get("ExtendedStatistics") or {}).items())
            for stat, v in items:
                key = make_key(label, {"stat": stat})
                stats.setdefault(key, ([], []))
                stats[key][0].append(dp["Timestamp"])
                stats[key][1].append(v)
                if dp.get("Unit"):
                    units[key] = str(dp["Unit"])
        chunks = [(k, "Datapoints", ts, vs) for k, (ts, vs) in stats.items()]
    parsed = _json_points(chunks, file, "cloudwatch", "iso")
    parsed.units = units
    return parsed


def _read_datadog_json(doc: dict, file: str | None) -> ParsedMetrics:
    if doc.get("status") == "error" or doc.get("error"):
        raise IngestError(f"the query failed: {doc.get('error')}; expected status 'ok'", file=file, column="status")
    chunks, seen, units = [], set(), {}
    for i, s in enumerate(doc["series"]):
        path = f"series[{i}]"
        _need(isinstance(s, dict) and isinstance(s.get("pointlist"), list), "needs a 'pointlist' list", file, path)
        scope = str(s.get("scope") or "")
        col = f"{s.get('metric') or 'metric'}{{{scope}}}"
        key, _ = _wide_key(col, "datadog", "metric")
        if key in seen:
            key = make_key(*_merge(parse_key(key), {"agg": str(s.get("aggr") or i)}))
        seen.add(key)
        pts = s["pointlist"]
        for k, p in enumerate(pts):
            if not (isinstance(p, list) and len(p) == 2 and isinstance(p[0], (int, float))):
                raise IngestError(f"point {str(p)[:40]} is not [epoch_ms, value]", file=file,
                                  column=f"{path}.pointlist[{k}]")
        unit = s.get("unit")
        if isinstance(unit, list) and unit and isinstance(unit[0], dict) and unit[0].get("name"):
            units[key] = str(unit[0]["name"])
        chunks.append((key, f"{path}.pointlist", [p[0] / 1000.0 for p in pts], [p[1] for p in pts]))
    parsed = _json_points(chunks, file, "datadog", "seconds")
    parsed.units = units
    return parsed


# ---------------------------------------------------------------------------------------- finish
def all_missing_error(n: int, file: str | None) -> IngestError:
    """The error for a file whose every value is missing (shared with the store's bulk loader)."""
    return IngestError(f"all {n:,} values are missing (empty/NaN/null); expected at least one number",
                       file=file, column="value")


def _finish(parsed: ParsedMetrics, file: str | None) -> ParsedMetrics:
    pts = parsed.points
    if len(pts) == 0:
        raise IngestError("no data points found; expected at least one row with a value", file=file)
    v = pts["value"].to_numpy()
    if np.isnan(v).all():
        raise all_missing_error(len(v), file)
    kinds = {}
    for k in pd.unique(pts["series"]):
        kind = infer_kind(k)
        if kind:
            kinds[k] = kind
    parsed.kinds = {**kinds, **parsed.kinds}
    return parsed


# ---------------------------------------------------------------------------------------- writers
def _fmt_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _iso(ts: pd.Series) -> list[str]:
    return list(pd.DatetimeIndex(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def write_metrics(points: pd.DataFrame, fmt: str) -> str:
    """Render a points frame in one of :data:`FORMATS` (the inverse of :func:`read_metrics`).

    ``nab`` takes one series (name the file ``<series>.csv`` to read it back); ``wide``, ``datadog``
    and ``cloudwatch`` need unique (series, ts). Timestamps keep microseconds (ISO) or milliseconds
    (Prometheus, Datadog). Values are written exactly (``repr``), NaN as ``NaN``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    pts = points.reset_index(drop=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if fmt == "long":
        w.writerow(["timestamp", "series", "value"])
        w.writerows(zip(_iso(pts["ts"]), pts["series"], map(_fmt_value, pts["value"]), strict=True))
        return buf.getvalue()
    if fmt == "nab":
        if pts["series"].nunique() > 1:
            raise ValueError("nab layout holds one series")
        w.writerow(["timestamp", "value"])
        w.writerows(zip(_iso(pts["ts"]), map(_fmt_value, pts["value"]), strict=True))
        return buf.getvalue()
    if fmt == "prometheus":
        result = []
        for key, g in pts.groupby("series", sort=True):
            name, labels = parse_key(str(key))
            secs = pd.DatetimeIndex(g["ts"]).as_unit("ns").asi8 / 1e9
            result.append({"metric": {"__name__": name, **labels},
                           "values": [[round(float(t), 3), _fmt_value(v)] for t, v in zip(secs, g["value"],
                                                                                         strict=True)]})
        return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
    keys = sorted(pd.unique(pts["series"]))
    wide = pts.pivot(index="ts", columns="series", values="value").sort_index()
    present = pts.assign(p=1).pivot(index="ts", columns="series", values="p").sort_index().notna()
    if fmt == "datadog":
        head = ["timestamp"]
        for k in keys:
            name, labels = parse_key(k)
            head.append(f"avg:{name}{{{','.join(f'{a}:{b}' for a, b in sorted(labels.items()))}}}")
        times = [str(t // 1_000_000) for t in pd.DatetimeIndex(wide.index).as_unit("ns").asi8]
    elif fmt == "cloudwatch":
        head = ["Timestamp"]
        for k in keys:
            name, labels = parse_key(k)
            head.append(" ".join([name] + [f"{a}={b}" for a, b in sorted(labels.items())]))
        times = _iso(pd.Series(wide.index))
    else:
        head = ["Time"] + keys
        times = _iso(pd.Series(wide.index))
    w.writerow(head)
    vals = wide[keys].to_numpy()
    pres = present[keys].to_numpy()
    for i, t in enumerate(times):
        w.writerow([t] + [_fmt_value(v) if p else "" for v, p in zip(vals[i], pres[i], strict=True)])
    return buf.getvalue()


__all__ = ["FORMATS", "BulkPlan", "ParsedMetrics", "all_missing_error", "decode_bytes", "empty_points",
           "infer_kind", "load_source", "parse_times", "parse_values", "plan_bulk_csv", "read_metrics",
           "write_metrics"]


# ---------------------------------------------------------------------------------------- bulk plan
@dataclass(frozen=True)
class BulkPlan:
    """How ``Store.ingest`` may load a simple long/NAB CSV with DuckDB's reader instead of pandas.

    Made from the first bytes of the file, which must parse cleanly with :func:`read_metrics`. The
    store loads the whole file with explicit column types, re-checks everything the pure reader
    checks (ranges, units, empties, duplicates) and falls back to :func:`read_metrics` (which then
    reports the exact row and column) whenever anything is off.
    """

    format: str                # "long" or "nab"
    delimiter: str
    ncols: int
    time_col: int
    series_col: int | None     # None for nab
    value_col: int
    series_name: str           # nab: the file stem
    epoch_unit: int | None     # None: ISO text; else index into seconds/ms/us/ns
    epoch_integer: bool
    no_zone_example: str | None
    warnings: tuple[str, ...] = ()


def plan_bulk_csv(head: bytes, fmt: str = "auto", name: str | None = None, *, complete: bool = False) -> BulkPlan | None:
    """A :class:`BulkPlan` when ``head`` (the first bytes of a file) is a plain UTF-8 long/NAB CSV with
    no label columns, a header on line 1 and a ``,``/``;``/tab delimiter; otherwise None."""
    if fmt not in ("auto", "long", "nab") or head[:3] == b"\xef\xbb\xbf":
        return None
    if not complete:
        cut = head.rfind(b"\n")
        if cut <= 0:
            return None
        head = head[: cut + 1]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text[:1].strip() or text.count("\r") != text.count("\r\n"):
        return None
    try:
        table = _parse_csv(text, name)
        parsed = _finish(_read_table(table, fmt, name), name)
    except IngestError:
        return None
    if table.header_line != 1 or table.delimiter not in (",", ";", "\t") or parsed.format not in ("long", "nab"):
        return None
    low = [h.lower() for h in table.header]
    t, v = _find(low, TIME_COLUMNS), _find(low, VALUE_COLUMNS)
    s = _find(low, SERIES_COLUMNS) if parsed.format == "long" else None
    if parsed.format == "long" and (s is None or len(low) != 3):
        return None
    first = table.cells[0, t].strip()
    epoch_unit, integer = None, False
    if re.fullmatch(r"\d+(\.\d*)?([eE][+-]?\d+)?", first):
        epoch_unit = int(np.searchsorted(np.asarray(_EPOCH_BANDS), float(first), side="right"))
        integer = bool(pd.Series(table.cells[:, t]).str.strip().str.fullmatch(r"\d+").all())
        if f"timestamps read as epoch {_EPOCH_UNITS[epoch_unit]}" not in parsed.warnings:
            return None   # e.g. compact dates YYYYMMDD: only the careful reader reads those
    col_t = pd.Series(table.cells[:, t]).str.strip()
    no_zone = col_t[~col_t.str.contains(_ZONE_RE, regex=True)]
    example = None if epoch_unit is not None or no_zone.empty else str(no_zone.iloc[0])
    warns = tuple(w for w in parsed.warnings if "no time zone" not in w)
    return BulkPlan(parsed.format, table.delimiter, len(low), t, s, v, Path(name or "series").stem or "series",
                    epoch_unit, integer, example, warns)
