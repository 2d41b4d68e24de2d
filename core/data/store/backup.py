"""Backup and restore of the whole database.

A backup is a directory written by DuckDB's ``EXPORT DATABASE`` (one Parquet file per table, plus
``schema.sql`` and ``load.sql``) and a ``manifest.json`` naming the schema version, the rows per
table and the audit trail's head. It is taken inside one transaction while this process holds the
file, so it is a consistent snapshot even while other processes wait to write; it appears under its
final name only when complete.

A restore reads the backup into a scratch database first, upgrades it to the current schema, and
refuses it unless its audit chain verifies and ends at the head the manifest recorded. Only then are
the live database's tables replaced, in one transaction (other processes wait; a crash leaves the
old contents), and the restore is appended to the restored audit trail, naming the backup and the
audit head of the contents it replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from core.data.store import audit
from core.data.store.base import Store
from core.errors import StudioError

FORMAT = "threshold-studio-backup/v1"
MANIFEST = "manifest.json"
_NEXTVAL = re.compile(r"nextval\('(?:main\.)?\"?([A-Za-z_][A-Za-z0-9_]*)\"?'\)")


@dataclass(frozen=True)
class BackupInfo:
    """What a backup holds (its ``manifest.json``)."""

    path: str
    created_at: str
    schema_version: int
    tables: dict[str, int]
    audit_entries: int
    audit_head: str | None
    source: str

    def summary(self) -> str:
        pts = self.tables.get("points", 0)
        head = f"audit head {self.audit_head[:12]}..." if self.audit_head else "empty audit trail"
        return (f"{self.path}: backup of {self.source} taken {self.created_at}, schema v{self.schema_version}, "
                f"{self.tables.get('series', 0)} series, {pts:,} points, {self.tables.get('uploads', 0)} uploads, "
                f"{self.audit_entries} audit entries ({head})")


def _tables(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> list[str]:
    where = "schema_name = 'main' AND NOT temporary"
    params: list[Any] = []
    if catalog is not None:
        where += " AND database_name = ?"
        params.append(catalog)
    return [r[0] for r in con.execute(f"SELECT table_name FROM duckdb_tables() WHERE {where} ORDER BY table_name",
                                      params).fetchall()]


def _counts(con: duckdb.DuckDBPyConnection, tables: list[str], prefix: str = "") -> dict[str, int]:
    # table names come from the catalog, never from user text; quoted as identifiers
    return {t: int(con.execute(f'SELECT count(*) FROM {prefix}"{t}"').fetchone()[0]) for t in tables}


def read_manifest(path: str | os.PathLike[str]) -> BackupInfo:
    """The manifest of a backup directory; :class:`StudioError` if it is not one."""
    d = Path(path)
    f = d / MANIFEST
    try:
        raw = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudioError(f"{d} is not a studio backup: it has no {MANIFEST} (make one with "
                          "`python -m core backup DIR`)") from None
    except (OSError, ValueError) as exc:
        raise StudioError(f"{f}: cannot read the backup manifest: {exc}") from exc
    if raw.get("format") != FORMAT:
        raise StudioError(f"{f}: format {raw.get('format')!r} is not {FORMAT!r}")
    for need in ("schema.sql", "load.sql"):
        if not (d / need).is_file():
            raise StudioError(f"{d} is incomplete: {need} is missing")
    return BackupInfo(str(d), str(raw["created_at"]), int(raw["schema_version"]),
                      {str(k): int(v) for k, v in raw["tables"].items()}, int(raw["audit"]["entries"]),
                      raw["audit"]["head"], str(raw.get("source", "")))


def backup(store: Store, out: str | os.PathLike[str]) -> BackupInfo:
    """Write a consistent snapshot of ``store`` to the new directory ``out`` (must not exist, or be
    empty). Nothing is written to the database."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudioError(f"{out} already exists and is not an empty directory; choose a new backup directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        with store.transaction() as con:
            tables = _tables(con)
            counts = _counts(con, tables)
            head = audit.last_entry(store)
            version = store.schema_version
            created = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
            export_dir = partial / "data"
            con.execute(f"EXPORT DATABASE '{_sql_path(export_dir)}' (FORMAT PARQUET)")
        for f in export_dir.iterdir():
            f.rename(partial / f.name)
        export_dir.rmdir()
        manifest = {"format": FORMAT, "created_at": created, "source": str(Path(store.path).resolve()),
                    "schema_version": version, "tables": counts, "duckdb": duckdb.__version__,
                    "audit": {"entries": head[0] if head else 0, "head": head[1] if head else None,
                              "hash": "hmac-sha256 (key outside the database; see README, The audit trail)"}}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return read_manifest(out)


def _sql_path(p: Path) -> str:
    """A path as a SQL string literal body (EXPORT/IMPORT take no parameters); quotes doubled."""
    return str(p).replace("'", "''")


@dataclass(frozen=True)
class RestoreReport:
    backup: BackupInfo
    replaced_head: str | None
    replaced: dict[str, int]
    restored: dict[str, int]
    audit_seq: int

    def summary(self) -> str:
        old = self.replaced
        return (f"restored {self.backup.path} (taken {self.backup.created_at}): "
                f"{self.restored.get('series', 0)} series, {self.restored.get('points', 0):,} points, "
                f"{self.restored.get('uploads', 0)} uploads, {self.backup.audit_entries} audit entries; "
                f"replaced {old.get('series', 0)} series, {old.get('points', 0):,} points. "
                f"Recorded as audit entry {self.audit_seq}.")


def check_backup(path: str | os.PathLike[str], scratch: Path) -> tuple[BackupInfo, Path]:
    """Load a backup into a scratch database under ``scratch``, upgrade it to the current schema and
    verify its audit chain against the manifest. Returns the manifest and the scratch database."""
    info = read_manifest(path)
    newest = max(n for n, _, _ in Store.migrations())
    if info.schema_version > newest:
        raise StudioError(f"{path}: the backup has schema v{info.schema_version}, newer than this studio "
                          f"(v{newest}); restore it with a newer version")
    db = scratch / "restore.duckdb"
    con = duckdb.connect(str(db))
    try:
        con.execute(f"IMPORT DATABASE '{_sql_path(Path(path).resolve())}'")
        counts = _counts(con, _tables(con))
    except duckdb.Error as exc:
        raise StudioError(f"{path}: the backup cannot be read: {exc}") from exc
    finally:
        con.close()
    if {k: v for k, v in counts.items() if k in info.tables} != info.tables:
        raise StudioError(f"{path}: the backup's tables do not hold the rows its manifest lists "
                          f"({counts} vs {info.tables}); it is incomplete or was changed")
    s = Store(db, lock_timeout=0, seal_audit=False)   # check the chain as the backup holds it
    try:
        ok, seq, msg = audit.verify_audit(s)
        head = audit.last_entry(s)
    finally:
        s.close()
    if not ok:
        raise StudioError(f"{path}: the backup's audit chain does not verify, so it was not restored: {msg}")
    got = head[1] if head else None
    if got != info.audit_head or (head[0] if head else 0) != info.audit_entries:
        raise StudioError(f"{path}: the backup's audit trail ends at entry {head[0] if head else 0} "
                          f"({(got or 'none')[:12]}...), not at the {info.audit_entries} entries its manifest "
                          "recorded; entries were added or removed after the backup was taken")
    return info, db


def restore(store: Store, path: str | os.PathLike[str], *, actor: str | None, reason: str | None = None
            ) -> RestoreReport:
    """Replace everything in ``store`` with the backup at ``path`` (checked first: :func:`check_backup`).

    One transaction: the tables are emptied and refilled, id sequences moved past the restored ids,
    and a ``restore`` audit entry appended to the restored chain. Raises :class:`StudioError` with
    nothing changed when the backup is unreadable, newer than this studio, or fails its audit check.
    """
    scratch = Path(tempfile.mkdtemp(prefix=".studio-restore-", dir=Path(store.path).resolve().parent))
    try:
        info, db = check_backup(path, scratch)
        with store.connection() as con:
            con.execute(f"ATTACH '{_sql_path(db)}' AS studio_backup (READ_ONLY)")
            try:
                with store.transaction():
                    before_head = audit.last_entry(store)
                    tables = [t for t in _tables(con, store_catalog(con)) if t != "schema_migrations"]
                    theirs = set(_tables(con, "studio_backup"))
                    replaced = _counts(con, tables)
                    for t in tables:
                        con.execute(f'DELETE FROM "{t}"')
                        if t in theirs:
                            con.execute(f'INSERT INTO "{t}" BY NAME SELECT * FROM studio_backup.main."{t}"')
                    _advance_sequences(con)
                    restored = _counts(con, tables)
                    entry = audit.record(store, actor, "restore", object="database", reason=reason,
                                         detail={"backup": str(Path(path).resolve()), "taken": info.created_at,
                                                 "backup_head": info.audit_head,
                                                 "replaced_head": before_head[1] if before_head else None,
                                                 "replaced_entries": before_head[0] if before_head else 0,
                                                 "rows": restored, "os_account": audit.os_account()})
            finally:
                con.execute("DETACH studio_backup")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return RestoreReport(info, before_head[1] if before_head else None, replaced, restored, entry.seq)


def store_catalog(con: duckdb.DuckDBPyConnection) -> str:
    return str(con.execute("SELECT current_database()").fetchone()[0])


def _advance_sequences(con: duckdb.DuckDBPyConnection) -> None:
    """Move each id sequence past the largest id now stored, so new rows never reuse a restored id."""
    rows = con.execute("SELECT table_name, column_name, column_default FROM duckdb_columns() "
                       "WHERE database_name = current_database() AND column_default LIKE 'nextval(%'").fetchall()
    for table, column, default in rows:
        m = _NEXTVAL.search(default)
        if m is None:
            continue
        seq = m.group(1)
        top = con.execute(f'SELECT coalesce(max("{column}"), 0) FROM "{table}"').fetchone()[0]
        nxt = con.execute("SELECT nextval(?)", [seq]).fetchone()[0]
        if nxt <= top:
            con.execute("SELECT max(nextval(?)) FROM range(?)", [seq, int(top - nxt)])
