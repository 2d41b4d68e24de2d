"""Store: migrations, upsert semantics, atomicity, parameterised queries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.store import Store
from core.errors import IngestError, NotFound
from tests.conftest import make_points


def test_migrations_applied_once(tmp_path):
    path = tmp_path / "m.duckdb"
    s = Store(path)
    v = s.schema_version
    assert v == max(n for n, _, _ in Store.migrations())
    s.close()
    s2 = Store(path)
    assert s2.migrate() == []
    assert s2.schema_version == v
    s2.close()


def test_upsert_counts_and_uniqueness(store):
    a = make_points(100, series="a")
    r1 = store.write_points(a, name="a.csv", sha256="1", fmt="long")
    assert (r1.inserted, r1.updated, r1.unchanged, r1.rejected) == (100, 0, 0, 0)
    b = a.iloc[50:].copy()
    b["value"] = b["value"].to_numpy() + np.r_[np.ones(25), np.zeros(25)]
    extra = make_points(10, series="a", start="2026-01-01 01:40")  # 10 new minutes after the first 100
    r2 = store.write_points(pd.concat([b, extra]), name="b.csv", sha256="2", fmt="long")
    assert (r2.inserted, r2.updated, r2.unchanged) == (10, 25, 25)
    n, distinct = store.query_one("SELECT count(*), count(DISTINCT (series_id, ts)) FROM points")
    assert n == distinct == 110


def test_same_file_twice_is_noop(store):
    a = make_points(10)
    store.write_points(a, name="a.csv", sha256="same", fmt="long")
    r = store.write_points(a, name="a.csv", sha256="same", fmt="long")
    assert r.is_noop and r.duplicate_of is not None
    assert len(store.list_uploads()) == 1


def test_repeated_rows_in_one_file_are_rejected_last_kept(store):
    a = make_points(5)
    dup = a.iloc[[2]].assign(value=-1.0)
    r = store.write_points(pd.concat([a, dup]), name="d.csv", sha256="d", fmt="long")
    assert r.rejected == 1 and r.accepted == 5
    got = store.get_points("m")
    assert got["value"].iloc[2] == -1.0


def test_nan_is_kept_as_missing_and_gaps_not_filled(store):
    a = make_points(10)
    a.loc[3, "value"] = np.nan
    a = a.drop(index=[6, 7])
    store.write_points(a, name="n.csv", sha256="n", fmt="long")
    got = store.get_points("m")
    assert len(got) == 8
    assert np.isnan(got["value"].iloc[3])
    q = store.quantiles("m", [0.5])
    assert q["n"].iloc[0] == 7  # NaN not counted


def test_failure_mid_write_leaves_nothing(store, monkeypatch):
    store.write_points(make_points(10, series="keep"), name="k", sha256="k", fmt="long")
    before = store.query_one("SELECT count(*) FROM points")[0]

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_audit_hook", boom)  # called last, inside the transaction
    with pytest.raises(RuntimeError):
        store.write_points(make_points(1000, series="new"), name="x", sha256="x", fmt="long")
    assert store.query_one("SELECT count(*) FROM points")[0] == before
    assert store.series_keys() == ["keep"]
    assert len(store.list_uploads()) == 1


def test_delete_upload_and_series(store):
    r = store.write_points(make_points(10, series="a"), name="a", sha256="a", fmt="long")
    store.write_points(make_points(10, series="b"), name="b", sha256="b", fmt="long")
    assert store.delete_upload(r.upload_id).removed == 10
    assert store.series_keys() == ["b"]
    assert store.delete_series("b") == 10
    with pytest.raises(NotFound):
        store.delete_series("b")


def test_quantiles_are_exact_from_raw_points(store):
    a = make_points(1000, seed=3)
    store.write_points(a, name="q", sha256="q", fmt="long")
    got = store.quantiles("m", [0.5, 0.95])
    assert got["q0.95"].iloc[0] == pytest.approx(np.quantile(a["value"], 0.95))
    assert got["q0.5"].iloc[0] == pytest.approx(np.median(a["value"]))


def test_sql_injection_in_key_is_inert(store):
    key = "x'); DROP TABLE points; --"
    store.write_points(make_points(3, series=key), name="i", sha256="i", fmt="long")
    assert len(store.get_points(key)) == 3


def test_incidents_roundtrip_and_validation(store):
    inc = pd.DataFrame({"series": ["m", None], "start": ["2026-01-01T00:10Z", "2026-01-01T01:00Z"],
                        "end": ["2026-01-01T00:20Z", "2026-01-01T01:05Z"], "kind": ["spike", None]})
    assert store.add_incidents(inc, source="inc.csv") == 2
    assert len(store.list_incidents("m")) == 2
    assert len(store.list_incidents("other")) == 1  # the global one
    bad = inc.assign(end=["2025-01-01T00:00Z", "2026-01-01T01:05Z"])
    with pytest.raises(IngestError) as ei:
        store.add_incidents(bad, source="bad.csv")
    assert ei.value.row == 2 and ei.value.column == "end"
    assert len(store.list_incidents()) == 2


def test_store_writes_are_audited_on_open(store):
    from core.data.store.audit import list_audit, verify_audit

    r = store.write_points(make_points(5), name="a.csv", sha256="aud", fmt="long", actor="alice")
    store.delete_upload(r.upload_id, actor="bob")
    log = list_audit(store)
    actions = sorted(log["action"].tolist())
    assert len(actions) == 2 and any("upload" in a and "delete" not in a for a in actions)
    assert set(log["actor"]) == {"alice", "bob"}
    ok, broken, _ = verify_audit(store)
    assert ok and broken is None


def test_series_meta_change_is_audited(store):
    from core.data.store.audit import list_audit

    store.write_points(make_points(5), name="a.csv", sha256="meta", fmt="long")
    store.set_series_meta("m", unit="ms", kind="histogram_quantile", actor="carol")
    store.set_series_meta("m", unit="ms", actor="carol")  # no change: nothing recorded
    log = list_audit(store)
    meta = log[log["action"].str.contains("series_meta")]
    assert len(meta) == 1 and meta["actor"].iloc[0] == "carol"
    row = store.list_series().iloc[0]
    assert (row["unit"], row["kind"]) == ("ms", "histogram_quantile")


def test_delete_incidents_counts_only_existing(store):
    inc = pd.DataFrame({"series": ["m"], "start": ["2026-01-01T00:10Z"], "end": ["2026-01-01T00:20Z"]})
    store.add_incidents(inc, source="i.csv")
    iid = int(store.list_incidents()["id"].iloc[0])
    assert store.delete_incidents([iid, 999]) == 1
    assert store.delete_incidents([iid]) == 0
    assert store.list_incidents().empty


def test_migration_003_dedupes_old_uploads_then_makes_sha256_unique(tmp_path):
    """A database from before 003 with the same file recorded twice opens fine: the oldest record is
    kept, points of the copy move to it, and a third record of that content is refused."""
    path = tmp_path / "old.duckdb"
    before_003 = [m for m in Store.migrations() if m[0] < 3]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Store, "migrations", staticmethod(lambda: before_003))
        s = Store(path)
    with s:   # written by the code of the time: plain INSERTs into points
        assert s.schema_version == 2
        s.write_points(make_points(3, series="a"), name="a.csv", sha256="same", fmt="long")
        s.query_one("INSERT INTO uploads (sha256, name, format, rows, accepted, rejected, inserted, updated, "
                    "unchanged, series_count) VALUES ('same', 'a-again.csv', 'long', 3, 3, 0, 0, 0, 3, 1)")
        s.query_one("UPDATE points SET upload_id = 2 WHERE ts = (SELECT min(ts) FROM points)")
        s.write_points(make_points(2, series="b"), name="b.csv", sha256="other", fmt="long")
    with Store(path) as s:
        assert s.schema_version == Store.migrations()[-1][0]   # 003 and every later one
        ups = s.list_uploads().sort_values("id")
        assert ups[["id", "sha256", "name"]].values.tolist() == [[1, "same", "a.csv"], [3, "other", "b.csv"]]
        assert dict(s.query_all("SELECT upload_id, count(*) FROM points GROUP BY upload_id")) == {1: 3, 3: 2}
        import duckdb

        with pytest.raises(duckdb.ConstraintException), s.transaction() as con:
            con.execute("INSERT INTO uploads (sha256, name, format, rows, accepted, rejected, inserted, updated, "
                        "unchanged, series_count) VALUES ('same', 'x', 'long', 0, 0, 0, 0, 0, 0, 0)")


@pytest.mark.parametrize("audited", [True, False])
def test_same_bytes_from_two_stores_at_once_give_one_upload(tmp_path, monkeypatch, audited):
    """Two Store objects on one file, in two threads, upload the same bytes. Both pass the early
    duplicate check and both are inside their write transaction (held there by a barrier) before
    either records the upload: exactly one upload row and one set of points; the other is a no-op.
    Unaudited, only the UNIQUE sha256 (migration 003) stops the second commit; audited, the audit
    sequence may collide first: either way the loser reports the winner's upload."""
    import threading

    barrier = threading.Barrier(2, timeout=20)
    real = Store._insert_series

    calls = []

    def held(self, con, *a, **k):
        calls.append(1)
        if len(calls) <= 2:     # first tries only: both transactions checked for a duplicate, found none
            barrier.wait()
        return real(self, con, *a, **k)

    data = b"timestamp,series,value\n" + b"".join(b"2026-01-01T00:%02d:00Z,m,%d\n" % (i, i) for i in range(20))
    path = tmp_path / "race.duckdb"
    stores = [Store(path), Store(path)]
    # series m exists already, so the two writers collide on the upload record itself (sha256)
    stores[0].write_points(make_points(10, series="m", start="2026-01-02"), name="m0", sha256="m0", fmt="long")
    monkeypatch.setattr(Store, "_insert_series", held)
    if not audited:
        for s in stores:
            s.audit_recorder = None
    reports, errors = [None, None], []

    def go(i):
        try:
            reports[i] = stores[i].ingest(data, name=f"copy{i}.csv")
        except Exception as exc:   # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert errors == []
        assert sorted(r.is_noop for r in reports) == [False, True]
        stored = next(r for r in reports if not r.is_noop)
        assert next(r for r in reports if r.is_noop).duplicate_of == stored.upload_id
        assert stores[0].list_uploads()["name"].tolist().count("m0") == 1
        assert len(stores[0].list_uploads()) == 2
        assert stores[1].query_one("SELECT count(*), count(DISTINCT ts) FROM points") == (30, 30)
    finally:
        for s in stores:
            s.close()


def test_where_builder_skips_absent_filters_and_keeps_parameter_order():
    from core.data.store.sql import where_clause as _where

    assert _where() == ("TRUE", [])
    assert _where(("a = ?", None), ("b >= ?", 0), always=("c IS NOT NULL",)) == (
        "c IS NOT NULL AND b >= ?", [0])
    assert _where(("a = ?", "x"), ("b = ?", None), ("c <= ?", 2)) == ("a = ? AND c <= ?", ["x", 2])


def test_point_and_incident_filters_by_time(store):
    store.write_points(make_points(10, series="a"), name="a", sha256="fa", fmt="long")
    store.write_points(make_points(10, series="b"), name="b", sha256="fb", fmt="long")
    got = store.get_points(["a"], "2026-01-01T00:02Z", "2026-01-01T00:04Z")
    assert got["ts"].dt.minute.tolist() == [2, 3, 4] and set(got["series"]) == {"a"}
    assert len(store.get_points(end="2026-01-01T00:00Z")) == 2
    assert store.quantiles("a", [0.5], start="2026-01-01T00:09Z")["n"].tolist() == [1]
    store.add_incidents(pd.DataFrame({"series": ["a", None, "b"],
                                      "start": ["2026-01-01T00:01Z", "2026-01-01T00:05Z", "2026-01-01T00:00Z"],
                                      "end": ["2026-01-01T00:02Z", "2026-01-01T00:06Z", "2026-01-01T00:09Z"]}),
                        source="m")
    assert len(store.list_incidents("a", start="2026-01-01T00:03Z")) == 1   # the global one only
    assert len(store.list_incidents(end="2026-01-01T00:00Z")) == 1           # b's, touching 00:00
