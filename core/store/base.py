"""DuckDB-backed store for series, points, uploads and incidents.

Rules kept here: parameterised SQL only (no user text is formatted into a statement), every write in
one transaction (an error rolls the whole write back), schema migrations numbered
``migrations/NNN_name.sql`` and applied in order on open. One :class:`Store` serialises its calls
with a lock, so a single instance may be shared by the threads of a Streamlit server.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from core.errors import IngestError, NotFound, StudioError
from core.frame import empty_points, parse_key, validate_points

DEFAULT_DB = Path(__file__).resolve().parents[2] / "data" / "studio.duckdb"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SERIES_KINDS = ("gauge", "counter", "rate", "histogram_quantile")


def default_db_path() -> Path:
    """The database path: ``$STUDIO_DB`` if set, else ``data/studio.duckdb`` in the project."""
    env = os.environ.get("STUDIO_DB")
    return Path(env) if env else DEFAULT_DB


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


class Store:
    """One DuckDB database file.

    Parameters
    ----------
    path : str or Path, optional
        Database file; ``":memory:"`` for a throw-away database. Default :func:`default_db_path`.
    read_only : bool
        Open without write access (migrations are then not applied).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> None:
        self.path = str(path) if path is not None else str(default_db_path())
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as exc:  # typically: another process holds the write lock
            raise StudioError(f"cannot open database {self.path}: {exc}") from exc
        self._con.execute("SET TimeZone = 'UTC'")
        self._lock = threading.RLock()
        self._in_tx = False
        self.read_only = read_only
        if not read_only:
            self.migrate()

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run a block of writes atomically; any exception rolls all of it back. Re-entrant."""
        with self._lock:
            if self._in_tx:
                yield self._con
                return
            self._con.execute("BEGIN TRANSACTION")
            self._in_tx = True
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            else:
                self._con.execute("COMMIT")
            finally:
                self._in_tx = False

    def query_df(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """Run a parameterised SELECT and return a DataFrame (for modules of this package)."""
        with self._lock:
            return self._con.execute(sql, params or []).df()

    def query_all(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple]:
        with self._lock:
            return self._con.execute(sql, params or []).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> tuple | None:
        with self._lock:
            return self._con.execute(sql, params or []).fetchone()

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
        with self._lock:
            self._con.execute(
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
    def list_series(self) -> pd.DataFrame:
        """Every series with its point count and time span (``first_ts``, ``last_ts``)."""
        return self.query_df(
            """
            SELECT s.id, s.key, s.name, s.labels, s.unit, s.kind,
                   coalesce(p.points, 0) AS points, p.first_ts, p.last_ts
            FROM series s
            LEFT JOIN (SELECT series_id, count(*) AS points, min(ts) AS first_ts, max(ts) AS last_ts
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

    def set_series_meta(self, key: str, *, unit: str | None = None, kind: str | None = None) -> None:
        """Set a series' unit and/or kind (gauge, counter, rate, histogram_quantile)."""
        if kind is not None and kind not in SERIES_KINDS:
            raise StudioError(f"kind must be one of {SERIES_KINDS}, not {kind!r}")
        sid = self.series_id(key)
        with self.transaction() as con:
            if unit is not None:
                con.execute("UPDATE series SET unit = ? WHERE id = ?", [unit, sid])
            if kind is not None:
                con.execute("UPDATE series SET kind = ? WHERE id = ?", [kind, sid])

    def get_points(self, series: str | Sequence[str] | None = None, start: Any = None,
                   end: Any = None) -> pd.DataFrame:
        """Points of one or several series (all if None) in ``[start, end]``, sorted by series and time.

        Missing values come back as NaN; gaps are absent rows (never filled).
        """
        where, params = ["TRUE"], []
        if series is not None:
            keys = [series] if isinstance(series, str) else list(series)
            where.append("s.key IN (SELECT unnest(?::VARCHAR[]))")
            params.append(keys)
        if start is not None:
            where.append("p.ts >= ?")
            params.append(pd.Timestamp(start).to_pydatetime())
        if end is not None:
            where.append("p.ts <= ?")
            params.append(pd.Timestamp(end).to_pydatetime())
        df = self.query_df(
            "SELECT s.key AS series, p.ts, p.value FROM points p JOIN series s ON s.id = p.series_id "
            f"WHERE {' AND '.join(where)} ORDER BY s.key, p.ts",
            params,
        )
        if df.empty:
            return empty_points()
        df["ts"] = df["ts"].astype("datetime64[ns, UTC]")
        df["value"] = df["value"].astype("float64")
        return df

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
        row = self.query_one("SELECT id FROM uploads WHERE sha256 = ? ORDER BY id LIMIT 1", [sha256])
        return int(row[0]) if row else None

    def delete_upload(self, upload_id: int, *, actor: str | None = None) -> int:
        """Delete an upload's record and the points it last wrote. Returns the points deleted.

        Points the upload wrote that a later upload overwrote belong to the later upload and stay.
        Series left with no points are removed too.
        """
        row = self.query_one("SELECT name FROM uploads WHERE id = ?", [upload_id])
        if row is None:
            raise NotFound(f"no upload #{upload_id}")
        with self.transaction() as con:
            n = con.execute("SELECT count(*) FROM points WHERE upload_id = ?", [upload_id]).fetchone()[0]
            con.execute("DELETE FROM points WHERE upload_id = ?", [upload_id])
            con.execute("DELETE FROM uploads WHERE id = ?", [upload_id])
            con.execute("DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series_id FROM points)")
            self._audit_hook("delete_upload", actor, {"upload_id": upload_id, "name": row[0], "points": int(n)})
        return int(n)

    def write_points(self, points: pd.DataFrame, *, name: str, sha256: str, fmt: str, rows: int | None = None,
                     actor: str | None = None, kinds: dict[str, str] | None = None,
                     units: dict[str, str] | None = None) -> IngestReport:
        """Upsert a points frame as one upload, all or nothing.

        Points are keyed by (series, ts): a point already stored is replaced and counted as
        ``updated`` when its value differs, ``unchanged`` otherwise. Rows repeating a (series, ts)
        within the frame are ``rejected`` (the last one is kept). NaN is stored as NULL (missing).
        If ``sha256`` matches an earlier upload nothing is written and the report says so.
        """
        dup = self.find_upload(sha256)
        if dup is not None:
            return IngestReport(dup, name, sha256, fmt, int(rows or len(points)), 0, 0, 0, 0, 0, 0,
                                duplicate_of=dup)
        pts = validate_points(points)
        nrows = int(rows if rows is not None else len(pts))
        dupmask = pts.duplicated(["series", "ts"], keep="last").to_numpy()
        rejected = int(dupmask.sum())
        if rejected:
            pts = pts[~dupmask]
        keys = pd.unique(pts["series"])
        meta = pd.DataFrame({"key": keys})
        parsed = [parse_key(k) for k in keys]
        meta["name"] = [p[0] for p in parsed]
        meta["labels"] = [json.dumps(p[1], sort_keys=True) for p in parsed]
        meta["kind"] = [(kinds or {}).get(k, "gauge") for k in keys]
        meta["unit"] = [(units or {}).get(k) for k in keys]
        bad_kinds = sorted(set(meta["kind"]) - set(SERIES_KINDS))
        if bad_kinds:
            raise IngestError(f"unknown series kind(s) {bad_kinds}; expected one of {SERIES_KINDS}", file=name)
        with self.transaction() as con:
            con.register("_incoming_meta", meta)
            con.execute(
                "INSERT INTO series (key, name, labels, kind, unit) "
                "SELECT key, name, labels::JSON, kind, unit FROM _incoming_meta "
                "WHERE key NOT IN (SELECT key FROM series)"
            )
            con.unregister("_incoming_meta")
            upload_id = con.execute(
                "INSERT INTO uploads (sha256, name, format, rows, accepted, rejected, inserted, updated,"
                " unchanged, series_count, actor) VALUES (?, ?, ?, ?, 0, 0, 0, 0, 0, ?, ?) RETURNING id",
                [sha256, name, fmt, nrows, len(keys), actor],
            ).fetchone()[0]
            con.register("_incoming", pts)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _stage AS "
                "SELECT s.id AS series_id, i.ts AS ts, "
                "       CASE WHEN isnan(i.value) THEN NULL ELSE i.value END AS value "
                "FROM _incoming i JOIN series s ON s.key = i.series"
            )
            con.unregister("_incoming")
            touched = [r[0] for r in con.execute(
                "SELECT DISTINCT series_id FROM points WHERE series_id IN (SELECT DISTINCT series_id FROM _stage)"
            ).fetchall()]
            updated = unchanged = 0
            if touched:
                updated, unchanged = con.execute(
                    "SELECT count(*) FILTER (WHERE p.value IS DISTINCT FROM st.value),"
                    "       count(*) FILTER (WHERE p.value IS NOT DISTINCT FROM st.value) "
                    "FROM _stage st JOIN points p ON p.series_id = st.series_id AND p.ts = st.ts"
                ).fetchone()
                if updated + unchanged:
                    con.execute(
                        "DELETE FROM points p USING _stage st "
                        "WHERE p.series_id = st.series_id AND p.ts = st.ts"
                    )
            con.execute("INSERT INTO points SELECT series_id, ts, value, ? FROM _stage", [upload_id])
            con.execute("DROP TABLE _stage")
            accepted = len(pts)
            inserted = accepted - int(updated) - int(unchanged)
            con.execute(
                "UPDATE uploads SET accepted = ?, rejected = ?, inserted = ?, updated = ?, unchanged = ? "
                "WHERE id = ?", [accepted, rejected, inserted, int(updated), int(unchanged), upload_id]
            )
            report = IngestReport(int(upload_id), name, sha256, fmt, nrows, accepted, rejected, inserted,
                                  int(updated), int(unchanged), len(keys))
            self._audit_hook("upload", actor, {k: v for k, v in report.to_dict().items() if k != "warnings"})
        return report

    def ingest(self, source: Any, *, fmt: str = "auto", name: str | None = None,
               actor: str | None = None) -> IngestReport:
        """Read a metric export (path, bytes or file-like) and store it as one upload.

        Raises :class:`core.errors.IngestError` on bad input, with nothing written.
        """
        from core.ingest import load_source, read_metrics

        data, name = load_source(source, name)
        sha = file_sha256(data)
        dup = self.find_upload(sha)
        if dup is not None:
            return IngestReport(dup, name, sha, fmt, 0, 0, 0, 0, 0, 0, 0, duplicate_of=dup)
        parsed = read_metrics(data, fmt=fmt, name=name)
        return self.write_points(parsed.points, name=name, sha256=sha, fmt=parsed.format, rows=parsed.rows,
                                 actor=actor)

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
        where, params = ["TRUE"], []
        if series is not None:
            where.append("(series_key = ? OR series_key IS NULL)")
            params.append(series)
        if start is not None:
            where.append("end_ts >= ?")
            params.append(pd.Timestamp(start).to_pydatetime())
        if end is not None:
            where.append("start_ts <= ?")
            params.append(pd.Timestamp(end).to_pydatetime())
        return self.query_df(
            "SELECT id, series_key AS series, start_ts AS start, end_ts AS \"end\", kind, source, note "
            f"FROM incidents WHERE {' AND '.join(where)} ORDER BY start_ts", params
        )

    def delete_incidents(self, ids: Sequence[int], *, actor: str | None = None) -> int:
        ids = [int(i) for i in ids]
        with self.transaction() as con:
            con.execute("DELETE FROM incidents WHERE id IN (SELECT unnest(?::INTEGER[]))", [ids])
            self._audit_hook("delete_incidents", actor, {"ids": ids})
        return len(ids)

    # ------------------------------------------------------------------ aggregates
    def quantiles(self, key: str, qs: Sequence[float], start: Any = None, end: Any = None,
                  every: str | None = None) -> pd.DataFrame:
        """Exact percentiles from raw points (``quantile_cont``), optionally per time bucket.

        ``every`` is a DuckDB interval such as ``'1 hour'``. Never averages percentiles.
        """
        sid = self.series_id(key)
        qs = [float(q) for q in qs]
        where, params = ["series_id = ?", "value IS NOT NULL", "isfinite(value)"], [sid]
        if start is not None:
            where.append("ts >= ?")
            params.append(pd.Timestamp(start).to_pydatetime())
        if end is not None:
            where.append("ts <= ?")
            params.append(pd.Timestamp(end).to_pydatetime())
        cond = " AND ".join(where)
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
        from core.frame import downsample_minmax

        return downsample_minmax(df[["ts", "value"]], buckets)

    # ------------------------------------------------------------------ audit hook
    def _audit_hook(self, action: str, actor: str | None, detail: dict[str, Any]) -> None:
        """Record an action in the audit trail if the audit module is present (issue 5 wires it)."""
        recorder = getattr(self, "audit_recorder", None)
        if recorder is not None:
            recorder(self, action, actor, detail)
