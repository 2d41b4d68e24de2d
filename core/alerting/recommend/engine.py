"""One series from raw points to a validated recommendation (:func:`recommend`).

1. **Split in time**: the fit period is the first ``train_fraction`` of the time span (70 % by
   default), the held-out period the rest. Nothing after the split is used to choose levels.
2. **Strategies** (:mod:`.strategies`) of the preset each propose levels from the fit period's clean
   points (finite, outside labelled incidents).
3. **Choice**: every scalar candidate's warning level is scored on the fit period by one call of the
   vectorised sweep (all candidates at once) on *reliability* (share of the fit period's labelled
   incidents caught), *achievability* (``min(1, budget / episodes per week)``) and *stability*
   (``1 - |level - level in force| / |level in force|``, floored at 0). Objectives without data (no
   incidents, no rule in force) drop out and the weights of the rest are renormalised. The Pareto
   front (candidates no other candidate beats on every objective) is kept and the one with the best
   weighted score (default 0.4 / 0.4 / 0.2) wins; ties go to the less sensitive level.
4. **Constraints** (:mod:`.constraints`) cut the chosen levels; the unconstrained values are kept.
5. **Validation**: the final rule is replayed once over the whole history (causal) and its
   held-out rate is the measurement. The prediction is *cross-fitted*, never the fit-period count
   the choice was made by (that count is biased low by the choice: winner's curse): steps 1-4 are
   rerun on the fit period alone with its first 70 % to choose on, and the rule they give is
   replayed on the remaining 30 % (the check window); that rate of episodes outside labelled
   incidents predicts the procedure's noise on new data, with a negative-binomial predictive
   interval for a window as long as the held-out one (Poisson count, overdispersion from the daily
   counts, plus the estimate's own uncertainty); episodes of labelled incidents are added as a
   compound Poisson term (the fit period's incident rate x the rule's episodes per incident). The
   interval is widened, with the reason in ``instability``, when the fit period shows an unstable
   rate (the choice depends on the data, or its drift carried on changes the rate). A
   held-out period under 2 days, fewer than 3 episodes both predicted and measured, or a fit period
   too thin to cross-fit (then the in-sample rate, flagged) is "insufficient" with the reason; an
   interval wider than the 15 % (or 1/week) tolerance says so in ``precision``.
6. **Confidence** (:mod:`.confidence`): moving-block bootstrap interval on the warning level, the
   predictive interval on episodes/week, and the risk level with its reasons.

Everything here is pure: a function of one series' points (and its incidents and rule in force).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.recommend.confidence import (
    CONFIDENCE,
    compound_rate_interval,
    default_block,
    dispersion,
    garwood,
    quantile_interval,
    risk,
)
from core.alerting.recommend.constraints import Constrained, Constraints, LastChange, constrain_pair
from core.alerting.recommend.strategies import (
    MIN_FIT_POINTS,
    PRESETS,
    Candidate,
    FitData,
    Preset,
    get_strategy,
    robust_scale,
    seasonal_residual,
)
from core.alerting.replay import replay
from core.alerting.rules import COMPARATORS, Rule, format_duration
from core.alerting.sweep import sweep
from core.analysis.baseline import exclusion_mask
from core.analysis.pipeline import TRAIN_DAYS, detect, detected_outages
from core.analysis.scoring import score_events
from core.errors import ValidationError
from core.fmt import json_safe

__all__ = ["Recommendation", "recommend", "DEFAULT_WEIGHTS", "MIN_HOLDOUT_S", "MIN_CHECK_EPISODES"]

DEFAULT_WEIGHTS = (0.4, 0.4, 0.2)
MIN_HOLDOUT_S = 2 * 86400.0
MIN_CHECK_EPISODES = 3.0
#: finest step (seconds) the outage detector looks at: faster series are judged on bucket medians
OUTAGE_STEP_S = 900
#: outage rule: a point this many robust spreads from the median of the previous OUTAGE_WINDOW_S seconds
OUTAGE_K = 5.0
OUTAGE_WINDOW_S = 12 * 3600.0
WEEK_S = 7 * 86400.0
_NS = 1_000_000_000
#: per-candidate fields in :meth:`Recommendation.to_dict` (levels as the strategy proposed them, before
#: constraints; fit-period scores)
_CANDIDATE_FIELDS = ("strategy", "warning", "critical", "insufficient", "episodes_per_week", "recall", "score",
                     "pareto", "chosen")


@dataclass
class Recommendation:
    """The recommended rule for one series, how it was chosen and how it held up.

    ``insufficient`` is the reason when no recommendation can be given (then the levels are None).
    ``candidates`` is the scored table (one row per strategy: levels, fit-period episodes/week,
    recall, the three objective scores, ``pareto`` and ``chosen``). ``validation``: ``predicted`` /
    ``actual`` episodes per week (warning when set, else critical), ``relative_error``, ``within``
    (|error| <= 15 % or 1/week), time in alert and incidents caught in both periods, ``sufficient``
    and ``reason``. ``comparison`` (with a rule in force): episodes and incidents caught/missed by the
    rule in force and by the recommendation, over the held-out period and the whole history.
    ``outage_points`` counts the finite fit-period points left out as outages (not in an incident).
    """

    series: str
    comparator: str
    preset: str
    warning: float | None = None
    critical: float | None = None
    for_s: float = 0.0
    strategy: str | None = None
    insufficient: str | None = None
    unconstrained: dict[str, float | None] = field(default_factory=dict)
    constraint_notes: list[str] = field(default_factory=list)
    level_interval: tuple[float, float] | None = None
    predicted_episodes_per_week: float | None = None
    predicted_interval: tuple[float, float] | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, Any] = field(default_factory=dict)
    risk: str | None = None
    risk_reasons: list[str] = field(default_factory=list)
    rationale: str = ""
    candidates: pd.DataFrame | None = None
    hourly: np.ndarray | None = None
    split: pd.Timestamp | None = None
    outage_points: int = 0

    def rule(self, name: str = "recommended", series: str | None = None, **extra: Any) -> Rule:
        """The recommended rule (raises when insufficient)."""
        if self.insufficient:
            raise ValidationError(f"no recommendation for {self.series}: {self.insufficient}", path="series")
        return Rule(name=name, series=series or self.series, comparator=self.comparator, warning=self.warning,
                    critical=self.critical, for_s=self.for_s, **extra)

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON object: ``series, comparator, warning, critical, for_seconds,
        predicted_episodes_per_week, predicted_interval, validation{actual_episodes_per_week,
        relative_error, ...}, confidence, risk, rationale`` plus detail fields."""
        v = self.validation
        out = {
            "series": self.series, "comparator": self.comparator, "preset": self.preset,
            "strategy": self.strategy, "warning": self.warning, "critical": self.critical,
            "for_seconds": self.for_s, "predicted_episodes_per_week": self.predicted_episodes_per_week,
            "predicted_interval": list(self.predicted_interval) if self.predicted_interval else None,
            "validation": {"actual_episodes_per_week": v.get("actual"), "relative_error": v.get("relative_error"),
                           "within": v.get("within"), "sufficient": v.get("sufficient"), "reason": v.get("reason"),
                           "severity": v.get("severity"), "split": v.get("split"),
                           "inside_interval": v.get("inside_interval"), "in_sample": v.get("in_sample"),
                           "precision": v.get("precision"), "instability": v.get("instability"),
                           "predicted_noise": v.get("predicted_noise"),
                           "fit_incidents_per_week": v.get("fit_incidents_per_week"),
                           "episodes_per_incident": v.get("episodes_per_incident"),
                           "check_window": v.get("check_window"), "fit_rate": v.get("fit_rate")},
            "confidence": {"level": CONFIDENCE,
                           "warning_interval": list(self.level_interval) if self.level_interval else None},
            "risk": self.risk, "risk_reasons": list(self.risk_reasons), "rationale": self.rationale,
            "unconstrained": self.unconstrained or None, "constraints": list(self.constraint_notes) or None,
            "comparison": self.comparison or None, "outage_points": self.outage_points,
            "candidates": None if self.candidates is None else [
                {k: r.get(k) for k in _CANDIDATE_FIELDS} for r in self.candidates.to_dict("records")],
        }
        if self.insufficient:
            out["insufficient"] = self.insufficient
        return json_safe(out)


def _series_incidents(incidents: pd.DataFrame | None, key: str) -> pd.DataFrame | None:
    if incidents is None or len(incidents) == 0:
        return None
    inc = incidents
    if "series" in inc.columns:
        inc = inc[inc["series"].isna() | (inc["series"] == key)]
    inc = inc[["start", "end"]].copy()
    inc["start"] = pd.to_datetime(inc["start"], utc=True)
    inc["end"] = pd.to_datetime(inc["end"], utc=True)
    return inc.reset_index(drop=True) if len(inc) else None


def _pareto(obj: np.ndarray) -> np.ndarray:
    """Rows of ``obj`` (higher is better, NaN columns ignored) no other row beats everywhere."""
    m = obj.shape[0]
    cols = ~np.isnan(obj).all(axis=0)
    o = np.nan_to_num(obj[:, cols], nan=0.0)
    ge = (o[:, None, :] >= o[None, :, :]).all(axis=2)
    gt = (o[:, None, :] > o[None, :, :]).any(axis=2)
    dominated = (ge & gt).any(axis=0)          # some row j dominates row i
    return ~dominated if m else np.zeros(0, bool)


def _insufficient(key: str, comparator: str, preset: str, why: str) -> Recommendation:
    return Recommendation(series=key, comparator=comparator, preset=preset, insufficient=why,
                          rationale=f"No recommendation: {why}.")


def recommend(values: pd.Series, *, comparator: str = ">", preset: str | Preset = "balanced",
              incidents: pd.DataFrame | None = None, train_fraction: float = 0.7, current: Rule | None = None,
              constraints: Constraints | None = None, last_changes: tuple[LastChange | None, LastChange | None] =
              (None, None), now: Any = None, weights: tuple[float, float, float] = DEFAULT_WEIGHTS,
              strategies: tuple[str, ...] | None = None, slo_target: float | None = None, n_boot: int = 200,
              seed: int = 0, outages: np.ndarray | None = None, inner_fraction: float = 0.7,
              exclude_outages: bool = True, levels: tuple[float | None, float | None] | None = None,
              _nested: bool = False) -> Recommendation:
    """Recommend warning/critical levels for one series and validate them on its later history.

    Parameters
    ----------
    values : Series
        Raw points indexed by UTC timestamps (NaN = missing, never filled); its name is the key.
    comparator : {">", ">=", "<", "<="}
    preset : str or Preset
        ``conservative``, ``balanced`` or ``aggressive`` (:data:`.strategies.PRESETS`).
    incidents : DataFrame, optional
        Labelled incident windows ``start, end`` (optional ``series``): left out of the fitted
        levels, used by reliability and incident-optimal, and counted caught/missed.
    train_fraction : float
        Share of the time span to fit on (time-ordered; the rest is held out).
    current : Rule, optional
        The rule in force: stability objective, constraints, and the before/after comparison.
    constraints : Constraints, optional
        Default: the limits stored with ``current`` (:meth:`Constraints.from_rule`: its ``limits``,
        else 20 % per apply and a 7-day stability period) when ``current`` is given.
    weights : (float, float, float)
        Reliability, achievability, stability.
    strategies : tuple of str, optional
        Scalar strategies to choose among (default the preset's).
    outages : ndarray of bool, optional
        Points to leave out of the fit as well, aligned with ``values``. Default: the outages the
        default detector finds in the fit period (:func:`fit_outages`; causal, the held-out period
        is never looked at), unless ``exclude_outages`` is False.
    exclude_outages : bool
        Detect outages in the fit period and leave them out of the fit when ``outages`` is not
        given (default True; the CLI's ``--keep-outages`` turns it off).
    inner_fraction : float
        The prediction is cross-fitted inside the fit period: the same procedure (strategies,
        choice, constraints) is run on its first ``inner_fraction`` (default 0.7) and the rule it
        gives is replayed on the rest (the *check window*); that out-of-sample rate, not the count
        the choice was made by (winner's curse), is the predicted episodes/week of the procedure,
        whose final levels are then chosen on the whole fit period (as cross-validation estimates
        a model that is refit on all the data). When the inner part is too thin the prediction is
        the in-sample fit-period rate, flagged ``in_sample`` in the validation.
    levels : (warning, critical), optional
        Evaluate these levels instead of choosing: no strategies, no choice, no constraints, no
        cross-fit (nothing is chosen on the fit period, so its rate is no winner's-curse count):
        the prediction is the given rule's rate on the fit period, checked on the held-out part,
        with the same interval, confidence and risk (``strategy`` is ``"given"``).

    Returns
    -------
    Recommendation
        ``insufficient`` set (with the reason, no levels) when the data cannot support a level.
    """
    if comparator not in COMPARATORS:
        raise ValidationError(f"unknown comparator {comparator!r}; expected one of {list(COMPARATORS)}",
                              path="comparator")
    if not (isinstance(inner_fraction, (int, float)) and 0 < inner_fraction < 1):
        raise ValidationError(f"inner fraction must lie strictly between 0 and 1, got {inner_fraction!r}",
                              path="inner_fraction")
    if not (isinstance(train_fraction, (int, float)) and 0 < train_fraction < 1):
        raise ValidationError(f"train fraction must lie strictly between 0 and 1, got {train_fraction!r}",
                              path="train_fraction")
    if len(weights) != 3 or not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise ValidationError(f"weights must be 3 numbers >= 0 with a positive sum, got {weights!r}", path="weights")
    p = PRESETS.get(preset) if isinstance(preset, str) else preset
    if p is None:
        raise ValidationError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}", path="preset")
    if not isinstance(values, pd.Series) or not isinstance(values.index, pd.DatetimeIndex) or values.index.tz is None:
        raise ValidationError("values must be a Series indexed by tz-aware (UTC) timestamps", path="values")
    key = str(values.name) if values.name is not None else "series"
    s = values.sort_index()
    t = s.index.tz_convert("UTC").as_unit("ns").asi8
    v = s.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(v)
    if finite.sum() < MIN_FIT_POINTS:
        what = "all values are missing" if not finite.any() else f"only {int(finite.sum())} finite point(s)"
        return _insufficient(key, comparator, p.name, f"{what}; a recommendation needs at least {MIN_FIT_POINTS} "
                             "finite points in the fit period")
    t0, t1 = int(t[0]), int(t[-1])
    split_ns = t0 + int((t1 - t0) * train_fraction)
    split = pd.Timestamp(split_ns, tz="UTC")
    inc = _series_incidents(incidents, key)
    in_fit = t < split_ns
    omask = None
    if outages is not None:
        omask = np.asarray(outages, dtype=bool)
        if omask.shape != (len(values),):
            raise ValidationError(f"outages has {omask.size} entries; expected one per point ({len(values)})",
                                  path="outages")
        omask = omask[np.argsort(values.index, kind="stable")]
    elif exclude_outages and not _nested:
        omask = fit_outages(s, in_fit, exclusion_mask(s.index, inc))
    excl = exclusion_mask(s.index, inc, omask)
    n_outage = 0 if omask is None else int((omask & in_fit & finite & ~exclusion_mask(s.index, inc)).sum())
    clean = in_fit & finite & ~excl
    n_clean = int(clean.sum())
    if n_clean < MIN_FIT_POINTS:
        return _insufficient(key, comparator, p.name, f"{n_clean} finite point(s) outside labelled incidents before "
                             f"the split at {split:%Y-%m-%d %H:%M} UTC; at least {MIN_FIT_POINTS} are needed")
    xc = v[clean]
    if float(xc.min()) == float(xc.max()):
        return _insufficient(key, comparator, p.name, f"the series is constant ({xc[0]:g}) over the fit period; its "
                             "history says nothing about where an unusual value begins")
    fit_inc = None
    if inc is not None:
        st = inc["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        fit_inc = inc[(st >= t0) & (st < split_ns)].reset_index(drop=True)
    data = FitData(key=key, ts_ns=t[in_fit], values=v[in_fit], clean=clean[in_fit], comparator=comparator,
                   preset=p, incidents=fit_inc, for_s=p.for_s, slo_target=slo_target)
    names = strategies or p.strategies
    cands: list[Candidate] = [get_strategy(n).fit(data) for n in names] if levels is None else \
        [_given(levels, comparator, p.for_s)]
    table, chosen = _choose(data, cands, current, weights)
    if chosen is None:
        why = "; ".join(c.insufficient or "" for c in cands if c.insufficient) or "no strategy gave a level"
        return _insufficient(key, comparator, p.name, why)

    # constraints
    cur = (current.warning, current.critical) if current is not None else (None, None)
    cons = constraints or (Constraints.from_rule(current) if current is not None else Constraints(max_change=None))
    if levels is not None:
        cons, last_changes = Constraints(max_change=None), (None, None)      # given levels are judged as they are
    crit_in, kept = chosen.critical, []
    if crit_in is None and cur[1] is not None and chosen.hourly is None and levels is None:
        crit_in = cur[1]        # never drop a critical level in force just because no strategy set one
        kept.append(f"no critical level was recommended; the critical level in force ({cur[1]:g}) is kept")
    w_c, k_c = constrain_pair(chosen.warning, crit_in, comparator, cur, cons, last=last_changes, now=now) \
        if chosen.hourly is None else (Constrained(chosen.warning, chosen.warning),
                                       Constrained(chosen.critical, chosen.critical))
    warning, critical = w_c.value, k_c.value
    if levels is not None and levels[0] is None:        # a lone critical level was scored in the first slot
        warning, critical = None, warning
    notes = kept + list(w_c.reasons + k_c.reasons)

    # validation: one replay of the final rule over the whole history
    rule = Rule(name="recommended", series=key, comparator=comparator, warning=warning, critical=critical,
                for_s=p.for_s)
    sev = "warning" if warning is not None else "critical"
    if chosen.hourly is not None:
        col = 0 if sev == "warning" else 1
        rp_series = pd.Series(seasonal_residual(t, v, chosen.hourly, col), index=s.index, name=key)
        rp_rule = Rule(name="recommended", series=key, comparator=comparator, **{sev: 0.0}, for_s=p.for_s)
        rep = replay(rp_rule, rp_series)
    else:
        rp_series, rp_rule = s, rule
        rep = replay(rule, s, severity=sev)
    check = projected = None
    if levels is None and not _nested:     # cross-fit: the same procedure on the fit period's first part, checked on the rest
        early = incidents        # labels of incidents that start after the split never reach the prediction
        if incidents is not None and len(incidents):
            early = incidents[np.asarray(pd.to_datetime(incidents["start"], utc=True) < split)]
        inner = recommend(s[in_fit], comparator=comparator, preset=p, incidents=early,
                          train_fraction=inner_fraction, current=current, constraints=constraints,
                          last_changes=last_changes, now=now, weights=weights, strategies=strategies,
                          slo_target=slo_target, seed=seed, outages=None if omask is None else omask[in_fit],
                          _nested=True)
        if not inner.insufficient:
            iv = inner.validation
            check = (iv["held_noise_episodes"], (split - iv["split"]).total_seconds(), iv["split"])
            projected = _drift_projection(rp_series, rp_rule, sev, clean, split_ns, iv["split"].value,
                                          (t1 - split_ns) / _NS, _before(inc, split_ns))
    validation = _validate(rep, sev, split, inc, check, projected=projected, seed=seed, given=levels is not None)

    # confidence
    up = comparator in (">", ">=")
    level = warning if warning is not None else critical
    level_iv: tuple[float, float] = (math.nan, math.nan)
    if chosen.hourly is None and level is not None and not _nested:
        q = float(np.mean(xc < level)) if up else float(np.mean(xc <= level))
        q = min(max(q, 1.0 / xc.size), 1 - 1.0 / xc.size)
        pph = 3600.0 * _NS / max(1.0, float(np.median(np.diff(t))))
        level_iv = quantile_interval(xc, q, block=default_block(xc.size, pph), n_boot=n_boot, seed=seed, upper=up)
    eps = rep.alert_episodes(sev)
    starts = eps["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    pred = validation["predicted"]
    lo, hi = validation.pop("_interval")
    if not validation["sufficient"] and pred is not None:
        hi = max(hi, pred + 1.0)     # an unchecked prediction: at least one episode/week of slack upwards
    fit_eps = int(((starts >= t0) & (starts < split_ns)).sum())
    scale = robust_scale(xc)
    # risk evidence from the fit period only: the held-out period feeds nothing but the validation
    shift = _weekly_shift(t[in_fit], v[in_fit], finite[in_fit], scale)
    fit_missing = rep.missing[rep.ts_ns < split_ns]
    risk_level, reasons = risk(fit_episodes=fit_eps, level=level if level is not None else 0.0,
                               level_interval=level_iv, scale=scale, shift=shift,
                               missing_share=float(fit_missing.mean()) if fit_missing.size else 0.0,
                               validation=validation)
    comparison = _compare(current, rule, s, split, inc) if current is not None and chosen.hourly is None \
        and not _nested else {}
    rationale = _rationale(chosen, table, warning, critical, validation, notes, p, data)
    if n_outage:
        rationale += f" {n_outage} fit-period point(s) in detected outages were left out of the fit."
    return Recommendation(
        series=key, comparator=comparator, preset=p.name, warning=warning, critical=critical, for_s=p.for_s,
        strategy=chosen.strategy, unconstrained={"warning": w_c.unconstrained, "critical": k_c.unconstrained},
        constraint_notes=notes, level_interval=level_iv if all(math.isfinite(x) for x in level_iv) else None,
        predicted_episodes_per_week=pred, predicted_interval=(lo, hi), validation=validation,
        comparison=comparison, risk=risk_level, risk_reasons=reasons, rationale=rationale, candidates=table,
        hourly=chosen.hourly, split=split, outage_points=n_outage)


def _given(levels: tuple[float | None, float | None], comparator: str, for_s: float) -> Candidate:
    """The caller's levels as the one candidate of :func:`recommend` (``levels=``)."""
    try:
        w, c = levels
        w, c = (None if x is None else float(x) for x in (w, c))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"levels must be (warning, critical) numbers or None, got {levels!r}",
                              path="levels") from exc
    if w is None and c is None:
        raise ValidationError("levels needs a warning or a critical level", path="levels")
    Rule(name="given", series="s", comparator=comparator, warning=w, critical=c)    # order and finiteness
    if w is None:       # a lone critical level is scored (and replayed) as the rule's first level
        return Candidate("given", c, None, for_s, f"Levels given: critical {c:g}.")
    return Candidate("given", w, c, for_s, "Levels given: warning " + f"{w:g}"
                     + ("" if c is None else f", critical {c:g}") + ".")


def robust_outage_flags(g: pd.Series, excluded: np.ndarray | None = None, *, window_s: float = OUTAGE_WINDOW_S,
                        k: float = OUTAGE_K, train_days: float = TRAIN_DAYS) -> np.ndarray:
    """Causal robust level rule: points more than ``k`` robust spreads from the median of the
    ``window_s`` seconds before them (the point itself never in its baseline).

    The spread is the robust spread (``1.4826 x MAD``) of the values of the training part (the
    first ``min(train_days, span / 4)``, as the default detector trains), so a daily cycle or a
    slow leak is part of the normal range, and only later points are flagged. ``excluded`` points (labelled incidents, stuck values) are left out of every baseline
    and of the spread. A gap (NaN) is never flagged. Vectorised: two rolling medians.

    Returns
    -------
    ndarray of bool
        Flags aligned with ``g``; all False when the training part is too thin (< 10 deviations).
    """
    v = g.to_numpy(dtype=np.float64, na_value=np.nan)
    t = g.index.as_unit("ns").asi8
    flags = np.zeros(v.size, dtype=bool)
    if v.size < 4:
        return flags
    base_v = v if excluded is None else np.where(excluded, np.nan, v)
    step = float(np.median(np.diff(t))) / _NS
    w = max(4, int(round(window_s / max(step, 1e-9))))
    base = pd.Series(base_v).rolling(w, min_periods=max(3, w // 2)).median().shift(1).to_numpy()
    dev = v - base
    cut = t[0] + min(train_days * 86400 * _NS, (t[-1] - t[0]) / 4)
    train = (t < cut) & np.isfinite(dev) & np.isfinite(base_v)
    if train.sum() < 10:
        return flags
    scale = robust_scale(base_v[(t < cut) & np.isfinite(base_v)])
    with np.errstate(invalid="ignore"):
        flags = (np.abs(dev) > k * scale) & (t >= cut)
    return flags


def fit_outages(s: pd.Series, in_fit: np.ndarray, excluded: np.ndarray, method: str = "robust") -> np.ndarray:
    """Detected outages of the fit period, aligned with ``s``.

    ``method="robust"`` (the default): :func:`robust_outage_flags` (more than :data:`OUTAGE_K`
    robust spreads from the median of the previous :data:`OUTAGE_WINDOW_S` seconds; spread from the
    first ``min(7 days, span / 4)`` of the fit period, which is never flagged; causal);
    ``method="detector"``: the default anomaly detector as the Trends pipeline runs it
    (:func:`core.analysis.pipeline.detect`, the same training part), about ten times the CPU.
    Either way ``excluded`` (labelled incidents) and stuck values are left out of the baselines,
    and the flagged points make outages by :func:`core.analysis.pipeline.detected_outages` (at least
    3 flagged points each within 5 sampling steps, or a stuck run). A series sampled more often
    than every :data:`OUTAGE_STEP_S` seconds is judged on medians of its raw points per
    ``OUTAGE_STEP_S`` bucket (an outage then lasts at least 3 buckets, 45 minutes); a flagged
    bucket's points are all in the outage; a bucket without points stays missing. Points after the
    fit period are always False: the held-out period is never looked at. All False when the fit
    period is too thin.
    """
    if method not in ("robust", "detector"):
        raise ValidationError(f"unknown outage method {method!r}; expected robust or detector", path="method")
    out = np.zeros(len(s), dtype=bool)
    f = s[in_fit]
    if len(f) < 2:
        return out
    train_excl = excluded[in_fit] | detected_outages(f)[1]

    def flagged(x: pd.Series, excl: np.ndarray) -> pd.DataFrame | None:
        if method == "robust":
            fl = robust_outage_flags(x, excl)
            return pd.DataFrame({"ts": x.index[fl]}) if fl.any() else None
        det = detect(x, exclude=excl)
        return det.flagged if det.sufficient else None

    t = f.index.as_unit("ns").asi8
    if float(np.median(np.diff(t))) < OUTAGE_STEP_S * _NS:
        rule = f"{OUTAGE_STEP_S}s"
        g = f.resample(rule).median()
        g_excl = pd.Series(train_excl.astype(float), index=f.index).resample(rule).max().to_numpy() > 0
        gm = detected_outages(g, flagged(g, g_excl))[1]
        bucket = np.searchsorted(g.index.as_unit("ns").asi8, t, side="right") - 1
        mask = gm[bucket] | train_excl & ~excluded[in_fit]         # stuck runs found on the raw points
    else:
        mask = detected_outages(f, flagged(f, train_excl))[1]
    out[np.flatnonzero(in_fit)] = mask
    return out


def _weekly_shift(t: np.ndarray, v: np.ndarray, finite: np.ndarray, scale: float) -> float | None:
    """Range of the weekly medians of the points given (the engine passes the fit period only), in
    robust spreads (None below two full weeks): a level shift or a trend moves it, daily and weekly
    seasonality do not."""
    week = (t[finite] - t[0]) // int(WEEK_S * _NS)
    full = int((t[-1] - t[0]) // int(WEEK_S * _NS))
    if full < 2:
        return None
    keep = week < full
    wk, x = week[keep], v[finite][keep]
    order = np.argsort(wk, kind="stable")
    parts = np.split(x[order], np.flatnonzero(np.diff(wk[order])) + 1)
    med = np.array([np.median(p_) for p_ in parts if p_.size])       # one median per week (a handful)
    return float(med.max() - med.min()) / scale


def _choose(data: FitData, cands: list[Candidate], current: Rule | None,
            weights: tuple[float, float, float]) -> tuple[pd.DataFrame, Candidate | None]:
    """Score the candidates on the fit period (one sweep for every scalar one) and pick one."""
    ok = [c for c in cands if c.insufficient is None and c.warning is not None and not c.rules]
    m = len(cands)
    num = {col: np.full(m, np.nan) for col in ("episodes_per_week", "time_in_alert_pct", "recall", "f1",
                                                "reliability", "achievability", "stability", "score")}
    pareto, chosen_col = np.zeros(m, dtype=bool), np.zeros(m, dtype=bool)

    def table() -> pd.DataFrame:          # built once, from plain columns (cheaper than cell by cell)
        return pd.DataFrame({"strategy": [c.strategy for c in cands], "warning": [c.warning for c in cands],
                             "critical": [c.critical for c in cands],
                             "insufficient": [c.insufficient for c in cands],
                             "rationale": [c.rationale for c in cands], **num, "pareto": pareto,
                             "chosen": chosen_col})

    if not ok:
        return table(), None
    has_inc = data.incidents is not None and len(data.incidents) > 0
    inc = data.incidents if has_inc else None
    scal = [c for c in ok if c.hourly is None]
    res: dict[str, dict[str, float]] = {}
    if scal:
        sw = sweep(data.series(), data.comparator, np.array([c.warning for c in scal]), for_s=data.for_s,
                   incidents=inc)
        recs = sw.to_dict("records")
        for c, r in zip(scal, recs, strict=True):
            res[c.strategy] = r
    for c in ok:
        if c.hourly is not None:
            resid = pd.Series(seasonal_residual(data.ts_ns, data.values, c.hourly, 0),
                              index=data.series().index, name=data.key)
            res[c.strategy] = sweep(resid, data.comparator, [0.0], for_s=data.for_s,
                                    incidents=inc).to_dict("records")[0]
    budget = data.preset.budget[0]
    cur = None if current is None else (current.warning if current.warning is not None else current.critical)
    for i, c in enumerate(cands):
        if c.strategy not in res or c.insufficient is not None:
            continue
        r = res[c.strategy]
        e = float(r["episodes_per_week"])
        num["episodes_per_week"][i] = e
        num["time_in_alert_pct"][i] = float(r["time_in_alert_pct"])
        if has_inc:
            num["recall"][i] = float(r.get("recall", np.nan))
            num["f1"][i] = float(r.get("f1", np.nan))
            num["reliability"][i] = float(np.nan_to_num(r.get("recall", np.nan), nan=0.0))
        num["achievability"][i] = 1.0 if e <= budget else budget / e
        if cur is not None and cur != 0 and c.hourly is None:
            num["stability"][i] = max(0.0, 1.0 - abs(c.warning - cur) / abs(cur))
    scored = np.flatnonzero(np.isfinite(num["achievability"]))
    obj = np.column_stack([num["reliability"][scored], num["achievability"][scored], num["stability"][scored]])
    wv = np.array(weights, dtype=float)
    present = ~np.isnan(obj).all(axis=0)
    wv = np.where(present, wv, 0.0)
    wv = wv / wv.sum() if wv.sum() > 0 else np.where(present, 1.0, 0.0) / max(1, present.sum())
    score = np.nan_to_num(obj, nan=0.0) @ wv
    front = _pareto(obj)
    num["score"][scored] = score
    pareto[scored] = front
    # best weighted score on the front; ties: fewer episodes (the less sensitive level)
    eps = num["episodes_per_week"][scored]
    order = np.lexsort((eps, -np.where(front, score, -np.inf)))
    best = int(scored[order[0]])
    chosen_col[best] = True
    return table(), cands[best]


def _overlaps(start_ns: np.ndarray, end_ns: np.ndarray, inc: pd.DataFrame | None) -> np.ndarray:
    """(incidents, episodes) bool: episode ``[start, end]`` (``end`` int64 max when open) overlaps
    incident window ``[start, end]``; shape ``(0, episodes)`` without incidents."""
    if inc is None or len(inc) == 0:
        return np.zeros((0, start_ns.size), dtype=bool)
    a = inc["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    b = inc["end"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return (start_ns[None, :] <= b[:, None]) & (end_ns[None, :] >= a[:, None])


def _before(inc: pd.DataFrame | None, split_ns: int) -> pd.DataFrame | None:
    """The incident windows that start before ``split_ns`` (None when there are none)."""
    if inc is None or len(inc) == 0:
        return None
    keep = inc["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64) < split_ns
    return inc[keep].reset_index(drop=True) if keep.any() else None


def _episode_bounds(eps: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    st = eps["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    en = eps["end"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    open_ = eps["open"].to_numpy(dtype=bool) | (en == np.iinfo(np.int64).min)
    return st, np.where(open_, np.iinfo(np.int64).max, en)


def _drift_projection(series: pd.Series, rule: Rule, sev: str, clean: np.ndarray, split_ns: int, check_ns: int,
                      held_s: float, inc: pd.DataFrame | None) -> tuple[int, float, float] | None:
    """The rule's episodes outside incidents on the check window ``[check_ns, split_ns)`` with its
    values moved by the fit period's drift carried on to the held-out period.

    The drift is the change of the median of the clean points (``clean``, fit period) from the fit
    period's first week to its last (full weeks, so a weekly cycle cancels), per unit of time; the
    check window's values are moved by that slope times the distance from the check window's centre
    to the held-out window's centre (``held_s`` seconds from the split). Fit period only: the
    held-out values are never read. Returns ``(episodes, check span s, shift)``, or None with less
    than two weeks of fit period or no movement.
    """
    t = series.index.as_unit("ns").asi8
    v = series.to_numpy(dtype=np.float64, na_value=np.nan)
    week = int(WEEK_S * _NS)
    t0 = int(t[0])
    if split_ns - t0 < 2 * week or split_ns <= check_ns:
        return None
    first = clean & (t < t0 + week)
    last = clean & (t >= split_ns - week) & (t < split_ns)
    if first.sum() < 10 or last.sum() < 10:
        return None
    slope = (float(np.median(v[last])) - float(np.median(v[first]))) / float(split_ns - week - t0)
    shift = slope * ((split_ns + held_s * _NS / 2) - (check_ns + split_ns) / 2)
    if not math.isfinite(shift) or shift == 0:
        return None
    win = (t >= check_ns) & (t < split_ns)
    moved = pd.Series(v[win] + shift, index=series.index[win], name=series.name)
    if inc is None:         # no incident to tell apart: the one-level sweep counts what the replay would
        level = rule.warning if sev == "warning" else rule.critical
        sw = sweep(moved, rule.comparator, [float(level)], for_s=rule.for_s)
        return int(sw["episodes"].iloc[0]), (split_ns - check_ns) / _NS, shift
    eps = replay(rule, moved, severity=sev).alert_episodes(sev)
    st, en = _episode_bounds(eps)
    noise = ~_overlaps(st, en, inc).any(axis=0)
    return int(noise.sum()), (split_ns - check_ns) / _NS, shift


def _validate(rep: Any, sev: str, split: pd.Timestamp, inc: pd.DataFrame | None,
              check: tuple[int, float, pd.Timestamp] | None, *,
              projected: tuple[int, float, float] | None = None, seed: int = 0,
              given: bool = False) -> dict[str, Any]:
    """Predicted vs actual (held-out) episodes/week of the replayed rule.

    Episodes are split into those overlapping a labelled incident window and the rest (*noise*).
    ``check`` is the cross-fitted noise count: ``(episodes, span_s, start)`` of the rule the same
    procedure chose on the fit period's first part, replayed on its check window ``[start,
    split)``, episodes outside labelled incidents only. Its rate is the noise prediction, with a
    negative-binomial predictive interval for a window as long as the held-out one
    (:func:`.confidence.nb_rate_interval`; overdispersion from the daily noise counts of this rule
    over the fit period). Incident episodes are not noise: the fit period's labelled incidents give
    an incident rate (Jeffreys posterior) and this rule's episodes per incident, added as a
    compound Poisson term (:func:`.confidence.compound_rate_interval`). Without ``check`` the
    prediction is the in-sample fit-period rate, flagged ``in_sample`` and said so in the reason
    (unless the levels were ``given``: nothing was chosen on the fit period, so its rate is honest).

    The interval is widened, with the reason in ``instability``, when the fit period itself says
    the rate is not stable: the rule chosen on the whole fit period fires in the check window at a
    rate outside the interval (the choice depends on the data it saw), or ``projected`` (the check
    window moved by the fit period's drift, :func:`_drift_projection`) lands outside it.
    """
    fit = rep.period(None, split, severity=sev)
    held = rep.period(split, None, severity=sev)
    in_sample = check is None or check[1] <= 0
    eps = rep.alert_episodes(sev)
    st, en = _episode_bounds(eps)
    f0, sp = fit["start"].value, split.value
    # the prediction sees the incidents that start before the split, and episodes only up to it
    ov = _overlaps(st, np.minimum(en, sp - 1), _before(inc, sp))
    noise = ~ov.any(axis=0)
    in_fit = (st >= f0) & (st < sp)
    phi = dispersion(st[noise], f0, sp)
    n, span = (int((in_fit & noise).sum()), fit["span_s"]) if in_sample else (check[0], check[1])
    early = _before(inc, sp)
    if early is not None and len(early):
        ist = early["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        fit_inc = ist >= f0
    else:
        fit_inc = np.zeros(0, dtype=bool)
    per_inc = (ov[fit_inc] & in_fit[None, :]).sum(axis=1) if fit_inc.any() else np.zeros(0, np.int64)
    horizon = max(held["span_s"], 1.0)
    args = (phi, int(fit_inc.sum()), fit["span_s"], per_inc)
    pe, lo, hi = compound_rate_interval(n, span, horizon, *args, seed=seed)
    win = (fit["start"], split) if in_sample else (check[2], split)
    instability = []
    if math.isfinite(lo) and not in_sample:
        n_final = int((noise & (st >= check[2].value) & (st < sp)).sum())
        alt = [(n_final, check[1], f"the levels chosen on the whole fit period fire {{r:.2f}} time(s) a week outside "
                f"incidents in the check window, against {n / check[1] * WEEK_S:.2f} for those chosen without it: "
                "the choice depends on the data it sees")]
        if projected is not None:
            alt.append((projected[0], projected[1], "the fit period's median moved by "
                        f"{projected[2]:+.4g} by the middle of the held-out period, carried on from its first week "
                        "to its last (a trend or level shift); moved that much, the check window would fire "
                        "{r:.2f} time(s) a week"))
        for cnt, sp_, text in alt:
            r = cnt / sp_ * WEEK_S
            if r < lo - 1e-9 or r > hi + 1e-9:
                _, lo2, hi2 = compound_rate_interval(cnt, sp_, horizon, *args, seed=seed)
                lo, hi = min(lo, lo2), max(hi, hi2)
                instability.append(text.format(r=r))
    tol = max(0.15 * pe, 1.0) if math.isfinite(pe) else math.nan
    precision = None
    if math.isfinite(lo) and (pe - lo > tol or hi - pe > tol):
        precision = (f"the {CONFIDENCE:.0%} interval {lo:.2f}-{hi:.2f} episodes/week is wider than the tolerance "
                     f"(15 % or 1/week): {n} episode(s) over {span / 86400:.1f} day(s)"
                     + (f" and {int(fit_inc.sum())} labelled incident(s) in the fit period" if fit_inc.any() else "")
                     + f" and a held-out window of {held['span_s'] / 86400:.1f} day(s) cannot pin the rate that closely"
                     + ("; the fit period's rate was not stable" if instability else ""))
    pe = 0.0 if not math.isfinite(pe) else pe
    ae = held["episodes_per_week"] or 0.0
    expected = pe * held["span_s"] / WEEK_S
    reasons = []
    if in_sample and not given:
        reasons.append("the fit period was too thin to keep a check window apart, so the prediction is the "
                       "in-sample rate the levels were chosen by (likely optimistic)")
    if held["span_s"] < MIN_HOLDOUT_S:
        reasons.append(f"the held-out period covers only {format_duration(round(held['span_s']))}; a check needs "
                       f"at least {format_duration(MIN_HOLDOUT_S)}")
    if max(expected, held["episodes"]) < MIN_CHECK_EPISODES:
        reasons.append(f"too quiet: {expected:.1f} episode(s) expected and {held['episodes']} seen in the held-out "
                       f"period; a check needs at least {MIN_CHECK_EPISODES:g} either way")
    rel = (ae - pe) / pe if pe > 0 else None
    held_sel = st >= sp
    out: dict[str, Any] = {
        "severity": sev, "split": split, "predicted": pe, "actual": ae, "relative_error": rel,
        "within": abs(ae - pe) <= max(0.15 * pe, 1.0), "sufficient": not reasons,
        "inside_interval": bool(lo - 1e-9 <= ae <= hi + 1e-9) if math.isfinite(lo) else None,
        "precision": precision, "instability": "; ".join(instability) or None,
        "in_sample": in_sample and not given, "check_window": list(win), "dispersion": phi,
        "predicted_noise": n / span * WEEK_S if span > 0 else None,
        "fit_incidents_per_week": float(fit_inc.sum()) / fit["span_s"] * WEEK_S if fit["span_s"] > 0 else None,
        "episodes_per_incident": float(per_inc.mean()) if per_inc.size else None,
        "fit_rate": fit["episodes_per_week"], "_interval": (lo, hi),
        "reason": "; ".join(reasons) or None, "fit_episodes": fit["episodes"], "held_episodes": held["episodes"],
        "held_noise_episodes": int((held_sel & ~_overlaps(st, en, inc).any(axis=0)).sum()),
        "predicted_time_in_alert_pct": fit["time_in_alert_pct"], "actual_time_in_alert_pct": held["time_in_alert_pct"],
    }
    if inc is not None:
        for name, sel in (("fit", in_fit), ("held", held_sel)):
            ist = inc["start"]
            sub = inc[(ist >= split) if name == "held" else (ist < split)]
            e = eps[sel]
            alerts = e[["start", "end"]].copy()
            alerts.loc[e["open"].to_numpy(), "end"] = pd.NaT
            if len(sub):
                sc = score_events(alerts, sub.reset_index(drop=True))
                out[f"{name}_incidents"], out[f"{name}_caught"] = int(len(sub)), int(sc.tp)
            else:
                out[f"{name}_incidents"], out[f"{name}_caught"] = 0, 0
    return out


def _load(rule: Rule, s: pd.Series, split: pd.Timestamp, inc: pd.DataFrame | None) -> dict[str, Any]:
    """One rule's load on the held-out period and the whole history: episodes (any level), time in
    alert (percent), and with incidents caught/missed, median detection delay and reset time (s)."""
    rep = replay(rule, s)
    out: dict[str, Any] = {}
    eps = rep.alert_episodes(None)
    for name, part, period in (("held", eps[eps["start"] >= split], rep.period(split, None)),
                               ("total", eps, rep.period(None, None))):
        out[f"{name}_episodes"] = int(len(part))
        out[f"{name}_time_in_alert_pct"] = period["time_in_alert_pct"]
        if inc is not None:
            sub = inc if name == "total" else inc[inc["start"] >= split]
            alerts = part[["start", "end"]].copy()
            alerts.loc[part["open"].to_numpy(), "end"] = pd.NaT
            sc = score_events(alerts, sub.reset_index(drop=True)) if len(sub) else None
            tp = int(sc.tp) if sc is not None else 0
            out[f"{name}_incidents"], out[f"{name}_caught"] = int(len(sub)), tp
            out[f"{name}_missed"] = int(len(sub)) - tp
            out[f"{name}_detection_delay_s"] = sc.detection_delay_s if sc is not None else None
            out[f"{name}_reset_time_s"] = sc.reset_time_s if sc is not None else None
    held_span = (s.index[-1] - split).total_seconds()
    weeks = held_span / WEEK_S
    out["held_episodes_per_week"] = out["held_episodes"] / weeks if held_span > 0 else None
    lo, hi = garwood(out["held_episodes"])
    out["held_episodes_per_week_interval"] = [lo / weeks, hi / weeks] if held_span > 0 else None
    return out


def _compare(current: Rule, rec: Rule, s: pd.Series, split: pd.Timestamp, inc: pd.DataFrame | None) -> dict[str, Any]:
    """Episodes (any level) and incidents caught/missed by the rule in force and the recommendation."""
    return {"current": _load(current, s, split, inc), "recommended": _load(rec, s, split, inc)}


def _rationale(chosen: Candidate, table: pd.DataFrame, warning: float | None, critical: float | None,
               validation: dict[str, Any], notes: list[str], p: Preset, data: FitData) -> str:
    parts = [f"{p.name.capitalize()} preset: {chosen.strategy} chosen among "
             f"{int(table['achievability'].notna().sum())} scored candidate(s) "
             f"({int(table['pareto'].sum())} on the Pareto front). {chosen.rationale}"]
    if notes:
        parts.append("Constraints: " + "; ".join(notes) + ".")
    v = validation
    if v["sufficient"]:
        rel = "" if v["relative_error"] is None else f" ({v['relative_error']:+.0%})"
        parts.append(f"Held-out check: predicted {v['predicted']:.2f} episodes/week, measured {v['actual']:.2f}{rel}.")
    else:
        parts.append(f"Held-out check insufficient: {v['reason']} (predicted {v['predicted']:.2f}, measured "
                     f"{v['actual']:.2f} episodes/week).")
    return " ".join(parts)


def as_dict(rec: Recommendation) -> dict[str, Any]:
    """The recommendation as plain data (for pickling across processes; no DataFrame)."""
    d = asdict(rec)
    d["candidates"] = None if rec.candidates is None else rec.candidates.to_dict("records")
    return d
