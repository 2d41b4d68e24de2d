"""Anytime-valid early stopping: the two-sample normal-mixture sequential test (mSPRT).

For the difference of means ``theta = mean_B - mean_A`` with estimate ``d`` and its variance ``V``
(``s_A^2 / n_A + s_B^2 / n_B``), mixing the likelihood ratio over a normal prior ``N(0, tau^2)`` on
``theta`` gives the closed form (Robbins 1970, "Statistical methods related to the law of the
iterated logarithm", Ann. Math. Statist. 41; used for A/B tests by Johari, Koomen, Pekelis & Walsh,
"Always valid inference: continuous monitoring of A/B tests", Operations Research 70(3), 2022)::

    Lambda = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))

``Lambda`` is a nonnegative martingale under ``theta = 0``, so by Ville's inequality
``P(Lambda ever >= 1 / alpha) <= alpha``: the experiment may be looked at after every unit and
stopped the first time ``Lambda >= 1 / alpha`` with the false-positive rate kept at ``alpha``.
Inverting it gives the confidence sequence, valid at all looks at once::

    d +- sqrt(V (V + tau^2) / tau^2 * (log((V + tau^2) / V) + 2 log(1 / alpha)))

``V`` uses the sample variances (a plug-in, as in Johari et al.), so the guarantee is asymptotic;
looks start only once each arm has ``min_units`` units (recorded in the plan), and the A/A check
(:mod:`core.experiment.checks`) measures the false-positive rate that results. ``tau`` is chosen at
planning time, by default the minimum detectable effect in outcome units (the mixture is then most
powerful near that effect). Everything is vectorised over runs and looks.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from core.errors import ValidationError

__all__ = ["msprt_log_lr", "msprt_reject", "msprt_half_width", "running_moments", "welch", "msprt_looks"]


def _check(alpha: float, tau: float) -> None:
    if not (0 < alpha < 1):
        raise ValidationError(f"alpha must be in (0, 1), got {alpha}", path="alpha")
    if not (tau > 0 and np.isfinite(tau)):
        raise ValidationError(f"tau (mixture scale) must be a finite number > 0, got {tau}", path="tau")


def msprt_log_lr(diff: np.ndarray, var: np.ndarray, tau: float) -> np.ndarray:
    """Log of the mixture likelihood ratio ``Lambda`` (NaN where ``var`` is not positive)."""
    diff = np.asarray(diff, dtype=float)
    var = np.asarray(var, dtype=float)
    t2 = float(tau) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(var > 0, var, np.nan)
        return 0.5 * np.log(v / (v + t2)) + diff ** 2 * t2 / (2 * v * (v + t2))


def msprt_reject(diff: np.ndarray, var: np.ndarray, tau: float, alpha: float) -> np.ndarray:
    """True where ``Lambda >= 1 / alpha`` (the sequential test rejects "no difference")."""
    _check(alpha, tau)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(msprt_log_lr(diff, var, tau), nan=-np.inf) >= np.log(1 / alpha)


def msprt_half_width(var: np.ndarray, tau: float, alpha: float) -> np.ndarray:
    """Half-width of the anytime-valid ``1 - alpha`` confidence sequence for the difference (outcome units)."""
    _check(alpha, tau)
    var = np.asarray(var, dtype=float)
    t2 = float(tau) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(var > 0, var, np.nan)
        return np.sqrt(v * (v + t2) / t2 * (np.log((v + t2) / v) + 2 * np.log(1 / alpha)))


def running_moments(y: np.ndarray, in_b: np.ndarray) -> dict[str, np.ndarray]:
    """Per look (after each unit) counts, means and sample variances of both arms, along the last axis.

    Parameters
    ----------
    y : array (..., units)
        Outcome per unit, in the order the units complete. NaN units (no value, e.g. no incident
        caught for a delay) are left out.
    in_b : bool array, same shape
        True where the unit is in arm B.

    Returns
    -------
    dict
        ``n_a, n_b, mean_a, mean_b, var_a, var_b`` (variances with ddof=1, NaN below 2 units).
    """
    y = np.asarray(y, dtype=float)
    in_b = np.asarray(in_b, dtype=bool)
    ok = np.isfinite(y)
    yz = np.where(ok, y, 0.0)
    out: dict[str, np.ndarray] = {}
    for name, m in (("a", ok & ~in_b), ("b", ok & in_b)):
        n = np.cumsum(m, axis=-1)
        s = np.cumsum(np.where(m, yz, 0.0), axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s / n
            # centred second moment per look from the running mean (stable enough for counts and delays)
            c = np.where(m, yz, 0.0)
            ss = np.cumsum(c * c, axis=-1) - n * mean * mean
            var = np.where(n >= 2, np.maximum(ss, 0.0) / (n - 1), np.nan)
        out[f"n_{name}"], out[f"mean_{name}"], out[f"var_{name}"] = n, mean, var
    return out


def welch(mom: dict[str, np.ndarray], *, with_p: bool = True) -> dict[str, np.ndarray]:
    """Welch's t statistic, Welch-Satterthwaite degrees of freedom and two-sided p per look (vectorised).

    ``with_p=False`` leaves out the degrees of freedom and p (the costly part) when only the
    difference and its variance are needed.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        va, vb = mom["var_a"] / mom["n_a"], mom["var_b"] / mom["n_b"]
        v = va + vb
        diff = mom["mean_b"] - mom["mean_a"]
        if not with_p:
            return {"diff": diff, "var": v}
        t = np.where(v > 0, diff / np.sqrt(v), np.nan)
        df = v ** 2 / (va ** 2 / (mom["n_a"] - 1) + vb ** 2 / (mom["n_b"] - 1))
        p = 2 * stats.t.sf(np.abs(t), df)
    return {"diff": diff, "var": v, "t": t, "df": df, "p": p}


def msprt_looks(y: np.ndarray, in_b: np.ndarray, *, tau: float, alpha: float, min_units: int,
                look: np.ndarray | None = None, with_p: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rejections of the sequential test at each look, and the Welch statistics, along the last axis.

    A look is taken after each unit where ``look`` is True (default every unit) once both arms hold
    ``min_units`` units and the variance is positive. Returns ``(reject, welch)`` where ``reject`` is
    True at the looks where ``Lambda >= 1 / alpha`` (``welch`` without p unless ``with_p``).
    """
    mom = running_moments(y, in_b)
    w = welch(mom, with_p=with_p)
    ok = (mom["n_a"] >= min_units) & (mom["n_b"] >= min_units) & (w["var"] > 0)
    if look is not None:
        ok &= look
    w["look"] = ok
    return msprt_reject(w["diff"], w["var"], tau, alpha) & ok, w
