"""Analysing an experiment: tests and effect sizes, guardrails, and the adopt / reject / extend verdict.

* :func:`compare`: Welch's t-test (unequal variances) and the Mann-Whitney U test on per-unit
  outcomes, the difference of means with its Welch confidence interval, Cohen's d (pooled standard
  deviation) and the relative change ``mean_B / mean_A - 1`` with a delta-method confidence interval.
* :func:`guardrails`: B must not miss more incidents (fails when the rise of missed incidents per unit
  is significant, one-sided at ``alpha``; "uncertain" when B misses more but not significantly),
  and must not delay detection by more than ``delay_margin_s`` (non-inferiority: passes when the
  one-sided upper bound of the delay increase is within the margin, fails when the lower bound is
  beyond it). Guardrail intervals are fixed-horizon intervals at the decision time: they catch a
  clear harm; they are not a second sequential test.
* :func:`decide`: the verdict under the plan's pre-registered stopping rule. With ``msprt`` the test
  is looked at after every unit and stops at the first look whose mixture likelihood ratio reaches
  ``1 / alpha`` (:mod:`core.experiment.sequential`); with ``obf`` at the planned looks, where Welch's
  p-value is compared with the O'Brien-Fleming boundary's nominal level (:mod:`core.experiment.groupseq`); with
  ``fixed`` nothing is decided before the planned number of units, and then once, by Welch's test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from core.errors import InsufficientDataError, ValidationError
from core.experiment.groupseq import design, obf_reject
from core.experiment.plan import MAX_DAYS, Plan
from core.experiment.sequential import msprt_half_width, msprt_log_lr, msprt_looks

__all__ = ["compare", "guardrails", "decide", "Decision", "DEFAULT_DELAY_MARGIN_S"]

DEFAULT_DELAY_MARGIN_S = 60.0


def _clean(y: Any) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    return y[np.isfinite(y)]


def _none(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def compare(y_a: Any, y_b: Any, *, alpha: float = 0.05) -> dict[str, Any]:
    """Two-sample comparison of per-unit outcomes of arm A (control) and B (candidate).

    NaN units are left out. Returns ``n_a, n_b, mean_a, mean_b, sd_a, sd_b, diff, diff_ci`` (B - A,
    metric units, Welch ``1 - alpha`` interval), ``welch_t, welch_df, welch_p``, ``mw_u, mw_p``
    (Mann-Whitney, two-sided), ``cohen_d``, ``rel_change, rel_ci`` (None when A's mean is 0) and
    ``notes``. Undefined numbers are None.

    Raises
    ------
    InsufficientDataError
        Fewer than 2 units with a value in an arm.
    """
    a, b = _clean(y_a), _clean(y_b)
    if a.size < 2 or b.size < 2:
        raise InsufficientDataError(f"arm A has {a.size} and arm B {b.size} unit(s) with a value; "
                                    "a comparison needs at least 2 in each")
    notes: list[str] = []
    ma, mb, va, vb = a.mean(), b.mean(), a.var(ddof=1), b.var(ddof=1)
    diff = mb - ma
    se2 = va / a.size + vb / b.size
    z = stats.norm.ppf(1 - alpha / 2)
    if se2 > 0:
        tt = stats.ttest_ind(b, a, equal_var=False)
        ci = tt.confidence_interval(1 - alpha)
        t, p, df, ci = float(tt.statistic), float(tt.pvalue), float(tt.df), (float(ci.low), float(ci.high))
    else:
        t = p = df = float("nan")
        ci = (diff, diff)
        notes.append("both arms are constant: no test is possible")
    if np.ptp(np.concatenate([a, b])) > 0:
        mw = stats.mannwhitneyu(b, a, alternative="two-sided")
        u, mw_p = float(mw.statistic), float(mw.pvalue)
    else:
        u = mw_p = float("nan")
    pooled = np.sqrt(((a.size - 1) * va + (b.size - 1) * vb) / (a.size + b.size - 2))
    d = diff / pooled if pooled > 0 else float("nan")
    rel = rel_lo = rel_hi = float("nan")
    if ma != 0:
        rel = mb / ma - 1
        se = np.sqrt(vb / b.size / ma ** 2 + mb ** 2 * va / (a.size * ma ** 4))
        rel_lo, rel_hi = rel - z * se, rel + z * se
    else:
        notes.append("arm A's mean is 0: the relative change is undefined")
    return {"n_a": int(a.size), "n_b": int(b.size), "mean_a": float(ma), "mean_b": float(mb),
            "sd_a": float(np.sqrt(va)), "sd_b": float(np.sqrt(vb)), "diff": float(diff),
            "diff_ci": [_none(ci[0]), _none(ci[1])], "welch_t": _none(t), "welch_df": _none(df),
            "welch_p": _none(p), "mw_u": _none(u), "mw_p": _none(mw_p), "cohen_d": _none(d),
            "rel_change": _none(rel), "rel_ci": [_none(rel_lo), _none(rel_hi)], "notes": notes}


def _one_sided(a: np.ndarray, b: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """``(increase, lower, upper)``: B - A with one-sided ``1 - alpha`` bounds (Welch)."""
    diff = b.mean() - a.mean()
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    v = va + vb
    if v <= 0:
        return diff, diff, diff
    df = v ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    q = stats.t.ppf(1 - alpha, df)
    return diff, diff - q * np.sqrt(v), diff + q * np.sqrt(v)


def guardrails(outcomes: pd.DataFrame, *, alpha: float = 0.05,
               delay_margin_s: float = DEFAULT_DELAY_MARGIN_S) -> list[dict[str, Any]]:
    """Guardrail checks (module docstring): one dict per guardrail with ``name, status, reason`` and numbers.

    ``status`` is ``pass``, ``fail``, ``uncertain`` or ``insufficient`` (too few units to judge).
    """
    if not (delay_margin_s >= 0 and np.isfinite(delay_margin_s)):
        raise ValidationError(f"delay margin must be a finite number of seconds >= 0, got {delay_margin_s}",
                              path="delay_margin_s")
    arm_b = outcomes["arm"].to_numpy() == "B"
    out: list[dict[str, Any]] = []
    a, b = outcomes.loc[~arm_b, "missed"].to_numpy(float), outcomes.loc[arm_b, "missed"].to_numpy(float)
    inc_a, inc_b = outcomes.loc[~arm_b, "incidents"].sum(), outcomes.loc[arm_b, "incidents"].sum()
    g: dict[str, Any] = {"name": "missed_incidents", "incidents_a": int(inc_a), "incidents_b": int(inc_b),
                         "missed_a": int(a.sum()), "missed_b": int(b.sum())}
    if a.size < 2 or b.size < 2 or inc_a == 0 or inc_b == 0:
        g.update(status="insufficient", reason=f"incidents: {int(inc_a)} in A, {int(inc_b)} in B; "
                 "missed incidents cannot be compared without incidents in both arms")
    else:
        inc, lo, hi = _one_sided(a, b, alpha)
        g.update(increase_per_unit=float(inc), lower=float(lo), upper=float(hi))
        if lo > 0:
            g.update(status="fail", reason=f"B misses significantly more incidents (+{inc:.2f} per unit, "
                     f"lower bound {lo:.2f})")
        elif inc > 0:
            g.update(status="uncertain", reason=f"B misses more incidents (+{inc:.2f} per unit) but not "
                     "significantly: not shown safe")
        else:
            g.update(status="pass", reason=f"B misses no more incidents ({inc:+.2f} per unit)")
    out.append(g)
    a, b = _clean(outcomes.loc[~arm_b, "delay_s"]), _clean(outcomes.loc[arm_b, "delay_s"])
    g = {"name": "detection_delay", "margin_s": float(delay_margin_s), "units_a": int(a.size),
         "units_b": int(b.size)}
    if a.size < 2 or b.size < 2:
        g.update(status="insufficient", reason=f"caught incidents on {a.size} unit(s) in A and {b.size} in B; "
                 "need at least 2 in each to compare detection delay")
    else:
        inc, lo, hi = _one_sided(a, b, alpha)
        g.update(increase_s=float(inc), lower_s=float(lo), upper_s=float(hi))
        if lo > delay_margin_s:
            g.update(status="fail", reason=f"B detects later by {inc:.0f} s (lower bound {lo:.0f} s > margin "
                     f"{delay_margin_s:.0f} s)")
        elif hi <= delay_margin_s:
            g.update(status="pass", reason=f"detection delay rises by at most {hi:.0f} s (margin "
                     f"{delay_margin_s:.0f} s)")
        else:
            g.update(status="uncertain", reason=f"detection delay change {inc:+.0f} s, upper bound {hi:.0f} s "
                     f"exceeds the margin {delay_margin_s:.0f} s: not shown within it")
    out.append(g)
    return out


@dataclass
class Decision:
    """Verdict of :func:`decide`.

    Attributes
    ----------
    action : {"adopt", "reject", "extend"}
        Adopt B; keep A; or keep the experiment running.
    reason : str
        Plain-language reason.
    units : int
        Units the decision is based on (the stopping look, when the sequential test stopped early).
    stopped_early : bool
        The sequential boundary was crossed before the planned horizon.
    primary : dict
        :func:`compare` of the primary metric at the stopping look, plus ``stopping``, the mixture
        test's ``log_lr``, ``log_threshold`` and confidence sequence ``cs`` (given for every plan; they
        decide only under ``msprt``) and ``obf_boundary`` (the ``|Z|`` boundary of the deciding or
        latest look under ``obf``, else None).
    guardrails : list of dict
    path : DataFrame
        Per unit: ``units, look, diff, cs_low, cs_high, log_lr, welch_t, welch_p`` (the running
        estimate, its confidence sequence and the statistics, to plot).
    """

    action: str
    reason: str
    units: int
    stopped_early: bool
    primary: dict[str, Any]
    guardrails: list[dict[str, Any]] = field(default_factory=list)
    path: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = None if self.path is None else self.path.to_dict(orient="list")
        return d


def _path(plan: Plan, y: np.ndarray, in_b: np.ndarray) -> pd.DataFrame:
    _, w = msprt_looks(y, in_b, tau=plan.tau, alpha=plan.alpha, min_units=plan.min_units)
    look = w["look"]
    hw = msprt_half_width(w["var"], plan.tau, plan.alpha)
    llr = msprt_log_lr(w["diff"], w["var"], plan.tau)
    return pd.DataFrame({"units": np.arange(1, y.size + 1), "look": look, "diff": w["diff"],
                         "cs_low": np.where(look, w["diff"] - hw, np.nan),
                         "cs_high": np.where(look, w["diff"] + hw, np.nan),
                         "log_lr": np.where(look, llr, np.nan), "welch_t": w["t"], "welch_p": w["p"]})


def decide(plan: Plan, outcomes: pd.DataFrame, *,
           delay_margin_s: float = DEFAULT_DELAY_MARGIN_S) -> Decision:
    """Adopt / reject / extend under the plan's stopping rule (module docstring).

    Parameters
    ----------
    plan : Plan
    outcomes : DataFrame
        Per-unit outcomes in the order the units completed (``arm`` A/B and the plan's metric, plus
        ``missed``, ``incidents`` and ``delay_s`` for the guardrails), e.g.
        :attr:`core.experiment.simulate.Simulation.outcomes` or a prefix of it (a running experiment).
    """
    if plan.metric not in outcomes.columns:
        raise ValidationError(f"outcomes lack the plan's metric {plan.metric!r}", path="metric")
    y = outcomes[plan.metric].to_numpy(dtype=float)
    in_b = outcomes["arm"].to_numpy() == "B"
    path = _path(plan, y, in_b)
    log_thr = float(np.log(1 / plan.alpha))
    at_horizon = y.size >= plan.units
    max_units = MAX_DAYS * plan.units_per_day
    stopped_early = False
    boundary = None
    if plan.stopping == "msprt":
        crossed = np.flatnonzero(path["look"].to_numpy() & (path["log_lr"].to_numpy() >= log_thr))
        stop = int(crossed[0]) + 1 if crossed.size else y.size
        significant = bool(crossed.size)
        stopped_early = significant and stop < plan.units
    elif plan.stopping == "obf":
        n_k, c_k = design(plan.units, plan.look_every, plan.alpha)
        seen = n_k <= y.size
        at = n_k[seen] - 1
        hit = np.flatnonzero(obf_reject(path["welch_p"].to_numpy()[at], c_k[seen]) & path["look"].to_numpy()[at])
        significant = bool(hit.size)
        stop = int(n_k[hit[0]]) if hit.size else min(y.size, plan.units)
        boundary = float(c_k[hit[0]]) if hit.size else (float(c_k[seen][-1]) if seen.any() else None)
        stopped_early = significant and stop < plan.units
    else:
        stop = min(y.size, plan.units)
        significant = bool(at_horizon and path["welch_p"].iloc[stop - 1] < plan.alpha)
    used = outcomes.iloc[:stop]
    ub = in_b[:stop]
    try:
        primary = compare(y[:stop][~ub], y[:stop][ub], alpha=plan.alpha)
    except InsufficientDataError as e:
        return Decision("extend", f"too few units so far: {e}", stop, False, {}, [], path)
    row = path.iloc[stop - 1]
    primary.update(log_lr=_none(row["log_lr"]), log_threshold=log_thr,
                   cs=[_none(row["cs_low"]), _none(row["cs_high"])], stopping=plan.stopping, obf_boundary=boundary)
    # guardrails look at every unit seen so far: after a sequential stop the test may go on for them
    guards = guardrails(outcomes if plan.stopping == "msprt" else used, alpha=plan.alpha,
                        delay_margin_s=delay_margin_s)
    better = primary["diff"] < 0 if plan.lower_is_better else primary["diff"] > 0
    m = plan.metric.replace("_", " ")
    how = {"msprt": f"the sequential test crossed its boundary after {stop} units",
           "obf": f"|t| = {abs(primary['welch_t'] or 0):.2f} at the look after {stop} units "
                  f"(O'Brien-Fleming boundary {boundary if boundary is not None else float('nan'):.2f})",
           "fixed": f"Welch's test at the planned {plan.units} units gives p = {primary['welch_p']:.3g}"
           }[plan.stopping]
    if significant and not better:
        return Decision("reject", f"B is significantly worse on {m}: {how}", stop, stopped_early, primary,
                        guards, path)
    if significant:
        failed = [g for g in guards if g["status"] == "fail"]
        open_ = [g for g in guards if g["status"] in ("uncertain", "insufficient")]
        if failed:
            return Decision("reject", f"B improves {m} ({how}) but a guardrail fails: "
                            + "; ".join(g["reason"] for g in failed), stop, stopped_early, primary, guards, path)
        if open_:
            if plan.stopping == "msprt" and y.size < max_units:
                return Decision("extend", f"B improves {m} ({how}); guardrails not settled yet: "
                                + "; ".join(g["reason"] for g in open_), stop, stopped_early, primary, guards,
                                path)
            return Decision("reject", f"B improves {m} ({how}) but guardrails are not shown safe: "
                            + "; ".join(g["reason"] for g in open_), stop, stopped_early, primary, guards, path)
        return Decision("adopt", f"B improves {m} ({how}) and every guardrail passes", stop, stopped_early,
                        primary, guards, path)
    if at_horizon:
        return Decision("reject", f"no difference in {m} of the planned size was detected after {stop} units "
                        "(keep A)", stop, False, primary, guards, path)
    rule = {"msprt": "no boundary crossed yet",
            "obf": f"no boundary crossed at the looks so far (every {plan.look_every} units)",
            "fixed": "fixed-horizon plan: no decision before the planned units"}[plan.stopping]
    return Decision("extend", f"{y.size} of {plan.units} planned units; {rule}", stop, False, primary, guards,
                    path)
