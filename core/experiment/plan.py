"""Planning an experiment: power analysis first, the stopping rule fixed before any data is seen.

The minimum detectable effect (MDE) is given either as a relative change of the primary metric
(``mde_rel=-0.3``: B has 30% fewer false episodes per day) or directly as Cohen's d. With the
per-unit mean and standard deviation of the metric under rule A (from a pilot simulation, see
:func:`core.experiment.checks.outcome_pool`) the relative change becomes ``d = |mde_rel| x mean / sd``.

Required units:

* ``stopping="fixed"``: statsmodels' :class:`~statsmodels.stats.power.TTestIndPower` (two-sided,
  ``ratio = n_B / n_A = split / (1 - split)``), the power of the Welch t-test at the horizon under a
  common variance. No decision before the horizon.
* ``stopping="msprt"``: the normal-mixture sequential test (:mod:`core.experiment.sequential`), with
  the mixture scale ``tau`` = the MDE, looked at after every unit from ``min_units`` per arm on.
  Its power by unit ``N`` (the probability of having stopped with a rejection by then) is computed
  by a seeded Monte Carlo of the very test on normal unit outcomes (plug-in variance, random
  assignment with the split; :func:`sequential_power`), which gives the whole curve over ``N`` at once;
  the horizon is the first ``N`` where it reaches the target. Beyond :data:`MC_MAX_UNITS` units the
  closed-form lower bound (the final look alone crosses the boundary:
  ``Phi((d - b) / sqrt(V)) + Phi((-d - b) / sqrt(V))``, ``V = 1/n_A + 1/n_B`` in sd units, ``b`` the
  confidence-sequence half-width) is used, which is conservative. Being allowed to stop early costs
  a longer worst-case horizon than the fixed test's.
* ``stopping="obf"``: group-sequential looks every ``look_every`` units (default weekly) with
  O'Brien-Fleming-type alpha spending (:mod:`core.experiment.groupseq`): the fixed test's units
  times the design's inflation factor (a few percent), found by iterating because the number of
  looks depends on the horizon.

Units are days (``units_per_day`` > 1 for fleets where hosts are the units); the duration must be
3-60 days, and a plan outside that range says so in ``note`` rather than pretending.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from statsmodels.stats.power import TTestIndPower

from core.errors import InsufficientDataError, ValidationError
from core.experiment.groupseq import inflation as obf_inflation
from core.experiment.sequential import msprt_half_width, msprt_looks

__all__ = ["STOPPING_RULES", "MIN_DAYS", "MAX_DAYS", "Plan", "plan_experiment", "power_curve",
           "fixed_power", "sequential_power", "sequential_power_bound"]

STOPPING_RULES = ("msprt", "obf", "fixed")
MIN_DAYS, MAX_DAYS = 3, 60
MAX_UNITS = 100_000
#: the sequential power is simulated up to this many units; beyond, the closed-form bound is used
MC_MAX_UNITS = 1_024
MC_STAGES = (64, 256, MC_MAX_UNITS)


@dataclass(frozen=True)
class Plan:
    """A pre-registered experiment plan (store it before the first unit is simulated).

    Attributes
    ----------
    metric : str
        Primary per-unit outcome (a column of the outcomes, e.g. ``false_episodes``).
    lower_is_better : bool
        Direction in which B must move the metric to be adopted.
    baseline_mean, baseline_sd : float
        Per-unit mean and standard deviation of the metric under A (metric units per unit).
    mde_d : float
        Minimum detectable effect as Cohen's d (> 0).
    mde_abs : float
        The same in metric units per unit (``mde_d x baseline_sd``); the mixture scale ``tau``.
    mde_rel : float or None
        The same as a relative change of the mean, when the plan was made from one.
    alpha, power, split : float
        Significance level (two-sided), target power, share of units in B.
    stopping : {"msprt", "obf", "fixed"}
        Stopping rule, chosen here and never changed afterwards.
    min_units : int
        Units per arm before the first sequential look.
    units_per_day : int
    n_a, n_b, units, days : int
        Required units per arm, in total, and the duration in days.
    in_range : bool
        Whether ``days`` lies in 3-60.
    note : str
        Plain-language caveat (empty when none).
    look_every : int
        Units between looks: 1 for ``msprt``, the horizon for ``fixed``, default a week for ``obf``.
    inflation : float
        Units of the plan over the fixed test's for the same effect (1 for ``fixed``).
    """

    metric: str
    lower_is_better: bool
    baseline_mean: float
    baseline_sd: float
    mde_d: float
    mde_abs: float
    mde_rel: float | None
    alpha: float
    power: float
    split: float
    stopping: str
    min_units: int
    units_per_day: int
    n_a: int
    n_b: int
    units: int
    days: int
    in_range: bool
    note: str = ""
    look_every: int = 1
    inflation: float = 1.0

    @property
    def tau(self) -> float:
        """Mixture scale of the sequential test, in metric units (the MDE)."""
        return self.mde_abs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fixed_power(units: Any, d: float, split: float, alpha: float) -> np.ndarray:
    """Power of the two-sided two-sample t-test (statsmodels) for ``units`` in total, effect ``d``."""
    units = np.asarray(units, dtype=float)
    n_a = (1 - split) * units
    return np.asarray(TTestIndPower().power(effect_size=d, nobs1=n_a, alpha=alpha, ratio=split / (1 - split),
                                            alternative="two-sided"), dtype=float)


def sequential_power(max_units: int, d: float, split: float, alpha: float, *, min_units: int = 5,
                     tau_d: float | None = None, paths: int = 10_000, seed: int = 0) -> np.ndarray:
    """Power of the mixture sequential test by each unit count ``1..max_units`` (Monte Carlo; sd units).

    Element ``k - 1`` is the probability that the test has rejected at one of the looks after units
    ``1..k`` when B's mean is ``d`` standard deviations from A's: normal unit outcomes, units
    assigned by a random permutation with the split, and the same test as the experiment (plug-in
    Welch variance, looks from ``min_units`` per arm on; :func:`core.experiment.sequential.msprt_looks`).
    Seeded, so a plan is reproducible.
    """
    max_units = int(max_units)
    tau_d = d if tau_d is None else tau_d
    paths = int(max(2000, min(paths, 2_000_000 // max(max_units, 1))))
    rng = np.random.default_rng(seed)
    base = np.zeros(max_units, dtype=bool)
    base[: int(round(split * max_units))] = True
    in_b = rng.permuted(np.broadcast_to(base, (paths, max_units)), axis=1)
    y = rng.standard_normal((paths, max_units)) + np.where(in_b, abs(d), 0.0)
    rej, _ = msprt_looks(y, in_b, tau=tau_d, alpha=alpha, min_units=min_units, with_p=False)
    return np.logical_or.accumulate(rej, axis=1).mean(axis=0)


def _sequential_curve(units: int, d: float, split: float, alpha: float, min_units: int) -> np.ndarray:
    """:func:`sequential_power` over the first Monte Carlo stage that covers ``units`` (so a plan and
    its power curve read the same simulated paths)."""
    m = next((s for s in MC_STAGES if s >= units), int(units))
    return sequential_power(m, d, split, alpha, min_units=min_units)


def sequential_power_bound(units: Any, d: float, split: float, alpha: float,
                           tau_d: float | None = None) -> np.ndarray:
    """Closed-form lower bound on the sequential test's power by ``units``: the last look alone crosses."""
    units = np.asarray(units, dtype=float)
    tau_d = d if tau_d is None else tau_d
    with np.errstate(divide="ignore", invalid="ignore"):
        v = 1.0 / ((1 - split) * units) + 1.0 / (split * units)
        b = msprt_half_width(v, tau_d, alpha)
        s = np.sqrt(v)
        return norm.cdf((abs(d) - b) / s) + norm.cdf((-abs(d) - b) / s)


def _check(alpha: float, power: float, split: float, stopping: str, units_per_day: int, min_units: int) -> None:
    if not (0 < alpha < 0.5):
        raise ValidationError(f"alpha must be in (0, 0.5), got {alpha}", path="alpha")
    if not (0.5 <= power < 1):
        raise ValidationError(f"power must be in [0.5, 1), got {power}", path="power")
    if not (0.1 <= split <= 0.9):
        raise ValidationError(f"split (share of units in B) must be 0.1-0.9, got {split}", path="split")
    if stopping not in STOPPING_RULES:
        raise ValidationError(f"stopping rule must be one of {list(STOPPING_RULES)}, got {stopping!r}",
                              path="stopping")
    if int(units_per_day) < 1:
        raise ValidationError("units_per_day must be >= 1", path="units_per_day")
    if int(min_units) < 2:
        raise ValidationError("min_units (per arm before the first look) must be >= 2", path="min_units")


def plan_experiment(baseline_mean: float, baseline_sd: float, *, mde_rel: float | None = None,
                    mde_d: float | None = None, alpha: float = 0.05, power: float = 0.8, split: float = 0.5,
                    stopping: str = "msprt", metric: str = "false_episodes", lower_is_better: bool = True,
                    min_units: int = 5, units_per_day: int = 1, look_every: int | None = None) -> Plan:
    """Required units and duration for the MDE, alpha and power (module docstring).

    Raises
    ------
    InsufficientDataError
        When the baseline standard deviation is 0 or not finite (the metric never varies under A, so
        no effect size can be planned).
    ValidationError
        For an MDE, alpha, power, split or stopping rule out of range (the field is named).
    """
    _check(alpha, power, split, stopping, units_per_day, min_units)
    if not (np.isfinite(baseline_sd) and baseline_sd > 0 and np.isfinite(baseline_mean)):
        raise InsufficientDataError(f"the {metric} per unit under A has mean {baseline_mean} and standard "
                                    f"deviation {baseline_sd}; a varying baseline is needed to plan a test")
    if (mde_rel is None) == (mde_d is None):
        raise ValidationError("give the minimum detectable effect as mde_rel (relative change) or mde_d "
                              "(Cohen's d), not both", path="mde")
    if mde_rel is not None:
        if not (np.isfinite(mde_rel) and mde_rel != 0 and mde_rel > -1):
            raise ValidationError(f"mde_rel must be a relative change > -1 and != 0, got {mde_rel}", path="mde_rel")
        if baseline_mean == 0:
            raise InsufficientDataError(f"the {metric} per unit under A averages 0: a relative change of it "
                                        "is undefined; give the MDE as Cohen's d")
        d = abs(mde_rel) * abs(baseline_mean) / baseline_sd
    else:
        d = abs(float(mde_d))
        if not (np.isfinite(d) and d > 0):
            raise ValidationError(f"mde_d must be a finite Cohen's d > 0, got {mde_d}", path="mde_d")
    if look_every is not None and int(look_every) < 1:
        raise ValidationError("look_every must be >= 1 unit", path="look_every")
    n_a_fixed = float(TTestIndPower().solve_power(effect_size=d, alpha=alpha, power=power,
                                                  ratio=split / (1 - split), alternative="two-sided"))
    infl, every = 1.0, 1
    if stopping == "fixed":
        n_a, n_b = math.ceil(n_a_fixed), math.ceil(n_a_fixed * split / (1 - split))
    elif stopping == "obf":
        every = int(look_every or 7 * units_per_day)
        n_fixed = n_a_fixed / (1 - split)
        units = math.ceil(n_fixed)
        for _ in range(4):                                  # the looks depend on the horizon: iterate
            infl = obf_inflation(units, every, float(alpha), float(power))
            nxt = math.ceil(n_fixed * infl)
            if nxt == units:
                break
            units = nxt
        n_a, n_b = math.ceil((1 - split) * units), math.ceil(split * units)
    else:
        ok = np.empty(0, dtype=np.int64)
        for m in MC_STAGES:                                 # short horizons first: cheap and precise
            ok = np.flatnonzero(_sequential_curve(m, d, split, alpha, min_units) >= power)
            if ok.size:
                units = int(ok[0]) + 1
                break
        if not ok.size:
            grid = np.arange(MC_MAX_UNITS, MAX_UNITS + 1)
            ok = np.flatnonzero(sequential_power_bound(grid, d, split, alpha) >= power)
            if not ok.size:
                raise ValidationError(f"an effect of d={d:.3g} needs more than {MAX_UNITS} units", path="mde")
            units = int(grid[ok[0]])
        n_b = math.ceil(split * units)
        n_a = math.ceil((1 - split) * units)
    n_a, n_b = max(n_a, min_units), max(n_b, min_units)
    units = n_a + n_b
    if stopping == "msprt":
        infl = units / (n_a_fixed / (1 - split))
    elif stopping == "fixed":
        every = units
    days = math.ceil(units / int(units_per_day))
    in_range = MIN_DAYS <= days <= MAX_DAYS
    note = ""
    if days > MAX_DAYS:
        note = (f"needs {days} days, more than the {MAX_DAYS} allowed: accept a larger minimum detectable "
                "effect, a lower power, a split nearer 0.5 or more units per day (hosts)")
    elif days < MIN_DAYS:
        note = f"needs only {days} day(s); run at least {MIN_DAYS} so that weekday effects are not one-off"
    return Plan(metric=metric, lower_is_better=bool(lower_is_better), baseline_mean=float(baseline_mean),
                baseline_sd=float(baseline_sd), mde_d=float(d), mde_abs=float(d * baseline_sd),
                mde_rel=None if mde_rel is None else float(mde_rel), alpha=float(alpha), power=float(power),
                split=float(split), stopping=stopping, min_units=int(min_units),
                units_per_day=int(units_per_day), n_a=int(n_a), n_b=int(n_b), units=int(units), days=int(days),
                in_range=in_range, note=note, look_every=int(every), inflation=float(infl))


def power_curve(plan: Plan, days: Any = None) -> pd.DataFrame:
    """Power against duration for the plan's effect: ``days, units, power_fixed, power_sequential``,
    ``power_group_sequential``.

    ``power_sequential`` is the probability of having stopped with a rejection by that day
    (:func:`sequential_power`); ``power_group_sequential`` the power of an O'Brien-Fleming design with
    that horizon, approximated as the fixed test's power at ``units / inflation`` (the inflation of
    the plan's design when it is one, else of weekly looks over the plan's horizon). Default days 3-60.
    """
    days = np.arange(MIN_DAYS, MAX_DAYS + 1) if days is None else np.asarray(days, dtype=int)
    if days.size == 0 or days.min() < 1:
        raise ValidationError("days must be >= 1", path="days")
    units = days * plan.units_per_day
    seq = _sequential_curve(int(units.max()), plan.mde_d, plan.split, plan.alpha, plan.min_units)
    infl = plan.inflation if plan.stopping == "obf" else obf_inflation(
        plan.units, 7 * plan.units_per_day, plan.alpha, plan.power)
    return pd.DataFrame({"days": days, "units": units,
                         "power_fixed": fixed_power(units, plan.mde_d, plan.split, plan.alpha),
                         "power_sequential": seq[units - 1],
                         "power_group_sequential": fixed_power(units / infl, plan.mde_d, plan.split, plan.alpha)})
