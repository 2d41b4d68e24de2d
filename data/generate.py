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

Exports that follow a demo (issue 14's story: a newer upload, then an alert storm):
``python -m data.generate --out DIR --continue-days 3 [--shift KEY=FACTOR] [--storm KEY]`` with the demo's
own options writes ``newer.csv`` (:func:`continue_fleet`: every series continued, one shifted) and
``storm.csv`` (:func:`storm_series`); see :func:`write_followups`.
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


def _draw_params(rng: np.random.Generator, S: int) -> dict[str, np.ndarray]:
    """Per-service signal parameters, shape (S, 1), drawn in a fixed order (the demo depends on it)."""
    def col(lo: float, hi: float) -> np.ndarray:
        return rng.uniform(lo, hi, size=(S, 1))

    p = {"base_rps": np.exp(col(np.log(20), np.log(2000)))}
    for name, lo, hi in (("phase_h", -2.0, 2.0), ("daily_amp", 0.3, 0.6), ("weekend_drop", 0.15, 0.35),
                         ("trend", -0.10, 0.15), ("base_lat", 40.0, 400.0), ("base_err", 0.05, 0.8),
                         ("cpu_base", 8.0, 25.0), ("cpu_load", 20.0, 40.0), ("mem_base", 30.0, 50.0),
                         ("leak_per_day", 0.5, 2.5)):
        p[name] = col(lo, hi)
    p["restart_days"] = rng.integers(3, 8, size=(S, 1))
    p["restart_offset"] = col(0.0, 7.0)
    return p


def _signals(p: dict[str, np.ndarray], ts: pd.DatetimeIndex, t_days: np.ndarray, days: float,
             noise: dict[str, np.ndarray], tail: np.ndarray, tail_mult: np.ndarray) -> tuple[np.ndarray, ...]:
    """Incident-free signals (rps, cpu, latency, errors, memory), shape (S, len(ts)). ``t_days``: days since
    the fleet's first timestamp (beyond ``days`` for a continuation: the trend goes on)."""
    hour = np.asarray(ts.hour + ts.minute / 60.0 + ts.second / 3600.0, dtype=np.float64)[None, :]
    weekend = np.asarray(ts.day_of_week >= 5)[None, :]
    load = (1.0 + p["daily_amp"] * np.sin(2 * np.pi * (hour - 8.0 - p["phase_h"]) / 24.0))
    load = load * np.where(weekend, 1.0 - p["weekend_drop"], 1.0) * (1.0 + p["trend"] * t_days / days)
    rps = p["base_rps"] * load * (1.0 + 0.04 * noise["request_rate"])
    cpu = p["cpu_base"] + p["cpu_load"] * load / (1.0 + p["daily_amp"]) + 1.5 * noise["cpu_pct"]
    lat = p["base_lat"] * (1.0 + 0.25 * (load - 1.0)) * np.exp(0.08 * noise["latency_p95_ms"])
    lat = np.where(tail, lat * tail_mult, lat)
    err = p["base_err"] * (1.0 + 0.5 * (load - 1.0)) * np.exp(0.3 * noise["error_rate_pct"])
    mem = (p["mem_base"] + p["leak_per_day"] * np.mod(t_days + p["restart_offset"], p["restart_days"])
           + 0.4 * noise["memory_pct"])
    return rps, cpu, lat, err, mem


def _clip(rps: np.ndarray, cpu: np.ndarray, lat: np.ndarray, err: np.ndarray, mem: np.ndarray,
          ) -> dict[str, np.ndarray]:
    """Signals by metric name, kept inside each metric's physical range."""
    return {
        "latency_p95_ms": np.maximum(lat, 0.1),
        "error_rate_pct": np.clip(err, 0.0, 100.0),
        "cpu_pct": np.clip(cpu, 0.0, 100.0),
        "memory_pct": np.clip(mem, 0.0, 100.0),
        "request_rate": np.maximum(rps, 0.0),
    }


def _assemble(names: Sequence[str], wanted: Sequence[str], ts: pd.DatetimeIndex, values: dict[str, np.ndarray],
              keep: dict[str, np.ndarray]) -> pd.DataFrame:
    """Points frame ``series, ts, value`` (service-major, then metric, then time) of the kept steps."""
    t_ns = ts.as_unit("ns").asi8
    keys, counts, ts_parts, val_parts = [], [], [], []
    for s, name in enumerate(names):
        for m in wanted:
            mask = keep[m][s]
            keys.append(make_key(m, {"service": name}))
            counts.append(int(mask.sum()))
            ts_parts.append(t_ns[mask])
            val_parts.append(np.round(values[m][s, mask], DECIMALS[m]))
    return pd.DataFrame({
        "series": np.repeat(np.array(keys, dtype=object), counts),
        "ts": pd.to_datetime(np.concatenate(ts_parts), unit="ns", utc=True),
        "value": np.concatenate(val_parts).astype(np.float64),
    })


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
    points, inc, _ = _fleet(services, days, seed, freq, start=start, metrics=metrics)
    return points, inc


def _fleet(services: int, days: float, seed: int, freq: str, *, start: Any, metrics: Sequence[str] | None,
           ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """:func:`generate_fleet` plus the state a continuation needs (parameters, lasting effects, steps)."""
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

    # ---- per-service parameters (shape (S, 1) to broadcast against time), then the signals
    p = _draw_params(rng, S)
    t_days = (np.arange(T) * step_s / 86400.0)[None, :]
    noise = {m: rng.standard_normal((S, T)) for m in METRICS}
    tail = rng.random((S, T)) < 0.002
    tail_mult = rng.uniform(1.4, 2.0, size=(S, T))
    rps, cpu, lat, err, mem = _signals(p, ts, t_days, days, noise, tail, tail_mult)

    # ---- scenarios and incidents
    warm = int(min(2 * 86400 / step_s, 0.25 * T))  # leave history before the first incident
    n_inc = 2 if days >= 10 else 1
    incidents: list[tuple[int, int, int, str, str]] = []  # (service, a, b, scenario, note)
    busy = np.zeros((S, T), dtype=bool)
    # effects that last past the fleet's end (a deploy's level shift): a continuation carries them on
    persist = {"lat_mul": np.ones(S), "cpu_add": np.zeros(S), "mem_add": np.zeros(S)}
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
                cpu_add = rng.uniform(5, 10)
                cpu[s, mid:] += cpu_add
                mem[s, mid:] += 5.0
                persist["lat_mul"][s] *= shift
                persist["cpu_add"][s] += cpu_add
                persist["mem_add"][s] += 5.0
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
    values = _clip(rps, cpu, lat, err, mem)
    values["memory_pct"][stuck_s, stuck_a:stuck_a + stuck_len] = values["memory_pct"][stuck_s, stuck_a]
    # a few values reported as missing (NaN, written as empty CSV cells) in one series
    nan_s = int(rng.integers(0, S))
    values["error_rate_pct"][nan_s, rng.choice(T, size=min(30, T), replace=False)] = np.nan

    # ---- assemble: service-major, then metric, then time
    points = _assemble(names, wanted, ts, values, {m: keep[m] & ~outage for m in wanted})

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
    state = {"params": p, "persist": persist, "steps": T, "step_s": step_s, "start": ts[0], "names": names,
             "wanted": wanted}
    return points, inc, state


def default_shift(services: int = 12, metrics: Sequence[str] | None = None) -> dict[str, float]:
    """The continuation's planted drift: the first service's request rate drops to 60 % (a traffic
    migration), or nothing when ``request_rate`` is not among ``metrics``."""
    if metrics is not None and "request_rate" not in metrics:
        return {}
    return {make_key("request_rate", {"service": service_names(services)[0]}): 0.6}


def continue_fleet(services: int = 12, days: float = 30, seed: int = 7, freq: str = "1min", *,
                   continue_days: float = 3, start: Any = DEFAULT_START, metrics: Sequence[str] | None = None,
                   shift: dict[str, float] | None = None) -> pd.DataFrame:
    """A newer export: the demo fleet of the same arguments, continued for ``continue_days`` after its
    last timestamp.

    The signals go on with the demo's per-service parameters (daily and weekly cycle, the slow trend
    past its end, the memory leak and restarts) and its lasting effects (a ``level_shift`` deploy stays
    shifted), with fresh noise from a generator seeded by ``(seed, 1)``; scattered missing minutes
    (0.05 %) but no incidents, outages or planted quality flaws. ``shift`` plants a distribution shift:
    series key -> factor multiplying that series over the whole continuation (default
    :func:`default_shift`; ``{}`` for none). Deterministic: the same arguments give the same frame.

    Returns
    -------
    DataFrame
        ``series, ts, value``, service-major, starting one step after the demo's last timestamp.
    """
    if continue_days <= 0:
        raise ValueError("continue_days must be > 0")
    _, _, st = _fleet(services, days, seed, freq, start=start, metrics=metrics)
    shift = default_shift(services, metrics) if shift is None else dict(shift)
    S, T0, step_s = len(st["names"]), st["steps"], st["step_s"]
    index = {make_key(m, {"service": n}): (m, i) for i, n in enumerate(st["names"]) for m in st["wanted"]}
    unknown = sorted(set(shift) - set(index))
    if unknown:
        raise ValueError(f"shift names series not in the fleet: {unknown}")
    T = int(round(continue_days * 86400 / step_s))
    steps = T0 + np.arange(T)
    ts = st["start"] + pd.to_timedelta(steps * step_s, unit="s")
    rng = np.random.default_rng([seed, 1])
    noise = {m: rng.standard_normal((S, T)) for m in METRICS}
    tail = rng.random((S, T)) < 0.002
    tail_mult = rng.uniform(1.4, 2.0, size=(S, T))
    rps, cpu, lat, err, mem = _signals(st["params"], pd.DatetimeIndex(ts), (steps * step_s / 86400.0)[None, :],
                                       days, noise, tail, tail_mult)
    lp = st["persist"]
    lat, cpu, mem = lat * lp["lat_mul"][:, None], cpu + lp["cpu_add"][:, None], mem + lp["mem_add"][:, None]
    values = _clip(rps, cpu, lat, err, mem)
    for key, factor in shift.items():
        m, i = index[key]
        values[m][i] = values[m][i] * float(factor)
    keep = {m: rng.random((S, T)) >= 0.0005 for m in METRICS}
    return _assemble(st["names"], st["wanted"], pd.DatetimeIndex(ts), values, keep)


def storm_series(history: pd.Series, *, start: Any = None, hours: float = 48, period_min: float = 60,
                 high: float | None = None, low: float | None = None, freq: str = "1min",
                 seed: int = 7) -> pd.Series:
    """A constructed alert storm for one series: the value flaps between ``low`` and ``high``, each for
    half of ``period_min`` minutes (low first), for ``hours`` hours.

    Any ``>`` rule whose level lies between ``low`` and ``high`` (and whose recovery level, if any, is above
    ``low``), with ``for`` and ``keep_firing_for`` shorter than half a period, fires once per period:
    ``hours x 60 / period_min`` episodes (48 in the default 48 h), about 168 a week.

    Parameters
    ----------
    history : pd.Series
        The series so far (values indexed by UTC timestamps); it sets the defaults.
    start : timestamp-like, optional
        First timestamp (default: one ``freq`` step after the last point of ``history``).
    hours, period_min : float
        Length of the storm (hours) and of one low + high cycle (minutes).
    high, low : float, optional
        The two levels (default: 3 x the largest value of ``history``; its 5th percentile).
    freq : str
        Sampling step.
    seed : int
        Seed of the +-1 % multiplicative jitter (so the series is not flat).

    Returns
    -------
    pd.Series
        The storm's values indexed by UTC timestamps.
    """
    v = pd.to_numeric(history, errors="coerce").to_numpy(float)
    v = v[np.isfinite(v)]
    if v.size == 0 and (high is None or low is None):
        raise ValueError("storm_series needs a history with finite values (or both high and low)")
    high = 3.0 * float(v.max()) if high is None else float(high)
    low = float(np.percentile(v, 5)) if low is None else float(low)
    step = pd.Timedelta(freq)
    t0 = pd.Timestamp(history.index.max()) + step if start is None else pd.Timestamp(start)
    t0 = t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")
    n = int(round(hours * 3600 / step.total_seconds()))
    k = np.arange(n)
    half = period_min * 60 / step.total_seconds() / 2
    level = np.where((k // half) % 2 == 1, high, low)
    jitter = 1.0 + 0.01 * np.random.default_rng(seed).uniform(-1, 1, n)
    return pd.Series(level * jitter, index=t0 + k * step, name=history.name)


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


NEWER_FILE = "newer.csv"
STORM_FILE = "storm.csv"


def write_followups(out_dir: str | Path, *, services: int = 12, days: float = 30, seed: int = 7,
                    freq: str = "1min", start: Any = DEFAULT_START, metrics: Sequence[str] | None = None,
                    continue_days: float = 3, shift: dict[str, float] | None = None, storm: str | None = None,
                    storm_hours: float = 48) -> dict[str, Any]:
    """Write the exports that follow a demo built with the same arguments.

    ``newer.csv`` (when ``continue_days`` > 0): :func:`continue_fleet`, every series, with ``shift``
    planted. ``storm.csv`` (when ``storm`` names a series): :func:`storm_series` for that series over
    ``storm_hours`` hours, starting one step after the newer export (or after the demo without one), its
    levels set from the series' demo and newer data. Both are long CSVs ``timestamp,series,value`` that the
    Data page or ``python -m core ingest`` read. Returns a summary (paths, time spans, shift, storm levels).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    demo, _, st = _fleet(services, days, seed, freq, start=start, metrics=metrics)
    summary: dict[str, Any] = {"out_dir": str(out), "demo_end": demo["ts"].max()}
    parts = [demo]
    if continue_days > 0:
        shift = default_shift(services, metrics) if shift is None else dict(shift)
        newer = continue_fleet(services, days, seed, freq, continue_days=continue_days, start=start,
                               metrics=metrics, shift=shift)
        path = out / NEWER_FILE
        _CsvWriter(newer).write(newer, path)
        parts.append(newer)
        summary.update(newer=str(path), newer_points=len(newer), newer_start=newer["ts"].min(),
                       newer_end=newer["ts"].max(), shift=shift)
    if storm:
        hist = pd.concat([f[f["series"] == storm] for f in parts], ignore_index=True)
        if hist.empty:
            raise ValueError(f"storm series {storm!r} is not in the fleet")
        step = pd.Timedelta(seconds=st["step_s"])
        t0 = st["start"] + step * (st["steps"] + int(round(max(continue_days, 0) * 86400 / st["step_s"])))
        values = storm_series(hist.set_index("ts")["value"], start=t0, hours=storm_hours, freq=freq, seed=seed)
        metric = storm.split("{", 1)[0]
        frame = pd.DataFrame({"series": storm, "ts": values.index,
                              "value": np.round(values.to_numpy(), DECIMALS.get(metric, 3))})
        path = out / STORM_FILE
        _CsvWriter(frame).write(frame, path)
        summary.update(storm=str(path), storm_series=storm, storm_start=frame["ts"].min(),
                       storm_end=frame["ts"].max(), storm_points=len(frame))
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
    p.add_argument("--start", default=DEFAULT_START, help=f"first timestamp, UTC (default {DEFAULT_START})")
    g = p.add_argument_group("exports that follow the demo built with the options above (no demo is written)")
    g.add_argument("--continue-days", type=float, default=None,
                   help=f"write {NEWER_FILE}: the demo continued for this many days")
    g.add_argument("--shift", action="append", default=None, metavar="KEY=FACTOR",
                   help="multiply one series over the continuation (repeatable; 'none' for no shift; default: "
                        "the first service's request_rate x 0.6)")
    g.add_argument("--storm", default=None, metavar="KEY", help=f"write {STORM_FILE}: an alert storm for this series")
    g.add_argument("--storm-hours", type=float, default=48)
    args = p.parse_args(argv)
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    if args.continue_days is not None or args.storm:
        return _followups(args, metrics)
    try:
        s = write_demo(args.out, args.db, services=args.services, days=args.days, seed=args.seed,
                       freq=args.freq, metrics=metrics, start=args.start, verbose=True)
    except (ValueError, OSError, StudioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{s['series']} series, {s['points']:,} points, {s['incidents']} incident rows in {s['out_dir']} "
          f"({s['seconds_total']:.1f} s)")
    for svc, kind in s["scenarios"].items():
        print(f"  {svc:<18} {kind}")
    return 0


def _followups(args: argparse.Namespace, metrics: list[str] | None) -> int:
    shift: dict[str, float] | None = None
    try:
        if args.shift is not None:
            shift = {}
            for item in args.shift:
                if item.strip().lower() == "none":
                    continue
                key, sep, factor = item.rpartition("=")
                if not sep or not key:
                    raise ValueError(f"--shift {item!r}: expected KEY=FACTOR, e.g. 'request_rate{{service=\"cart\"}}=0.6'")
                shift[key] = float(factor)
        s = write_followups(args.out, services=args.services, days=args.days, seed=args.seed, freq=args.freq,
                            start=args.start, metrics=metrics, continue_days=args.continue_days or 0, shift=shift,
                            storm=args.storm, storm_hours=args.storm_hours)
    except (ValueError, OSError, StudioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"demo ends {s['demo_end']:%Y-%m-%d %H:%M} UTC")
    if "newer" in s:
        print(f"{s['newer']}: {s['newer_points']:,} points, {s['newer_start']:%Y-%m-%d %H:%M} to "
              f"{s['newer_end']:%Y-%m-%d %H:%M}; shift {s['shift'] or 'none'}")
    if "storm" in s:
        print(f"{s['storm']}: {s['storm_series']}, {s['storm_points']:,} points, {s['storm_start']:%Y-%m-%d %H:%M} "
              f"to {s['storm_end']:%Y-%m-%d %H:%M}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
