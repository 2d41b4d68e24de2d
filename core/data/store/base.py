"""DuckDB-backed store for series, points, uploads and incidents.

Rules kept here: parameterised SQL only (no user text is formatted into a statement), every write in
one transaction (an error rolls the whole write back), schema migrations numbered
``migrations/NNN_name.sql`` and applied when a :class:`Store` is created. One :class:`Store`
serialises its calls with a lock, so a single instance may be shared by the threads of a Streamlit
server.

Many processes share one file (the app, CLI commands, cron jobs): DuckDB lets one process at a time
open it for writing, so a Store holds no connection between units of work. Each call (a query, a
transaction, or a ``with store.connection():`` block) opens the file, waiting with bounded back-off
while another process has it, and gives it up when done (after a short linger; see
:meth:`Store.connection`). A process killed mid-write leaves nothing of that write: DuckDB replays
only committed transactions from its write-ahead log.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import hashlib
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pandas as pd

from core.data.frame import drop_repeated, empty_points, parse_key, validate_points
from core.data.store import audit
from core.data.store.sql import where_clause
from core.errors import DatabaseLocked, IngestError, NotFound, StudioError

if TYPE_CHECKING:
    from core.data.ingest import BulkPlan

#: What a write raises when another connection wrote the same row first (an optimistic-lock loss).
CONCURRENT_WRITE_ERRORS: tuple[type[Exception], ...] = (duckdb.TransactionException, duckdb.ConstraintException)
DEFAULT_DB = Path(__file__).resolve().parents[3] / "data" / "studio.duckdb"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SERIES_KINDS = ("gauge", "counter", "rate", "histogram_quantile")


def default_db_path() -> Path:
    """The database path: ``$STUDIO_DB`` if set, else ``data/studio.duckdb`` in the project."""
    env = os.environ.get("STUDIO_DB")
    return Path(env) if env else DEFAULT_DB


#: Seconds an operation waits for a database file another process holds ($STUDIO_LOCK_TIMEOUT).
DEFAULT_LOCK_TIMEOUT = 30.0
_HOLDER = re.compile(r"Conflicting lock is held in (?P<prog>.*?) \(PID (?P<pid>\d+)\)")


def default_lock_timeout() -> float:
    """Seconds to wait for a locked database: ``$STUDIO_LOCK_TIMEOUT`` if set, else 30."""
    env = os.environ.get("STUDIO_LOCK_TIMEOUT")
    if not env:
        return DEFAULT_LOCK_TIMEOUT
    try:
        value = float(env)
    except ValueError:
        raise StudioError(f"STUDIO_LOCK_TIMEOUT must be a number of seconds, not {env!r}") from None
    if value < 0:
        raise StudioError(f"STUDIO_LOCK_TIMEOUT must be 0 or more seconds, not {env!r}")
    return value


def _is_busy(exc: duckdb.Error) -> bool:
    """Whether a failed connect means "held by someone else right now" (worth waiting for): another
    process's file lock, or a connection of this process opened with the other read-only setting."""
    text = str(exc)
    return ("Could not set lock" in text or "Conflicting lock" in text
            or "different configuration" in text)


def lock_holder(message: str) -> str | None:
    """The process named in DuckDB's lock error: its command line (from ``/proc`` where there is one)
    and PID, e.g. ``'python -m core ingest feed.csv (PID 4242)'``; None when the message names none."""
    m = _HOLDER.search(message)
    if m is None:
        return None
    text = _describe_pid(int(m.group("pid")))
    return text if not text.startswith("PID ") else f"{m.group('prog')} ({text})"


#: In-process count of open DuckDB connections per database file (the probe below must not run
#: while this process holds the file: closing any descriptor of a file drops the process's locks on it).
_OPEN: dict[str, int] = {}
_OPEN_LOCK = threading.Lock()


def _track(path: str, delta: int) -> None:
    with _OPEN_LOCK:
        n = _OPEN.get(path, 0) + delta
        if n > 0:
            _OPEN[path] = n
        else:
            _OPEN.pop(path, None)


def _probe_holder(path: str, read_only: bool) -> int | None:
    """PID of another process whose lock on ``path`` would refuse our open, None when the file looks
    free (or cannot be asked: not Linux, no such file, this process already holds it). A cheap
    ``fcntl(F_GETLK)`` that takes no lock, so a waiter can look often without starting DuckDB."""
    if not sys.platform.startswith("linux") or _OPEN.get(os.path.realpath(path)):
        return None
    try:
        import fcntl
        import struct

        fd = os.open(path, os.O_RDONLY)
    except (ImportError, OSError):
        return None
    try:
        ltype = fcntl.F_RDLCK if read_only else fcntl.F_WRLCK
        out = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi4x", ltype, 0, 0, 0, 0))
        kind, _, _, _, pid = struct.unpack("hhqqi4x", out)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else int(pid)


def _describe_pid(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if not args:
        return f"PID {pid}"
    args[0] = os.path.basename(args[0])
    cmd = " ".join(args)
    return f"{cmd[:197] + '...' if len(cmd) > 200 else cmd} (PID {pid})"


def connect_with_retry(path: str, *, read_only: bool = False, timeout: float | None = None,
                       sleep: Callable[[float], None] = time.sleep) -> duckdb.DuckDBPyConnection:
    """Open ``path``, waiting while another process holds it.

    DuckDB lets one process at a time open a file for writing (several may share it read-only). While
    the file is held, this looks again every 5-20 ms (a lock probe that does not start DuckDB, where
    the operating system offers one; elsewhere DuckDB itself is asked, at most every 0.5 s) until
    ``timeout`` seconds (default :func:`default_lock_timeout`) have passed; then
    :class:`core.errors.DatabaseLocked` names the holder. Nothing has been read or written then.
    """
    timeout = default_lock_timeout() if timeout is None else timeout
    start = time.monotonic()
    delay = 0.01
    holder_pid: int | None = None
    while True:
        waited = time.monotonic() - start
        holder_pid = _probe_holder(path, read_only)
        if holder_pid is None:
            try:
                con = duckdb.connect(path, read_only=read_only)
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _is_busy(exc):
                    raise StudioError(f"cannot open database {path}: {exc}") from exc
                last = str(exc)
                waited = time.monotonic() - start
            else:
                _track(os.path.realpath(path), 1)
                return con
        else:
            last = ""
        if waited >= timeout:
            holder = _describe_pid(holder_pid) if holder_pid is not None else lock_holder(last)
            who = f"another process: {holder}" if holder else "another connection of this process"
            raise DatabaseLocked(
                f"database {path} is in use by {who}; waited {waited:.1f} s "
                f"(STUDIO_LOCK_TIMEOUT={timeout:g}). Nothing was read or written. Try again when it has "
                "finished, or raise STUDIO_LOCK_TIMEOUT for long imports.", holder=holder, waited_s=waited)
        pause = random.uniform(0.005, 0.02) if holder_pid is not None else delay * random.uniform(0.5, 1.0)
        sleep(min(pause, max(timeout - waited, 0.0)))
        delay = min(delay * 2, 0.5)


def close_connection(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Close a connection :func:`connect_with_retry` opened (the last one in this process releases the file)."""
    try:
        con.close()
    finally:
        _track(os.path.realpath(path), -1)


#: Stores whose connection may linger, closed at interpreter exit so the file is checkpointed.
_LIVE: weakref.WeakSet[Store] = weakref.WeakSet()


@atexit.register
def _close_lingering() -> None:
    for store in list(_LIVE):
        store.release()


def file_token(path: str) -> tuple:
    """``(inode, size, mtime_ns)`` of a database file and of its write-ahead log (None for a missing
    file): a fingerprint that any committed write changes and reads leave alone."""
    out: list[Any] = [path]
    for f in (path, path + ".wal"):
        try:
            st = os.stat(f)
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


@dataclass(frozen=True)
class IngestReport:
    """What one upload did. Counts are points (rows of the points frame), not file lines."""

    upload_id: int | None
    name: str
    sha256: str
    format: str
    rows: int
    accepted: int
    rejected: int
    inserted: int
    updated: int
    unchanged: int
    series_count: int
    duplicate_of: int | None = None   # set when the same file was already uploaded (nothing written)
    warnings: tuple[str, ...] = ()
    #: keys of the series whose stored points this upload added or changed (sorted); what the checks
    #: after an ingest (drift) need to look at again. Empty for a duplicate or an all-unchanged upload.
    changed_series: tuple[str, ...] = ()

    @property
    def is_noop(self) -> bool:
        return self.duplicate_of is not None

    def summary(self) -> str:
        if self.is_noop:
            return f"{self.name}: already uploaded as upload #{self.duplicate_of}; nothing changed."
        return (f"{self.name} ({self.format}): {self.rows:,} rows, {self.accepted:,} points accepted "
                f"({self.inserted:,} new, {self.updated:,} changed, {self.unchanged:,} unchanged), "
                f"{self.rejected:,} rejected, {self.series_count} series.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


#: Cells DuckDB reads as NULL in the bulk loader: the careful reader's missing-value tokens, as written.
BULK_NULL_STRINGS = ("", "NaN", "nan", "NAN", "-nan", "null", "NULL", "Null", "None", "none", "NA", "na", "N/A",
                     "n/a", "#N/A")


def _bulk_columns(plan: BulkPlan) -> dict[str, str]:
    """DuckDB column types for a bulk CSV read: our own names c0, c1, ... (never the file's header)."""
    types = ["VARCHAR"] * plan.ncols
    if plan.epoch_unit is None:
        types[plan.time_col] = "TIMESTAMPTZ"
    else:
        types[plan.time_col] = "BIGINT" if plan.epoch_integer else "DOUBLE"
    types[plan.value_col] = "DOUBLE"
    return {f"c{j}": t for j, t in enumerate(types)}


def _ts(value: Any) -> Any:
    """A time bound as a Python datetime for DuckDB (None stays None: no bound)."""
    return None if value is None else pd.Timestamp(value).to_pydatetime()


@dataclass(frozen=True)
class UploadRemoval:
    """What :meth:`Store.delete_upload` did.

    ``removed`` points were deleted (the points the upload last wrote). ``overwrote`` of them had
    replaced a *different* value sent by an earlier upload: that earlier value was overwritten when
    this upload was stored and deleting the upload cannot bring it back. ``overwritten_uploads`` maps
    each such earlier upload id to its name (None if that upload was deleted too) and count.
    """

    upload_id: int
    name: str
    removed: int
    overwrote: int = 0
    overwritten_uploads: tuple[tuple[int, str | None, int], ...] = ()
    series_removed: int = 0

    def __int__(self) -> int:
        return self.removed

    def __format__(self, spec: str) -> str:   # f"{removal:,}" formats the removed count
        return format(self.removed, spec) if spec else self.summary()

    def summary(self, *, done: bool = True) -> str:
        """The result in words; ``done=False`` words it as a warning before deleting (a preview)."""
        head = (f"Deleted upload #{self.upload_id} ({self.name}): {self.removed:,} points removed"
                if done else
                f"Deleting upload #{self.upload_id} ({self.name}) removes the {self.removed:,} points it last wrote")
        text = head + (f", and {self.series_removed} series left empty." if self.series_removed else ".")
        if self.overwrote:
            earlier = ", ".join(f"#{u} ({nm})" if nm else f"#{u} (itself deleted)"
                                for u, nm, _ in self.overwritten_uploads)
            text += (f" {self.overwrote:,} of them had overwritten different values from earlier upload(s) "
                     f"{earlier}; those earlier values cannot be restored by this deletion. To get them back, "
                     "delete the earlier upload and ingest its file again.")
        return text


class _StepClock:
    """Wall-clock seconds per named step (cheap; kept for profiling the bulk loader)."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.steps[name] = self.steps.get(name, 0.0) + now - self._t
        self._t = now


class _BulkDeclined(Exception):
    """Internal: the DuckDB CSV path is not used for this file (rolled back); or it is a duplicate upload."""

    def __init__(self, duplicate_of: int | None = None, sha256: str | None = None, *,
                 reject: bool = False, bad_row: int | None = None, error: IngestError | None = None) -> None:
        super().__init__("bulk load declined")
        self.duplicate_of = duplicate_of
        self.sha256 = sha256
        self.reject = reject          # DuckDB could not convert a cell: ask its rejects table where
        self.bad_row = bad_row        # 0-based data record that failed a check
        self.error = error            # a complete error, ready to raise


def _line_at(path: Path, pos: int) -> tuple[int, bytes]:
    """1-based line number of byte offset ``pos`` and the text of that line."""
    n = 0
    with open(path, "rb") as fh:
        done = 0
        while done < pos:
            chunk = fh.read(min(1 << 22, pos - done))
            if not chunk:
                break
            n += chunk.count(b"\n")
            done += len(chunk)
        line = fh.readline()
    return n + 1, line.rstrip(b"\r\n")


def _data_record(path: Path, k: int) -> tuple[int, bytes] | None:
    """Line number and text of the ``k``-th (0-based) non-blank line after the header, or None."""
    with open(path, "rb") as fh:
        fh.readline()
        lineno, seen = 1, -1
        for raw in fh:
            lineno += 1
            if raw.strip():
                seen += 1
                if seen == k:
                    return lineno, raw.rstrip(b"\r\n")
    return None


class Store:
    """One DuckDB database file.

    Parameters
    ----------
    path : str or Path, optional
        Database file; ``":memory:"`` for a throw-away database. Default :func:`default_db_path`.
    read_only : bool
        Open without write access (migrations are then not applied).
    lock_timeout : float, optional
        Seconds a call waits while another process holds the file before it raises
        :class:`core.errors.DatabaseLocked`; default :func:`default_lock_timeout` (30, or
        ``$STUDIO_LOCK_TIMEOUT``).

    No connection is kept between calls (see the module docstring and :meth:`connection`).
    """

    #: Seconds an idle connection is kept after a unit of work that only read, so back-to-back reads
    #: (a page render, a script) do not start DuckDB each time (about 15 ms of CPU). Other processes
    #: wait meanwhile. A unit that committed a write closes at once.
    linger_s: float = 0.1
    #: A connection held this long is closed at the end of the current unit of work even if more
    #: follow, and this process pauses ``yield_s`` before opening again, so a waiting process gets in.
    max_hold_s: float = 0.5
    yield_s: float = 0.03

    def __init__(self, path: str | os.PathLike[str] | None = None, *, read_only: bool = False,
                 lock_timeout: float | None = None, seal_audit: bool = True) -> None:
        self.path = str(path) if path is not None else str(default_db_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        self.lock_timeout = default_lock_timeout() if lock_timeout is None else float(lock_timeout)
        self._lock = threading.RLock()
        self._in_tx = False
        self._depth = 0
        self._closed = False
        self._con: duckdb.DuckDBPyConnection | None = None
        self._keep: duckdb.DuckDBPyConnection | None = None
        self._opened_at = self._idle_since = self._yield_until = 0.0
        self._reaper: threading.Timer | None = None
        self._wrote = False
        #: Callables run once the outermost transaction has committed (the audit anchor); dropped on rollback.
        self.after_commit: list[Callable[[], None]] = []
        if self.path == ":memory:":   # a memory database lives as long as its connection: keep it
            self._keep = duckdb.connect(":memory:")
            self._keep.execute("SET TimeZone = 'UTC'")
        _LIVE.add(self)
        if not read_only:
            with self.connection():
                self.migrate()
                if seal_audit:
                    audit.seal_legacy(self)
            audit.install(self)

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection for one unit of work, opened on entry (waiting, with bounded back-off, while
        another process holds the file: :func:`connect_with_retry`) and given up when the outermost
        block ends: closed after :attr:`linger_s` idle seconds, or at once after :attr:`max_hold_s`.

        Nested blocks (and every query or transaction run inside one) share it, so a caller may group
        several reads into one consistent unit. An error closes it. Keep a unit short: other
        processes wait for it.
        """
        with self._lock:
            if self._closed:
                raise StudioError(f"the store for {self.path} was closed")
            if self._keep is not None:
                yield self._keep
                return
            if self._con is None:
                pause = self._yield_until - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                self._con = connect_with_retry(self.path, read_only=self.read_only, timeout=self.lock_timeout)
                self._con.execute("SET TimeZone = 'UTC'")
                self._opened_at = time.monotonic()
            self._depth += 1
            ok = False
            try:
                yield self._con
                ok = True
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._end_unit(ok)

    def _end_unit(self, ok: bool) -> None:
        now = time.monotonic()
        wrote, self._wrote = self._wrote, False
        if not ok or wrote or self.linger_s <= 0:   # after a write: checkpoint and let others see it now
            self.release()
        elif now - self._opened_at >= self.max_hold_s:
            self.release()
            self._yield_until = now + self.yield_s
        else:
            self._idle_since = now
            if self._reaper is None:
                self._schedule_reap(self.linger_s)

    def _schedule_reap(self, delay: float) -> None:
        ref = weakref.ref(self)

        def reap() -> None:
            store = ref()
            if store is not None:
                store._reap()

        self._reaper = threading.Timer(delay, reap)
        self._reaper.daemon = True
        self._reaper.start()

    def _reap(self) -> None:
        with self._lock:
            self._reaper = None
            if self._con is None or self._depth:
                return
            left = self._idle_since + self.linger_s - time.monotonic()
            if left > 0:
                self._schedule_reap(left)
            else:
                self.release()

    def release(self) -> None:
        """Close the connection now if no unit of work is using it (the file is free for others)."""
        with self._lock:
            if self._con is not None and self._depth == 0:
                con, self._con = self._con, None
                close_connection(con, self.path)

    def close(self) -> None:
        """Release the file and refuse later calls (a memory database ends here)."""
        with self._lock:
            self.release()
            self._closed = True
            if self._keep is not None:
                self._keep.close()
                self._keep = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def change_token(self) -> tuple:
        """A cheap fingerprint of the database files (no connection): it changes whenever any process
        commits a write (the WAL grows, or a checkpoint rewrites the file) or the file is replaced.
        Reads leave it alone. Compare for equality only."""
        return file_token(self.path)

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run a block of writes atomically; any exception rolls all of it back. Re-entrant."""
        with self.connection() as con:
            if self._in_tx:
                yield con
                return
            con.execute("BEGIN TRANSACTION")
            self._in_tx = True
            try:
                yield con
            except BaseException:
                self._in_tx = False
                self.after_commit.clear()
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:   # the transaction was already aborted by the failing statement
                    pass
                raise
            else:
                self._in_tx = False
                con.execute("COMMIT")
                self._wrote = True
                hooks, self.after_commit = self.after_commit, []
                for hook in hooks:
                    hook()
            finally:
                self._in_tx = False

    def query_df(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a parameterised SELECT and return a DataFrame (for modules of this package)."""
        with self.connection() as con:
            return con.execute(sql, params or []).df()

    def query_all(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple]:
        with self.connection() as con:
            return con.execute(sql, params or []).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> tuple | None:
        with self.connection() as con:
            return con.execute(sql, params or []).fetchone()

    # ------------------------------------------------------------------ migrations
    @staticmethod
    def migrations() -> list[tuple[int, str, str]]:
        """``(number, name, sql)`` of every migration file, in order."""
        out = []
        for f in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
            out.append((int(f.name[:3]), f.stem, f.read_text()))
        numbers = [n for n, _, _ in out]
        if len(set(numbers)) != len(numbers):
            raise RuntimeError(f"duplicate migration numbers in {MIGRATIONS_DIR}: {numbers}")
        return out

    @property
    def schema_version(self) -> int:
        row = self.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    def migrate(self) -> list[int]:
        """Apply every migration newer than the database's version, each in its own transaction."""
        with self.connection() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            current = self.schema_version
            applied = []
            for number, name, sql in self.migrations():
                if number <= current:
                    continue
                with self.transaction() as con:
                    con.execute(sql)
                    con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [number, name])
                applied.append(number)
            return applied

    # ------------------------------------------------------------------ series
    def list_series(self, *, fingerprint: bool = False) -> pd.DataFrame:
        """Every series with its point count and time span (``first_ts``, ``last_ts``).

        With ``fingerprint`` also ``missing`` (points with a NULL value) and ``upload_sum`` (sum of
        the points' upload ids), from the same aggregate pass: with the count and span they make a
        per-series content fingerprint for caches of per-series results. Every upload, replacement,
        deletion or restore changes it for each series it touches (a replaced point changes owner
        upload, so ``upload_sum`` moves even when the count does not).
        """
        extra = (", p.missing, p.upload_sum", ", count(*) - count(value) AS missing, "
                 "sum(coalesce(upload_id, 0))::BIGINT AS upload_sum") if fingerprint else ("", "")
        return self.query_df(
            f"""
            SELECT s.id, s.key, s.name, s.labels, s.unit, s.kind,
                   coalesce(p.points, 0) AS points, p.first_ts, p.last_ts{extra[0]}
            FROM series s
            LEFT JOIN (SELECT series_id, count(*) AS points, min(ts) AS first_ts, max(ts) AS last_ts{extra[1]}
                       FROM points GROUP BY series_id) p ON p.series_id = s.id
            ORDER BY s.key
            """
        )

    def series_keys(self) -> list[str]:
        return [r[0] for r in self.query_all("SELECT key FROM series ORDER BY key")]

    def series_id(self, key: str) -> int:
        row = self.query_one("SELECT id FROM series WHERE key = ?", [key])
        if row is None:
            raise NotFound(f"no series named {key!r}")
        return int(row[0])

    def set_series_meta(self, key: str, *, unit: str | None = None, kind: str | None = None,
                        actor: str | None = None) -> None:
        """Set a series' unit and/or kind (gauge, counter, rate, histogram_quantile). Audited: a unit or
        kind change alters what a threshold on the series means."""
        if kind is not None and kind not in SERIES_KINDS:
            raise StudioError(f"kind must be one of {SERIES_KINDS}, not {kind!r}")
        sid = self.series_id(key)
        with self.transaction() as con:
            before = con.execute("SELECT unit, kind FROM series WHERE id = ?", [sid]).fetchone()
            if unit is not None:
                con.execute("UPDATE series SET unit = ? WHERE id = ?", [unit, sid])
            if kind is not None:
                con.execute("UPDATE series SET kind = ? WHERE id = ?", [kind, sid])
            after = con.execute("SELECT unit, kind FROM series WHERE id = ?", [sid]).fetchone()
            if after != before:
                self._audit_hook("set_series_meta", actor, {
                    "series": key, "before": {"unit": before[0], "kind": before[1]},
                    "after": {"unit": after[0], "kind": after[1]}})

    def get_points(self, series: str | Sequence[str] | None = None, start: Any = None,
                   end: Any = None) -> pd.DataFrame:
        """Points of one or several series (all if None) in ``[start, end]``, sorted by series and time.

        Missing values come back as NaN; gaps are absent rows (never filled).
        """
        keys = None if series is None else [series] if isinstance(series, str) else list(series)
        if keys is not None and len(keys) == 1:   # one series (what a page shows): by id, no join
            with self.connection() as con:
                row = con.execute("SELECT id FROM series WHERE key = ?", [keys[0]]).fetchone()
                where, params = where_clause(("series_id = ?", -1 if row is None else row[0]),
                                             ("ts >= ?", _ts(start)), ("ts <= ?", _ts(end)))
                df = con.execute(f"SELECT ?::VARCHAR AS series, ts, value FROM points WHERE {where} ORDER BY ts",
                                 [keys[0], *params]).df()
        else:
            where, params = where_clause(("s.key IN (SELECT unnest(?::VARCHAR[]))", keys),
                                         ("p.ts >= ?", _ts(start)), ("p.ts <= ?", _ts(end)))
            df = self.query_df(
                "SELECT s.key AS series, p.ts, p.value FROM points p JOIN series s ON s.id = p.series_id "
                f"WHERE {where} ORDER BY s.key, p.ts",
                params,
            )
        if df.empty:
            return empty_points()
        df["ts"] = df["ts"].astype("datetime64[ns, UTC]")
        df["value"] = df["value"].astype("float64")
        return df

    def point_arrays(self, keys: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Raw points of several series as NumPy arrays, for passes over many series (no per-row
        Python objects: several times faster than :meth:`get_points` for millions of points).

        Returns ``(found, code, ts_ns, value)``: the keys that exist (in ``keys`` order), each point's
        index into ``found`` (int64), its time as int64 nanoseconds since the epoch (UTC) and its
        value (float64, NaN where missing). Each series' points are contiguous and in time order.
        """
        wanted = [str(k) for k in keys]
        with self.connection() as con:
            ids = dict(con.execute("SELECT key, id FROM series WHERE key IN (SELECT unnest(?::VARCHAR[]))",
                                   [wanted]).fetchall())
            found = [k for k in wanted if k in ids]
            if not found:
                return [], np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
            sids = np.array([ids[k] for k in found], dtype=np.int64)
            arr = con.execute("SELECT series_id, epoch_ns(ts) AS t, value FROM points "
                              "WHERE series_id IN (SELECT unnest(?::INTEGER[])) ORDER BY series_id, ts",
                              [sids.tolist()]).fetchnumpy()
        by_id = np.argsort(sids)
        sid = np.asarray(arr["series_id"], dtype=np.int64)
        code = by_id[np.searchsorted(sids[by_id], sid)].astype(np.int64)
        value = arr["value"]
        value = np.ma.filled(value.astype(np.float64), np.nan) if np.ma.isMaskedArray(value) \
            else np.asarray(value, dtype=np.float64)
        return found, code, np.asarray(arr["t"], dtype=np.int64), value

    def delete_series(self, key: str, *, actor: str | None = None) -> int:
        """Delete a series, its points and its incidents. Returns the number of points deleted."""
        sid = self.series_id(key)
        with self.transaction() as con:
            n = con.execute("SELECT count(*) FROM points WHERE series_id = ?", [sid]).fetchone()[0]
            con.execute("DELETE FROM points WHERE series_id = ?", [sid])
            con.execute("DELETE FROM incidents WHERE series_key = ?", [key])
            con.execute("DELETE FROM series WHERE id = ?", [sid])
            self._audit_hook("delete_series", actor, {"series": key, "points": int(n)})
        return int(n)

    # ------------------------------------------------------------------ uploads / points
    def list_uploads(self) -> pd.DataFrame:
        return self.query_df("SELECT * FROM uploads ORDER BY id DESC")

    def find_upload(self, sha256: str) -> int | None:
        """Id of the stored upload of a file with this sha256, or None (a deleted upload no longer counts)."""
        row = self.query_one("SELECT id FROM uploads WHERE sha256 = ? ORDER BY id LIMIT 1", [sha256])
        return int(row[0]) if row else None

    def delete_upload(self, upload_id: int, *, actor: str | None = None) -> UploadRemoval:
        """Delete an upload's record and the points it last wrote.

        A point belongs to the last upload that wrote a *different* value to it (a later upload that
        re-sends the same value leaves it with the earlier one). Points a later upload overwrote belong
        to the later upload and stay. Points this upload overwrote are removed, not reverted: the
        earlier value is gone, and the result counts them (``overwrote``). Series left with no points
        are removed too. The file may be ingested again afterwards.
        """
        with self.transaction() as con:
            plan = self._removal(con, upload_id)
            con.execute("DELETE FROM points WHERE upload_id = ?", [upload_id])
            con.execute("DELETE FROM uploads WHERE id = ?", [upload_id])
            con.execute("DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series_id FROM points)")
            self._audit_hook("delete_upload", actor, {"upload_id": upload_id, "name": plan.name,
                                                      "points": plan.removed,
                                                      "overwritten_points_lost": plan.overwrote})
        return plan

    def upload_removal_preview(self, upload_id: int) -> UploadRemoval:
        """What :meth:`delete_upload` would remove now, without removing anything (for a confirmation)."""
        with self.connection() as con:
            return self._removal(con, upload_id)

    @staticmethod
    def _removal(con: duckdb.DuckDBPyConnection, upload_id: int) -> UploadRemoval:
        row = con.execute("SELECT name FROM uploads WHERE id = ?", [upload_id]).fetchone()
        if row is None:
            raise NotFound(f"no upload #{upload_id}")
        n = con.execute("SELECT count(*) FROM points WHERE upload_id = ?", [upload_id]).fetchone()[0]
        lost = con.execute(
            "SELECT p.replaced_upload, u.name, count(*) FROM points p "
            "LEFT JOIN uploads u ON u.id = p.replaced_upload "
            "WHERE p.upload_id = ? AND p.replaced_upload IS NOT NULL "
            "GROUP BY p.replaced_upload, u.name ORDER BY p.replaced_upload", [upload_id]).fetchall()
        emptied = con.execute(
            "SELECT count(*) FROM (SELECT series_id FROM points GROUP BY series_id "
            "HAVING count(*) FILTER (WHERE upload_id IS DISTINCT FROM ?) = 0)", [upload_id]).fetchone()[0]
        return UploadRemoval(int(upload_id), str(row[0]), int(n), sum(int(c) for _, _, c in lost),
                             tuple((int(u), nm, int(c)) for u, nm, c in lost), int(emptied))

    def _duplicate_in_tx(self, con: duckdb.DuckDBPyConnection, sha256: str) -> int | None:
        row = con.execute("SELECT id FROM uploads WHERE sha256 = ? ORDER BY id LIMIT 1", [sha256]).fetchone()
        return int(row[0]) if row else None

    #: How often an upload is tried again after a write conflict with another connection.
    conflict_retries: int = 5

    def _retry_conflicts(self, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` (one whole write transaction), again after a short wait when it conflicts with
        another connection's concurrent write (DuckDB: a duplicate key or a failed commit). The retry
        re-checks for a duplicate inside its transaction, so a lost race for the same file ends as a
        no-op naming the winner's upload. Inside an outer transaction there is no retry."""
        for i in range(self.conflict_retries + 1):
            try:
                return attempt()
            except (duckdb.ConstraintException, duckdb.TransactionException) as exc:
                if self._in_tx:
                    raise
                if i == self.conflict_retries:
                    raise StudioError(f"upload could not be stored: it kept conflicting with concurrent writes "
                                      f"({i + 1} tries): {exc}") from exc
                time.sleep(0.05 * (i + 1))
        raise AssertionError("unreachable")

    def write_points(self, points: pd.DataFrame, *, name: str, sha256: str, fmt: str, rows: int | None = None,
                     actor: str | None = None, kinds: dict[str, str] | None = None,
                     units: dict[str, str] | None = None, warnings: Sequence[str] = ()) -> IngestReport:
        """Upsert a points frame as one upload, all or nothing.

        Points are keyed by (series, ts): a point already stored is replaced and counted as
        ``updated`` when its value differs, ``unchanged`` otherwise. Rows repeating a (series, ts)
        within the frame are ``rejected`` (the last one is kept). NaN is stored as NULL (missing).
        If ``sha256`` matches an earlier upload nothing is written and the report says so.
        """
        def noop(dup: int) -> IngestReport:
            return IngestReport(dup, name, sha256, fmt, int(rows or len(points)), 0, 0, 0, 0, 0, 0,
                                duplicate_of=dup)

        dup = self.find_upload(sha256)   # cheap early answer; decided again inside the transaction
        if dup is not None:
            return noop(dup)
        pts = validate_points(points)
        nrows = int(rows if rows is not None else len(pts))
        pts, rejected = drop_repeated(pts)
        keys = list(pd.unique(pts["series"]))
        def attempt() -> IngestReport:
            with self.transaction() as con:
                dup = self._duplicate_in_tx(con, sha256)
                if dup is not None:
                    return noop(dup)
                self._insert_series(con, keys, kinds, units, name)
                upload_id = self._new_upload(con, sha256, name, fmt, nrows, len(keys), actor)
                con.register("_incoming", pts)
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _stage AS "
                    "SELECT s.id AS series_id, i.ts AS ts, "
                    "       CASE WHEN isnan(i.value) THEN NULL ELSE i.value END AS value "
                    "FROM _incoming i JOIN series s ON s.key = i.series"
                )
                con.unregister("_incoming")
                updated, unchanged, changed = self._upsert_stage(con, upload_id)
                con.execute("DROP TABLE _stage")
                return self._finish_upload(con, upload_id, name, sha256, fmt, nrows, len(pts), rejected, updated,
                                           unchanged, len(keys), warnings, actor, changed)

        return self._retry_conflicts(attempt)

    # helpers of write_points / ingest, called inside a write transaction -------------------------
    def _insert_series(self, con: duckdb.DuckDBPyConnection, keys: Sequence[str], kinds: dict[str, str] | None,
                       units: dict[str, str] | None, name: str) -> None:
        meta = pd.DataFrame({"key": pd.Series(list(keys), dtype=object)})
        parsed = [parse_key(k) for k in keys]
        meta["name"] = [p[0] for p in parsed]
        meta["labels"] = [json.dumps(p[1], sort_keys=True) for p in parsed]
        meta["kind"] = [(kinds or {}).get(k, "gauge") for k in keys]
        meta["unit"] = pd.Series([(units or {}).get(k) for k in keys], dtype=object)
        bad_kinds = sorted(set(meta["kind"]) - set(SERIES_KINDS))
        if bad_kinds:
            raise IngestError(f"unknown series kind(s) {bad_kinds}; expected one of {SERIES_KINDS}", file=name)
        con.register("_incoming_meta", meta)
        con.execute(
            "INSERT INTO series (key, name, labels, kind, unit) "
            "SELECT key, name, labels::JSON, kind, unit FROM _incoming_meta "
            "WHERE key NOT IN (SELECT key FROM series)"
        )
        con.unregister("_incoming_meta")

    @staticmethod
    def _new_upload(con: duckdb.DuckDBPyConnection, sha256: str, name: str, fmt: str, nrows: int, nseries: int,
                    actor: str | None) -> int:
        return int(con.execute(
            "INSERT INTO uploads (sha256, name, format, rows, accepted, rejected, inserted, updated,"
            " unchanged, series_count, actor) VALUES (?, ?, ?, ?, 0, 0, 0, 0, 0, ?, ?) RETURNING id",
            [sha256, name, fmt, nrows, nseries, actor],
        ).fetchone()[0])

    @staticmethod
    def _touched(con: duckdb.DuckDBPyConnection, series_ids: Sequence[int]) -> list[int]:
        """Series among ``series_ids`` that already have stored points (only these need the overlap join)."""
        return [r[0] for r in con.execute(
            "SELECT DISTINCT series_id FROM points WHERE series_id IN (SELECT unnest(?::INTEGER[]))",
            [[int(i) for i in series_ids]]).fetchall()]

    def _upsert_stage(self, con: duckdb.DuckDBPyConnection, upload_id: int) -> tuple[int, int, list[int]]:
        """Move temp table ``_stage (series_id, ts, value)`` (unique per series_id, ts) into points.

        New points are inserted; a stored point with a different value is replaced (it now belongs to
        this upload and remembers the upload it overwrote in ``replaced_upload``); a stored point with
        the same value is left alone, still belonging to the upload that wrote it.
        Returns ``(updated, unchanged, changed)``: stored points with a different / the same value,
        and the ids of the series with a point inserted or replaced.
        """
        sids = [r[0] for r in con.execute("SELECT DISTINCT series_id FROM _stage").fetchall()]
        if not self._touched(con, sids):
            con.execute("INSERT INTO points (series_id, ts, value, upload_id) "
                        "SELECT series_id, ts, value, ? FROM _stage", [upload_id])
            return 0, 0, sids
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _cmp AS SELECT st.series_id, st.ts, st.value, p.upload_id AS old_upload, "
            "       p.ts IS NOT NULL AS stored, "
            "       p.ts IS NOT NULL AND p.value IS DISTINCT FROM st.value AS changed "
            "FROM _stage st LEFT JOIN points p ON p.series_id = st.series_id AND p.ts = st.ts")
        updated, unchanged = con.execute(
            "SELECT count(*) FILTER (WHERE changed), count(*) FILTER (WHERE stored AND NOT changed) FROM _cmp"
        ).fetchone()
        if updated:
            con.execute("DELETE FROM points p USING _cmp c "
                        "WHERE c.changed AND p.series_id = c.series_id AND p.ts = c.ts")
        con.execute(
            "INSERT INTO points (series_id, ts, value, upload_id, replaced_upload) "
            "SELECT series_id, ts, value, ?, CASE WHEN changed THEN old_upload END FROM _cmp "
            "WHERE changed OR NOT stored", [upload_id])
        changed = [r[0] for r in con.execute(
            "SELECT DISTINCT series_id FROM _cmp WHERE changed OR NOT stored").fetchall()]
        con.execute("DROP TABLE _cmp")
        return int(updated), int(unchanged), changed

    def _finish_upload(self, con: duckdb.DuckDBPyConnection, upload_id: int, name: str, sha256: str, fmt: str,
                       nrows: int, accepted: int, rejected: int, updated: int, unchanged: int, nseries: int,
                       warnings: Sequence[str], actor: str | None, changed_ids: Sequence[int] = ()) -> IngestReport:
        inserted = accepted - updated - unchanged
        changed = tuple(r[0] for r in con.execute(
            "SELECT key FROM series WHERE id IN (SELECT unnest(?::INTEGER[])) ORDER BY key",
            [[int(i) for i in changed_ids]]).fetchall()) if changed_ids else ()
        con.execute(
            "UPDATE uploads SET accepted = ?, rejected = ?, inserted = ?, updated = ?, unchanged = ? "
            "WHERE id = ?", [accepted, rejected, inserted, updated, unchanged, upload_id]
        )
        report = IngestReport(int(upload_id), name, sha256, fmt, nrows, accepted, rejected, inserted,
                              updated, unchanged, nseries, warnings=tuple(warnings), changed_series=changed)
        self._audit_hook("upload", actor, {k: v for k, v in report.to_dict().items()
                                           if k not in ("warnings", "changed_series")})
        return report

    # ------------------------------------------------------------------ ingest
    #: Files at least this large that look like a plain long/NAB CSV are loaded with DuckDB's CSV reader.
    bulk_min_bytes: int = 4 << 20

    def ingest(self, source: Any, *, fmt: str = "auto", name: str | None = None,
               actor: str | None = None) -> IngestReport:
        """Read a metric export (path, bytes or file-like) and store it as one upload.

        Same file again (by sha256): nothing written, ``report.is_noop``. Large plain long/NAB CSVs are
        loaded by DuckDB's CSV reader in one transaction; anything unusual in them falls back to
        :func:`core.data.ingest.read_metrics`, so results and error messages are the same either way.

        Raises :class:`core.errors.IngestError` on bad input, with nothing written.
        """
        from core.data.ingest import load_source, plan_bulk_csv, read_metrics

        path = None
        if isinstance(source, (str, os.PathLike)) and os.path.isfile(source):
            path = Path(source)
            name = name or path.name
            if path.stat().st_size >= self.bulk_min_bytes:
                try:
                    with open(path, "rb") as fh:
                        head = fh.read(1 << 16)
                except OSError as exc:
                    raise IngestError(f"cannot read file: {exc.strerror}", file=name) from exc
                plan = plan_bulk_csv(head, fmt, name, complete=path.stat().st_size <= len(head))
                if plan is not None:
                    report = self._ingest_bulk(path, plan, name, actor)
                    if report is not None:
                        return report
        data, name = load_source(source, name)
        sha = file_sha256(data)
        dup = self.find_upload(sha)
        if dup is not None:
            return IngestReport(dup, name, sha, fmt, 0, 0, 0, 0, 0, 0, 0, duplicate_of=dup)
        if path is None and len(data) >= self.bulk_min_bytes:
            plan = plan_bulk_csv(data[: 1 << 16], fmt, name, complete=len(data) <= 1 << 16)
            if plan is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    tmp_path = Path(tmp) / "upload.csv"
                    tmp_path.write_bytes(data)
                    report = self._ingest_bulk(tmp_path, plan, name, actor, sha256=sha)
                if report is not None:
                    return report
        parsed = read_metrics(data, fmt=fmt, name=name)
        return self.write_points(parsed.points, name=name, sha256=sha, fmt=parsed.format, rows=parsed.rows,
                                 actor=actor, kinds=parsed.kinds, units=parsed.units, warnings=parsed.warnings)

    def _ingest_bulk(self, path: Path, plan: BulkPlan, name: str, actor: str | None,
                     sha256: str | None = None) -> IngestReport | None:
        """Load a plain long/NAB CSV with DuckDB's reader (see :class:`core.data.ingest.BulkPlan`).

        Returns None, with nothing written, when anything in the file needs the careful reader
        (a cell DuckDB cannot convert, an empty or out-of-range timestamp, mixed epoch units, an
        infinite value, repeated (series, ts), odd series keys): the caller then uses it.
        """
        from core.data.frame import make_key

        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            sha_job = pool.submit(_sha256_file, path) if sha256 is None else None
            def attempt() -> IngestReport:
                with self.transaction() as con:
                    return self._bulk_tx(con, path, plan, name, actor, sha_job, sha256, make_key)

            try:
                report = self._retry_conflicts(attempt)
            except _BulkDeclined as exc:
                if exc.duplicate_of is not None:
                    sha = exc.sha256 or ""
                    return IngestReport(exc.duplicate_of, name, sha, plan.format, 0, 0, 0, 0, 0, 0, 0,
                                        duplicate_of=exc.duplicate_of)
                if exc.error is not None:
                    raise exc.error from None
                self._locate_bulk_error(path, plan, name, exc)
                return None
        return report

    def _locate_bulk_error(self, path: Path, plan: BulkPlan, name: str, why: _BulkDeclined) -> None:
        """Raise the careful reader's error for the first bad record DuckDB found, without re-reading
        the whole file in Python. Returns quietly when it cannot pin the error down (the caller then
        reads the whole file carefully)."""
        from core.data.ingest import read_metrics

        found: tuple[int, bytes] | None = None
        if why.reject:
            row = None
            try:
                with self.transaction() as con:
                    try:
                        con.execute(
                            "CREATE OR REPLACE TEMP TABLE _probe AS SELECT * FROM read_csv(?, delim = ?, "
                            "header = false, skip = 1, auto_detect = false, columns = ?, quote = '\"', escape = '\"', "
                            "nullstr = ?, strict_mode = true, store_rejects = true)",
                            [str(path), plan.delimiter, _bulk_columns(plan), list(BULK_NULL_STRINGS)])
                        row = con.execute("SELECT line_byte_position FROM reject_errors "
                                          "ORDER BY line_byte_position LIMIT 1").fetchone()
                    except duckdb.Error:
                        row = None
                    raise _BulkDeclined()   # roll back: drops the probe and the rejects tables
            except _BulkDeclined:
                pass
            if row is not None and row[0] is not None:   # DuckDB counts this byte position from 1
                found = _line_at(path, max(int(row[0]) - 1, 0))
        elif why.bad_row is not None:
            found = _data_record(path, why.bad_row)
        first = _data_record(path, 0)
        if found is None or first is None:
            return
        with open(path, "rb") as fh:
            header = fh.readline().rstrip(b"\r\n")
        lines, rows = [header, first[1]], {1: 1, 2: first[0]}
        if found[0] != first[0]:
            lines.append(found[1])
            rows[3] = found[0]
        try:
            read_metrics(b"\n".join(lines) + b"\n", fmt=plan.format, name=name)
        except IngestError as exc:
            if exc.row in rows and exc.row != 1:
                raise IngestError(exc.reason, file=name, row=rows[exc.row], column=exc.column) from None

    def _bulk_tx(self, con: duckdb.DuckDBPyConnection, path: Path, plan: BulkPlan, name: str, actor: str | None,
                 sha_job: Any, sha256: str | None, make_key: Any) -> IngestReport:
        clock = _StepClock()
        self.last_bulk_profile = clock.steps     # seconds per step of the last bulk load (bench/ingest.py)
        columns = _bulk_columns(plan)
        tcol, vcol = f"c{plan.time_col}", f"c{plan.value_col}"
        scol = f"c{plan.series_col}" if plan.series_col is not None else "NULL::VARCHAR"
        if plan.epoch_unit is None:
            ts_expr = tcol
        else:  # epoch -> microseconds; fixed SQL chosen by unit, no user text
            to_us = ("{c} * 1000000", "{c} * 1000", "{c}", "{c} / 1000")[plan.epoch_unit].format(c=tcol)
            ts_expr = f"make_timestamp(CAST(round({to_us}) AS BIGINT))::TIMESTAMPTZ"
        raw_expr = tcol if plan.epoch_unit is not None else "NULL::DOUBLE"
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE _bulk AS SELECT {scol} AS s, {ts_expr} AS ts, {raw_expr} AS t_raw, "
                f"{vcol} AS v FROM read_csv(?, delim = ?, header = false, skip = 1, auto_detect = false, "
                "columns = ?, quote = '\"', escape = '\"', nullstr = ?, strict_mode = true)",
                [str(path), plan.delimiter, columns, list(BULK_NULL_STRINGS)])
        except (duckdb.Error, OverflowError) as exc:
            raise _BulkDeclined(reject=True) from exc
        clock.lap("read_csv")
        from core.data.ingest import EPOCH_MIN, TS_MAX, TS_MIN

        # ISO text: 1970-2100; epoch numbers: 2000-2100 (an earlier one is a misread, e.g. 20260101)
        lo_us = (TS_MIN if plan.epoch_unit is None else EPOCH_MIN).value // 1000
        hi_us = TS_MAX.value // 1000
        bands = (0.0, 1e11, 1e14, 1e17, float("inf"))
        unit = plan.epoch_unit if plan.epoch_unit is not None else 0
        # Cheap aggregates for the checks the careful reader makes; only when one fails is the
        # offending record looked for (a table scan returns rows in file order).
        n, present, null_ts, tmin, tmax, rmin, rmax, infs = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE v IS NOT NULL AND NOT isnan(v)), "
            "count(*) FILTER (WHERE ts IS NULL), epoch_us(min(ts)), epoch_us(max(ts)), min(t_raw), max(t_raw), "
            "count(*) FILTER (WHERE isinf(v)) FROM _bulk").fetchone()
        bad_cond = ("coalesce(ts IS NULL OR epoch_us(ts) < ? OR epoch_us(ts) >= ? "
                    "OR (t_raw IS NOT NULL AND (t_raw < ? OR t_raw >= ?)), false)")
        bad_params = [lo_us, hi_us, bands[unit], bands[unit + 1]]
        if n and (null_ts or tmin < lo_us or tmax >= hi_us
                  or (plan.epoch_unit is not None and (rmin < bands[unit] or rmax >= bands[unit + 1]))):
            self._decline_at(con, f"SELECT {bad_cond} AS bad FROM _bulk", bad_params)
        if n == 0:
            raise _BulkDeclined()
        if infs:   # '+Inf' is fine, '1e400' is not: only the careful reader tells them apart
            raise _BulkDeclined()
        if not present:
            from core.data.ingest import all_missing_error

            raise _BulkDeclined(error=all_missing_error(int(n), name))
        clock.lap("checks")
        if plan.series_col is None:
            raw_keys = [plan.series_name]
        else:
            raw_keys = [r[0] for r in con.execute("SELECT DISTINCT s FROM _bulk").fetchall()]
        if None in raw_keys:   # an empty series cell, or one spelled like a null token ("NA")
            self._decline_at(con, "SELECT s IS NULL AS bad FROM _bulk", [])
        bad_keys = [k for k in raw_keys if not k.strip() or any(ord(ch) < 32 for ch in k)]
        if bad_keys:
            self._decline_at(con, "SELECT coalesce(s IN (SELECT unnest(?::VARCHAR[])), false) AS bad FROM _bulk",
                             [bad_keys])
        canon = [make_key(*parse_key(k.strip())) for k in raw_keys]
        identity = canon == raw_keys
        if plan.series_col is None or identity:
            # No two raw keys map to one series: prove (series, ts) unique from the file order if the
            # file is grouped by series and time increases within each group (one linear pass).
            arr = con.execute("SELECT hash(s) AS h, epoch_us(ts) AS t FROM _bulk").fetchnumpy()
            h, t = arr["h"], arr["t"]
            change = h[1:] != h[:-1]
            unique = int(change.sum()) + 1 == len(raw_keys) and bool(np.all(np.diff(t)[~change] > 0))
        else:
            unique = False
        clock.lap("keys+unique")
        con.execute("CREATE OR REPLACE TEMP TABLE _keymap (raw VARCHAR, key VARCHAR)")
        con.executemany("INSERT INTO _keymap VALUES (?, ?)", list(zip(raw_keys, canon, strict=True)))
        rejected = 0
        if not unique:
            # Repeated (series, ts) in the file: keep the last one, as write_points does. Rows are
            # matched by position (scan order = file order), never by rowid.
            pairs = con.execute("SELECT hash(raw), key FROM _keymap").fetchall()
            order = sorted(set(canon))
            hashes = np.array([h for h, _ in pairs], dtype=np.uint64)
            codes = np.array([order.index(k) for _, k in pairs], dtype=np.int64)
            srt = np.argsort(hashes)
            arr = con.execute("SELECT hash(coalesce(s, ?)) AS h, epoch_us(ts) AS t FROM _bulk",
                              [plan.series_name]).fetchnumpy()
            code = codes[srt][np.searchsorted(hashes[srt], np.asarray(arr["h"], dtype=np.uint64))]
            keep = ~pd.DataFrame({"c": code, "t": np.asarray(arr["t"])}).duplicated(keep="last").to_numpy()
            rejected = int((~keep).sum())
            if rejected:
                con.register("_keep", pd.DataFrame({"keep": keep}))
                con.execute("CREATE OR REPLACE TEMP TABLE _bulk_last AS SELECT b.s, b.ts, b.t_raw, b.v "
                            "FROM _bulk b POSITIONAL JOIN _keep k WHERE k.keep")
                con.unregister("_keep")
                con.execute("DROP TABLE _bulk")
                con.execute("ALTER TABLE _bulk_last RENAME TO _bulk")
        clock.lap("dedup")
        sha = sha256 or sha_job.result()
        dup = self._duplicate_in_tx(con, sha)
        if dup is not None:
            raise _BulkDeclined(duplicate_of=dup, sha256=sha)
        clock.lap("sha256 wait")
        from core.data.ingest import infer_kind

        keys = sorted(set(canon))
        kinds = {k: kd for k in keys if (kd := infer_kind(k))}
        self._insert_series(con, keys, kinds, None, name)
        upload_id = self._new_upload(con, sha, name, plan.format, int(n), len(keys), actor)
        value_expr = "CASE WHEN isnan(b.v) THEN NULL ELSE b.v END"
        con.execute("CREATE OR REPLACE TEMP TABLE _kid AS SELECT m.raw, se.id AS sid FROM _keymap m "
                    "JOIN series se ON se.key = m.key")
        sids = [r[0] for r in con.execute("SELECT DISTINCT sid FROM _kid").fetchall()]
        if plan.series_col is None:   # one series: no join at all
            src, src_params = "FROM _bulk b, (SELECT ?::INTEGER AS sid) k", [sids[0]]
        else:
            src, src_params = "FROM _bulk b JOIN _kid k ON k.raw = b.s", []
        updated = unchanged = 0
        changed = sids
        if self._touched(con, sids):
            con.execute(f"CREATE OR REPLACE TEMP TABLE _stage AS SELECT k.sid AS series_id, b.ts AS ts, "
                        f"{value_expr} AS value {src}", src_params)
            updated, unchanged, changed = self._upsert_stage(con, upload_id)
            con.execute("DROP TABLE _stage")
        else:
            con.execute(f"INSERT INTO points (series_id, ts, value, upload_id) SELECT k.sid, b.ts, {value_expr}, ? "
                        f"{src}", [upload_id, *src_params])
        con.execute("DROP TABLE _kid")
        clock.lap("insert points")
        con.execute("DROP TABLE _bulk")
        con.execute("DROP TABLE _keymap")
        warnings = list(plan.warnings)
        if plan.no_zone_example is not None:
            warnings.append(f"timestamps have no time zone (e.g. {plan.no_zone_example!r}); read as UTC")
        return self._finish_upload(con, upload_id, name, sha, plan.format, int(n), int(n) - rejected, rejected,
                                   updated, unchanged, len(keys), warnings, actor, changed)

    @staticmethod
    def _decline_at(con: duckdb.DuckDBPyConnection, mask_sql: str, params: list[Any]) -> None:
        """Give up the bulk load, naming the first record (0-based, file order) where ``mask_sql`` is true."""
        mask = np.asarray(con.execute(mask_sql, params).fetchnumpy()["bad"], dtype=bool)
        raise _BulkDeclined(bad_row=int(np.argmax(mask)) if mask.any() else None)

    # ------------------------------------------------------------------ incidents
    def add_incidents(self, incidents: pd.DataFrame, *, source: str, actor: str | None = None) -> int:
        """Store incident windows: columns ``series`` (key or None for global), ``start``, ``end``,
        optional ``kind`` and ``note``. All or nothing. Returns the number stored."""
        df = incidents.copy()
        for col in ("kind", "note", "series"):
            if col not in df.columns:
                df[col] = None
        df["start"] = pd.to_datetime(df["start"], utc=True)
        df["end"] = pd.to_datetime(df["end"], utc=True)
        bad = df.index[df["end"] < df["start"]]
        if len(bad):
            raise IngestError("incident ends before it starts", file=source, row=int(bad[0]) + 2, column="end")
        df = df[["series", "start", "end", "kind", "note"]]
        df["series"] = df["series"].astype(object).where(df["series"].notna(), None)
        with self.transaction() as con:
            con.register("_inc", df)
            con.execute(
                "INSERT INTO incidents (series_key, start_ts, end_ts, kind, source, note) "
                "SELECT series, start, \"end\", kind, ?, note FROM _inc", [source]
            )
            con.unregister("_inc")
            self._audit_hook("import_incidents", actor, {"source": source, "count": len(df)})
        return len(df)

    def list_incidents(self, series: str | None = None, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Incident windows touching ``[start, end]``; for a series, its own and the global ones."""
        where, params = where_clause(("(series_key = ? OR series_key IS NULL)", series),
                               ("end_ts >= ?", _ts(start)), ("start_ts <= ?", _ts(end)))
        return self.query_df(
            "SELECT id, series_key AS series, start_ts AS start, end_ts AS \"end\", kind, source, note "
            f"FROM incidents WHERE {where} ORDER BY start_ts", params
        )

    def delete_incidents(self, ids: Sequence[int], *, actor: str | None = None) -> int:
        """Delete incident windows by id; returns how many existed and were deleted (unknown ids are ignored)."""
        ids = [int(i) for i in ids]
        with self.transaction() as con:
            gone = [r[0] for r in con.execute(
                "DELETE FROM incidents WHERE id IN (SELECT unnest(?::INTEGER[])) RETURNING id", [ids]).fetchall()]
            if gone:
                self._audit_hook("delete_incidents", actor, {"ids": sorted(gone)})
        return len(gone)

    # ------------------------------------------------------------------ aggregates
    def quantiles(self, key: str, qs: Sequence[float], start: Any = None, end: Any = None,
                  every: str | None = None) -> pd.DataFrame:
        """Exact percentiles from raw points (``quantile_cont``), optionally per time bucket.

        ``every`` is a DuckDB interval such as ``'1 hour'``. Never averages percentiles.
        """
        sid = self.series_id(key)
        qs = [float(q) for q in qs]
        cond, params = where_clause(("series_id = ?", sid), ("ts >= ?", _ts(start)), ("ts <= ?", _ts(end)),
                              always=("value IS NOT NULL", "isfinite(value)"))
        if every is None:
            df = self.query_df(f"SELECT count(*) AS n, quantile_cont(value, ?::DOUBLE[]) AS q FROM points WHERE {cond}",
                               [qs, *params])
        else:
            df = self.query_df(
                f"SELECT time_bucket(?::INTERVAL, ts) AS bucket, count(*) AS n, quantile_cont(value, ?::DOUBLE[]) AS q "
                f"FROM points WHERE {cond} GROUP BY bucket ORDER BY bucket", [every, qs, *params])
        for i, q in enumerate(qs):
            df[f"q{q:g}"] = df["q"].map(lambda arr, i=i: np.nan if arr is None else arr[i])
        return df.drop(columns="q")

    def downsample(self, key: str, start: Any = None, end: Any = None, buckets: int = 2000) -> pd.DataFrame:
        """Chart-ready points: at most ``2 * buckets`` rows keeping each bucket's min and max.

        Small series come back unchanged. Columns ``ts``, ``value``. Gaps stay gaps (no rows).
        """
        df = self.get_points(key, start, end)
        from core.data.frame import downsample_minmax

        return downsample_minmax(df[["ts", "value"]], buckets)

    # ------------------------------------------------------------------ audit hook
    def _audit_hook(self, action: str, actor: str | None, detail: dict[str, Any]) -> None:
        """Record an action in the audit trail if the audit module is present (issue 5 wires it)."""
        recorder = getattr(self, "audit_recorder", None)
        if recorder is not None:
            recorder(self, action, actor, detail)
