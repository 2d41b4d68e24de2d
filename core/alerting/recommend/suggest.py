"""Helpers for starting a rule from a recommendation: default levels, grids, the suggestion's rationale.

The Thresholds page's "New rule" suggestion is the recommendation engine's
(:func:`core.alerting.recommend.engine.recommend`: strategies chosen on the fit period, checked on
the held-out part, with an interval and a risk level); :func:`as_rule_dict` turns it into a rule
dict on a slider grid, with a rationale quoting the check. :func:`fit_levels` gives cheap default
levels with no replay (the 99th / 99.9th percentiles, 1st / 0.1th for ``<``-like comparators, of the
finite raw points of the first ``1 - holdout`` of the time span, labelled incidents left out), for a
level a rule lacks or a comparator flip; :func:`snap` is the one rounding-to-a-grid function (the
page's sliders use it too); :func:`revise_rationale` rewrites a suggestion's rationale once the rule
is edited away from the suggestion.

Everything here is pure (no store, no streamlit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.recommend.engine import Recommendation
from core.alerting.rules import COMPARATORS, Rule, format_duration
from core.errors import InsufficientDataError, ValidationError

__all__ = ["FitLevels", "fit_levels", "as_rule_dict", "revise_rationale", "fit_mask", "snap", "step_decimals",
           "LEVEL_QUANTILES", "SUGGESTED_PREFIX"]

#: percentile levels (as fractions) of (warning, critical) by direction
LEVEL_QUANTILES = {"up": (0.99, 0.999), "down": (0.01, 0.001)}
#: how a suggestion's rationale annotation begins (:func:`revise_rationale` recognises it by this)
SUGGESTED_PREFIX = "Suggested from "
#: rule fields the suggestion's percentiles and held-out rates were computed for
_SUGGESTED_FIELDS = ("comparator", "warning", "critical", "for_s", "keep_firing_for_s", "recovery",
                     "consecutive", "missing", "interval_s")
_NS = 1_000_000_000


def fit_mask(ts: pd.DatetimeIndex, incidents: pd.DataFrame | None) -> np.ndarray:
    """True for timestamps outside every labelled incident window ``[start, end]`` (open end: to the end
    of time). Loops over incidents (few), never over points."""
    keep = np.ones(len(ts), dtype=bool)
    if incidents is None or len(incidents) == 0:
        return keep
    for col in ("start", "end"):
        if col not in incidents.columns:
            raise ValidationError(f"incidents lack column {col!r}; expected start, end", path=f"incidents.{col}")
    t = ts.as_unit("ns").asi8
    s = pd.to_datetime(incidents["start"], utc=True).dt.as_unit("ns")
    e = pd.to_datetime(incidents["end"], utc=True).dt.as_unit("ns")
    for a, b in zip(s, e, strict=True):
        if a is pd.NaT:
            continue
        hi = np.iinfo(np.int64).max if b is pd.NaT else b.value
        keep &= ~((t >= a.value) & (t <= hi))
    return keep


def step_decimals(step: float) -> int:
    """Decimals a value on the grid of ``step`` needs (0.2 -> 1, 5 -> 0, 0.002 -> 3)."""
    return max(0, -math.floor(math.log10(step) + 1e-9))


def snap(x: float, step: float) -> float:
    """``x`` on the grid of ``step`` (and to its decimals, so 0.1 + 0.2 prints as 0.3)."""
    return round(round(x / step) * step, step_decimals(step))


@dataclass(frozen=True)
class FitLevels:
    """Levels fitted on the fit period (the fit period's percentiles), without any replay.

    ``warning``/``critical`` in the series' unit (critical None when it would not lie beyond warning
    and no ``step`` was given); ``split`` starts the held-out period; ``fit_points`` /
    ``excluded_points`` count the finite fit-period points used / left out as inside incidents.
    """

    comparator: str
    warning: float
    critical: float | None
    quantiles: tuple[float, float]
    holdout: float
    split: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp
    fit_points: int
    excluded_points: int
    notes: tuple[str, ...] = field(default_factory=tuple)


def _check_values(values: Any) -> pd.Series:
    if not isinstance(values, pd.Series) or not isinstance(values.index, pd.DatetimeIndex) \
            or values.index.tz is None:
        raise ValidationError("values must be a Series indexed by tz-aware (UTC) timestamps", path="values")
    return values.sort_index()


def fit_levels(values: pd.Series, comparator: str = ">", incidents: pd.DataFrame | None = None,
               holdout: float = 0.3, *, step: float | None = None,
               quantiles: tuple[float, float] | None = None) -> FitLevels:
    """Warning/critical levels from the raw points of the first ``1 - holdout`` of the time span,
    labelled incidents left out (no replay, so cheap enough for a widget callback).

    ``incidents``: labelled windows ``start, end`` (UTC; NaT end = still open) whose points are left
    out; ``holdout``: share of the time span held out at the end (0 < holdout < 1); ``quantiles``:
    (warning, critical) as fractions (default :data:`LEVEL_QUANTILES` by direction). With ``step``
    the levels are snapped to its grid and critical is always set, one step beyond warning when
    rounding makes them meet.

    Raises
    ------
    InsufficientDataError
        Fewer than 2 finite fit-period points outside incidents, or a history with no time span.
    ValidationError
        A bad comparator, holdout, step or quantiles.
    """
    if comparator not in COMPARATORS:
        raise ValidationError(f"unknown comparator {comparator!r}; expected one of {list(COMPARATORS)}",
                              path="comparator")
    if not (isinstance(holdout, (int, float)) and 0 < holdout < 1):
        raise ValidationError(f"holdout must be a share strictly between 0 and 1, got {holdout!r}", path="holdout")
    if step is not None and not (math.isfinite(step) and step > 0):
        raise ValidationError(f"step must be a finite number > 0, got {step!r}", path="step")
    up = comparator in (">", ">=")
    qw, qc = quantiles if quantiles is not None else LEVEL_QUANTILES["up" if up else "down"]
    if not (0 < qw < 1 and 0 < qc < 1 and (qc > qw if up else qc < qw)):
        raise ValidationError(f"quantiles {quantiles!r} must be fractions in (0, 1) with critical beyond "
                              "warning in the comparator's direction", path="quantiles")
    s = _check_values(values)
    idx = s.index.tz_convert("UTC")
    if len(s) < 2 or idx[-1] <= idx[0]:
        raise InsufficientDataError(f"{len(s)} point(s) without a time span: nothing to fit levels on")
    start, end = idx[0], idx[-1]
    split = start + (end - start) * (1.0 - holdout)
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    in_fit = np.asarray(idx < split)
    finite = np.isfinite(v)
    outside = fit_mask(idx, incidents)
    use = in_fit & finite & outside
    n_fit, n_excl = int(use.sum()), int((in_fit & finite & ~outside).sum())
    if n_fit < 2:
        raise InsufficientDataError(
            f"only {n_fit} finite point(s) before {split:%Y-%m-%d %H:%M} outside labelled incidents; "
            "fitting levels needs at least 2")
    w, c = (float(x) for x in np.quantile(v[use], [qw, qc]))
    notes = [f"Levels are the {_pct(qw)} and {_pct(qc)} percentiles of the first {1 - holdout:.0%} of the "
             f"history ({start:%Y-%m-%d %H:%M} to {split:%Y-%m-%d %H:%M} UTC, {n_fit:,} points"
             + (f"; {n_excl:,} points inside labelled incidents left out" if n_excl else "") + ")."]
    if step is not None:
        w, c = snap(w, step), snap(c, step)
    crit: float | None = c
    if (up and c <= w) or (not up and c >= w):
        if step is not None:
            crit = snap(w + step if up else w - step, step)
        else:
            crit = None
            notes.append(f"The {_pct(qc)} percentile equals the {_pct(qw)} ({w:g}): only a warning level "
                         "is suggested.")
    tail = 1.0 - qc if up else qc
    if n_fit * tail < 1:
        notes.append(f"{n_fit:,} fit points: the {_pct(qc)} percentile needs at least {math.ceil(1 / tail):,} "
                     "to rest on more than the few highest values; treat the critical level as rough.")
    return FitLevels(comparator=comparator, warning=w, critical=crit, quantiles=(qw, qc), holdout=float(holdout),
                     split=split, start=start, end=end, fit_points=n_fit, excluded_points=n_excl,
                     notes=tuple(notes))


def _pct(q: float) -> str:
    """0.99 -> "99th", 0.999 -> "99.9th", 0.01 -> "1st"."""
    x = f"{100 * q:.4g}"
    if "." in x:
        return x + "th"
    last = x[-1]
    suffix = "st" if last == "1" and not x.endswith("11") else "nd" if last == "2" and not x.endswith("12") \
        else "rd" if last == "3" and not x.endswith("13") else "th"
    return x + suffix


def as_rule_dict(rec: Recommendation, name: str, series: str, *, step: float | None = None,
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A recommendation (:func:`~core.alerting.recommend.engine.recommend`) as a new policy rule dict
    (durations as text, ``missing: nodata``), with a rationale annotation that begins with
    :data:`SUGGESTED_PREFIX` and quotes the engine's prediction, its interval, the held-out check and
    the risk.

    With ``step`` the levels are snapped to its grid (a slider's) and critical is kept one step beyond
    warning when rounding makes them meet; the rationale then gives the levels as recommended.
    Raises :class:`ValidationError` when the recommendation has no levels (``insufficient``).
    """
    if rec.insufficient or (rec.warning is None and rec.critical is None):
        raise ValidationError(f"no recommendation for {rec.series}: {rec.insufficient or 'no level'}", path="series")
    up = rec.comparator in (">", ">=")
    w, c = rec.warning, rec.critical
    if step is not None:
        if not (math.isfinite(step) and step > 0):
            raise ValidationError(f"step must be a finite number > 0, got {step!r}", path="step")
        w, c = (None if x is None else snap(x, step) for x in (w, c))
        if w is not None and c is not None and ((up and c <= w) or (not up and c >= w)):
            c = snap(w + step if up else w - step, step)
    levels = {k: v for k, v in (("warning", w), ("critical", c)) if v is not None}
    d: dict[str, Any] = {"name": name, "series": series, "comparator": rec.comparator, **levels,
                         "for": format_duration(rec.for_s), "missing": "nodata"}
    iv = rec.predicted_interval
    pred = ("-" if rec.predicted_episodes_per_week is None else f"{rec.predicted_episodes_per_week:.2f}") \
        + (f" (90% interval {iv[0]:.2f}-{iv[1]:.2f})" if iv else "")
    v = rec.validation
    check = (f"held-out {v.get('actual', 0.0):.2f}" if v.get("sufficient")
             else f"held-out check insufficient ({v.get('reason')})")
    shown = ", ".join(f"{k} {x:.4g}" for k, x in (("warning", rec.warning), ("critical", rec.critical))
                      if x is not None)
    d["annotations"] = {"rationale": (
        f"{SUGGESTED_PREFIX}the {rec.preset} recommendation ({rec.strategy}: {shown}) fitted on the history "
        f"before {pd.Timestamp(rec.split):%Y-%m-%d %H:%M} UTC: predicted {pred} episodes/week, {check}; "
        f"risk {rec.risk}.")}
    d.update(dict(extra or {}))
    return d


def revise_rationale(base: Mapping[str, Any], edited: Mapping[str, Any] | Rule) -> dict[str, str]:
    """The annotations for ``edited`` when it was made from the rule dict ``base``.

    A rationale written by :func:`as_rule_dict` (it begins with :data:`SUGGESTED_PREFIX`) describes
    the suggested settings only: once a level, the comparator or a setting the quoted rates were
    replayed with (for, keep firing for, recovery, consecutive, missing, interval) differs from
    ``base``, it is replaced by a sentence saying the rule was set by hand from that suggestion.
    Any other rationale (written by a person) and all other annotations are kept as they are.
    """
    old = Rule.from_dict(base)
    new = edited if isinstance(edited, Rule) else Rule.from_dict(edited)
    ann = dict(new.annotations)
    why = ann.get("rationale")
    if not (isinstance(why, str) and why.startswith(SUGGESTED_PREFIX)):
        return ann
    if all(getattr(old, f) == getattr(new, f) for f in _SUGGESTED_FIELDS):
        return ann
    levels = ", ".join(f"{k} {v:g}" for k, v in old.triggers().items())
    ann["rationale"] = (f"Set by hand, starting from a suggestion ({old.comparator}; {levels}; for "
                        f"{format_duration(old.for_s)}) fitted on raw percentiles; that suggestion's "
                        "percentiles and held-out check do not describe these settings.")
    return ann
