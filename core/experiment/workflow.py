"""From a stored series to an experiment: the history as a series, the pilot that sets the plan's
baseline, and the experiment's seeded simulation (what the Experiments page and the CLI call).

The pilot is :func:`core.experiment.checks.outcome_pool` of rule A (bootstrapped days with injected
incidents): its per-day mean and standard deviation of the metric are the baseline the power analysis
needs, and the same pool feeds the page's A/A lesson. The simulation of an experiment is re-created
from its stored settings (``seed``, ``rate``, ``days``), so it is the same on every run of the page.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.alerting.rules import Rule
from core.errors import InsufficientDataError
from core.experiment.checks import outcome_pool
from core.experiment.plan import MAX_DAYS
from core.experiment.simulate import Simulation, simulate

__all__ = ["history_of", "lower_is_better", "baseline", "pilot", "simulation_of", "rule_for_series",
           "DEFAULT_SETTINGS"]

#: settings stored with an experiment unless the caller gives others
DEFAULT_SETTINGS: dict[str, Any] = {"seed": 0, "rate": 0.5, "pool_days": 60}


def history_of(points: pd.DataFrame, key: str) -> pd.Series:
    """Stored points (``ts``, ``value``) as the series the simulation bootstraps (UTC index)."""
    if points is None or points.empty:
        raise InsufficientDataError(f"series {key!r} has no stored points")
    return pd.Series(points["value"].to_numpy(float), index=pd.DatetimeIndex(points["ts"]), name=key)


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of the per-day ``metric`` is an improvement (all but ``caught``)."""
    return metric != "caught"


def baseline(pool: pd.DataFrame, metric: str) -> tuple[np.ndarray, float, float]:
    """``(finite values, mean, sd)`` of ``metric`` in a per-day outcome pool (sd with ddof 1)."""
    y = pool[metric].to_numpy(float)
    y = y[np.isfinite(y)]
    return y, float(y.mean()) if y.size else float("nan"), float(y.std(ddof=1)) if y.size > 1 else float("nan")


def pilot(history: pd.Series, rule_a: Rule, *, metric: str = "false_episodes", days: int = 60,
          rate: float = 0.5, incidents: pd.DataFrame | None = None, seed: int = 0
          ) -> tuple[pd.DataFrame, float, float]:
    """Rule A's per-day outcomes on ``days`` simulated days: ``(pool, mean, sd)`` of ``metric``.

    Not causal in any sense that matters here: it resamples whole days of the history.
    """
    pool = outcome_pool(history, rule_a, days=days, rate=rate, incidents=incidents, seed=seed)
    _, mean, sd = baseline(pool, metric)
    return pool, mean, sd


def simulation_of(row: dict[str, Any], history: pd.Series, incidents: pd.DataFrame | None = None) -> Simulation:
    """The seeded simulation of a stored experiment (``lifecycle.get`` row): its plan's duration, capped
    at the 60-day limit, its split, and the ``seed`` and ``rate`` of its settings."""
    settings = {**DEFAULT_SETTINGS, **(row.get("settings") or {})}
    plan = row["plan"]
    days = int(settings.get("days") or min(int(plan["days"]), MAX_DAYS))
    ra, rb = Rule.from_dict(row["rule_a"], path="rule_a"), Rule.from_dict(row["rule_b"], path="rule_b")
    return simulate(history, ra, rb,
                    days=max(days, 2),
                    split=float(plan["split"]), rate=float(settings["rate"]), incidents=incidents,
                    seed=int(settings["seed"]) + 3)


def rule_for_series(rule_dicts: list[dict[str, Any]], key: str) -> Rule | None:
    """The first rule of the policy in force whose selector matches ``key`` (policy order), else None."""
    for d in rule_dicts:
        r = Rule.from_dict(d)
        if r.matches(key):
            return r
    return None
