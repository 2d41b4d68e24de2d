"""Threshold recommendations: strategies, multi-objective choice, confidence, constraints, validation.

Modules
-------
:mod:`.suggest`
    Starting a rule from a recommendation (the Thresholds page's "New rule"): :func:`as_rule_dict`,
    default levels :func:`fit_levels`, :func:`snap`, ...
:mod:`.strategies`
    One small class per strategy behind a registry (percentile, robust, alert budget,
    incident-optimal, seasonal hour-of-week, SLO burn-rate pairs) and the conservative / balanced /
    aggressive presets.
:mod:`.confidence`
    Moving-block bootstrap intervals and the risk level with its reasons.
:mod:`.constraints`
    Bounds, maximum change per apply, the oscillation guard and the warning/critical order, from the
    limits stored with the rule (``Rule.limits``).
:mod:`.engine`
    :func:`recommend`: one series from raw points to a validated :class:`Recommendation`
    (a pure function of one series' frame, so a fleet can run it anywhere).
:mod:`.fleet`
    Many series at once: a local process pool or a Dask distributed cluster (reading Parquet
    partitions of the points), same results.
:mod:`.outcomes`
    Each candidate rule on the held-out period, every figure with its interval (the detail view).
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
    SUGGESTED_PREFIX,
    FitLevels,
    as_rule_dict,
    fit_levels,
    fit_mask,
    revise_rationale,
    snap,
    step_decimals,
)

__all__ = ["FitLevels", "fit_levels", "as_rule_dict", "revise_rationale", "fit_mask", "snap", "step_decimals",
           "LEVEL_QUANTILES", "SUGGESTED_PREFIX", "recommend", "Recommendation", "DEFAULT_WEIGHTS",
           "PRESETS", "STRATEGIES", "Preset", "Strategy", "Candidate", "FitData", "get_strategy", "Constraints",
           "Constrained", "LastChange", "constrain", "constrain_pair", "quantile_interval", "rate_interval"]
