"""Benchmark: ``Store.ingest`` of a 4.32M-row long CSV against DuckDB's bare ``read_csv``.

Builds (or reuses) ``data/bench/long_100x43200.csv``: 100 series x 43,200 one-minute points,
seeded, columns ``timestamp,series,value`` (ISO 8601 UTC timestamps, Prometheus-style keys).
Times, best of ``--repeat`` runs, each into a fresh database file:

* ``read_csv``: ``CREATE TABLE t AS SELECT * FROM read_csv(file)`` (DuckDB alone), and
* ``ingest``: ``Store.ingest(file)`` (validation, series rows, duplicate and overlap checks, points).

Prints both figures and their ratio (goal: ratio <= 1.5). Run as ``python bench/ingest.py``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / "data" / "bench"
N_SERIES = 100
N_POINTS = 43_200


def build_file(path: Path, n_series: int = N_SERIES, n_points: int = N_POINTS, seed: int = 42) -> Path:
    """Write the seeded long CSV (if absent) and return its path."""
    if path.exists() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-01-01", periods=n_points, freq="1min", tz="UTC")
    stamp = np.asarray(ts.strftime("%Y-%m-%dT%H:%M:%SZ"), dtype=object)
    frames = []
    for i in range(n_series):
        level = 50.0 + 10.0 * i
        vals = np.round(level + 5.0 * rng.standard_normal(n_points), 4)
        frames.append(pd.DataFrame({"timestamp": stamp, "series": f'svc_latency_ms{{host="h{i:03d}"}}',
                                    "value": vals}))
    df = pd.concat(frames, ignore_index=True)
    tmp = path.with_suffix(".tmp")
    con = duckdb.connect()
    con.register("_df", df)
    con.execute("COPY _df TO '" + str(tmp).replace("'", "''") + "' (HEADER, DELIMITER ',')")
    con.close()
    tmp.rename(path)
    return path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)   # all threads of this process, DuckDB's included
    return r.ru_utime + r.ru_stime


def time_read_csv(csv_path: Path, workdir: Path) -> tuple[float, float]:
    db = workdir / f"bare_{time.monotonic_ns()}.duckdb"
    con = duckdb.connect(str(db))
    t0, c0 = time.perf_counter(), _cpu()
    con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?)", [str(csv_path)])
    con.execute("CHECKPOINT")
    dt, dc = time.perf_counter() - t0, _cpu() - c0
    n = con.execute("SELECT count(*) FROM t").fetchone()[0]
    con.close()
    assert n > 0
    return dt, dc


def time_ingest(csv_path: Path, workdir: Path) -> tuple[float, float, object]:
    from core.store import Store

    db = workdir / f"ingest_{time.monotonic_ns()}.duckdb"
    store = Store(db)
    t0, c0 = time.perf_counter(), _cpu()
    report = store.ingest(csv_path)
    store._con.execute("CHECKPOINT")
    dt, dc = time.perf_counter() - t0, _cpu() - c0
    profile = dict(getattr(store, "last_bulk_profile", {}) or {})
    profile["commit+checkpoint+other"] = dt - sum(profile.values())
    store.close()
    return dt, dc, (report, profile)


def run(repeat: int = 3, csv_path: Path | None = None) -> dict[str, float]:
    csv_path = csv_path or build_file(BENCH_DIR / f"long_{N_SERIES}x{N_POINTS}.csv")
    size_mb = csv_path.stat().st_size / 1e6
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        work = Path(tmp)
        bare, ing, bare_cpu, ing_cpu, report, best_profile = [], [], [], [], None, {}
        for _ in range(repeat):  # alternate, so a busy machine slows both alike
            dt, dc = time_read_csv(csv_path, work)
            bare.append(dt)
            bare_cpu.append(dc)
            dt, dc, (report, profile) = time_ingest(csv_path, work)
            ing.append(dt)
            ing_cpu.append(dc)
            if dt == min(ing):
                best_profile = profile
    res = {"file_mb": size_mb, "read_csv_s": min(bare), "ingest_s": min(ing)}
    res["ratio"] = res["ingest_s"] / res["read_csv_s"]
    res["cpu_ratio"] = min(ing_cpu) / min(bare_cpu)
    print(f"file: {csv_path} ({size_mb:.0f} MB)")
    print(f"rows: {report.rows:,}  accepted: {report.accepted:,}  series: {report.series_count}")
    print(f"duckdb read_csv into a table: best of {repeat} = {res['read_csv_s']:.3f} s  (all: "
          + ", ".join(f"{x:.3f}" for x in bare) + ")")
    print(f"Store.ingest:                 best of {repeat} = {res['ingest_s']:.3f} s  (all: "
          + ", ".join(f"{x:.3f}" for x in ing) + ")")
    print(f"ratio ingest / read_csv = {res['ratio']:.2f}  (goal <= 1.5);  CPU-time ratio = {res['cpu_ratio']:.2f} "
          f"(CPU s: read_csv {min(bare_cpu):.2f}, ingest {min(ing_cpu):.2f}; steadier on a busy machine)")
    print("profile of the best Store.ingest run (s): "
          + ", ".join(f"{k} {v:.3f}" for k, v in best_profile.items()))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--file", type=Path, default=None, help="use this long CSV instead of the generated one")
    args = ap.parse_args(argv)
    run(args.repeat, args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
