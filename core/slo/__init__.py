"""SLO layer: SLIs, error budgets, burn rates and burn-rate rules (see :mod:`core.slo.model`)."""

from core.slo.model import (
    DEFAULT_MIN_EVENTS,
    SLO,
    WINDOWS_DAYS,
    BudgetReport,
    BurnPair,
    budget_alerts,
    budget_report,
    burn_pairs,
    burn_rate,
    burn_rules,
    combine_events,
    events,
    matching_keys,
    pair_signal,
    replay_pair,
    slos_from_meta,
    slos_to_meta,
)

__all__ = ["DEFAULT_MIN_EVENTS", "SLO", "WINDOWS_DAYS", "BudgetReport", "BurnPair", "budget_alerts",
           "budget_report", "burn_pairs", "burn_rate", "burn_rules", "combine_events", "events", "matching_keys", "pair_signal", "replay_pair",
           "slos_from_meta", "slos_to_meta"]
