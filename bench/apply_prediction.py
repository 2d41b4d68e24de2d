"""Extra cost of storing the predicted impact at apply: ``python bench/apply_prediction.py [--series 20]
[--days 60] [--repeat 3]``.

One glob rule over ``--series`` one-minute series of ``--days`` days is changed; measured in the same
process: the apply with its prediction (:func:`core.policy.prediction.predict_impact`, replaying the
new rule on the last 28 days of each series), the same apply with the prediction stubbed out, and the
preview of the change (which replays old and new rules on the whole history). Figures are medians of
CPU seconds (wall printed too); the goal is an extra cost below one preview (ratio < 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from core.alerting.rules import Rule  # noqa: E402
from core.data.store import Store, audit  # noqa: E402
from core.policy import versions as pol  # noqa: E402
from core.policy.identity import User  # noqa: E402

ED = User("bench", "bench@example.com", frozenset({"viewer", "editor", "approver"}), os_account="bench")
T0 = pd.Timestamp("2026-01-01T00:00:00Z")
LOOSE = pol.SignificanceConfig(threshold_change_pct=1e6, critical_rules=False, behaviour_fields=())


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=20)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    s = audit.install(Store(os.path.join(tempfile.mkdtemp(), "bench.duckdb")))
    n = a.days * 1440
    ts = pd.date_range(T0, periods=n, freq="1min")
    rng = np.random.default_rng(1)
    s.write_points(pd.concat([pd.DataFrame({"series": f'lat{{svc="s{i:03d}"}}', "ts": ts, "value": rng.gamma(2, 50, n)})
                              for i in range(a.series)]), name="bench.csv", sha256="bench", fmt="long")
    now = T0 + pd.Timedelta(days=a.days)
    pol.apply(s, "default", [Rule(name="A", series="lat*", warning=600.0)], base_version=0, user=ED, reason="init", now=now)
    res: dict[str, list[tuple[float, float]]] = {}

    def change() -> None:
        k = pol.latest_number(s)
        pol.apply(s, "default", [Rule(name="A", series="lat*", warning=500.0 + k)], base_version=k, user=ED,
                  reason="bench", now=now, significance=LOOSE)

    for _ in range(a.repeat):
        res.setdefault("apply with prediction", []).append(_timed(change))
        real = pol.predict_impact
        pol.predict_impact = lambda *args, **kw: []
        try:
            res.setdefault("apply, prediction stubbed", []).append(_timed(change))
        finally:
            pol.predict_impact = real
        res.setdefault("preview", []).append(_timed(
            lambda: pol.preview(s, "default", [Rule(name="A", series="lat*", warning=450.0)], now=now)))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in res.items()}
    print(f"{a.series} series x {a.days} days at 1 min ({a.series * n:,} points), one glob rule changed; "
          f"load {os.getloadavg()[0]:.1f}")
    for k, (w, c) in med.items():
        print(f"  {k:<28} CPU {c:.2f} s, wall {w:.2f} s")
    extra = med["apply with prediction"][1] - med["apply, prediction stubbed"][1]
    print(f"  extra CPU of the prediction: {extra:.2f} s = {extra / med['preview'][1]:.2f} x the preview (goal < 1)")


if __name__ == "__main__":
    main()
