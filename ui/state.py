"""The cached store and cached queries shared by the pages.

Every cached query is keyed by the database path, so a test (or a second ``STUDIO_DB``) never sees
another database's results. Every write goes through :func:`after_write`, which clears the query
cache so no page shows stale data. Other processes (CLI imports, cron feeds, a second app server)
write to the same file: :func:`sync`, run whenever a page asks for the database (:func:`db_path`),
compares the database files' fingerprint with the one this server saw last and clears the cache
when it changed. The Store holds no connection between calls, so those writers are never locked out for long.
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
import streamlit as st

from core.data.store import Store, default_db_path
from core.data.store.base import file_token
from core.errors import PermissionDenied

# Points fetched per batch when computing the quality report of a large store.
QUALITY_BATCH_POINTS = 2_000_000


def db_path() -> str:
    """The database path the app is using (``$STUDIO_DB`` or the project default).

    Every cached query and :func:`store` asks for it, so this is where a change made by another
    process is noticed (:func:`sync`): the first call of a rerun after that change clears the cache.
    """
    path = str(default_db_path())
    sync(path)
    return path


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    s = Store(path)
    try:  # every write the app makes lands in the audit trail (issue 5)
        from core.data.store.audit import install
    except ImportError:
        return s
    return install(s)


def store() -> Store:
    """The app's one Store (per database path), shared by every session of this server."""
    return _store(db_path())


# The database fingerprint (core.data.store.base.file_token) this server process last acted on, per path.
_SEEN: dict[str, tuple] = {}
_SEEN_LOCK = threading.Lock()


def sync(path: str | None = None) -> bool:
    """Drop every cached query result if any process changed the database since this server last
    looked (a CLI import, a cron feed, another app server). Costs two ``stat`` calls (microseconds)
    and opens no connection. Returns whether the cache was cleared."""
    path = str(default_db_path()) if path is None else path
    token = file_token(path)
    with _SEEN_LOCK:
        last = _SEEN.get(path)
        _SEEN[path] = token
    if last is not None and last != token:
        st.cache_data.clear()
        return True
    return False


def after_write() -> None:
    """Call after any write to the store: drops every cached query result (and marks this process's
    own write as seen, so :func:`sync` does not clear the cache a second time for it)."""
    path = str(default_db_path())
    _store(path).release()
    with _SEEN_LOCK:
        _SEEN[path] = file_token(path)
    st.cache_data.clear()


def _identity() -> tuple[Any, str | None]:
    try:
        from core.policy.identity import ANONYMOUS, current_user
    except ImportError:
        return None, None
    try:
        info = st.user
    except Exception:  # no auth configured in this Streamlit
        info = None
    try:
        return current_user(info), None
    except Exception as exc:  # a broken roles file must not take the app down, nor grant write access
        return ANONYMOUS, f"the roles file has a problem, so the app is read-only: {exc}"


def user() -> Any:
    """The session's :class:`core.policy.identity.User` (the logged-in user, else the local operator).

    When the roles file is invalid: an anonymous viewer (read-only; see :func:`identity_error`).
    None only when the identity module is missing (then writes are attributed to ``"local"``).
    """
    return _identity()[0]


def identity_error() -> str | None:
    """Why the session fell back to a read-only anonymous viewer (a roles-file problem), else None."""
    return _identity()[1]


def actor() -> str:
    """Who is acting, for the audit trail: the user's e-mail when logged in, else their name."""
    u = user()
    return u.id if u is not None else "local"


def can_edit() -> bool:
    """Whether the user may import and delete data (the ``editor`` role)."""
    u = user()
    return True if u is None else bool(u.has("editor"))


def edit_refusal(action: str) -> str | None:
    """Why the user may not ``action`` (e.g. ``"delete upload #3"``) right now, else None.

    The roles are read again on every call, so call this at the moment a write is confirmed: a
    button's ``disabled=`` reflects the roles when the page was drawn, and a dialog or a file picker
    can stay open while the roles file (or ``$STUDIO_USER``) changes.
    """
    if can_edit():
        return None
    why = identity_error() or f"{actor()} lacks the 'editor' role"
    return (f"Not allowed to {action}: {why}. Roles are checked again when a change is confirmed, "
            "and they no longer allow it; nothing was changed.")


def require_edit(action: str) -> None:
    """Raise :class:`core.errors.PermissionDenied` with :func:`edit_refusal`'s message when the
    user may not ``action`` now."""
    refusal = edit_refusal(action)
    if refusal is not None:
        raise PermissionDenied(refusal)


# ---------------------------------------------------------------------------- listings
@st.cache_data(show_spinner=False)
def list_series(path: str) -> pd.DataFrame:
    return _store(path).list_series(fingerprint=True)


def series_table() -> pd.DataFrame:
    """Every series with ``key, kind, unit, points, first_ts, last_ts`` (and the content fingerprint
    columns ``missing, upload_sum``: ``Store.list_series(fingerprint=True)``)."""
    return list_series(db_path())


@st.cache_data(show_spinner=False)
def _uploads(path: str) -> pd.DataFrame:
    return _store(path).list_uploads()


def uploads() -> pd.DataFrame:
    """Every upload, newest first."""
    return _uploads(db_path())


@st.cache_data(show_spinner=False, max_entries=64)
def _points(path: str, key: str, start: object = None, end: object = None) -> pd.DataFrame:
    return _store(path).get_points(key, start, end)


def points(key: str, start: object = None, end: object = None) -> pd.DataFrame:
    """Raw points of one series (gaps are absent rows, missing values NaN)."""
    return _points(db_path(), key, start, end)


@st.cache_data(show_spinner=False)
def _incidents(path: str, key: str | None, start: object = None, end: object = None) -> pd.DataFrame:
    return _store(path).list_incidents(key, start, end)


def incidents(key: str | None = None, start: object = None, end: object = None) -> pd.DataFrame:
    """Incident windows; for a series, its own and the global ones."""
    return _incidents(db_path(), key, start, end)


# ---------------------------------------------------------------------------- summaries
def summarize(series: pd.DataFrame, uploads_df: pd.DataFrame, incidents_df: pd.DataFrame) -> dict[str, Any]:
    """What is loaded, from the three listings: counts and the overall time span.

    Returns ``series``, ``points``, ``uploads``, ``incidents`` (int), ``start``, ``end``
    (UTC timestamps or None), ``span_s`` (seconds, None without points), and ``newest_upload`` /
    ``newest_upload_name``: when the most recent upload was stored and its file (None without uploads).
    """
    first = pd.to_datetime(series["first_ts"], utc=True).min() if len(series) else pd.NaT
    last = pd.to_datetime(series["last_ts"], utc=True).max() if len(series) else pd.NaT
    span = None if pd.isna(first) or pd.isna(last) else float((last - first).total_seconds())
    return {
        "series": int(len(series)),
        "points": int(series["points"].sum()) if len(series) else 0,
        "uploads": int(len(uploads_df)),
        "incidents": int(len(incidents_df)),
        "start": None if pd.isna(first) else first,
        "end": None if pd.isna(last) else last,
        "span_s": span,
        **_newest(uploads_df),
    }


def _newest(uploads_df: pd.DataFrame) -> dict[str, Any]:
    if not len(uploads_df) or "created_at" not in uploads_df:
        return {"newest_upload": None, "newest_upload_name": None}
    at = pd.to_datetime(uploads_df["created_at"], utc=True)
    i = at.idxmax()
    return {"newest_upload": at[i], "newest_upload_name": str(uploads_df.loc[i, "name"])}


def overview() -> dict[str, Any]:
    """:func:`summarize` of the current database (from cached listings)."""
    return summarize(series_table(), uploads(), incidents())


def _batches(series: pd.DataFrame, max_points: int) -> list[list[str]]:
    """Split series keys, in order, into groups of at most ``max_points`` points (a series larger
    than that gets a group of its own), so a large store is read a slice at a time."""
    groups: list[list[str]] = []
    total = 0
    for key, n in zip(series["key"], series["points"].astype("int64"), strict=True):  # per series
        if not groups or total + n > max_points:
            groups.append([])
            total = 0
        groups[-1].append(str(key))
        total += int(n)
    return groups


# Quality rows per (database path, series key, kind), each kept with the series' content
# fingerprint (Store.list_series(fingerprint=True)). A write clears st.cache_data, but a series whose points
# did not change keeps its row here, so the report after an upload reassesses only the series the
# upload touched (the fingerprint comes with the cached series listing; no points are read for the rest).
_QUALITY_MEMO: dict[tuple[str, str, str], tuple[tuple, dict[str, Any]]] = {}
_QUALITY_LOCK = threading.Lock()


def compute_quality(st_: Store, series: pd.DataFrame | None = None,
                    max_points: int = QUALITY_BATCH_POINTS, *, memo: bool = False) -> pd.DataFrame:
    """Quality report of every stored series, reading points from DuckDB a batch of series at a time
    (as NumPy arrays: ``Store.point_arrays``).

    One row per series as returned by ``core.data.quality.quality_report`` (series kinds passed along),
    sorted by key. With ``memo`` the rows of series whose content fingerprint is unchanged since an
    earlier call in this process are reused instead of read and assessed again. Pure apart from
    reading the store; the page caches it (:func:`quality`).
    """
    from core.data.quality import REPORT_COLUMNS, quality_from_arrays

    series = st_.list_series() if series is None else series
    series = series[series["points"] > 0]
    kinds = {str(k): str(v or "gauge") for k, v in zip(series["key"], series["kind"], strict=True)}
    rows: dict[str, dict[str, Any]] = {}
    fps: dict[str, tuple] = {}
    todo = series
    if memo and len(series):
        if "upload_sum" not in series:
            series = st_.list_series(fingerprint=True)
            series = series[series["points"] > 0]
        fps = {str(r[0]): tuple(r[1:]) for r in
               series[["key", "points", "first_ts", "last_ts", "missing", "upload_sum"]].itertuples(index=False)}
        with _QUALITY_LOCK:
            for k in kinds:
                hit = _QUALITY_MEMO.get((st_.path, k, kinds[k]))
                if hit is not None and hit[0] == fps.get(k):
                    rows[k] = hit[1]
        todo = series[~series["key"].isin(list(rows))]
    for keys in _batches(todo, max_points):
        found, code, t, v = st_.point_arrays(keys)
        rep = quality_from_arrays(found, code, t, v, kinds={k: kinds[k] for k in found})
        for rec in rep.to_dict("records"):
            rows[str(rec["series"])] = rec
            if memo and rec["series"] in fps:
                with _QUALITY_LOCK:
                    _QUALITY_MEMO[(st_.path, str(rec["series"]), kinds[str(rec["series"])])] = (
                        fps[str(rec["series"])], rec)
    if memo:
        with _QUALITY_LOCK:   # forget deleted series
            for mk in [mk for mk in _QUALITY_MEMO if mk[0] == st_.path and mk[1] not in fps]:
                del _QUALITY_MEMO[mk]
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame([rows[k] for k in sorted(rows)], columns=REPORT_COLUMNS)
    out["counter_resets"] = out["counter_resets"].astype("Int64")  # <NA> where not a counter
    return out


@st.cache_data(show_spinner="Computing data quality...")
def _quality(path: str) -> pd.DataFrame:
    return compute_quality(_store(path), list_series(path), memo=True)


def quality() -> pd.DataFrame | None:
    """Cached quality report of every series; None while ``core.data.quality`` is not available."""
    try:
        import core.data.quality  # noqa: F401
    except ImportError:
        return None
    return _quality(db_path())


@st.cache_data(show_spinner=False, max_entries=64)
def _gaps(path: str, key: str) -> pd.DataFrame:
    from core.data.quality import gap_table

    _, _, t_ns, values = _store(path).point_arrays([key])   # arrays: no per-row objects
    return gap_table(pd.Series(values, index=pd.to_datetime(t_ns, unit="ns", utc=True), name=key))


def gaps(key: str) -> pd.DataFrame | None:
    """Gaps of one series (``start, end, duration_s``); None while ``core.data.quality`` is not available."""
    try:
        import core.data.quality  # noqa: F401
    except ImportError:
        return None
    return _gaps(db_path(), key)
