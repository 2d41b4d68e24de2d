"""Threshold recommendations: strategies, multi-objective choice, confidence, constraints, validation.

Modules
-------
:mod:`.suggest`
    The single suggestion the Thresholds page starts a new rule from (percentiles of the first 70 %,
    checked on the held-out 30 %): :func:`suggest_rule`, :func:`fit_levels`, :func:`snap`, ...
:mod:`.strategies`
    One small class per strategy behind a registry (percentile, robust, alert budget,
    incident-optimal, seasonal hour-of-week, SLO burn-rate pairs) and the conservative / balanced /
    aggressive presets.
:mod:`.confidence`
    Moving-block bootstrap intervals and the risk level with its reasons.
:mod:`.constraints`
    Bounds, maximum change per apply, the oscillation guard and the warning/critical order.
:mod:`.engine`
    :func:`recommend`: one series from raw points to a validated :class:`Recommendation`
    (a pure function of one series' frame, so a fleet can run it anywhere).
:mod:`.fleet`
    Many series at once: a local process pool or a Dask distributed cluster, same results.
"""

from __future__ import annotations

from core.alerting.recommend.confidence import quantile_interval, rate_interval
from core.alerting.recommend.constraints import (
    Constrained,
    Constraints,
    LastChange,
    constrain,
    constrain_pair,
)
from core.alerting.recommend.engine import DEFAULT_WEIGHTS, Recommendation, recommend
from core.alerting.recommend.strategies import (
    PRESETS,
    STRATEGIES,
    Candidate,
    FitData,
    Preset,
    Strategy,
    get_strategy,
)
from core.alerting.recommend.suggest import (
    LEVEL_QUANTILES,
    MIN_EXPECTED_EPISODES,
    MIN_HOLDOUT_S,
    SUGGESTED_PREFIX,
    FitLevels,
    Suggestion,
    as_rule_dict,
    fit_levels,
    fit_mask,
    poisson_p,
    revise_rationale,
    snap,
    step_decimals,
    suggest_rule,
)

__all__ = ["Suggestion", "FitLevels", "suggest_rule", "fit_levels", "as_rule_dict", "revise_rationale",
           "fit_mask", "snap", "step_decimals", "poisson_p", "LEVEL_QUANTILES", "MIN_HOLDOUT_S",
           "MIN_EXPECTED_EPISODES", "SUGGESTED_PREFIX", "recommend", "Recommendation", "DEFAULT_WEIGHTS",
           "PRESETS", "STRATEGIES", "Preset", "Strategy", "Candidate", "FitData", "get_strategy", "Constraints",
           "Constrained", "LastChange", "constrain", "constrain_pair", "quantile_interval", "rate_interval"]
