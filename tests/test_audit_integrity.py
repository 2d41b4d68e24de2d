"""Keyed, anchored audit trail (issue 15): every tampering case named, key handling, migration of an
unkeyed chain, and the verification time of a long clean history. Keys and anchors live under the
session's tmp ``$STUDIO_AUDIT_DIR`` (tests/conftest.py) or a test's own tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core.data.store import Store, anchor, audit

T0 = pd.Timestamp("2026-03-01T12:00:00Z")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def audit_dir(tmp_path, monkeypatch):
    """A fresh key/anchor directory for this test only."""
    d = tmp_path / "audit"
    monkeypatch.setenv("STUDIO_AUDIT_DIR", str(d))
    monkeypatch.delenv("STUDIO_AUDIT_KEY", raising=False)
    monkeypatch.delenv("STUDIO_AUDIT_ANCHOR", raising=False)
    return d


def _write(store, n, start=0):
    for i in range(start, start + n):
        audit.record(store, f"user{i % 3}", "policy.apply", object=f"policy:default@v{i + 1}",
                     reason=f"change {i}", detail={"i": i}, now=T0 + pd.Timedelta(minutes=i))


@pytest.fixture
def db(tmp_path, audit_dir):
    s = Store(tmp_path / "a.duckdb")
    _write(s, 5)
    yield s
    s.close()


def test_key_file_is_created_owner_only_and_verifies(db, audit_dir):
    key = audit_dir / "audit.key"
    assert key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
    r = audit.check_integrity(db)
    assert r.status == "intact" and r.entries == 5 and r.anchor_seq == 5 and r.anchor_time
    lines = anchor.read(Path(r.anchor_path))
    assert [a.seq for a in lines] == [1, 2, 3, 4, 5] and lines[-1].entry_hash == r.head


@pytest.mark.parametrize("tamper, seq, says", [
    ("UPDATE audit SET actor = 'mallory' WHERE seq = 3", 3, ["entry 3 (policy.apply by mallory) was modified"]),
    ("DELETE FROM audit WHERE seq = 5", 5, ["anchored audit entry 5", "the database ends at entry 4"]),
    ("DELETE FROM audit WHERE seq = 2", 2, ["audit entry 2 is missing (next stored entry is 3)"]),
    ("UPDATE audit SET seq = CASE seq WHEN 2 THEN 3 ELSE 2 END WHERE seq IN (2, 3)", 2,
     ["audit entry 2 does not link to entry 1"]),
], ids=["modified row", "deleted newest", "deleted middle", "reordered"])
def test_tampered_rows_are_named(db, tamper, seq, says):
    db.query_all(tamper)
    ok, at, msg = audit.verify_audit(db)
    assert (ok, at) == (False, seq) and all(s in msg for s in says), msg


def _recompute_unkeyed(store):
    rows = audit.all_entries(store)
    prev = audit.GENESIS
    store.query_all("DELETE FROM audit")
    for r in rows:
        e = dict(zip(audit.COLUMNS, r, strict=True))
        e["actor"] = "mallory" if e["seq"] == 2 else e["actor"]
        e["prev_hash"] = prev
        e["entry_hash"] = prev = audit.entry_hash(*[e[c] for c in audit.COLUMNS[:10]])
        audit.insert_entry(store, e)


def test_chain_recomputed_without_the_key_fails(db):
    _recompute_unkeyed(db)
    ok, seq, msg = audit.verify_audit(db)
    assert not ok and seq == 1 and "recomputed without the key" in msg


def test_chain_recomputed_without_the_key_and_anchor_is_never_intact(db):
    _recompute_unkeyed(db)
    os.remove(audit.check_integrity(db).anchor_path)
    r = audit.check_integrity(db)
    assert r.status == "unverifiable" and "unkeyed sha256 chain" in r.message


def test_restored_older_database_file_is_caught(tmp_path, audit_dir):
    path = tmp_path / "b.duckdb"
    s = Store(path)
    _write(s, 3)
    s.close()
    shutil.copy(path, tmp_path / "old.duckdb")
    s = Store(path)
    _write(s, 2, start=3)
    s.close()
    shutil.copy(tmp_path / "old.duckdb", path)           # roll the file back to the older copy
    s = Store(path)
    ok, seq, msg = audit.verify_audit(s)
    assert (ok, seq) == (False, 5) and "the database ends at entry 3" in msg and "2 anchored entries" in msg
    _write(s, 1, start=10)                               # writing on top does not hide the rollback
    ok, seq, msg = audit.verify_audit(s)
    assert (ok, seq) == (False, 5) and "entry 4 has hash" not in msg and "anchored audit entry 5" in msg
    s.close()


def test_replaced_database_is_caught(tmp_path, audit_dir):
    path = tmp_path / "c.duckdb"
    s = Store(path)
    _write(s, 3)
    s.close()
    os.remove(path)
    s = Store(path)                                      # a different database under the same name
    _write(s, 3, start=100)
    ok, seq, msg = audit.verify_audit(s)
    assert (ok, seq) == (False, 3) and "entry 3 has hash" in msg and "replaced" in msg
    s.close()


def test_missing_key_is_unverifiable_and_refuses_writes(db, audit_dir):
    (audit_dir / "audit.key").rename(audit_dir.parent / "elsewhere.key")
    r = audit.check_integrity(db)
    assert r.status == "unverifiable" and r.message.startswith("unverifiable: key missing")
    with pytest.raises(audit.StudioError, match="audit key missing"):
        audit.record(db, "eve", "policy.apply")
    assert not (audit_dir / "audit.key").exists()          # no new key was made behind the trail's back


def test_wrong_key_is_unverifiable(db, monkeypatch):
    monkeypatch.setenv("STUDIO_AUDIT_KEY", "x" * 40)
    r = audit.check_integrity(db)
    assert r.status == "unverifiable" and "matches none of the keyed entries" in r.message


def test_key_from_environment(tmp_path, audit_dir, monkeypatch):
    monkeypatch.setenv("STUDIO_AUDIT_KEY", "k" * 32)
    s = Store(tmp_path / "e.duckdb")
    _write(s, 2)
    assert audit.verify_audit(s)[0] and not (audit_dir / "audit.key").exists()
    monkeypatch.delenv("STUDIO_AUDIT_KEY")
    assert audit.check_integrity(s).status == "unverifiable"
    s.close()


def test_rollback_writes_no_anchor_line(db):
    with pytest.raises(RuntimeError), db.transaction():
        audit.record(db, "eve", "policy.apply")
        raise RuntimeError("failed change")
    r = audit.check_integrity(db)
    assert r.ok and r.anchor_seq == 5 and len(anchor.read(Path(r.anchor_path))) == 5


def test_crash_before_anchoring_is_not_tampering(db):
    p = Path(audit.check_integrity(db).anchor_path)
    p.write_text("".join(p.read_text().splitlines(keepends=True)[:4]))   # the 5th append never happened
    ok, _, msg = audit.verify_audit(db)
    assert ok and "entries 5-5 not anchored yet" in msg


def test_legacy_chain_is_verified_then_sealed_without_rewriting(tmp_path, audit_dir):
    path = tmp_path / "legacy.duckdb"
    s = Store(path)
    prev = audit.GENESIS
    for i in range(1, 4):   # an unkeyed sha256 chain as written before issue 15
        e = {"seq": i, "ts": T0 + pd.Timedelta(minutes=i), "actor": "old", "action": "upload", "object": None,
             "reason": None, "detail": "{}", "before_hash": None, "after_hash": None, "prev_hash": prev}
        e["entry_hash"] = prev = audit.entry_hash(*[e[c] for c in audit.COLUMNS[:10]])
        audit.insert_entry(s, e)
    before = audit.all_entries(s)
    assert audit.check_integrity(s).status == "unverifiable"   # never "intact" before the seal
    s.close()
    s = Store(path)                                            # opening for writing seals it
    rows = audit.all_entries(s)
    assert rows[:3] == before and rows[3][3] == audit.SEAL_ACTION and rows[3][9] == before[-1][10]
    assert json.loads(rows[3][6])["legacy_head"] == before[-1][10]
    _write(s, 2)
    assert audit.verify_audit(s)[0]
    s.query_all("UPDATE audit SET actor = 'mallory' WHERE seq = 2")   # the legacy part stays protected
    assert audit.verify_audit(s)[:2] == (False, 2)
    s.close()


def test_broken_legacy_chain_is_not_sealed(tmp_path, audit_dir):
    path = tmp_path / "legacy2.duckdb"
    s = Store(path)
    e = {"seq": 1, "ts": T0, "actor": "old", "action": "upload", "object": None, "reason": None, "detail": "{}",
         "before_hash": None, "after_hash": None, "prev_hash": audit.GENESIS, "entry_hash": "f" * 64}
    audit.insert_entry(s, e)
    s.close()
    s = Store(path)                       # opens (the data stays usable) but seals nothing
    assert len(audit.all_entries(s)) == 1 and not audit.check_integrity(s).ok
    s.close()


def test_thousands_of_writes_verify_in_under_a_second(tmp_path, audit_dir):
    s = Store(tmp_path / "big.duckdb")
    key = anchor.load_key(create=True)
    n = 5000
    rows, prev, lines = [], audit.GENESIS, []
    for i in range(1, n + 1):
        f = (i, (T0 + pd.Timedelta(seconds=i)).to_pydatetime(), "u", "upload", f"upload:{i}", None,
             json.dumps({"i": i}), None, None, prev)
        prev = audit.keyed_hash(key, *f)
        rows.append((*f, prev))
        lines.append(f"{i} {prev} 2026-03-01T12:00:00.000000Z\n")
    frame = pd.DataFrame(rows, columns=list(audit.COLUMNS))
    with s.transaction() as con:
        con.register("frame", frame)
        con.execute(f"INSERT INTO audit SELECT {', '.join(audit.COLUMNS)} FROM frame")
    apath = anchor.anchor_path(s.path)
    apath.parent.mkdir(parents=True, exist_ok=True)
    apath.write_text("".join(lines))
    t = time.perf_counter()
    r = audit.check_integrity(s)
    took = time.perf_counter() - t
    print(f"verified {n} entries in {took:.3f} s")
    assert r.ok and r.entries == n and r.anchor_seq == n
    assert took < 1.0
    s.close()


def test_cli_verify_audit_exit_codes(db):
    env = {**os.environ, "STUDIO_DB": db.path}
    db.release()
    out = subprocess.run([sys.executable, "-m", "core", "policy", "verify-audit"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "audit trail intact: 5 entries" in out.stdout
    db.query_all("DELETE FROM audit WHERE seq = 5")
    db.release()
    out = subprocess.run([sys.executable, "-m", "core", "policy", "verify-audit"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "anchored audit entry 5" in out.stdout


def test_restore_of_a_backup_is_not_tampering(tmp_path, audit_dir):
    from core.data.store.backup import backup, restore

    s = Store(tmp_path / "r.duckdb")
    _write(s, 3)
    backup(s, tmp_path / "bk")
    _write(s, 2, start=3)
    rep = restore(s, tmp_path / "bk", actor="ann", reason="undo")
    r = audit.check_integrity(s)
    assert r.ok and r.entries == 4 == rep.audit_seq and r.anchor_seq == 4, r.message
    s.query_all("DELETE FROM audit WHERE seq = 4")   # removing the restore entry itself is still caught
    assert audit.verify_audit(s)[:2] == (False, 4)
    s.close()
