"""threshold studio analytics and domain package.

Pure functions and small dataclasses over pandas/numpy. This package never imports streamlit;
the Streamlit pages in ``pages/`` are thin callers of what lives here.

Layers, each importing only the ones below it (checked by ``lint-imports`` in ``make test``)::

    core.commands                       the CLI, one thin module per verb
    core.experiment | core.slo          A/B simulations; SLIs, error budgets, burn-rate rules
    core.policy                         versioned policies, approvals, policy YAML, identity and roles
    core.alerting                       rules, replay and sweep, recommendations, Prometheus export
    core.analysis                       baselines, trend, seasonality, forecast, detectors, scoring
    core.data                           ingest, points frame, quality, incidents, store (the only SQL)
    core.errors | core.fmt              exceptions and text formatting

The public API is what a notebook user needs; everything else is private by convention (reach
into the subpackages at your own risk)::

    >>> import core                                                    # doctest: +SKIP
    >>> parsed = core.read_metrics("latency.csv")                      # doctest: +SKIP
    >>> rule = core.Rule(name="LatencyHigh", series="latency_ms", warning=250)  # doctest: +SKIP
    >>> rep = core.replay(rule, parsed.points)                          # doctest: +SKIP

Names are loaded on first use, so ``import core`` stays cheap.

The canonical in-memory shape of metric data is a *points frame*: a DataFrame with columns
``series`` (str, the series key such as ``latency_p95_ms{service="api"}``), ``ts`` (tz-aware UTC
timestamps) and ``value`` (float64, NaN kept as missing). See :mod:`core.data.frame`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_PUBLIC: dict[str, str] = {
    # data
    "read_metrics": "core.data.ingest",
    "read_incidents": "core.data.incidents",
    "quality_report": "core.data.quality",
    "Store": "core.data.store",
    "verify_audit": "core.data.store.audit",
    "check_integrity": "core.data.store.audit",
    # analysis
    "analyse": "core.analysis.pipeline",
    "Analysis": "core.analysis.pipeline",
    "compute_baseline": "core.analysis.baseline",
    "make_detector": "core.analysis.detect",
    "score_online": "core.analysis.detect",
    "run_detection": "core.analysis.detect",
    "AlarmRule": "core.analysis.detect",
    "DEFAULT_THRESHOLD": "core.analysis.detect",
    "score_events": "core.analysis.scoring",
    # alerting
    "Rule": "core.alerting.rules",
    "replay": "core.alerting.replay",
    "Replay": "core.alerting.replay",
    "sweep": "core.alerting.sweep",
    "sweep_grid": "core.alerting.sweep",
    "recommend": "core.alerting.recommend",
    "Recommendation": "core.alerting.recommend",
    "PromMapping": "core.alerting.prometheus",
    "prometheus_export": "core.alerting.prometheus",
    "import_rule_files": "core.alerting.rule_import",
    # policy
    "PolicyVersion": "core.policy.versions",
    "policy_from_yaml": "core.policy.policy_yaml",
    "policy_to_yaml": "core.policy.policy_yaml",
    # errors
    "StudioError": "core.errors",
    "ValidationError": "core.errors",
    "IngestError": "core.errors",
    "InsufficientDataError": "core.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    try:
        module = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'core' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
