"""Built-in checks of the test machinery: the A/A false-positive rate and the achieved power.

Replaying two rules over a month of one-minute data for each of 1000 runs would take minutes, so the
checks separate the two costs:

1. :func:`outcome_pool` simulates, once, many days of the series (seasonal block bootstrap and
   injected incidents, :mod:`core.experiment.simulate`) and replays the control rule over them:
   a pool of realistic per-unit outcomes (skewed counts with many zeros, as the real metric is).
2. Each run draws its units from the pool (with replacement), assigns them to A or B with the
   split (:func:`core.experiment.simulate.assign_units` semantics: exactly ``round(split x units)``
   in B, random order) and applies the test at every look, all runs at once as arrays.

**A/A** (:func:`aa_check`): both arms run the same rule, so every rejection is a false positive. The
false-positive rate is reported for the sequential test (mSPRT, looked at after every day), for
*naive daily peeking* (Welch's test after every day, stopping at the first p < alpha: the classic
mistake, whose rate climbs well above alpha), for the O'Brien-Fleming group-sequential design with
weekly looks and for the fixed-horizon Welch test at the last day.

**Power** (:func:`power_check`): B's units are A's pool values shifted by ``effect x sd`` in the
improving direction (a location-shift model of an effect of Cohen's d = ``effect``); the achieved
power is the share of runs whose test rejects by the planned horizon, next to the planned power.

Rates come with a 95% Wilson interval over the runs. Everything is seeded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from core.alerting.rules import Rule
from core.errors import InsufficientDataError, ValidationError
from core.experiment.groupseq import design, obf_reject
from core.experiment.plan import Plan
from core.experiment.sequential import msprt_looks
from core.experiment.simulate import SHAPES, future_days, unit_outcomes

__all__ = ["outcome_pool", "draw_runs", "aa_check", "power_check", "rate_summary", "PEEKS"]

PEEKS = {"daily": 1, "weekly": 7}


def outcome_pool(history: pd.Series | pd.DataFrame, rule: Rule, *, days: int = 120, rate: float = 0.5,
                 shapes: tuple[str, ...] = SHAPES, block: str = "day", incidents: pd.DataFrame | None = None,
                 seed: int | None = 0) -> pd.DataFrame:
    """Per-day outcomes of ``rule`` over ``days`` bootstrapped days with injected incidents.

    The same simulation as :func:`core.experiment.simulate.simulate` for one rule: use it as the
    pilot for planning (baseline mean and sd of the metric) and as the pool of the checks.
    """
    rng = np.random.default_rng(seed)
    values, windows = future_days(history, days, rng=rng, rule=rule, rate=rate, shapes=shapes, block=block,
                                  incidents=incidents)
    return unit_outcomes(rule, values, windows)


def draw_runs(pool: Any, *, runs: int, units: int, split: float, shift: float = 0.0,
              seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(y, in_b)``, both ``(runs, units)``: pool values drawn with replacement, arms assigned, B shifted."""
    pool = np.asarray(pool, dtype=float)
    pool = pool[np.isfinite(pool)]
    if pool.size < 10 or np.ptp(pool) == 0:
        raise InsufficientDataError(f"the outcome pool has {pool.size} finite value(s)"
                                    f"{' all equal' if pool.size and np.ptp(pool) == 0 else ''}; "
                                    "need at least 10 that vary")
    if not (0.1 <= split <= 0.9):
        raise ValidationError(f"split must be 0.1-0.9, got {split}", path="split")
    if int(runs) < 1 or int(units) < 2:
        raise ValidationError("need runs >= 1 and units >= 2", path="runs")
    rng = np.random.default_rng(seed)
    y = pool[rng.integers(pool.size, size=(int(runs), int(units)))]
    base = np.zeros(int(units), dtype=bool)
    base[: int(round(split * units))] = True
    in_b = rng.permuted(np.broadcast_to(base, y.shape), axis=1)
    return y + np.where(in_b, shift, 0.0), in_b


def rate_summary(hits: np.ndarray, alpha: float) -> dict[str, Any]:
    """``runs, alpha, false_positive_rate`` (or rate) and its 95% Wilson ``interval``."""
    n, k = int(hits.size), int(np.count_nonzero(hits))
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return {"runs": n, "alpha": float(alpha), "false_positive_rate": k / n, "interval": [float(lo), float(hi)]}


def _rejections(plan: Plan, y: np.ndarray, in_b: np.ndarray, peek: str) -> dict[str, np.ndarray]:
    """Per run: sequential rejection at any look, naive (Welch at every look) and fixed (Welch at the end)."""
    if peek not in PEEKS:
        raise ValidationError(f"peek must be one of {list(PEEKS)}, got {peek!r}", path="peek")
    units = y.shape[1]
    every = PEEKS[peek] * plan.units_per_day
    look = np.zeros(units, dtype=bool)
    look[every - 1::every] = True
    look[-1] = True
    rej, w = msprt_looks(y, in_b, tau=plan.tau, alpha=plan.alpha, min_units=plan.min_units, look=look)
    seq = rej.any(axis=1)
    p = np.nan_to_num(w["p"], nan=1.0)
    naive = ((p < plan.alpha) & w["look"]).any(axis=1)
    fixed = p[:, -1] < plan.alpha
    # group sequential: the plan's looks when it is an O'Brien-Fleming plan, else weekly over these units
    every = plan.look_every if plan.stopping == "obf" else 7 * plan.units_per_day
    n_k, c_k = design(units, every, plan.alpha)
    obf = (obf_reject(p[:, n_k - 1], c_k[None, :]) & w["look"][:, n_k - 1]).any(axis=1)
    return {"sequential": seq, "group_sequential": obf, "naive": naive, "fixed": fixed}


def aa_check(pool: Any, plan: Plan, *, runs: int = 1000, units: int | None = None, peek: str = "daily",
             seed: int | None = 0) -> dict[str, Any]:
    """A/A false-positive rates: sequential vs naive peeking vs fixed horizon (module docstring).

    ``units`` defaults to the plan's horizon capped at 60 days. Returns ``{"sequential": {...},
    "group_sequential": {...}, "naive_peeking": {...}, "fixed_horizon": {...}, "units", "peek"}``, each
    with ``runs, alpha, false_positive_rate, interval``. ``sequential`` is the mixture test looked at
    as ``peek`` says; ``group_sequential`` the O'Brien-Fleming design with weekly looks (or the plan's).
    """
    units = int(units or min(plan.units, 60 * plan.units_per_day))
    y, in_b = draw_runs(pool, runs=runs, units=units, split=plan.split, seed=seed)
    r = _rejections(plan, y, in_b, peek)
    return {"units": units, "peek": peek, "stopping": plan.stopping,
            "sequential": rate_summary(r["sequential"], plan.alpha),
            "group_sequential": rate_summary(r["group_sequential"], plan.alpha),
            "naive_peeking": rate_summary(r["naive"], plan.alpha),
            "fixed_horizon": rate_summary(r["fixed"], plan.alpha)}


def power_check(pool: Any, plan: Plan, *, runs: int = 500, peek: str = "daily",
                seed: int | None = 0) -> dict[str, Any]:
    """Achieved power of the plan's test at its horizon for its effect (``plan.mde_d``), against the planned.

    B's units are shifted by ``plan.mde_d`` pool standard deviations in the improving direction.
    Returns ``planned, achieved, interval, runs, units, stopping``.
    """
    pool = np.asarray(pool, dtype=float)
    sd = float(np.nanstd(pool, ddof=1))
    shift = plan.mde_d * sd * (-1 if plan.lower_is_better else 1)
    y, in_b = draw_runs(pool, runs=runs, units=plan.units, split=plan.split, shift=shift, seed=seed)
    r = _rejections(plan, y, in_b, peek)
    hits = {"msprt": r["sequential"], "obf": r["group_sequential"], "fixed": r["fixed"]}[plan.stopping]
    s = rate_summary(hits, plan.alpha)
    return {"stopping": plan.stopping, "effect_d": plan.mde_d, "units": plan.units, "days": plan.days,
            "runs": s["runs"], "planned": plan.power, "achieved": s["false_positive_rate"],
            "interval": s["interval"]}
