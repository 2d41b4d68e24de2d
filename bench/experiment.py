"""Benchmark simulated A/B tests: ``python bench/experiment.py [--quick]``.

Prints the timings against the speed goals:

* one 30-day simulation of a rule pair on one-minute data (bootstrap, injected incidents, both rules
  replayed, per-day outcomes): <= 2 s;
* the 1000-run A/A check as ``python -m core.experiment aa`` runs it (a 120-day outcome pool, the
  plan, 1000 runs of 30 days with daily looks): <= 60 s;

with CPU seconds next to wall seconds (the machine may be shared), and, for scale, the ratio to a
baseline timed in the same process: two bare replays (:func:`core.alerting.replay.replay`) of the
same 43,200 points, i.e. the least any simulation of a pair must do.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.alerting.replay import replay  # noqa: E402
from core.alerting.rules import Rule  # noqa: E402
from core.experiment.checks import aa_check, outcome_pool  # noqa: E402
from core.experiment.plan import plan_experiment  # noqa: E402
from core.experiment.simulate import simulate, synthetic_history  # noqa: E402

GOAL_SIMULATION_S = 2.0
GOAL_AA_S = 60.0


def timed(fn, repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args(argv)
    repeat = 2 if args.quick else 5

    hist = synthetic_history(28, seed=0)
    q = float(np.quantile(hist, 0.995))
    ra = Rule(name="A", series=str(hist.name), comparator=">", warning=q, for_s=120)
    rb = Rule(name="B", series=str(hist.name), comparator=">", warning=q * 1.05, for_s=120)
    sim = simulate(hist, ra, rb, days=30, seed=1)          # warm up; also the baseline's input
    values = sim.series
    t_base, c_base = timed(lambda: (replay(ra, values), replay(rb, values)), repeat)
    t_sim, c_sim = timed(lambda: simulate(hist, ra, rb, days=30, seed=1), repeat)

    def aa() -> dict:
        pool = outcome_pool(hist, ra, days=120, seed=0)["false_episodes"].to_numpy()
        plan = plan_experiment(pool.mean(), pool.std(ddof=1), mde_d=0.8, stopping="msprt")
        return aa_check(pool, plan, runs=1000, units=30, peek="daily", seed=1)

    t_aa, c_aa = timed(aa, 1 if args.quick else 2)
    res = aa()
    out = {"simulation_s": t_sim, "simulation_cpu_s": c_sim, "baseline_s": t_base, "ratio": t_sim / t_base,
           "aa_s": t_aa, "aa_cpu_s": c_aa,
           "aa_sequential_fpr": res["sequential"]["false_positive_rate"],
           "aa_naive_fpr": res["naive_peeking"]["false_positive_rate"]}
    print(f"30-day simulation of a rule pair ({len(values):,} points): {t_sim:.2f} s wall, {c_sim:.2f} s CPU "
          f"(goal <= {GOAL_SIMULATION_S:g} s); two bare replays {t_base * 1000:.0f} ms, ratio {out['ratio']:.1f}")
    print(f"1000-run A/A check (120-day pool, 30 days, daily looks): {t_aa:.2f} s wall, {c_aa:.2f} s CPU "
          f"(goal <= {GOAL_AA_S:g} s); false-positive rate sequential {out['aa_sequential_fpr']:.3f}, "
          f"naive peeking {out['aa_naive_fpr']:.3f}")
    ok = t_sim <= GOAL_SIMULATION_S and t_aa <= GOAL_AA_S
    print("goals met" if ok else "GOAL MISSED")
    return out


if __name__ == "__main__":
    r = main()
    sys.exit(0 if r["simulation_s"] <= GOAL_SIMULATION_S and r["aa_s"] <= GOAL_AA_S else 1)
