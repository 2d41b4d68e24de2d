"""Keyed, hash-chained, anchored audit trail, written inside the store's transactions (table ``audit``,
migration 002). The only module that reads or writes the ``audit`` table.

Each entry stores ``prev_hash`` (the previous entry's hash; 64 zeros for the first) and
``entry_hash = HMAC-SHA256(key, canonical JSON of [seq, ts, actor, action, object, reason, detail,
before_hash, after_hash, prev_hash])`` under a key kept outside the database
(:mod:`core.data.store.anchor`). Changing, deleting or re-ordering any stored entry breaks the chain at
that entry, and without the key nobody can recompute it. The head of every write is also appended
to an anchor file outside the database, so a removed tail, a rolled-back or a replaced database file
is caught by comparing the two (:func:`check_integrity`).

Databases written before the key existed hold a plain ``sha256`` chain. It is verified once, then
sealed by a keyed ``audit.seal`` entry whose ``prev_hash`` is its head (:func:`seal_legacy`, run when
a store is opened for writing); nothing recorded is rewritten. Entries before the seal are checked as
sha256, the seal and everything after it as HMAC; a trail without a seal must be keyed throughout.

Entries are written in the same transaction as the change they record, so a change that rolls back
leaves no entry and an entry never describes a change that did not happen.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.data.store import anchor
from core.data.store.sql import Store, where_clause
from core.errors import StudioError

GENESIS = "0" * 64
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# ---------------------------------------------------------------------------------------- SQL

COLUMNS = ("seq", "ts", "actor", "action", "object", "reason", "detail", "before_hash", "after_hash",
           "prev_hash", "entry_hash")


def last_entry(store: Store) -> tuple[int, str] | None:
    """``(seq, entry_hash)`` of the newest entry, or None for an empty trail."""
    row = store.query_one("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1")
    return (int(row[0]), str(row[1])) if row else None


def insert_entry(store: Store, entry: dict[str, Any]) -> None:
    """Append one fully formed entry (all of :data:`COLUMNS`). Call inside a transaction."""
    with store.transaction() as con:
        con.execute(
            f"INSERT INTO audit ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})",
            [entry[c] for c in COLUMNS],
        )


def all_entries(store: Store) -> list[tuple]:
    """Every entry as a tuple in :data:`COLUMNS` order, oldest first (for verification); ``ts`` comes as
    the UTC text the hash covers (formatted by DuckDB: much faster than per-row ``strftime``)."""
    cols = ", ".join(f"strftime(timezone('UTC', ts), '{TS_FORMAT}') AS ts" if c == "ts" else c for c in COLUMNS)
    return store.query_all(f"SELECT {cols} FROM audit ORDER BY seq")


def select_entries(store: Store, *, actor: str | None = None, action: str | None = None,
                   object_prefix: str | None = None, since: datetime | None = None,
                   until: datetime | None = None, limit: int | None = None) -> pd.DataFrame:
    """Entries matching every given filter, newest first."""
    where, params = where_clause(("actor = ?", actor), ("action = ?", action),
                           ("starts_with(coalesce(object, ''), ?)", object_prefix),
                           ("ts >= ?", since), ("ts <= ?", until))
    sql = f"SELECT {', '.join(COLUMNS)} FROM audit WHERE {where} ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return store.query_df(sql, params)


def os_account() -> str:
    """The operating-system account this process runs as (from the user id, not from ``$USER``, which
    anyone can set); ``getpass.getuser()`` where there is no password database (Windows)."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        pass
    try:
        return getpass.getuser()
    except Exception:  # no account name at all (e.g. a container uid without a passwd entry)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, (pd.Timestamp, datetime, date)):
        return o.isoformat()
    if isinstance(o, (set, frozenset, tuple)):
        return sorted(o) if isinstance(o, (set, frozenset)) else list(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, UTF-8 kept; numpy/timestamps converted."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default, allow_nan=True)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _ts_utc(ts: Any) -> datetime:
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.floor("us").to_pydatetime()


def _ts_text(ts: Any) -> str:
    """``ts`` as UTC text to the microsecond; a fast path for the aware datetimes DuckDB returns."""
    if isinstance(ts, str) and len(ts) == 27 and ts.endswith("Z") and ts[10] == "T":   # already the text
        return ts
    if isinstance(ts, datetime) and not isinstance(ts, pd.Timestamp) and ts.tzinfo is not None:
        return ts.astimezone(UTC).strftime(TS_FORMAT)
    return _ts_utc(ts).strftime(TS_FORMAT)


def _payload(seq: int, ts: Any, actor: str, action: str, object: str | None, reason: str | None,
             detail: str, before_hash: str | None, after_hash: str | None, prev_hash: str) -> str:
    ts_text = _ts_text(ts)
    return canonical_json([int(seq), ts_text, actor, action, object, reason, detail, before_hash, after_hash,
                           prev_hash])


def entry_hash(seq: int, ts: datetime, actor: str, action: str, object: str | None, reason: str | None,
               detail: str, before_hash: str | None, after_hash: str | None, prev_hash: str) -> str:
    """The legacy (unkeyed) sha256 hash of one entry: how entries before the ``audit.seal`` are hashed.
    ``detail`` is the stored canonical JSON text, ``ts`` UTC to the microsecond."""
    return sha256_text(_payload(seq, ts, actor, action, object, reason, detail, before_hash, after_hash,
                                prev_hash))


def keyed_hash(key: bytes, seq: int, ts: datetime, actor: str, action: str, object: str | None,
               reason: str | None, detail: str, before_hash: str | None, after_hash: str | None,
               prev_hash: str) -> str:
    """HMAC-SHA256 under ``key`` of the same canonical fields: how every current entry is hashed."""
    return anchor.hmac_hex(key, _payload(seq, ts, actor, action, object, reason, detail, before_hash,
                                         after_hash, prev_hash))


SEAL_ACTION = "audit.seal"


@dataclass(frozen=True)
class AuditEntry:
    """One row of the trail."""

    seq: int
    ts: datetime
    actor: str
    action: str
    object: str | None
    reason: str | None
    detail: dict[str, Any]
    before_hash: str | None
    after_hash: str | None
    prev_hash: str
    entry_hash: str


def record(store: Store, actor: str | None, action: str, *, object: str | None = None,
           reason: str | None = None, detail: dict[str, Any] | None = None, before_hash: str | None = None,
           after_hash: str | None = None, now: Any = None) -> AuditEntry:
    """Append an entry to the trail, inside the caller's transaction if there is one.

    Parameters
    ----------
    actor : str
        Who did it (user name or e-mail); ``None`` is recorded as ``"unknown"``.
    action : str
        What was done, e.g. ``policy.apply``, ``upload``, ``delete_series``.
    object : str, optional
        What it was done to, e.g. ``policy:default@v3`` or ``upload:12``.
    before_hash, after_hash : str, optional
        Content hashes of the object before and after (e.g. policy version content hashes).
    now : datetime-like, optional
        Entry time (UTC); default the current time.
    """
    actor = str(actor) if actor else "unknown"
    ts = _ts_utc(now if now is not None else pd.Timestamp.now(tz="UTC"))
    detail_text = canonical_json(detail or {})
    with store.transaction():
        key = _write_key(store)
        if action != SEAL_ACTION and _needs_seal(store, key):
            _seal(store, key, now=ts)
        last = last_entry(store)
        seq = last[0] + 1 if last else 1
        prev = last[1] if last else GENESIS
        h = keyed_hash(key, seq, ts, actor, action, object, reason, detail_text, before_hash, after_hash, prev)
        insert_entry(store, {
            "seq": seq, "ts": ts, "actor": actor, "action": action, "object": object, "reason": reason,
            "detail": detail_text, "before_hash": before_hash, "after_hash": after_hash,
            "prev_hash": prev, "entry_hash": h,
        })
        _anchor_after_commit(store, seq, h, ts, restore=action == "restore")
    return AuditEntry(seq, ts, actor, action, object, reason, json.loads(detail_text), before_hash,
                      after_hash, prev, h)


def _write_key(store: Store) -> bytes:
    """The key to write with. Created on first use only while the trail holds no keyed entry: a
    database whose keyed entries were made under a key that is not here refuses writes rather than
    continue its chain under a new key."""
    key = anchor.load_key(create=False)
    if key is not None:
        return key
    if _has_keyed_entries(store):
        raise StudioError(f"audit key missing: this database's audit trail is keyed but no key was found at "
                          f"{anchor.key_source()}; restore the key file (or set STUDIO_AUDIT_KEY) before "
                          "writing. Nothing was written.")
    created = anchor.load_key(create=True)
    assert created is not None
    return created


def _has_keyed_entries(store: Store) -> bool:
    if store.query_one("SELECT 1 FROM audit WHERE action = ? LIMIT 1", [SEAL_ACTION]):
        return True
    row = store.query_one(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq DESC LIMIT 1")
    return row is not None and entry_hash(*row[:10]) != row[10]


def _needs_seal(store: Store, key: bytes) -> bool:
    """True when the trail holds legacy (unkeyed sha256) entries and no seal yet."""
    if store.query_one("SELECT 1 FROM audit WHERE action = ? LIMIT 1", [SEAL_ACTION]):
        return False
    row = store.query_one(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq LIMIT 1")
    return row is not None and keyed_hash(key, *row[:10]) != row[10] and entry_hash(*row[:10]) == row[10]


def _seal(store: Store, key: bytes, now: Any = None) -> AuditEntry | None:
    ok, seq, msg = _verify_legacy(all_entries(store))
    if not ok:
        raise StudioError(f"the existing (unkeyed) audit chain does not verify, so it was not sealed: {msg}")
    head = last_entry(store)
    assert head is not None
    return record(store, "studio", SEAL_ACTION, object="audit",
                  reason="keyed chain starts here; the entries before it are the verified unkeyed sha256 chain",
                  detail={"legacy_entries": head[0], "legacy_head": head[1], "os_account": os_account()},
                  now=now)


def seal_legacy(store: Store) -> AuditEntry | None:
    """Migration of a database written before the keyed chain: verify its sha256 chain once and seal it
    with a keyed entry covering its head. Does nothing (returns None) when there is nothing to seal."""
    # cheap reads first: a store opened on a keyed (or empty) trail writes nothing and commits nothing
    first = store.query_one(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq LIMIT 1")
    if first is None or entry_hash(*first[:10]) != first[10]:
        return None   # empty, keyed from the start, or broken at entry 1 (left for verification to report)
    if store.query_one("SELECT 1 FROM audit WHERE action = ? LIMIT 1", [SEAL_ACTION]):
        return None
    with store.transaction():
        key = anchor.load_key(create=not _has_keyed_entries(store))
        if key is None or not _needs_seal(store, key):
            return None
        return _seal(store, key)


def _anchor_after_commit(store: Store, seq: int, h: str, ts: datetime, *, restore: bool) -> None:
    path = anchor.anchor_path(store.path)
    if path is None:
        return
    line = anchor.AnchorLine(seq, h, ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), restore)

    def write() -> None:
        try:
            anchor.append(path, line)
        except OSError as exc:   # the write committed; say so loudly rather than pretend it failed
            warnings.warn(f"audit entry {seq} committed but not anchored in {path}: {exc}", stacklevel=2)

    store.after_commit.append(write)


def list_audit(store: Store, *, actor: str | None = None, action: str | None = None,
               object: str | None = None, since: Any = None, until: Any = None,
               limit: int | None = None) -> pd.DataFrame:
    """Audit entries, newest first. ``object`` matches as a prefix (``policy:default`` finds every
    version of that policy). ``detail`` is returned parsed (a dict per row)."""
    df = select_entries(store, actor=actor, action=action, object_prefix=object,
                            since=_ts_utc(since) if since is not None else None,
                            until=_ts_utc(until) if until is not None else None, limit=limit)
    df["detail"] = [json.loads(d) for d in df["detail"]]
    return df


def _verify_legacy(rows: list[tuple]) -> tuple[bool, int | None, str]:
    """The unkeyed sha256 chain (databases from before the key; the part before the seal)."""
    prev, expected = GENESIS, 1
    for row in rows:
        seq = int(row[0])
        if seq != expected:
            return False, expected, f"audit entry {expected} is missing (next stored entry is {seq})"
        if row[9] != prev:
            return False, seq, f"audit entry {seq} does not link to entry {seq - 1}"
        if entry_hash(*row[:10]) != row[10]:
            return False, seq, f"audit entry {seq} ({row[3]} by {row[2]}) was modified"
        prev, expected = row[10], expected + 1
    return True, None, "ok"


@dataclass(frozen=True)
class Integrity:
    """What :func:`check_integrity` found.

    ``status`` is ``"intact"`` (chain verifies under the key and matches the anchor), ``"broken"``
    (an entry was changed, removed, re-ordered or forged, or the anchor records entries the database
    does not hold), or ``"unverifiable"`` (no key, or a key that matches none of the keyed entries).
    """

    status: str
    seq: int | None
    message: str
    entries: int
    head: str | None
    anchor_path: str | None
    anchor_seq: int | None = None
    anchor_time: str | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "intact"


def _chain(rows: list[tuple], key: bytes) -> tuple[str, int | None, str]:
    """Check the stored chain: ``(status, first bad seq, message)``."""
    seal_at = next((int(r[0]) for r in rows if r[3] == SEAL_ACTION), None)
    prev, expected, keyed_ok = GENESIS, 1, 0
    for row in rows:
        seq, ts, actor, action, obj, reason, detail, bh, ah, prev_hash, stored = row
        seq = int(seq)
        if seq != expected:
            return "broken", expected, (f"audit entry {expected} is missing (next stored entry is {seq}); "
                                        "entries were deleted")
        if prev_hash != prev:
            return "broken", seq, (f"audit entry {seq} does not link to entry {seq - 1}: its prev_hash "
                                   f"{str(prev_hash)[:12]}... should be {prev[:12]}...; an earlier entry was "
                                   "changed, removed or re-ordered")
        legacy = seal_at is not None and seq < seal_at
        fields = (seq, ts, actor, action, obj, reason, detail, bh, ah, prev_hash)
        h = entry_hash(*fields) if legacy else keyed_hash(key, *fields)
        if h != stored:
            if not legacy and keyed_ok == 0 and entry_hash(*fields) == stored:
                return "broken", seq, (f"audit entry {seq} ({action} by {actor}) carries an unkeyed sha256 hash: "
                                       "the chain was recomputed without the key (or written before the key "
                                       "existed and never sealed)")
            if not legacy and keyed_ok == 0 and not any(keyed_hash(key, *r[:10]) == r[10] for r in rows[seq:]):
                return "unverifiable", seq, ("unverifiable: the audit key at "
                                             f"{anchor.key_source()} matches none of the keyed entries: it is "
                                             "not this database's key (or every keyed entry was rewritten)")
            return "broken", seq, (f"audit entry {seq} ({action} by {actor}) was modified: its fields hash to "
                                   f"{h[:12]}... but the stored hash is {str(stored)[:12]}...")
        keyed_ok += not legacy
        prev, expected = stored, expected + 1
    return "intact", None, ""


def check_integrity(store: Store) -> Integrity:
    """Verify the keyed chain and compare it with the anchor file.

    Causal in nothing; reads the whole trail once (a few thousand entries verify in well under a
    second). Never reports ``intact`` without the key.
    """
    rows = all_entries(store)
    n = len(rows)
    head = str(rows[-1][10]) if rows else None
    apath = anchor.anchor_path(store.path)
    lines = anchor.read(apath) if apath is not None else None
    since_restore = lines[max((i for i, a in enumerate(lines) if a.restore), default=0):] if lines else []
    last_line = max(since_restore, key=lambda a: (a.seq, a.ts)) if since_restore else None
    base = {"entries": n, "head": head, "anchor_path": str(apath) if apath else None,
            "anchor_seq": last_line.seq if last_line else None, "anchor_time": last_line.ts if last_line else None}
    key = anchor.load_key(create=False)
    if key is None and rows:
        legacy_only = not any(r[3] == SEAL_ACTION for r in rows) and _verify_legacy(rows)[0]
        if not legacy_only:
            return Integrity("unverifiable", None, (f"unverifiable: key missing ({anchor.key_source()} not "
                                                    "found); restore the key file or set STUDIO_AUDIT_KEY"),
                             **base)
    if rows and not any(r[3] == SEAL_ACTION for r in rows) and _verify_legacy(rows)[0]:
        if lines:
            return Integrity("broken", 1, (f"the chain was recomputed without the key: all {n} entries carry "
                                           "unkeyed sha256 hashes and no keyed seal, but the anchor file "
                                           f"{apath} shows this database's trail was keyed"), **base)
        return Integrity("unverifiable", None, (f"unverifiable: the {n} entries are an unkeyed sha256 chain that "
                                                "was never sealed; open the database for writing once "
                                                "(e.g. `python -m core policy list`) to seal it"), **base)
    if rows:
        assert key is not None
        status, seq, msg = _chain(rows, key)
        if status != "intact":
            return Integrity(status, seq, msg, **base)
    tail = _anchor_check(rows, lines, apath)
    if tail is not None:
        return Integrity("broken", tail[0], tail[1], **base)
    note = ""
    if lines is None and n:
        note = f"; no anchor file at {apath} (database moved, or anchored elsewhere)"
    elif last_line is not None and last_line.seq < n:
        note = f"; entries {last_line.seq + 1}-{n} not anchored yet (written by a process that stopped before anchoring)"
    return Integrity("intact", None, f"audit trail intact: {n} entr{'y' if n == 1 else 'ies'}, head "
                                     f"{(head or GENESIS)[:12]}...{note}", **base, note=note.lstrip("; "))


def _anchor_check(rows: list[tuple], lines: list[anchor.AnchorLine] | None,
                  apath: Any) -> tuple[int, str] | None:
    """The newest anchored entry the database does not hold (``(seq, message)``), or None.

    Lines written before the last anchored ``restore`` describe contents a restore replaced on
    purpose, so only that restore and what follows it are compared."""
    if not lines:
        return None
    start = max((i for i, a in enumerate(lines) if a.restore), default=0)
    held = {int(r[0]): str(r[10]) for r in rows}
    missing = [a for a in lines[start:] if held.get(a.seq) != a.entry_hash]
    if not missing:
        return None
    a = max(missing, key=lambda m: (m.seq, m.ts))
    n = len(rows)
    if a.seq > n:
        why = (f"the database ends at entry {n}: its newest entries were removed, or the file was rolled back "
               "to an older copy")
    else:
        why = (f"the database's entry {a.seq} has hash {held[a.seq][:12]}... instead: the file was rolled back "
               "or replaced and written again, or the chain was rewritten")
    return a.seq, (f"anchored audit entry {a.seq} (hash {a.entry_hash[:12]}..., anchored {a.ts} in {apath}) is "
                   f"missing: {why}; {len(missing)} anchored entr{'y' if len(missing) == 1 else 'ies'} missing in all")


def verify_audit(store: Store) -> tuple[bool, int | None, str]:
    """:func:`check_integrity` as ``(ok, first_broken_seq, message)``.

    ``ok`` is True only when the keyed chain verifies and holds every anchored entry; otherwise
    ``first_broken_seq`` names the entry at fault (None when the trail is unverifiable as a whole).
    """
    r = check_integrity(store)
    return r.ok, r.seq, r.message


def head_comment(store: Store) -> str:
    """A comment line naming the audit head, for the top of exported files (policy YAML, Prometheus
    rules): ``# audit head: entry N, HMAC-SHA256 H (...)``; a reviewer holding the file can later check
    that the database still contains that entry."""
    head = last_entry(store)
    if head is None:
        return "# audit head: empty trail\n"
    return (f"# audit head: entry {head[0]}, HMAC-SHA256 {head[1]} (check the database still holds it: "
            "python -m core policy verify-audit)\n")


def stamp_head(store: Store, text: str) -> str:
    """``text`` (a YAML file) with :func:`head_comment` after its leading comment lines (export warnings
    and headers stay on top)."""
    lines = text.splitlines(keepends=True)
    k = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    return "".join(lines[:k]) + head_comment(store) + "".join(lines[k:])


_OBJECT_KEYS = {"upload": "upload_id", "delete_upload": "upload_id", "delete_series": "series",
                "import_incidents": "source", "delete_incidents": None}


def _store_recorder(store: Store, action: str, actor: str | None, detail: dict[str, Any]) -> None:
    key = _OBJECT_KEYS.get(action)
    kind = {"upload": "upload", "delete_upload": "upload", "delete_series": "series",
            "import_incidents": "incidents", "delete_incidents": "incidents"}.get(action, action)
    obj = f"{kind}:{detail.get(key)}" if key and detail.get(key) is not None else kind
    record(store, actor, action, object=obj, detail={**detail, "os_account": os_account()})


def install(store: Store) -> Store:
    """Make ``store`` record its own writes (upload, deletions, incident imports) in the trail.

    Store calls ``store.audit_recorder(store, action, actor, detail)`` inside each write transaction.
    Returns the store for chaining.
    """
    store.audit_recorder = _store_recorder
    return store
