"""Simulated A/B tests of alert rules with honest statistics.

* :mod:`core.experiment.simulate`: seasonal block bootstrap of a stored series, injected incidents,
  random assignment of days to A or B, per-unit outcomes from replaying both rules.
* :mod:`core.experiment.plan`: power analysis (statsmodels) and the pre-registered stopping rule.
* :mod:`core.experiment.sequential`: the anytime-valid normal-mixture sequential test (mSPRT).
* :mod:`core.experiment.groupseq`: group-sequential looks with O'Brien-Fleming-type alpha spending.
* :mod:`core.experiment.analyse`: Welch and Mann-Whitney tests, effect sizes, guardrails, verdict.
* :mod:`core.experiment.checks`: the A/A false-positive check and the achieved-power check.
* :mod:`core.experiment.lifecycle`: experiments in the store (planning, running, completed, stopped),
  every transition audited.

``python -m core.experiment {aa,power,run}`` runs them from the command line.
"""

from core.experiment.analyse import Decision, compare, decide, guardrails
from core.experiment.checks import aa_check, outcome_pool, power_check
from core.experiment.plan import Plan, plan_experiment, power_curve
from core.experiment.simulate import Simulation, simulate, synthetic_history

__all__ = ["Decision", "compare", "decide", "guardrails", "aa_check", "outcome_pool", "power_check", "Plan",
           "plan_experiment", "power_curve", "Simulation", "simulate", "synthetic_history"]
