"""Fleet recommendations: serial, local process pool and a Dask ``distributed.LocalCluster`` (each task
reading its Parquet partition exported by DuckDB) give identical results; the ``python -m core recommend`` command prints the documented JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.__main__ import main
from core.alerting.recommend import fleet
from core.alerting.recommend.fleet import recommend_fleet, split_points
from core.alerting.rules import Rule

T0 = pd.Timestamp("2026-01-05", tz="UTC")


def _fleet(n_series: int = 4, n: int = 14 * 1440) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ts = pd.date_range(T0, periods=n, freq="1min")
    frames = []
    for i in range(n_series):
        x = 50 + 10 * i + 5 * rng.standard_normal(n)
        x[rng.choice(n, 40, replace=False)] += 40
        frames.append(pd.DataFrame({"series": f'lat{{host="h{i}"}}', "ts": ts, "value": x}))
    frames.append(pd.DataFrame({"series": "tiny", "ts": ts[:10], "value": np.arange(10.0)}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow
def test_local_pool_and_dask_cluster_give_identical_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    distributed = pytest.importorskip("distributed")
    points = _fleet()
    cur = {'lat{host="h0"}': Rule(name="H0", series='lat{host="h0"}', warning=60.0, critical=90.0)}
    items = split_points(points, None, cur, {"H0": {"min": 55.0}})
    serial = recommend_fleet(items, workers=1)
    pooled = recommend_fleet(items, workers=2)
    shared = tmp_path / "shared"
    read: list[str] = []
    real_read = fleet.read_partition

    def spy(path, **kw):
        read.append(path)
        return real_read(path, **kw)

    monkeypatch.setattr(fleet, "read_partition", spy)        # in-process workers: the tasks' reads are seen
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            seen = []
            on_dask = recommend_fleet(items, scheduler=client, progress=lambda d, t: seen.append((d, t)))
            # a given directory (what a real cluster's shared filesystem would be): partitions under it
            in_dir = recommend_fleet(items, scheduler=client, parquet_dir=str(shared))
        by_address = recommend_fleet(items, scheduler=cluster.scheduler_address)   # what --scheduler does
    assert json.dumps(serial) == json.dumps(pooled) == json.dumps(on_dask) == json.dumps(by_address) \
        == json.dumps(in_dir)
    assert seen[-1] == (5, 5) and len(seen) == 5          # 2 threads x 4 partitions each >= 5 series: one each
    # every task read a Parquet partition (batch=K) exported by DuckDB; the run removed its files afterwards
    assert len(read) == 15 and all("/batch=" in p for p in read)
    assert sum(str(shared) in p for p in read) == 5 and shared.is_dir() and not any(shared.iterdir())
    assert [r["series"] for r in serial] == sorted(points["series"].unique())
    tiny = next(r for r in serial if r["series"] == "tiny")
    assert tiny["warning"] is None and "only 10 finite point(s)" in tiny["insufficient"]
    h0 = serial[0]
    assert h0["rule"] == "H0" and h0["current"]["warning"] == 60.0 and h0["comparison"] is not None


def test_cli_recommend_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    points = _fleet(n_series=2)
    f = tmp_path / "m.csv"
    points.assign(timestamp=points["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))[["timestamp", "series", "value"]] \
        .to_csv(f, index=False)
    assert main(["recommend", str(f), "--json", "--workers", "1", "--db", str(tmp_path / "never.duckdb")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 3 and not (tmp_path / "never.duckdb").exists()
    for key in ("series", "comparator", "warning", "critical", "for_seconds", "predicted_episodes_per_week",
                "predicted_interval", "validation", "confidence", "risk", "rationale"):
        assert key in out[0]
    assert set(out[0]["validation"]) >= {"actual_episodes_per_week", "relative_error"}
    assert main(["recommend", str(f), "--train-fraction", "1.5"]) == 2
    assert "--train-fraction" in capsys.readouterr().err


@pytest.mark.bench
def test_bench_recommend_goals() -> None:
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "bench" / "recommend.py"), "--repeat", "1"],
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    figs = dict(re.findall(r"(\w+_s)=([0-9.]+)", proc.stdout))
    assert float(figs["cpu_fleet_s"]) <= 10.0 and float(figs["cpu_one_s"]) <= 1.0, proc.stdout


def test_cli_recommend_from_the_database(tmp_path: Path, demo_db_bytes: bytes,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "studio.duckdb"
    db.write_bytes(demo_db_bytes)
    assert main(["recommend", "--db", str(db), "--jsonl", "--workers", "1"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(out) == 10                                        # 2 services x 5 metrics
    checkout = next(o for o in out if o["series"] == 'latency_p95_ms{service="checkout"}')
    assert checkout["rule"] == "CheckoutLatencyHigh" and checkout["current"]["warning"] == 450.0
    assert checkout["comparison"]["current"]["total_incidents"] == 1    # the stored incident was used


def test_cli_keep_outages_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A planted 3-hour outage in the fit period is left out by default and kept with --keep-outages."""
    rng = np.random.default_rng(1)
    y = 10 + rng.standard_normal(6 * 2016)
    y[3000:3036] += 30.0
    ts = pd.date_range("2026-01-05", periods=y.size, freq="5min", tz="UTC")
    f = tmp_path / "m.csv"
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "series": "s", "value": y}).to_csv(f, index=False)
    got = {}
    for flag in ([], ["--keep-outages"]):
        assert main(["recommend", str(f), "--jsonl", "--workers", "1", "--db", str(tmp_path / "x.duckdb"), *flag]) == 0
        got[bool(flag)] = json.loads(capsys.readouterr().out.splitlines()[0])
    assert got[False]["outage_points"] >= 36 and got[True]["outage_points"] == 0
    assert got[False]["critical"] < 20 < 35 < got[True]["critical"]
