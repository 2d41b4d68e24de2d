"""Demo generator: determinism, scenarios with observable incidents, real gaps (never zeros), loading."""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import pytest

from core.data.frame import parse_key
from core.data.quality import quality_report
from data.generate import METRICS, SCENARIOS, generate_fleet, service_names, write_demo

T3 = 3 * 1440   # one-minute steps in three days


@pytest.fixture(scope="module")
def fleet():
    return generate_fleet(services=6, days=3, seed=11)


def test_same_seed_same_data_other_seed_differs(fleet):
    pts, inc = fleet
    pts2, inc2 = generate_fleet(services=6, days=3, seed=11)
    pd.testing.assert_frame_equal(pts, pts2)
    pd.testing.assert_frame_equal(inc, inc2)
    pts3, _ = generate_fleet(services=6, days=3, seed=12)
    assert len(pts3) != len(pts) or not np.array_equal(pts3["value"].to_numpy(), pts["value"].to_numpy())


def test_shape_keys_and_types(fleet):
    pts, _ = fleet
    assert list(pts.columns) == ["series", "ts", "value"]
    assert str(pts["ts"].dtype) == "datetime64[ns, UTC]" and pts["value"].dtype == np.float64
    keys = sorted(pts["series"].unique())
    assert len(keys) == 6 * len(METRICS)
    assert 'latency_p95_ms{service="api-gateway"}' in keys
    names = {parse_key(k)[1]["service"] for k in keys}
    assert names == set(service_names(6)) == {"api-gateway", "checkout", "payments", "search", "catalog", "cart"}
    assert pts["ts"].min() == pd.Timestamp("2026-10-01", tz="UTC")
    assert not pts.duplicated(["series", "ts"]).any()
    assert (pts["ts"].diff().dt.total_seconds().dropna().isin([*range(60, 100000, 60)])
            | (pts["series"] != pts["series"].shift()).iloc[1:]).all()


def test_every_scenario_present_with_its_incidents(fleet):
    _, inc = fleet
    scen = inc.attrs["scenarios"]
    assert sorted(scen.values()) == sorted(SCENARIOS)          # six services: each scenario once
    normal = next(s for s, k in scen.items() if k == "normal")
    assert not inc["series"].str.contains(f'service="{normal}"', regex=False).any()
    assert set(inc["kind"]) == set(SCENARIOS) - {"normal"}
    for kind in set(SCENARIOS) - {"normal"}:
        svc = next(s for s, k in scen.items() if k == kind)
        rows = inc[inc["kind"] == kind]
        assert rows["series"].str.contains(f'service="{svc}"', regex=False).all()
        assert (rows["end"] > rows["start"]).all()
    # incidents start after the warm-up (a quarter of the span for a 3-day fleet) so baselines have history
    assert (inc["start"] >= pd.Timestamp("2026-10-01 18:00", tz="UTC")).all()


def _service_of(inc: pd.DataFrame, kind: str) -> str:
    return next(s for s, k in inc.attrs["scenarios"].items() if k == kind)


def test_spike_is_visible_in_the_data(fleet):
    pts, inc = fleet
    svc = _service_of(inc, "spike")
    key = f'latency_p95_ms{{service="{svc}"}}'
    s = pts[pts["series"] == key].set_index("ts")["value"]
    w = inc[(inc["series"] == key)].iloc[0]
    inside = s[w["start"]:w["end"]]
    before = s[w["start"] - pd.Timedelta("6h"):w["start"] - pd.Timedelta("1min")]
    assert len(inside) >= 3
    assert inside.median() > 3 * before.median()               # spike multiplies latency by 4-8


def test_level_shift_persists(fleet):
    pts, inc = fleet
    svc = _service_of(inc, "level_shift")
    key = f'latency_p95_ms{{service="{svc}"}}'
    s = pts[pts["series"] == key].set_index("ts")["value"]
    w = inc[inc["series"] == key].iloc[0]
    day = pd.Timedelta("1D")
    before = s[w["start"] - day:w["start"]]
    after = s[w["end"]:w["end"] + day]
    # the shift is x1.3-1.6 on a daily cycle: compare the same hours a day apart
    assert after.median() / before.median() > 1.2


def test_gaps_are_missing_rows_never_zeros(fleet):
    pts, _ = fleet
    assert len(pts) < 6 * len(METRICS) * T3                    # rows were removed
    assert (pts["value"] == 0).sum() == 0                       # and nothing was zero-filled
    assert np.isinf(pts["value"]).sum() == 0
    rep = quality_report(pts)
    assert (rep["gaps"] > 0).all()                              # every series has gaps
    svc_longest = rep.assign(svc=rep["series"].str.extract(r'service="([^"]*)"', expand=False)) \
        .groupby("svc")["longest_gap_s"].max()
    assert (svc_longest >= 600).all()                           # each service had a >= 10 min outage
    assert rep["nan"].sum() > 0                                 # a few values reported as NaN
    assert (rep["flat_pct"] > 0).sum() == 1                     # the one stuck memory series
    assert (rep["resolution_s"] == 60).all()


def test_metric_subset_equals_full_rows(fleet):
    pts, inc = fleet
    sub, sub_inc = generate_fleet(services=6, days=3, seed=11, metrics=["latency_p95_ms"])
    full = pts[pts["series"].str.startswith("latency_p95_ms")].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub, full)
    assert set(sub_inc["series"]) == {k for k in inc["series"] if k.startswith("latency_p95_ms")}
    with pytest.raises(ValueError):
        generate_fleet(services=2, days=1, metrics=["disk"])


def test_write_demo_loads_the_store(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "core.policy.versions", None)      # isolate from the policy module
    from core.data.store import Store

    out, db = tmp_path / "demo", tmp_path / "demo.duckdb"
    t0 = time.perf_counter()
    summary = write_demo(out, db, services=6, days=2, seed=3)
    elapsed = time.perf_counter() - t0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"{s}.csv" for s in service_names(6)] + ["incidents.csv"])
    pts, inc = generate_fleet(services=6, days=2, seed=3)
    back = pd.read_csv(out / "checkout.csv")
    assert list(back.columns) == ["timestamp", "series", "value"]
    mine = pts[pts["series"].str.contains('service="checkout"', regex=False)]
    assert len(back) == len(mine)
    assert np.allclose(back["value"].to_numpy(), mine["value"].to_numpy(), equal_nan=True)
    assert (pd.to_datetime(back["timestamp"], utc=True).to_numpy() == mine["ts"].to_numpy()).all()
    with Store(db) as s:
        meta = s.list_series().set_index("key")
        assert len(meta) == 6 * len(METRICS) and int(meta["points"].sum()) == len(pts)
        assert meta.loc['latency_p95_ms{service="checkout"}', "kind"] == "histogram_quantile"
        assert meta.loc['request_rate{service="checkout"}', "kind"] == "rate"
        assert meta.loc['request_rate{service="checkout"}', "unit"] == "rps"
        assert meta.loc['cpu_pct{service="checkout"}', "unit"] == "percent"
        stored = s.list_incidents()
        assert len(stored) == len(inc) and set(stored["kind"]) == set(inc["kind"])
        nan_in_db = s.query_one("SELECT count(*) FROM points WHERE value IS NULL")[0]
        assert nan_in_db == int(pts["value"].isna().sum()) > 0
    assert summary["points"] == len(pts) and summary["incidents"] == len(inc)
    write_demo(out, db, services=6, days=2, seed=3)              # again: nothing doubles
    with Store(db) as s:
        assert len(s.list_incidents()) == len(inc)
        assert s.query_one("SELECT count(*) FROM points")[0] == len(pts)
    assert elapsed < 30


def test_cli_main(tmp_path, capsys):
    from data.generate import main

    assert main(["--out", str(tmp_path / "d"), "--services", "2", "--days", "1", "--metrics", "cpu_pct"]) == 0
    assert "2 series" in capsys.readouterr().out
    assert main(["--out", str(tmp_path / "d"), "--services", "2", "--days", "1", "--metrics", "disk"]) == 2


@pytest.mark.bench
def test_benchmark_set_size_and_speed():
    t0 = time.perf_counter()
    pts, _ = generate_fleet(services=100, metrics=["latency_p95_ms"])
    elapsed = time.perf_counter() - t0
    assert 0.97 * 4_320_000 < len(pts) < 4_320_000 and pts["series"].nunique() == 100
    print(f"generate_fleet(100 services, 1 metric): {len(pts):,} rows in {elapsed:.1f} s")


def test_csv_bytes_are_stable(tmp_path):
    """The demo CSVs are a pure function of the seed (hash taken before the writer was optimised)."""
    import hashlib

    write_demo(tmp_path, services=3, days=1, seed=5)
    blob = b"".join((tmp_path / f"{s}.csv").read_bytes() for s in service_names(3))
    assert hashlib.sha256(blob).hexdigest() == "a6751aa383b02021ea4e200a1fe1e23ca39cfec6ea73a361da03874f414efdbb"
