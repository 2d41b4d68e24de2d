"""Group-sequential stopping with O'Brien-Fleming-type alpha spending (Lan & DeMets 1983).

The looks are fixed in the plan (after every ``look_every`` units up to the horizon ``N``); at look
``k`` with information fraction ``t_k = n_k / N`` the test rejects when ``|Z_k| >= c_k``. The
two-sided O'Brien-Fleming-type spending function

    alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))

says how much of the false-positive budget may be used by ``t``; the boundaries are solved one look
at a time so that, under no difference, the probability of first crossing at look ``k`` is
``alpha(t_k) - alpha(t_{k-1})`` (Lan, K.K.G. & DeMets, D.L., "Discrete sequential boundaries for
clinical trials", Biometrika 70(3), 1983; the crossing probabilities by the recursive numerical
integration of Armitage, McPherson & Rowe, JRSS A 132, 1969). The final boundary is close to the
fixed-horizon ``z`` and the early ones very high, so early stopping needs a very clear effect and
the horizon grows only a few percent over the fixed test's.

``Z`` is the score process in information time: ``W(t) = Z(t) sqrt(t)`` has independent normal
increments with variance ``dt`` and drift ``mu dt``, ``mu`` the expected ``Z`` at ``t = 1``. The
density of ``W`` on the continuation region is carried on a grid from look to look.

Small samples: the boundaries are for a normal ``Z``; the experiment's statistic is Welch's ``t``
with an estimated variance, whose tails are heavier at a few units per arm. So a look rejects when
Welch's two-sided p-value is at most the boundary's nominal level ``2 (1 - Phi(c_k))``
(:func:`obf_reject`), and looks start only with ``min_units`` per arm, as for the mixture test.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from core.errors import ValidationError

__all__ = ["obf_spending", "obf_boundaries", "crossing_probability", "drift_for_power", "look_fractions",
           "design", "inflation", "obf_reject"]

_GRID = 401          # grid points over the continuation region per look


def obf_spending(t: np.ndarray | float, alpha: float) -> np.ndarray:
    """Cumulative two-sided alpha spent by information fraction ``t`` (O'Brien-Fleming type)."""
    t = np.asarray(t, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(t > 0, 2 - 2 * norm.cdf(norm.ppf(1 - alpha / 2) / np.sqrt(np.maximum(t, 1e-300))), 0.0)


def look_fractions(units: int, look_every: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n_k, t_k)``: units at each look (every ``look_every`` units, and at ``units``) and their fractions."""
    units, look_every = int(units), int(look_every)
    if units < 1 or look_every < 1:
        raise ValidationError("units and look_every must be >= 1", path="look_every")
    n = np.unique(np.r_[np.arange(look_every, units, look_every), units])
    return n, n / units


def _fractions(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or t.size == 0 or (np.diff(t) <= 0).any() or t[0] <= 0 or abs(t[-1] - 1) > 1e-9:
        raise ValidationError("look fractions must increase strictly from > 0 to 1", path="looks")
    return t


def _exit(w: np.ndarray, f: np.ndarray, dt: float, mu: float, lo: float, hi: float) -> float:
    """Probability that W, with mass ``f`` on grid ``w``, is outside ``(lo, hi)`` after an increment
    ``N(mu dt, dt)``."""
    s = math.sqrt(dt)
    return float(np.sum(f * (norm.cdf((lo - w - mu * dt) / s) + norm.sf((hi - w - mu * dt) / s))))


def _step(w: np.ndarray, f: np.ndarray, dt: float, mu: float, lo: float, hi: float
          ) -> tuple[float, np.ndarray, np.ndarray]:
    """From mass ``f`` of W on grid ``w`` (quadrature weights included), one increment ``N(mu dt, dt)``:
    probability of leaving ``(lo, hi)`` and the new masses on a grid over ``(lo, hi)``."""
    s = math.sqrt(dt)
    exit_p = _exit(w, f, dt, mu, lo, hi)
    x = np.linspace(lo, hi, _GRID)
    h = x[1] - x[0]
    wts = np.full(_GRID, h)
    wts[0] = wts[-1] = h / 2                                        # trapezoid weights
    z = (x[:, None] - w[None, :] - mu * dt) / s
    dens = (np.exp(-0.5 * z * z) / (s * math.sqrt(2 * math.pi))) @ f
    return exit_p, x, dens * wts


def obf_boundaries(t: np.ndarray, alpha: float) -> np.ndarray:
    """Two-sided boundaries ``c_k`` on ``|Z|`` at information fractions ``t`` (last = 1)."""
    if not (0 < alpha < 0.5):
        raise ValidationError(f"alpha must be in (0, 0.5), got {alpha}", path="alpha")
    t = _fractions(t)
    spend = np.diff(np.r_[0.0, obf_spending(t, alpha)])
    c = np.empty(t.size)
    w, f, prev = np.zeros(1), np.ones(1), 0.0                      # W(0) = 0 with probability 1
    for k, tk in enumerate(t):                                      # one solve per look (<= a few dozen)
        dt = tk - prev
        target = spend[k]

        def excess(ck: float, _w: np.ndarray = w, _f: np.ndarray = f, _dt: float = dt, _tk: float = tk,
                   _target: float = target) -> float:
            b = ck * math.sqrt(_tk)
            return _exit(_w, _f, _dt, 0.0, -b, b) - _target

        c[k] = 40.0 if target <= 1e-15 else brentq(excess, 0.1, 40.0, xtol=1e-7)
        b = c[k] * math.sqrt(tk)
        _, w, f = _step(w, f, dt, 0.0, -b, b)
        prev = tk
    return c


def crossing_probability(t: np.ndarray, c: np.ndarray, mu: float) -> float:
    """Probability that ``|Z_k| >= c_k`` at some look, when the expected ``Z`` at ``t = 1`` is ``mu``."""
    t = _fractions(t)
    w, f, prev, total = np.zeros(1), np.ones(1), 0.0, 0.0
    for tk, ck in zip(t, c, strict=True):
        b = ck * math.sqrt(tk)
        p, w, f = _step(w, f, tk - prev, mu, -b, b)
        total += p
        prev = tk
    return total


def drift_for_power(t: np.ndarray, c: np.ndarray, power: float) -> float:
    """The expected final ``Z`` (``mu``) at which the design rejects with probability ``power``."""
    return float(brentq(lambda m: crossing_probability(t, c, m) - power, 0.0, 20.0, xtol=1e-6))


@lru_cache(maxsize=256)
def _design(units: int, look_every: int, alpha: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    n, t = look_fractions(units, look_every)
    return tuple(int(x) for x in n), tuple(float(x) for x in obf_boundaries(t, alpha))


def design(units: int, look_every: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(n_k, c_k)``: the units at each look and the ``|Z|`` boundary there (cached; deterministic)."""
    n, c = _design(int(units), int(look_every), float(alpha))
    return np.asarray(n), np.asarray(c)


@lru_cache(maxsize=256)
def inflation(units: int, look_every: int, alpha: float, power: float) -> float:
    """Sample-size inflation of the design over the fixed test: ``(mu / (z_{1-alpha/2} + z_power))^2``."""
    n, c = design(units, look_every, alpha)
    mu = drift_for_power(n / n[-1], c, power)
    return (mu / (norm.ppf(1 - alpha / 2) + norm.ppf(power))) ** 2


def obf_reject(welch_p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """True where Welch's two-sided p is at most the nominal level of boundary ``c`` (NaN p: False)."""
    p = np.nan_to_num(np.asarray(welch_p, dtype=float), nan=1.0)
    return p <= 2 * norm.sf(np.asarray(c, dtype=float))
