"""Seeded demo fleet: services x metrics at one-minute resolution with labelled incidents.

``python -m data.generate --out data/demo --db data/studio.duckdb [--services 12] [--days 30] [--seed 7]``

Each service reports five metrics (series keys like ``latency_p95_ms{service="checkout"}``):

================ ================== =======
metric           kind               unit
================ ================== =======
latency_p95_ms   histogram_quantile ms
error_rate_pct   gauge              percent
cpu_pct          gauge              percent
memory_pct       gauge              percent
request_rate     rate               rps
================ ================== =======

Signals have a daily cycle (peak in the service's afternoon), a weekly cycle (quieter weekends), a
slow trend over the whole span, noise, and for memory a leak that a restart resets every few days.
Each service follows one scenario; every scenario except ``normal`` carries labelled incidents:

``normal``       no incident.
``degradation``  latency, errors and CPU ramp up slowly over 4-10 h, then are fixed.
``spike``        a 5-20 min burst: latency x4-8, errors +5-15 points, CPU +20.
``recovery``     an outage (errors 20-40 %, latency x3, traffic -40 %) that decays back
                 exponentially (time constant 30-90 min); the window covers four time constants.
``oscillating``  latency and errors flap with a 10-30 min period for 2-6 h.
``level_shift``  a deploy raises latency x1.3-1.6, CPU +5-10 and memory +5 for good; the window
                 is the 30 min around the change.

Data gaps are missing rows, never zeros: scattered missing minutes (about 0.05 % per series) and
one to three scrape outages per service (10 min to 3 h, all metrics of the service). Planted
data-quality flaws for the quality report to find: one ``memory_pct`` series is stuck (flat) for
3 h, one service's exporter is flaky (8 % of its minutes missing), one ``error_rate_pct`` series
has 30 values reported as missing (NaN; empty cells in the CSV). Outages are kept clear of
incident windows so every labelled incident is observable.

Row count: ``services x len(metrics) x days x 1440`` at one minute, minus the gaps (about 1 %):
the default demo has about 2.6M points; ``generate_fleet(services=100, metrics=["latency_p95_ms"])``
gives the 4.32M-row benchmark set (100 series x 30 days), ``services=100`` with all five metrics
21.6M rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.data.frame import make_key, ts_ns
from core.errors import StudioError

DEFAULT_START = "2026-10-01T00:00:00Z"
SERVICE_NAMES = (
    "api-gateway", "checkout", "payments", "search", "catalog", "cart", "auth", "inventory", "shipping",
    "notifications", "recommendations", "user-profile", "orders", "reviews", "pricing", "fraud-check",
    "email", "media", "analytics", "billing",
)
#: metric name -> (kind, unit)
METRICS: dict[str, tuple[str, str]] = {
    "latency_p95_ms": ("histogram_quantile", "ms"),
    "error_rate_pct": ("gauge", "percent"),
    "cpu_pct": ("gauge", "percent"),
    "memory_pct": ("gauge", "percent"),
    "request_rate": ("rate", "rps"),
}
SCENARIOS = ("normal", "degradation", "spike", "recovery", "oscillating", "level_shift")
#: metrics an incident of each scenario visibly affects (the series its label is attached to)
AFFECTED = {
    "degradation": ("latency_p95_ms", "error_rate_pct", "cpu_pct"),
    "spike": ("latency_p95_ms", "error_rate_pct", "cpu_pct"),
    "recovery": ("latency_p95_ms", "error_rate_pct", "request_rate"),
    "oscillating": ("latency_p95_ms", "error_rate_pct"),
    "level_shift": ("latency_p95_ms", "cpu_pct", "memory_pct"),
}
DECIMALS = {"latency_p95_ms": 1, "error_rate_pct": 3, "cpu_pct": 2, "memory_pct": 2, "request_rate": 2}
INCIDENTS_FILE = "incidents.csv"
DEMO_ACTOR = "demo-generator"   # who the audit trail names for every write of write_demo


def service_names(n: int) -> list[str]:
    """``n`` service names: the named ones first, then ``svc-020``, ``svc-021``, ..."""
    return [SERVICE_NAMES[i] if i < len(SERVICE_NAMES) else f"svc-{i:03d}" for i in range(n)]


def _place_windows(rng: np.random.Generator, n: int, lo: int, hi: int, length: np.ndarray) -> list[int]:
    """Start indices of ``n`` windows in ``[lo, hi)``, one per equal segment (so they never overlap)."""
    edges = np.linspace(lo, hi, n + 1).astype(np.int64)
    starts = []
    for k in range(n):
        room = max(int(edges[k + 1] - edges[k] - length[k]), 1)
        starts.append(int(edges[k] + rng.integers(0, room)))
    return starts


def generate_fleet(services: int = 12, days: float = 30, seed: int = 7, freq: str = "1min", *,
                   start: Any = DEFAULT_START, metrics: Sequence[str] | None = None,
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the demo fleet in memory.

    Parameters
    ----------
    services : int
        Number of services (names from :data:`SERVICE_NAMES`, then ``svc-NNN``).
    days : float
        Length of the data in days.
    seed : int
        Seed of the only random generator used: the same arguments give an identical result.
    freq : str
        Sampling step (pandas offset, e.g. ``"1min"``, ``"5min"``).
    start : timestamp-like
        First timestamp (UTC). Fixed by default so the output does not depend on the clock.
    metrics : sequence of str, optional
        Subset of :data:`METRICS` to emit (default all five). The signals are generated the same
        way whatever the subset, so a subset's rows equal the full fleet's rows for those metrics.

    Returns
    -------
    points : DataFrame
        Points frame ``series, ts, value`` ordered by service, metric, time. Gaps are absent rows.
    incidents : DataFrame
        ``series, start, end, kind, note``: one row per affected series and incident window.
    """
    if services < 1 or days <= 0:
        raise ValueError("services must be >= 1 and days > 0")
    wanted = list(METRICS) if metrics is None else list(metrics)
    unknown = sorted(set(wanted) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; expected some of {list(METRICS)}")
    rng = np.random.default_rng(seed)
    # scenario per service, drawn first so it depends only on (services, seed); with >= 6
    # services every scenario occurs (the permutation hits every residue modulo 6)
    order = rng.permutation(int(services))
    scen = [SCENARIOS[int(o) % len(SCENARIOS)] for o in order]
    step_s = pd.Timedelta(freq).total_seconds()
    T = int(round(days * 86400 / step_s))
    S = int(services)
    ts = pd.date_range(pd.Timestamp(start), periods=T, freq=pd.Timedelta(seconds=step_s))
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    names = service_names(S)
    per_min = 60.0 / step_s  # steps per minute

    # ---- per-service parameters (shape (S, 1) to broadcast against time)
    def col(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, size=(S, 1))

    base_rps = np.exp(col(np.log(20), np.log(2000)))
    phase_h = col(-2.0, 2.0)
    daily_amp = col(0.3, 0.6)
    weekend_drop = col(0.15, 0.35)
    trend = col(-0.10, 0.15)
    base_lat = col(40.0, 400.0)
    base_err = col(0.05, 0.8)
    cpu_base, cpu_load = col(8.0, 25.0), col(20.0, 40.0)
    mem_base, leak_per_day = col(30.0, 50.0), col(0.5, 2.5)
    restart_days, restart_offset = rng.integers(3, 8, size=(S, 1)), col(0.0, 7.0)

    t_days = (np.arange(T) * step_s / 86400.0)[None, :]
    hour = np.asarray(ts.hour + ts.minute / 60.0 + ts.second / 3600.0, dtype=np.float64)[None, :]
    weekend = np.asarray(ts.day_of_week >= 5)[None, :]
    load = (1.0 + daily_amp * np.sin(2 * np.pi * (hour - 8.0 - phase_h) / 24.0))
    load = load * np.where(weekend, 1.0 - weekend_drop, 1.0) * (1.0 + trend * t_days / days)

    noise = {m: rng.standard_normal((S, T)) for m in METRICS}
    rps = base_rps * load * (1.0 + 0.04 * noise["request_rate"])
    cpu = cpu_base + cpu_load * load / (1.0 + daily_amp) + 1.5 * noise["cpu_pct"]
    lat = base_lat * (1.0 + 0.25 * (load - 1.0)) * np.exp(0.08 * noise["latency_p95_ms"])
    tail = rng.random((S, T)) < 0.002
    lat = np.where(tail, lat * rng.uniform(1.4, 2.0, size=(S, T)), lat)
    err = base_err * (1.0 + 0.5 * (load - 1.0)) * np.exp(0.3 * noise["error_rate_pct"])
    mem = mem_base + leak_per_day * np.mod(t_days + restart_offset, restart_days) + 0.4 * noise["memory_pct"]

    # ---- scenarios and incidents
    warm = int(min(2 * 86400 / step_s, 0.25 * T))  # leave history before the first incident
    n_inc = 2 if days >= 10 else 1
    incidents: list[tuple[int, int, int, str, str]] = []  # (service, a, b, scenario, note)
    busy = np.zeros((S, T), dtype=bool)
    idx = np.arange(T)
    for s, kind in enumerate(scen):
        if kind == "normal":
            continue
        if kind == "degradation":
            length = rng.uniform(4, 10, n_inc) * 60 * per_min
        elif kind == "spike":
            length = rng.uniform(5, 20, n_inc) * per_min
        elif kind == "recovery":
            tau = rng.uniform(30, 90, n_inc) * per_min
            length = 4 * tau
        elif kind == "oscillating":
            length = rng.uniform(2, 6, n_inc) * 60 * per_min
        else:  # level_shift: windows are the 30 min around the change
            length = np.full(n_inc, 30 * per_min)
        length = np.maximum(length.astype(np.int64), 1)
        for k, a in enumerate(_place_windows(rng, n_inc, warm, T, length)):
            b = min(a + int(length[k]), T - 1)
            seg = slice(a, b + 1)
            x = (idx[seg] - a) / max(b - a, 1)  # 0..1 through the window
            if kind == "degradation":
                peak = rng.uniform(1.8, 3.0)
                lat[s, seg] *= 1.0 + (peak - 1.0) * x
                err[s, seg] *= 1.0 + 2.0 * x
                cpu[s, seg] += 10.0 * x
                note = f"latency ramps to x{peak:.1f} over {(b - a) / per_min / 60:.1f} h"
            elif kind == "spike":
                mult, extra = rng.uniform(4, 8), rng.uniform(5, 15)
                lat[s, seg] *= mult
                err[s, seg] += extra
                cpu[s, seg] += 20.0
                note = f"latency x{mult:.1f}, errors +{extra:.1f} points for {(b - a + 1) / per_min:.0f} min"
            elif kind == "recovery":
                decay = np.exp(-(idx[a:] - a) / tau[k])
                peak_err = rng.uniform(20, 40)
                err[s, a:] += peak_err * decay
                lat[s, a:] *= 1.0 + 2.0 * decay
                rps[s, a:] *= 1.0 - 0.4 * decay
                note = f"outage (errors {peak_err:.0f} %) recovering with time constant {tau[k] / per_min:.0f} min"
            elif kind == "oscillating":
                period = rng.uniform(10, 30) * per_min
                amp = rng.uniform(0.8, 1.5)
                wave = (np.mod(idx[seg] - a, period) < period / 2).astype(np.float64)
                lat[s, seg] *= 1.0 + amp * wave
                err[s, seg] *= 1.0 + 3.0 * amp * wave
                note = f"flapping every {period / per_min:.0f} min for {(b - a) / per_min / 60:.1f} h"
            else:
                shift = rng.uniform(1.3, 1.6)
                mid = a + (b - a) // 2
                lat[s, mid:] *= shift
                cpu[s, mid:] += rng.uniform(5, 10)
                mem[s, mid:] += 5.0
                note = f"deploy at {ts[mid].isoformat()}: latency x{shift:.2f} from then on"
            busy[s, max(a - int(60 * per_min), 0):b + 1] = True
            incidents.append((s, a, b, kind, note))

    # ---- data gaps: rows removed, never zero-filled
    keep = {m: rng.random((S, T)) >= 0.0005 for m in METRICS}
    outage = np.zeros((S, T), dtype=bool)
    for s in range(S):
        for _ in range(int(rng.integers(1, 4))):
            length = int(rng.uniform(10, 180) * per_min)
            for _try in range(20):
                a = int(rng.integers(0, max(T - length, 1)))
                if not busy[s, a:a + length].any():
                    outage[s, a:a + length] = True
                    break
    # a flaky exporter: one service loses 8 % of its minutes at random (grade C in the quality report)
    flaky_s = int(rng.integers(0, S))
    flaky = rng.random(T) < 0.08
    for m in METRICS:
        keep[m][flaky_s] &= ~flaky
    # a stuck exporter: one memory_pct series (not the flaky service's) repeats one value for 3 h,
    # placed where no incident or outage is and with no missing minute inside
    stuck_s = int((flaky_s + 1 + rng.integers(0, max(S - 1, 1))) % S)
    stuck_len = min(int(180 * per_min), T)
    blocked = np.r_[0, np.cumsum(busy[stuck_s] | outage[stuck_s])]
    free = np.flatnonzero(blocked[stuck_len:] - blocked[:-stuck_len] == 0)
    stuck_a = int(free[rng.integers(0, free.size)]) if free.size else 0
    keep["memory_pct"][stuck_s, stuck_a:stuck_a + stuck_len] = True
    values = {
        "latency_p95_ms": np.maximum(lat, 0.1),
        "error_rate_pct": np.clip(err, 0.0, 100.0),
        "cpu_pct": np.clip(cpu, 0.0, 100.0),
        "memory_pct": np.clip(mem, 0.0, 100.0),
        "request_rate": np.maximum(rps, 0.0),
    }
    values["memory_pct"][stuck_s, stuck_a:stuck_a + stuck_len] = values["memory_pct"][stuck_s, stuck_a]
    # a few values reported as missing (NaN, written as empty CSV cells) in one series
    nan_s = int(rng.integers(0, S))
    values["error_rate_pct"][nan_s, rng.choice(T, size=min(30, T), replace=False)] = np.nan

    # ---- assemble: service-major, then metric, then time
    t_ns = ts.as_unit("ns").asi8
    keys, counts, ts_parts, val_parts = [], [], [], []
    for s in range(S):
        present = ~outage[s]
        for m in wanted:
            mask = keep[m][s] & present
            keys.append(make_key(m, {"service": names[s]}))
            counts.append(int(mask.sum()))
            ts_parts.append(t_ns[mask])
            val_parts.append(np.round(values[m][s, mask], DECIMALS[m]))
    points = pd.DataFrame({
        "series": np.repeat(np.array(keys, dtype=object), counts),
        "ts": pd.to_datetime(np.concatenate(ts_parts), unit="ns", utc=True),
        "value": np.concatenate(val_parts).astype(np.float64),
    })

    rows = []
    for s, a, b, kind, note in incidents:
        for m in AFFECTED[kind]:
            if m in wanted:
                rows.append((make_key(m, {"service": names[s]}), ts[a], ts[b], kind, note))
    inc = pd.DataFrame(rows, columns=["series", "start", "end", "kind", "note"])
    inc["series"] = inc["series"].astype(object)
    inc["start"] = pd.to_datetime(inc["start"], utc=True)
    inc["end"] = pd.to_datetime(inc["end"], utc=True)
    inc.attrs["scenarios"] = dict(zip(names, scen, strict=True))
    return points, inc


class _CsvWriter:
    """Writes long CSVs ``timestamp,series,value`` fast: each distinct timestamp, series key and value
    is formatted once.

    The bytes equal ``DataFrame.to_csv(index=False)`` of the same columns with ISO 8601 UTC
    timestamps (series keys quoted because they contain double quotes). Values are written with
    ``repr`` (the shortest text that parses back to the same float64, so ingesting the CSV gives
    bit-identical values); NaN and infinities are written as empty cells.
    """

    def __init__(self, points: pd.DataFrame) -> None:
        self.grid = np.unique(ts_ns(points["ts"]))
        self.text = pd.to_datetime(self.grid, unit="ns", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.text = self.text.to_numpy(dtype=object)

    @staticmethod
    def _field(k: str) -> str:
        return '"' + k.replace('"', '""') + '"' if ('"' in k or "," in k) else k

    def write(self, df: pd.DataFrame, path: Path) -> None:
        ts_text = self.text[np.searchsorted(self.grid, ts_ns(df["ts"]))]
        # factorize (hashing, first-seen order) instead of np.unique (sorting Python strings)
        key_code, keys = pd.factorize(df["series"].to_numpy(dtype=object))
        middle = np.array(["," + self._field(str(k)) + "," for k in keys], dtype=object)
        # values: factorize the float64 bit patterns (so -0.0 and 0.0 stay distinct) and format
        # each distinct value once; the demo's rounded values repeat a lot
        v = np.ascontiguousarray(df["value"].to_numpy(dtype=np.float64))
        val_code, uniq_bits = pd.factorize(v.view(np.int64))
        uniq = np.asarray(uniq_bits, dtype=np.int64).view(np.float64)
        val_text = np.array([repr(x) for x in uniq.tolist()], dtype=object)
        val_text[~np.isfinite(uniq)] = ""
        lines = ts_text + middle[key_code] + val_text[val_code]
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write("timestamp,series,value\n")
            if len(lines):
                f.write("\n".join(lines))
                f.write("\n")


def write_demo(out_dir: str | Path = "data/demo", db: str | Path | None = None, *, services: int = 12,
               days: float = 30, seed: int = 7, freq: str = "1min", metrics: Sequence[str] | None = None,
               start: Any = DEFAULT_START, verbose: bool = False, actor: str = DEMO_ACTOR) -> dict[str, Any]:
    """Write the demo CSVs (one per service + ``incidents.csv``) and, with ``db``, load them.

    Loading goes through ``Store.ingest`` on each CSV (the real upload path), then sets each
    series' kind and unit, imports the incidents (replacing an earlier demo import) and calls
    ``core.policy.versions.seed_demo_policy(store)`` when that exists. Every write is audited as ``actor``
    (default ``"demo-generator"``). Returns a summary dict.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points, inc = generate_fleet(services, days, seed, freq, start=start, metrics=metrics)
    t_gen = time.perf_counter() - t0
    names = service_names(services)
    files = []
    # series keys are service-major, so each service's rows are one contiguous block
    writer = _CsvWriter(points)
    svc = points["series"].str.extract(r'service="([^"]*)"', expand=False).to_numpy()
    bounds = np.flatnonzero(svc[1:] != svc[:-1]) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(points)], strict=True):
        path = out / f"{svc[a]}.csv"
        writer.write(points.iloc[a:b], path)
        files.append(path)
    inc_out = inc.copy()
    for c in ("start", "end"):
        inc_out[c] = inc_out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    inc_path = out / INCIDENTS_FILE
    inc_out.to_csv(inc_path, index=False)
    t_csv = time.perf_counter() - t0 - t_gen
    summary: dict[str, Any] = {
        "out_dir": str(out), "services": names, "scenarios": inc.attrs["scenarios"],
        "points": len(points), "series": int(points["series"].nunique()), "incidents": len(inc),
        "files": [str(f) for f in files] + [str(inc_path)], "seconds_generate": round(t_gen, 2),
        "seconds_csv": round(t_csv, 2),
    }
    if verbose:
        print(f"generated {len(points):,} points in {t_gen:.1f} s; wrote {len(files) + 1} CSVs in {t_csv:.1f} s")
    if db is not None:
        from core.data.incidents import import_incidents
        from core.data.store import Store

        t1 = time.perf_counter()
        store = Store(db)
        try:
            reports = [store.ingest(f, actor=actor) for f in files]
            for key in pd.unique(points["series"]):
                kind, unit = METRICS[key.split("{", 1)[0]]
                store.set_series_meta(key, unit=unit, kind=kind, actor=actor)
            import_incidents(store, inc_path, name=f"demo/{INCIDENTS_FILE}", replace=True, actor=actor)
            policy = None
            try:
                from core.policy.versions import seed_demo_policy

                policy = seed_demo_policy(store, actor=actor)
            except (ImportError, AttributeError):
                pass
        finally:
            store.close()
        summary.update(db=str(db), uploads=[r.summary() for r in reports], policy=policy is not None,
                       seconds_load=round(time.perf_counter() - t1, 2))
        if verbose:
            print(f"loaded into {db} in {summary['seconds_load']:.1f} s "
                  f"({sum(r.accepted for r in reports):,} points accepted)")
    summary["seconds_total"] = round(time.perf_counter() - t0, 2)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data.generate", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/demo", help="directory for the CSVs (default data/demo)")
    p.add_argument("--db", default=None, help="also load into this database (e.g. data/studio.duckdb)")
    p.add_argument("--services", type=int, default=12)
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--freq", default="1min")
    p.add_argument("--metrics", default=None, help=f"comma-separated subset of {','.join(METRICS)}")
    args = p.parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    try:
        s = write_demo(args.out, args.db, services=args.services, days=args.days, seed=args.seed,
                       freq=args.freq, metrics=metrics, verbose=True)
    except (ValueError, OSError, StudioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{s['series']} series, {s['points']:,} points, {s['incidents']} incident rows in {s['out_dir']} "
          f"({s['seconds_total']:.1f} s)")
    for svc, kind in s["scenarios"].items():
        print(f"  {svc:<18} {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
