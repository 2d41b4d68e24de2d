"""Hash-chained, append-only audit trail, written inside the store's transactions (table ``audit``,
migration 002). The only module that reads or writes the ``audit`` table.

Each entry stores ``prev_hash`` (the previous entry's hash; 64 zeros for the first) and
``entry_hash = sha256(canonical JSON of [seq, ts, actor, action, object, reason, detail, before_hash,
after_hash, prev_hash])``. Changing, deleting or re-ordering any stored entry breaks the chain at
that entry, which :func:`verify_audit` reports. (A chain kept in the same database can be rewritten
wholesale by someone with write access; export the latest ``entry_hash`` elsewhere to detect that.)

Entries are written in the same transaction as the change they record, so a change that rolls back
leaves no entry and an entry never describes a change that did not happen.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.data.store.sql import Store, where_clause

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
    """Every entry as a tuple in :data:`COLUMNS` order, oldest first (for verification)."""
    return store.query_all(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq")


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


def entry_hash(seq: int, ts: datetime, actor: str, action: str, object: str | None, reason: str | None,
               detail: str, before_hash: str | None, after_hash: str | None, prev_hash: str) -> str:
    """The hash of one entry; ``detail`` is the stored canonical JSON text, ``ts`` UTC to the microsecond."""
    ts_text = _ts_utc(ts).strftime(TS_FORMAT)
    payload = [int(seq), ts_text, actor, action, object, reason, detail, before_hash, after_hash, prev_hash]
    return sha256_text(canonical_json(payload))


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
        last = last_entry(store)
        seq = last[0] + 1 if last else 1
        prev = last[1] if last else GENESIS
        h = entry_hash(seq, ts, actor, action, object, reason, detail_text, before_hash, after_hash, prev)
        insert_entry(store, {
            "seq": seq, "ts": ts, "actor": actor, "action": action, "object": object, "reason": reason,
            "detail": detail_text, "before_hash": before_hash, "after_hash": after_hash,
            "prev_hash": prev, "entry_hash": h,
        })
    return AuditEntry(seq, ts, actor, action, object, reason, json.loads(detail_text), before_hash,
                      after_hash, prev, h)


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


def verify_audit(store: Store) -> tuple[bool, int | None, str]:
    """Recompute the hash chain.

    Returns
    -------
    (ok, first_broken_seq, message)
        ``ok`` is True when every entry's hash matches its fields and links to its predecessor and the
        sequence has no gaps; otherwise ``first_broken_seq`` is the first entry that fails and the
        message says how.
    """
    rows = all_entries(store)
    prev = GENESIS
    expected_seq = 1
    for row in rows:
        seq, ts, actor, action, obj, reason, detail, bh, ah, prev_hash, stored = row
        seq = int(seq)
        if seq != expected_seq:
            return False, expected_seq, (f"audit entry {expected_seq} is missing (next stored entry is {seq}); "
                                         "entries were deleted")
        if prev_hash != prev:
            return False, seq, (f"audit entry {seq} does not link to entry {seq - 1}: its prev_hash "
                                f"{str(prev_hash)[:12]}... should be {prev[:12]}...; an earlier entry was "
                                "changed or removed")
        h = entry_hash(seq, ts, actor, action, obj, reason, detail, bh, ah, prev_hash)
        if h != stored:
            return False, seq, (f"audit entry {seq} ({action} by {actor}) was modified: its fields hash to "
                                f"{h[:12]}... but the stored hash is {str(stored)[:12]}...")
        prev = stored
        expected_seq += 1
    n = len(rows)
    return True, None, f"audit trail intact: {n} entr{'y' if n == 1 else 'ies'}, head {prev[:12]}..."


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
