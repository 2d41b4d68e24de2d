"""Reusable page pieces: file import actions and their rendering, quality tables, toasts.

The actions (:func:`preview_file`, :func:`import_files`, :func:`import_incident_file`) call into
``core`` and return plain results, so tests can drive them without a browser; the ``show_*``
functions only lay results out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from core.data.store import IngestReport, Store
from core.errors import IngestError, StudioError
from core.fmt import fmt_ts
from ui import outcomes, state

GRADES = ("A", "B", "C", "D", "F", "insufficient")
TOAST_KEY = "ui.toast"


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class FileResult:
    """Outcome of importing one file: a report, or an error with where it happened."""

    name: str
    report: IngestReport | None = None
    note: str | None = None          # what happened, when there is no ingest report (incidents)
    noop: bool = False               # nothing was written (e.g. the file was imported before)
    error: str | None = None
    row: int | None = None
    column: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def is_noop(self) -> bool:
        return self.noop or (self.report is not None and self.report.is_noop)

    @property
    def where(self) -> str:
        """``file, row N, column 'c'`` as far as known."""
        parts = [self.name]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)

    @property
    def message(self) -> str:
        if self.error is not None:
            return self.error
        return self.report.summary() if self.report is not None else str(self.note)


def _bytes_and_name(f: Any) -> tuple[bytes, str]:
    """Bytes and name of an uploaded file, a ``(name, bytes)`` pair, or a path-like file object."""
    if isinstance(f, tuple):
        return bytes(f[1]), str(f[0])
    data = f.getvalue() if hasattr(f, "getvalue") else f.read()
    return (data.encode() if isinstance(data, str) else bytes(data)), str(getattr(f, "name", "upload"))


def _error_result(name: str, exc: StudioError) -> FileResult:
    if isinstance(exc, IngestError):
        return FileResult(exc.file or name, error=exc.reason, row=exc.row, column=exc.column)
    return FileResult(name, error=str(exc), column=getattr(exc, "path", None))


def import_files(files: Sequence[Any], fmt: str = "auto", actor: str | None = None, *,
                 store: Store | None = None,
                 progress: Callable[[int, int, str], None] | None = None) -> list[FileResult]:
    """Store each file as one upload; a bad file is reported and the others still import.

    ``files`` are Streamlit uploads (or ``(name, bytes)`` pairs). A file already uploaded is a
    no-op (its result's ``is_noop`` is True). ``progress(done, total, name)`` is called after each
    file. Clears the query cache when anything was written.
    """
    st_ = store if store is not None else state.store()
    results: list[FileResult] = []
    for i, f in enumerate(files):
        data, name = _bytes_and_name(f)
        try:
            results.append(FileResult(name, report=st_.ingest(data, fmt=fmt, name=name, actor=actor)))
        except StudioError as exc:
            results.append(_error_result(name, exc))
        except Exception as exc:  # a parser bug must not stop the other files; say what happened
            results.append(FileResult(name, error=f"unexpected {type(exc).__name__} while reading: {exc}"))
        if progress is not None:
            progress(i + 1, len(files), name)
    if any(r.ok and not r.is_noop for r in results):
        state.after_write()
        # SLO budgets, drift of the changed series, rollback triggers: as after `python -m core ingest`
        outcomes.after_upload(st_, [r.report for r in results if r.ok and r.report is not None])
    return results


def errors_frame(results: Sequence[FileResult]) -> pd.DataFrame:
    """The failed files as a table ``file, row, column, message`` (row is 1-based, header = 1)."""
    bad = [r for r in results if not r.ok]
    return pd.DataFrame({
        "file": [r.name for r in bad],
        "row": pd.array([r.row for r in bad], dtype="Int64"),
        "column": [r.column for r in bad],
        "message": [r.error for r in bad],
    })


@st.cache_data(show_spinner=False, max_entries=32)
def preview_file(data: bytes, name: str, fmt: str = "auto", head: int = 5) -> dict[str, Any]:
    """Parse a file without storing it: detected format, counts, time span and its first points.

    Returns a dict with ``ok``; on success ``format, rows, points, series, start, end, head,
    warnings``; on failure ``error, row, column``.
    """
    from core.data.ingest import read_metrics

    try:
        parsed = read_metrics(data, fmt=fmt, name=name)
    except StudioError as exc:
        r = _error_result(name, exc)
        return {"ok": False, "error": r.error, "row": r.row, "column": r.column}
    except Exception as exc:  # shown, not raised: the other files' previews still render
        return {"ok": False, "error": f"unexpected {type(exc).__name__} while reading: {exc}", "row": None,
                "column": None}
    pts = parsed.points
    return {
        "ok": True, "format": parsed.format, "rows": int(parsed.rows), "points": int(len(pts)),
        "series": int(pts["series"].nunique()),
        "start": pts["ts"].min() if len(pts) else None, "end": pts["ts"].max() if len(pts) else None,
        "head": pts.head(head).reset_index(drop=True), "warnings": list(parsed.warnings),
    }


def import_incident_file(f: Any, actor: str | None = None, *, store: Store | None = None) -> FileResult:
    """Read an incidents file (CSV or NAB ``windows.json``) and store its windows.

    Duplicates are found by content (:func:`core.data.incidents.import_incidents`): windows already stored
    under any file name are not imported twice. Returns a :class:`FileResult` whose ``message`` says
    what happened.
    """
    from core.data.incidents import import_incidents

    st_ = store if store is not None else state.store()
    data, name = _bytes_and_name(f)
    try:
        res = import_incidents(st_, data, name=name, actor=actor)
    except StudioError as exc:
        return _error_result(name, exc)
    except Exception as exc:
        return FileResult(name, error=f"unexpected {type(exc).__name__} while reading: {exc}")
    if res.duplicate:
        return FileResult(name, noop=True, note=res.message)
    state.after_write()
    return FileResult(name, note=res.message)


# ---------------------------------------------------------------------------- rendering
def show_import_results(results: Sequence[FileResult]) -> None:
    """One line per imported file, then a table of the files that failed."""
    for r in results:
        if r.is_noop:
            st.info(f"Duplicate file, nothing changed. {r.message}", icon=":material/content_copy:")
        elif r.ok:
            st.success(r.message, icon=":material/check_circle:")
    bad = errors_frame(results)
    if len(bad):
        st.error(f"{len(bad)} file(s) could not be imported; the other files were.", icon=":material/error:")
        st.dataframe(bad, hide_index=True, width="stretch", height=table_height(len(bad)), column_config={
            "row": st.column_config.NumberColumn("row", help="1-based line in the file; the header is line 1"),
            "message": st.column_config.TextColumn("message", width="large")})


def show_preview(name: str, pv: dict[str, Any]) -> None:
    """Detected format, counts and the first points of one parsed (not yet stored) file."""
    if not pv["ok"]:
        where = ", ".join(x for x in (f"row {pv['row']}" if pv["row"] is not None else "",
                                      f"column {pv['column']!r}" if pv["column"] else "") if x)
        st.error(f"**{name}**{' (' + where + ')' if where else ''}: {pv['error']}")
        return
    st.markdown(f"**{name}**: detected format `{pv['format']}`, {pv['rows']:,} rows, "
                f"{pv['points']:,} points in {pv['series']} series, {fmt_ts(pv['start'])} to {fmt_ts(pv['end'])}")
    for w in pv["warnings"]:
        st.warning(w)
    st.dataframe(pv["head"], hide_index=True, width="stretch")


QUALITY_COLUMNS = ["series", "grade", "score", "issues", "points", "resolution_s", "gaps", "longest_gap_s",
                   "missing_pct", "duplicates", "nan", "inf", "flat_pct", "counter_resets", "staleness_s",
                   "start", "end"]


def quality_column_config() -> dict[str, Any]:
    cc = st.column_config
    return {
        "series": cc.TextColumn("series", pinned=True),
        "grade": cc.TextColumn("grade", width="small", help="A (best) to F; 'insufficient' when too few points to judge"),
        "score": cc.ProgressColumn("score", min_value=0, max_value=100, format="%.0f", width="small",
                                   help="0-100; empty when there is too little data to score"),
        "resolution_s": cc.NumberColumn("step (s)", format="%d", help="median spacing of points, seconds"),
        "longest_gap_s": cc.NumberColumn("longest gap (s)", format="%d"),
        "missing_pct": cc.NumberColumn("missing %", format="%.1f"),
        "flat_pct": cc.NumberColumn("flat %", format="%.1f"),
        "staleness_s": cc.NumberColumn("stale (s)", format="%d", help="seconds since the last point"),
    }


def show_quality_table(q: pd.DataFrame, *, columns: Sequence[str] = QUALITY_COLUMNS, max_rows: int = 12) -> None:
    """The quality report as a table: grade, a score bar and the issues of each series."""
    cols = [c for c in columns if c in q.columns]
    cfg = quality_column_config()
    if "issues" in cols:  # issues as one readable line: a list column truncates after the first chip
        q = q.assign(issues=q["issues"].map(lambda x: "; ".join(x) if isinstance(x, (list, tuple)) else x))
        cfg["issues"] = st.column_config.TextColumn("issues", width="large")
    st.dataframe(q[cols], hide_index=True, width="stretch", column_config=cfg,
                 height=table_height(len(q), max_rows))


def show_issue_list(q: pd.DataFrame, n: int = 5) -> None:
    """The issues of the first ``n`` rows that have any, one readable line per series."""
    lines = []
    for row in q.head(n).itertuples():  # a handful of table rows, not points
        issues = list(row.issues) if isinstance(row.issues, (list, tuple)) else []
        if issues:
            score = "unscored" if row.score is None or pd.isna(row.score) else f"{row.score:.0f}"
            lines.append(f"- `{row.series}` ({row.grade}, {score}): " + "; ".join(issues))
    if lines:
        st.markdown("\n".join(lines))


def grade_counts(q: pd.DataFrame) -> pd.Series:
    """Series per grade, in the order A..F then insufficient (zeros included)."""
    if q is None or not len(q) or "grade" not in q.columns:
        return pd.Series(0, index=list(GRADES), dtype="int64")
    counts = q["grade"].fillna("insufficient").astype(str).value_counts()
    order = list(GRADES) + sorted(set(counts.index) - set(GRADES))
    return counts.reindex(order, fill_value=0).astype("int64")


def worst_series(q: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` lowest-scoring series (unscored, i.e. insufficient, series after the scored ones)."""
    if q is None or not len(q):
        return pd.DataFrame(columns=["series", "grade", "score", "issues"])
    cols = [c for c in ("series", "grade", "score", "issues") if c in q.columns]
    return q.sort_values("score", na_position="last", kind="stable")[cols].head(n).reset_index(drop=True)


def table_height(rows: int, max_rows: int = 8) -> int:
    """Pixel height that fits ``rows`` table rows (plus the header), at most ``max_rows`` of them."""
    return 38 + 35 * max(1, min(int(rows), max_rows)) + 2


# ---------------------------------------------------------------------------- time windows
TIME_RANGES: dict[str, pd.Timedelta | None] = {
    "Last 1 day": pd.Timedelta(days=1), "Last 7 days": pd.Timedelta(days=7),
    "Last 30 days": pd.Timedelta(days=30), "All": None,
}
DEFAULT_RANGE = "Last 7 days"
# The store keeps microseconds; the first instant after a window's open start.
_TICK = pd.Timedelta(microseconds=1)


def window_start(last_ts: Any, choice: str | None) -> pd.Timestamp | None:
    """First timestamp of the window ``(last_ts - span, last_ts]`` named by ``choice``.

    Windows end at the series' own last point (not at the wall clock: an export from last month
    still shows its last day), and are open at the start, so "Last 1 day" of 5-minute data holds
    288 points, not 289. None for "All", an unknown choice or a series without points.
    """
    span = TIME_RANGES.get(choice or "")
    if span is None or last_ts is None or pd.isna(last_ts):
        return None
    return pd.Timestamp(last_ts).tz_convert("UTC") - span + _TICK


def gaps_in_window(gaps: pd.DataFrame | None, start: Any) -> pd.DataFrame | None:
    """The gaps (``start, end, duration_s``; ``end`` exclusive) that overlap ``[start, ...)``.

    A gap that began before the window and ends inside it is kept whole: its duration is a fact
    about the series, not about the window.
    """
    if gaps is None or start is None or not len(gaps):
        return gaps
    return gaps.loc[pd.to_datetime(gaps["end"], utc=True) > pd.Timestamp(start)].reset_index(drop=True)


def incident_label(row: Any) -> str:
    """One incident window in words: ``#3 latency_ms{...}: 2026-01-02 00:00 to 02:00 UTC (outage)``."""
    start, end = pd.Timestamp(row["start"]), pd.Timestamp(row["end"])
    same_day = start.tz_convert("UTC").date() == end.tz_convert("UTC").date()
    until = end.strftime("%H:%M") if same_day else end.strftime("%Y-%m-%d %H:%M")
    who = row["series"] if isinstance(row["series"], str) and row["series"] else "all series"
    kind = f" ({row['kind']})" if isinstance(row["kind"], str) and row["kind"] else ""
    return f"#{int(row['id'])} {who}: {start.strftime('%Y-%m-%d %H:%M')} to {until} UTC{kind}"


def show_flash(key: str, *, toast: bool = False) -> None:
    """Success line (and, with ``toast``, a toast) for the write made in the previous run, stored under
    session key ``key``, if any. Call near the top of a page.

    Both go into one container that is created on every run, flash or not, so the elements after it
    keep their place in the page (a success line that comes and goes would shift them, and the
    browser would remount what follows: unkeyed tabs reopen on their first tab, tables lose their
    scroll and sort)."""
    box = st.container()
    msg = st.session_state.pop(key, None)
    if msg:
        if toast:
            box.toast(msg, icon=":material/check_circle:")
        box.success(msg, icon=":material/check_circle:")


def toast_later(message: str, icon: str = ":material/check:") -> None:
    """Queue a toast to show after the next rerun (a toast shown right before ``st.rerun`` is lost)."""
    st.session_state[TOAST_KEY] = (message, icon)


def flush_toast() -> None:
    """Show the queued toast, if any. Call near the top of a page."""
    item = st.session_state.pop(TOAST_KEY, None)
    if item:
        st.toast(item[0], icon=item[1])


# The folder app.py registers the pages from (st.page_link paths are relative to app.py).
PAGES_DIR = "pages"
NEXT_STEPS = (
    (f"{PAGES_DIR}/data.py", "Data", ":material/upload_file:", "Upload exports, check quality, explore and clean up series."),
    (f"{PAGES_DIR}/trends.py", "Trends & anomalies", ":material/monitoring:", "Seasonality, trends and causal anomaly scores."),
    (f"{PAGES_DIR}/thresholds.py", "Thresholds", ":material/tune:", "Replay alert rules over history and get recommendations."),
    (f"{PAGES_DIR}/policies.py", "Policies", ":material/policy:", "Apply, review and roll back versioned threshold policies."),
)


def next_steps() -> None:
    """Links to the working pages, two per row, each with one line on what it is for."""
    for i in range(0, len(NEXT_STEPS), 2):
        cols = st.columns(2)
        for col, (page, label, icon, blurb) in zip(cols, NEXT_STEPS[i:i + 2], strict=False):
            with col:
                st.page_link(page, label=label, icon=icon)
                st.caption(blurb)


def no_data(what: str = "No data yet") -> None:
    """The friendly empty-database message with a link to the Data page."""
    st.info(f"{what}. Upload metric exports on the Data page, or build the demo database with "
            "`make demo` (`python -m data.generate --out data/demo --db $STUDIO_DB`).", icon=":material/inbox:")
    st.page_link(f"{PAGES_DIR}/data.py", label="Go to Data", icon=":material/upload_file:")
