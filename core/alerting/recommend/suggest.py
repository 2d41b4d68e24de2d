"""Suggest warning/critical levels for a series, and check the suggestion on data it was not fit on.

A percentile of the whole history, replayed over that same history, tells you what the rule would
have done there (in-sample): it cannot be wrong about the alert rate, because the rate was chosen
from those very values. :func:`suggest_rule` splits the history in time instead:

1. **fit period**: the first ``1 - holdout`` of the time span (70 % by default). The levels are the
   99th / 99.9th percentiles (1st / 0.1th for ``<``-like comparators) of its finite raw points,
   leaving out every point inside a labelled incident window (an outage is not the normal level);
2. the suggested rule is replayed once over the whole history (causal: the state at an evaluation
   depends only on earlier data) and its alert load is measured separately on the fit period (the
   *predicted* rate) and on the **held-out** last ``holdout`` of the span (the *measured* rate);
   both periods include incidents, so the two are measured the same way;
3. the error is held-out minus predicted (episodes per week, absolute and relative; time in alert,
   in percentage points), with a Poisson p-value of the measured episode count given the predicted
   one. The measured rate is always reported. The check gives no error, only the reason, when the
   held-out period is too short (under ``min_holdout_s``, 2 days by default) or too quiet to judge a
   rate: fewer than ``min_expected_episodes`` episodes both expected at the predicted rate *and*
   measured (a prediction of 0 that the held-out data answers with hundreds of episodes is a failed
   prediction, not an insufficient check).

:func:`fit_levels` is step 1 alone (no replay), used for default slider levels; :func:`snap` is the
one rounding-to-a-grid function (the page's sliders use it too); :func:`revise_rationale` rewrites a
suggestion's rationale once the rule is edited away from the suggestion.

Everything here is pure (no store, no streamlit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import poisson

from core.alerting.replay import replay
from core.alerting.rules import COMPARATORS, Rule, format_duration, parse_duration
from core.errors import InsufficientDataError, ValidationError

__all__ = ["Suggestion", "FitLevels", "suggest_rule", "fit_levels", "as_rule_dict", "revise_rationale",
           "fit_mask", "snap", "step_decimals", "poisson_p", "LEVEL_QUANTILES", "MIN_HOLDOUT_S",
           "MIN_EXPECTED_EPISODES", "SUGGESTED_PREFIX"]

#: percentile levels (as fractions) of (warning, critical) by direction
LEVEL_QUANTILES = {"up": (0.99, 0.999), "down": (0.01, 0.001)}
#: the held-out period must cover at least this many seconds for the check to give a number
MIN_HOLDOUT_S = 2 * 86400.0
#: ... and this many episodes must be expected in it at the predicted rate
MIN_EXPECTED_EPISODES = 3.0
#: how a suggestion's rationale annotation begins (:func:`revise_rationale` recognises it by this)
SUGGESTED_PREFIX = "Suggested from "
#: rule fields the suggestion's percentiles and held-out rates were computed for
_SUGGESTED_FIELDS = ("comparator", "warning", "critical", "for_s", "keep_firing_for_s", "recovery",
                     "consecutive", "missing", "interval_s")
_NS = 1_000_000_000
WEEK_S = 7 * 86400.0


@dataclass(frozen=True)
class Suggestion:
    """A suggested rule shape and how its predicted alert rate held up on later data.

    Attributes
    ----------
    comparator : str
    warning, critical : float or None
        Suggested levels in the series' unit (critical None when it would not lie beyond warning).
    quantiles : tuple of float
        The (warning, critical) quantiles used, as fractions (0.99, 0.999).
    for_s : float
        Pending period (seconds) the rates were replayed with.
    missing : str
        Missing-data mode the rates were replayed with.
    split : Timestamp
        Start of the held-out period (UTC); the fit period is everything before it.
    start, end : Timestamp
        First and last timestamp of the history.
    fit_points : int
        Finite raw points the percentiles were computed from.
    excluded_points : int
        Finite fit-period points left out because they lie inside a labelled incident.
    fit_rate, holdout_rate : dict
        :meth:`core.alerting.replay.Replay.period` of the suggested rule (any level firing) on the fit period
        (the prediction) and on the held-out period (the measurement): ``episodes,
        episodes_per_week, time_in_alert_s, time_in_alert_pct, span_s`` ...
    expected_holdout_episodes : float
        Episodes the predicted rate expects in the held-out period.
    error : dict or None
        ``episodes_per_week`` (held-out minus predicted), ``episodes_per_week_rel`` (that over the
        prediction; None when the prediction is 0), ``time_in_alert_pp`` (percentage points) and
        ``p_value`` (:func:`poisson_p` of the held-out episodes given the expected number).
        None when not ``sufficient``; the measured rate is in ``holdout_rate`` either way.
    sufficient : bool
        Whether the held-out period is long enough (``min_holdout_s``), and busy enough (expected or
        measured episodes reach ``min_expected_episodes``), to check the prediction.
    notes : tuple of str
        What was done and, when insufficient, why (read :attr:`note` for one line).
    """

    comparator: str
    warning: float | None
    critical: float | None
    quantiles: tuple[float, float]
    for_s: float
    missing: str
    split: pd.Timestamp
    start: pd.Timestamp
    end: pd.Timestamp
    fit_points: int
    excluded_points: int
    fit_rate: dict[str, Any]
    holdout_rate: dict[str, Any]
    expected_holdout_episodes: float
    error: dict[str, Any] | None
    sufficient: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def note(self) -> str:
        """The notes as one text."""
        return " ".join(self.notes)

    def levels(self) -> dict[str, float]:
        """``{"warning": w, "critical": c}`` (levels that are set)."""
        return {k: v for k, v in (("warning", self.warning), ("critical", self.critical)) if v is not None}

    def rule(self, name: str = "suggested", series: str = "series", **extra: Any) -> Rule:
        """The suggested rule (``extra``: further :class:`~core.alerting.rules.Rule` fields, e.g. ``unit``)."""
        return Rule(name=name, series=series, comparator=self.comparator, for_s=self.for_s,
                    missing=self.missing, **self.levels(), **extra)

    def rows(self) -> pd.DataFrame:
        """For display: ``metric, fit period (predicted), held-out (measured), error`` (error text says
        "insufficient" with the reason's short form when the check cannot give a number)."""
        f, h, e = self.fit_rate, self.holdout_rate, self.error
        why = "insufficient" if e is None else None

        def num(x: Any, fmt: str) -> str:
            return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)

        rel = None if e is None else e.get("episodes_per_week_rel")
        return pd.DataFrame({
            "metric": ["episodes / week", "time in alert (%)", "episodes", "period"],
            "fit period (predicted)": [num(f["episodes_per_week"], ".2f"), num(f["time_in_alert_pct"], ".3f"),
                                       str(f["episodes"]), f"{f['span_s'] / 86400:.1f} days"],
            "held-out (measured)": [num(h["episodes_per_week"], ".2f"), num(h["time_in_alert_pct"], ".3f"),
                                    str(h["episodes"]), f"{h['span_s'] / 86400:.1f} days"],
            "error": [why or (num(e["episodes_per_week"], "+.2f")
                              + ("" if rel is None else f" ({rel:+.0%})")),
                      why or num(e["time_in_alert_pp"], "+.3f") + " pp", "", ""],
        })


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
    """Levels fitted on the fit period (step 1 of :func:`suggest_rule`), without any replay.

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
    labelled incidents left out (step 1 of :func:`suggest_rule`; no replay, so cheap enough for a
    widget callback).

    Parameters are those of :func:`suggest_rule`. With ``step`` the levels are snapped to its grid
    and critical is always set, one step beyond warning when rounding makes them meet.

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


def poisson_p(observed: int, expected: float) -> float:
    """Two-sided p-value of ``observed`` episodes when ``expected`` were predicted (Poisson counts):
    twice the smaller tail, capped at 1. A prediction of 0 gives 1 for 0 observed and 0 otherwise."""
    if expected <= 0:
        return 1.0 if observed == 0 else 0.0
    lo = float(poisson.cdf(observed, expected))          # P(X <= observed)
    hi = float(poisson.sf(observed - 1, expected))       # P(X >= observed)
    return min(1.0, 2.0 * min(lo, hi))


def suggest_rule(values: pd.Series, comparator: str = ">", incidents: pd.DataFrame | None = None,
                 holdout: float = 0.3, *, step: float | None = None, for_s: float | str = "5m",
                 missing: str = "nodata", quantiles: tuple[float, float] | None = None,
                 min_holdout_s: float = MIN_HOLDOUT_S,
                 min_expected_episodes: float = MIN_EXPECTED_EPISODES) -> Suggestion:
    """Suggest warning/critical levels from the early history and check them on the later history.

    Parameters
    ----------
    values : Series
        Raw points of one series indexed by UTC timestamps (NaN = missing; never filled).
    comparator : {">", ">=", "<", "<="}
    incidents : DataFrame, optional
        Labelled incident windows ``start, end`` (UTC; NaT end = still open). Their points are left
        out of the percentiles; the replayed rates include them.
    holdout : float
        Share of the time span held out at the end (0 < holdout < 1), 0.3 = the last 30 %.
    step : float, optional
        Round the levels to this grid (e.g. a slider step); critical is moved one step beyond
        warning when rounding makes them meet.
    for_s : float or str
        Pending period the rates are replayed with (seconds or ``"5m"``).
    missing : str
        Missing-data mode the rates are replayed with.
    quantiles : (float, float), optional
        (warning, critical) quantiles as fractions; default :data:`LEVEL_QUANTILES` by direction.
    min_holdout_s, min_expected_episodes : float
        The check gives an error only when the held-out period covers at least ``min_holdout_s``
        seconds and ``max(expected, measured)`` held-out episodes reaches ``min_expected_episodes``
        (expected = the predicted rate over the held-out span); otherwise it says "insufficient".

    Returns
    -------
    Suggestion

    Raises
    ------
    InsufficientDataError
        Fewer than 2 finite fit-period points outside incidents, or a history with no time span.
    ValidationError
        A bad comparator, holdout, step or quantiles.
    """
    fl = fit_levels(values, comparator, incidents, holdout, step=step, quantiles=quantiles)
    f_s = parse_duration(for_s, path="for")
    s = _check_values(values)
    w, crit, split, start = fl.warning, fl.critical, fl.split, fl.start
    notes = list(fl.notes)
    rule = Rule(name="suggested", series=str(values.name or "series"), comparator=comparator, warning=w,
                critical=crit, for_s=f_s, missing=missing)
    rep = replay(rule, s)
    fit = rep.period(start, split)
    held = rep.period(split, None)
    weeks = held["span_s"] / WEEK_S
    pe, he = fit["episodes_per_week"] or 0.0, held["episodes_per_week"] or 0.0
    expected = pe * weeks
    observed = int(held["episodes"])
    reasons = []
    if held["span_s"] < min_holdout_s:
        reasons.append(f"the held-out period covers only {format_duration(round(held['span_s']))}; "
                       f"a check needs at least {format_duration(min_holdout_s)}")
    if max(expected, observed) < min_expected_episodes:
        reasons.append(f"at the predicted {pe:.2f} episodes/week the held-out period would expect "
                       f"{expected:.1f} episode(s) and it had {observed}; a check needs at least "
                       f"{min_expected_episodes:g} either way")
    sufficient = not reasons
    error = None
    measured = (f"predicted {pe:.2f} episodes/week ({fit['time_in_alert_pct'] or 0:.2f}% of the time in alert), "
                f"measured {he:.2f} ({observed} episode(s), {held['time_in_alert_pct'] or 0:.2f}% in alert)")
    if sufficient:
        p = poisson_p(observed, expected)
        error = {"episodes_per_week": he - pe, "episodes_per_week_rel": (he - pe) / pe if pe else None,
                 "time_in_alert_pp": (held["time_in_alert_pct"] or 0.0) - (fit["time_in_alert_pct"] or 0.0),
                 "p_value": p}
        verdict = (f" {observed} episodes where {expected:.1f} were expected (Poisson p = {p:.2g}): the "
                   "later data does not behave like the fit period; do not trust these levels' alert rate."
                   if p < 0.05 else "")
        notes.append(f"Held-out check: {measured}; {error['episodes_per_week']:+.2f} episodes/week.{verdict}")
    else:
        notes.append(f"Held-out check insufficient ({measured}): " + "; ".join(reasons) + ".")
    return Suggestion(comparator=comparator, warning=w, critical=crit, quantiles=fl.quantiles, for_s=f_s,
                      missing=missing, split=split, start=start, end=fl.end, fit_points=fl.fit_points,
                      excluded_points=fl.excluded_points, fit_rate=fit, holdout_rate=held,
                      expected_holdout_episodes=float(expected), error=error, sufficient=sufficient,
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


def as_rule_dict(sug: Suggestion, name: str, series: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The suggestion as a policy rule dict (durations as text), with a rationale annotation that
    begins with :data:`SUGGESTED_PREFIX` and quotes the predicted and measured rates."""
    d: dict[str, Any] = {"name": name, "series": series, "comparator": sug.comparator, **sug.levels(),
                         "for": format_duration(sug.for_s), "missing": sug.missing}
    qw, qc = sug.quantiles
    fit_share = (sug.split - sug.start) / (sug.end - sug.start)
    rates = "predicted {:.2f} episodes/week, measured {:.2f}".format(
        sug.fit_rate["episodes_per_week"] or 0.0, sug.holdout_rate["episodes_per_week"] or 0.0)
    d["annotations"] = {"rationale": (
        f"{SUGGESTED_PREFIX}{sug.fit_points} raw points of the first {fit_share:.0%} of the history "
        f"(labelled incidents left out): warning at the {_pct(qw)} percentile"
        + (f", critical at the {_pct(qc)}" if sug.critical is not None else "") + ". "
        + (f"Held-out check: {rates}." if sug.sufficient else f"Held-out check insufficient ({rates})."))}
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
