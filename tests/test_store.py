"""Store: migrations, upsert semantics, atomicity, parameterised queries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import IngestError, NotFound
from core.store import Store
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
    assert store.delete_upload(r.upload_id) == 10
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
    from core.audit import list_audit, verify_audit

    r = store.write_points(make_points(5), name="a.csv", sha256="aud", fmt="long", actor="alice")
    store.delete_upload(r.upload_id, actor="bob")
    log = list_audit(store)
    actions = sorted(log["action"].tolist())
    assert len(actions) == 2 and any("upload" in a and "delete" not in a for a in actions)
    assert set(log["actor"]) == {"alice", "bob"}
    ok, broken, _ = verify_audit(store)
    assert ok and broken is None


def test_series_meta_change_is_audited(store):
    from core.audit import list_audit

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
