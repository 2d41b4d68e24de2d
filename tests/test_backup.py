"""Backup and restore: the demo database round-trips; a damaged or altered backup is refused with the
live database untouched; restore is audited and ids keep growing afterwards."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from core.data.store import Store, audit
from core.data.store.backup import backup, read_manifest, restore
from core.errors import StudioError
from tests.conftest import make_points

TABLES = ("series", "points", "uploads", "incidents", "policies", "policy_versions", "approvals", "audit")


def _demo(tmp_path, demo_db_bytes: bytes, name: str = "studio.duckdb"):
    db = tmp_path / name
    db.write_bytes(demo_db_bytes)
    return db


def _snapshot(store: Store) -> dict[str, pd.DataFrame]:
    return {t: store.query_df(f"SELECT * FROM {t} ORDER BY ALL").reset_index(drop=True) for t in TABLES}


def test_demo_database_round_trips(tmp_path, demo_db_bytes):
    db = _demo(tmp_path, demo_db_bytes)
    s = Store(db)
    original = _snapshot(s)
    info = backup(s, tmp_path / "bk")
    assert info.tables["points"] == len(original["points"]) and info.audit_entries == len(original["audit"])
    assert read_manifest(tmp_path / "bk").audit_head == original["audit"]["entry_hash"].iloc[-1]

    # change things after the backup: a new upload, a deleted upload
    s.write_points(make_points(50, series="later"), name="later.csv", sha256="later", fmt="long", actor="ed")
    first = int(s.list_uploads()["id"].min())
    s.delete_upload(first, actor="ed")
    assert _snapshot(s)["points"].shape != original["points"].shape

    report = restore(s, tmp_path / "bk", actor="ed", reason="round trip")
    back = _snapshot(s)
    for t in TABLES:
        want = original[t]
        got = back[t] if t != "audit" else back[t].iloc[:-1]
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False, obj=t)
    last = audit.list_audit(s, limit=1).iloc[0]
    assert (last["action"], last["actor"], last["reason"]) == ("restore", "ed", "round trip")
    assert last["detail"]["backup_head"] == info.audit_head and last["detail"]["replaced_entries"] > info.audit_entries
    assert report.audit_seq == info.audit_entries + 1
    assert audit.verify_audit(s)[0]
    # ids continue past everything stored before the restore (no reuse of the deleted upload's or later ids)
    r = s.write_points(make_points(10, series="after"), name="after.csv", sha256="after", fmt="long")
    assert r.upload_id > int(original["uploads"]["id"].max()) + 1
    s.close()


def test_restore_into_an_empty_database_moves_id_sequences(tmp_path, demo_db_bytes):
    src = _demo(tmp_path, demo_db_bytes, "src.duckdb")
    with Store(src) as s:
        backup(s, tmp_path / "bk")
        n_series = len(s.list_series())
    with Store(tmp_path / "fresh.duckdb") as s:
        restore(s, tmp_path / "bk", actor="ed")
        assert len(s.list_series()) == n_series
        r = s.write_points(make_points(10, series="brand_new"), name="n.csv", sha256="n", fmt="long")
        assert r.inserted == 10
        assert audit.verify_audit(s)[0]


def _tamper(bk, sql: str) -> None:
    con = duckdb.connect()
    f = str(bk / "audit.parquet")
    df = con.execute(f"SELECT * FROM read_parquet('{f}')").df()
    con.register("a", df)
    con.execute(f"COPY ({sql}) TO '{f}' (FORMAT PARQUET)")
    con.close()


@pytest.mark.parametrize("sql, why", [
    ("SELECT * REPLACE (CASE WHEN seq = 2 THEN 'edited' ELSE reason END AS reason) FROM a", "does not verify"),
    ("SELECT * FROM a WHERE seq < (SELECT max(seq) FROM a)", "do not hold the rows"),
])
def test_an_altered_backup_is_refused_and_nothing_changes(tmp_path, demo_db_bytes, sql, why):
    db = _demo(tmp_path, demo_db_bytes)
    s = Store(db)
    backup(s, tmp_path / "bk")
    s.write_points(make_points(20, series="keep_me"), name="k.csv", sha256="k", fmt="long")
    before = _snapshot(s)
    _tamper(tmp_path / "bk", sql)
    with pytest.raises(StudioError, match=why):
        restore(s, tmp_path / "bk", actor="ed")
    for t in TABLES:
        pd.testing.assert_frame_equal(_snapshot(s)[t], before[t], obj=t)
    s.close()


def test_manifest_head_must_match(tmp_path, demo_db_bytes):
    db = _demo(tmp_path, demo_db_bytes)
    with Store(db) as s:
        backup(s, tmp_path / "bk")
        man = json.loads((tmp_path / "bk" / "manifest.json").read_text())
        man["audit"]["head"] = "0" * 64
        (tmp_path / "bk" / "manifest.json").write_text(json.dumps(man))
        with pytest.raises(StudioError, match="ends at entry"):
            restore(s, tmp_path / "bk", actor="ed")


def test_backup_refuses_a_used_directory_and_a_non_backup(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with Store(tmp_path / "s.duckdb") as s:
        with pytest.raises(StudioError, match="not an empty directory"):
            backup(s, tmp_path / "full")
        with pytest.raises(StudioError, match="not a studio backup"):
            restore(s, tmp_path / "full", actor="ed")
        backup(s, tmp_path / "empty_ok")
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


@pytest.mark.slow
def test_cli_backup_and_restore_need_yes(tmp_path, demo_db_bytes, monkeypatch, capsys):
    from core.__main__ import main

    db = _demo(tmp_path, demo_db_bytes)
    monkeypatch.setenv("STUDIO_USER", "ed")
    monkeypatch.delenv("STUDIO_ROLES", raising=False)
    assert main(["backup", str(tmp_path / "bk"), "--db", str(db)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["restore", str(tmp_path / "bk"), "--db", str(db)]) == 1
    assert "--yes" in capsys.readouterr().out
    with Store(db) as s:
        n = len(audit.list_audit(s))
    assert main(["restore", str(tmp_path / "bk"), "--yes", "--reason", "drill", "--db", str(db)]) == 0
    assert "restored" in capsys.readouterr().out
    with Store(db) as s:
        assert len(audit.list_audit(s)) == n + 1
    assert main(["restore", str(tmp_path / "nope"), "--yes", "--db", str(db)]) == 2
    assert "not a studio backup" in capsys.readouterr().err
