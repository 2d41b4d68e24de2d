"""Experiments page helpers: the pilot and plan (cached), the seeded simulation of a stored experiment,
the charts (power curve, running estimate with its sequential boundary), the verdict's numbers in
words, the A/A lesson, and the confirm dialogs for every write (create, start, advance, stop, adopt).

Every computation is a call into :mod:`core.experiment`; writes go through
:mod:`core.experiment.lifecycle` (or :func:`core.policy.versions.apply` for adopt) as the session
user, after :func:`ui.state.require_edit` checks the editor role again at the moment of confirming.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.alerting.rules import Rule
from core.errors import PermissionDenied, StudioError
from core.experiment import lifecycle
from core.experiment.checks import aa_check
from core.experiment.plan import MAX_DAYS, MIN_DAYS, Plan, plan_experiment, power_curve
from core.experiment.workflow import DEFAULT_SETTINGS, history_of, lower_is_better, pilot, simulation_of
from core.policy import versions as pol
from ui import state, widgets
from ui.pending import PendingDialogs
from ui.policy_apply import POLICY, show_preview
from ui.session import session_user

PREFILL = "exp.prefill"      # set by the Recommendations page: {"series", "warning", "for_s", "critical"}
PENDING = "exp.pending"
FLASH = "exp.flash"
SELECTED = "exp.selected"
NEW = "New experiment"
METRICS = {"false_episodes": "false alert episodes per day", "episodes": "alert episodes per day",
           "missed": "missed incidents per day", "caught": "incidents caught per day",
           "delay_s": "mean detection delay per day (s)"}
SIMULATION_TEXT = (
    "**This is a simulation, not live traffic.** Future days are drawn from the stored history of the "
    "series (whole past days of the same weekday, so the daily cycle and autocorrelation survive), "
    "incidents are injected at the set rate with the demo's shapes (spike, degradation, level shift, "
    "oscillation), and each day is randomly given to rule A or rule B. Both rules are replayed over "
    "every simulated day; a day counts only for its own arm. Outcomes are judged against the incident "
    "windows, never against an arm's own percentile. The run is seeded, so it is the same each time.")

_PENDING = PendingDialogs(PENDING)
show_pending = _PENDING.show
request = _PENDING.request


def show_flash() -> None:
    """Success line for the write made in the previous run, if any."""
    widgets.show_flash(FLASH)


def prefill_from(results: list[dict[str, Any]] | None, key: str | None) -> dict[str, Any] | None:
    """The Experiments page's prefill from the recommendation of series ``key`` (None when there is no
    usable one): B is the recommended warning, critical and ``for``; A stays the rule in force."""
    from core.alerting.rules import format_duration

    rec = next((r for r in results or [] if r.get("series") == key), None)
    if rec is None or rec.get("insufficient") or rec.get("warning") is None:
        return None
    return {"series": key, "warning": float(rec["warning"]),
            "critical": None if rec.get("critical") is None else float(rec["critical"]),
            "for": format_duration(rec["for_seconds"]) if rec.get("for_seconds") else None}


# ---------------------------------------------------------------------------- data
@st.cache_data(show_spinner=False)
def _experiments(path: str) -> pd.DataFrame:
    return lifecycle.list_all(state.store())


def experiments() -> pd.DataFrame:
    return _experiments(state.db_path())


def experiment(eid: int) -> dict[str, Any]:
    return lifecycle.get(state.store(), int(eid))


def recorded(eid: int) -> pd.DataFrame:
    return lifecycle.recorded_units(state.store(), int(eid))


def history(key: str) -> tuple[pd.Series, pd.DataFrame]:
    return history_of(state.points(key), key), state.incidents(key)


@st.cache_data(show_spinner="Simulating rule A's days (the pilot that sets the baseline)...")
def _pilot(path: str, key: str, rule_a_json: str, rate: float, days: int, seed: int) -> pd.DataFrame:
    hist, inc = history(key)
    pool, _, _ = pilot(hist, Rule.from_dict(json.loads(rule_a_json)), days=days, rate=rate, incidents=inc,
                       seed=seed)
    return pool


def pilot_pool(key: str, rule_a: Rule, settings: dict[str, Any]) -> pd.DataFrame:
    s = {**DEFAULT_SETTINGS, **settings}
    return _pilot(state.db_path(), key, json.dumps(rule_a.to_dict(), sort_keys=True), float(s["rate"]),
                  int(s["pool_days"]), int(s["seed"]))


def make_plan(pool: pd.DataFrame, metric: str, mde_rel: float, alpha: float, power: float, split: float,
              stopping: str) -> Plan:
    """The plan from the pilot's baseline (raises InsufficientDataError / ValidationError with the field)."""
    y = pool[metric].to_numpy(float)
    y = y[np.isfinite(y)]
    return plan_experiment(float(y.mean()) if y.size else float("nan"),
                           float(y.std(ddof=1)) if y.size > 1 else float("nan"), mde_rel=mde_rel, alpha=alpha,
                           power=power, split=split, stopping=stopping, metric=metric,
                           lower_is_better=lower_is_better(metric))


@st.cache_data(show_spinner="Simulating the experiment's days...")
def _simulation(path: str, eid: int, row_json: str) -> pd.DataFrame:
    row = json.loads(row_json)
    hist, inc = history(row["series"])
    return simulation_of(row, hist, inc).outcomes


def simulated_outcomes(row: dict[str, Any]) -> pd.DataFrame:
    keep = {k: row[k] for k in ("series", "rule_a", "rule_b", "plan", "settings")}
    return _simulation(state.db_path(), int(row["id"]), json.dumps(keep, sort_keys=True, default=str))


@st.cache_data(show_spinner="Running the A/A lesson (200 simulated experiments)...")
def _aa(path: str, key: str, rule_a_json: str, plan_json: str, settings_json: str) -> dict[str, Any]:
    settings = json.loads(settings_json)
    pool = pilot_pool(key, Rule.from_dict(json.loads(rule_a_json)), settings)
    plan = Plan(**json.loads(plan_json))
    return aa_check(pool[plan.metric].to_numpy(float), plan, runs=200, units=min(max(plan.days, 14), MAX_DAYS),
                    peek="daily", seed=int(settings.get("seed", 0)) + 1)


def aa_lesson(row: dict[str, Any]) -> dict[str, Any]:
    return _aa(state.db_path(), row["series"], json.dumps(row["rule_a"], sort_keys=True),
               json.dumps(row["plan"], sort_keys=True), json.dumps(row.get("settings") or {}, sort_keys=True))


# ---------------------------------------------------------------------------- words
def plan_text(plan: Plan) -> str:
    rel = f"{plan.mde_rel:+.0%} relative change" if plan.mde_rel is not None else ""
    return (f"To detect a {rel} of {METRICS.get(plan.metric, plan.metric)} (Cohen's d = {plan.mde_d:.2f}, "
            f"{plan.mde_abs:.3g} per day; baseline {plan.baseline_mean:.3g} ± {plan.baseline_sd:.3g} per day under A) "
            f"with alpha {plan.alpha:g} and power {plan.power:.0%}, the **{plan.stopping}** stopping rule needs "
            f"**{plan.units} days** ({plan.n_a} in A, {plan.n_b} in B).")


AA_LABELS = {"sequential": "sequential (mSPRT)", "group_sequential": "O'Brien-Fleming",
             "naive_peeking": "naive daily peeking", "fixed_horizon": "fixed horizon"}

STOPPING_HELP = {
    "msprt": "Sequential (mixture SPRT): look every day and stop at the first crossing; the false-positive "
             "rate stays at alpha however often you look. Needs more days than a fixed test.",
    "obf": "Group sequential (O'Brien-Fleming): weekly looks with strict early boundaries; a few percent more "
           "days than a fixed test.",
    "fixed": "Fixed horizon: one Welch test at the planned day, no early decision.",
}


def verdict_rows(dec: dict[str, Any]) -> pd.DataFrame:
    """The primary comparison and the guardrails as readable rows (value, interval, meaning)."""
    p = dec.get("primary") or {}
    rows = []

    def iv(x: Any) -> str:
        return "-" if not x or x[0] is None else f"{x[0]:.3g} to {x[1]:.3g}"

    if p:
        rows += [
            {"quantity": "mean per day, A / B", "value": f"{p.get('mean_a', float('nan')):.3g} / "
             f"{p.get('mean_b', float('nan')):.3g}", "interval": "",
             "meaning": f"over {p.get('n_a')} days in A and {p.get('n_b')} in B"},
            {"quantity": "difference B - A", "value": f"{p.get('diff', float('nan')):.3g}",
             "interval": iv(p.get("diff_ci")), "meaning": "fixed-horizon 95% interval (Welch)"},
            {"quantity": "confidence sequence", "value": "", "interval": iv(p.get("cs")),
             "meaning": "valid at every look at once: the sequential test's interval"},
            {"quantity": "relative change", "value": "-" if p.get("rel_change") is None else f"{p['rel_change']:+.1%}",
             "interval": iv(p.get("rel_ci")), "meaning": "B against A (delta-method interval)"},
            {"quantity": "Cohen's d", "value": "-" if p.get("cohen_d") is None else f"{p['cohen_d']:.2f}",
             "interval": "", "meaning": "difference in pooled standard deviations"},
            {"quantity": "Welch p / Mann-Whitney p",
             "value": f"{_f(p.get('welch_p'))} / {_f(p.get('mw_p'))}", "interval": "",
             "meaning": "fixed-horizon p-values, for reference"},
        ]
    for g in dec.get("guardrails") or []:
        rows.append({"quantity": f"guardrail: {g['name'].replace('_', ' ')}", "value": g["status"],
                     "interval": iv([g.get("lower"), g.get("upper")]), "meaning": g.get("reason", "")})
    return pd.DataFrame(rows, columns=["quantity", "value", "interval", "meaning"])


def _f(x: Any) -> str:
    return "-" if x is None else f"{x:.3g}"


# ---------------------------------------------------------------------------- charts
def power_figure(plan: Plan) -> go.Figure:
    pc = power_curve(plan)
    fig = go.Figure()
    for col, name in (("power_fixed", "fixed horizon"), ("power_group_sequential", "O'Brien-Fleming"),
                      ("power_sequential", "sequential (mSPRT)")):
        fig.add_scatter(x=pc["days"], y=pc[col], name=name, mode="lines")
    fig.add_hline(y=plan.power, line_dash="dot", annotation_text=f"target {plan.power:.0%}")
    if MIN_DAYS <= plan.days <= MAX_DAYS:
        fig.add_vline(x=plan.days, line_dash="dash", annotation_text=f"plan: {plan.days} days")
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="days (3-60 allowed)",
                      yaxis_title="power", yaxis_range=[0, 1.02], legend=dict(orientation="h"))
    return fig


def running_figure(path: pd.DataFrame, plan: Plan, action: str | None) -> go.Figure:
    """The running estimate B - A per day with its confidence sequence (valid at every day at once), and,
    for the sequential (``msprt``) plan only, its statistic (log LR) against the boundary log(1/alpha).
    A fixed-horizon or O'Brien-Fleming plan gets no daily boundary: it decides only at its planned looks."""
    from plotly.subplots import make_subplots

    sequential = plan.stopping == "msprt"
    titles = ("running estimate B - A with its confidence sequence",)
    if sequential:
        titles += ("sequential statistic (log LR) and its boundary",)
    fig = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=titles)
    x = path["units"]
    fig.add_scatter(x=x, y=path["cs_high"], mode="lines", line=dict(width=0), showlegend=False, row=1, col=1)
    fig.add_scatter(x=x, y=path["cs_low"], mode="lines", line=dict(width=0), fill="tonexty",
                    name="confidence sequence", row=1, col=1)
    fig.add_scatter(x=x, y=path["diff"], mode="lines+markers", name="estimate", row=1, col=1)
    fig.add_hline(y=0, line_dash="dot", row=1, col=1)
    if sequential:
        fig.add_scatter(x=x, y=path["log_lr"], mode="lines+markers", name="log LR", row=2, col=1)
        fig.add_hline(y=float(np.log(1 / plan.alpha)), line_dash="dash", row=2, col=1,
                      annotation_text="boundary log(1/alpha)")
    fig.update_layout(height=460 if sequential else 300, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h"))
    fig.update_xaxes(title_text="days recorded", row=len(titles), col=1)
    return fig


def running_caption(plan: Plan) -> str:
    """What decides the test under ``plan``'s stopping rule, for under the running chart."""
    band = ("The band is the confidence sequence: valid at every day at once, so looking at it daily does "
            "not inflate false positives. ")
    return band + {
        "msprt": "The test stops when the log likelihood ratio crosses log(1/alpha).",
        "obf": f"The decision is taken only at the planned looks (every {plan.look_every} days) against "
               "the O'Brien-Fleming boundary, never from this chart in between.",
        "fixed": f"Fixed horizon: the decision is Welch's test at the planned {plan.units} days; nothing in "
                 "between decides.",
    }[plan.stopping]


def rule_a_of(key: str, values: np.ndarray, in_force: Rule | None, level_a: float | None) -> Rule:
    """Rule A: the rule in force, else a ``>`` rule at ``level_a`` (default the series' p99.5) held 2 min."""
    from ui.policy_apply import rule_name

    if in_force is not None:
        return in_force
    level = float(level_a if level_a is not None else np.nanquantile(values, 0.995))
    return Rule(name=rule_name(key), series=key, comparator=">", warning=level, for_s=120)


def rule_b_of(rule_a: Rule, level_b: float, for_b: str, prefill: dict[str, Any] | None) -> Rule:
    """Rule B: A with the warning level ``level_b``, ``for_b`` and a prefilled critical level. Raises
    :class:`StudioError` naming the field when it is not a valid rule."""
    d = {**rule_a.to_dict(), "warning": float(level_b), "for": for_b}
    if prefill and prefill.get("critical") is not None:
        d["critical"] = float(prefill["critical"])
    return Rule.from_dict(d, path="rule B")


# ---------------------------------------------------------------------------- dialogs
def _write(action: str, fn: Any, message: str) -> None:
    """Check the editor role now, write, clear caches, flash, rerun; errors stay in the dialog."""
    try:
        state.require_edit(action)
        fn(session_user()[0].id)
    except StudioError as exc:
        st.error(str(exc), icon=":material/block:" if isinstance(exc, PermissionDenied) else None)
        return
    _PENDING.clear()
    state.after_write()
    st.session_state[FLASH] = message
    st.rerun()


def _buttons(prefix: str, label: str) -> bool:
    c1, c2 = st.columns(2)
    yes = c1.button(label, type="primary", key=f"{prefix}.yes", width="stretch")
    if c2.button("Cancel", key=f"{prefix}.no", width="stretch"):
        _PENDING.clear()
        st.rerun()
    return yes


@_PENDING.register("create")
@st.dialog("Create experiment", icon=":material/science:", on_dismiss=_PENDING.clear)
def create_dialog(spec: dict[str, Any]) -> None:
    st.markdown(f"Create **{spec['name']}** on `{spec['series']}` in status *planning*: rule A "
                f"`{spec['rule_a']['warning']}` against rule B `{spec['rule_b']['warning']}`, "
                f"{spec['plan']['units']} days, stopping rule {spec['plan']['stopping']}.")
    if _buttons("exp.create", "Create"):
        def go_(actor: str) -> None:
            eid = lifecycle.create(state.store(), name=spec["name"], series=spec["series"],
                                   rule_a=Rule.from_dict(spec["rule_a"]), rule_b=Rule.from_dict(spec["rule_b"]),
                                   plan=Plan(**spec["plan"]), settings=spec["settings"], actor=actor)
            st.session_state[SELECTED] = eid
            st.session_state.pop(PREFILL, None)
        _write("create an experiment", go_, f"Created experiment '{spec['name']}' (planning).")


@_PENDING.register("start")
@st.dialog("Start experiment", icon=":material/play_arrow:", on_dismiss=_PENDING.clear)
def start_dialog(eid: int) -> None:
    st.markdown(f"Start experiment **#{eid}**: its plan and stopping rule are frozen from now on "
                "(that is what keeps early stopping honest).")
    if _buttons("exp.start", "Start"):
        _write(f"start experiment #{eid}",
               lambda a: lifecycle.start(state.store(), eid, actor=a), f"Experiment #{eid} is running.")


@_PENDING.register("advance")
@st.dialog("Record simulated days", icon=":material/fast_forward:", on_dismiss=_PENDING.clear)
def advance_dialog(eid: int, units: int | None) -> None:
    row = experiment(eid)
    st.markdown(f"Record {'the next simulated day' if units == 1 else 'simulated days up to a verdict'} of "
                f"experiment **#{eid}** and decide under its **{row['plan']['stopping']}** rule.")
    if _buttons("exp.advance", "Record"):
        out = simulated_outcomes(row)
        res: dict[str, Any] = {}

        def go_(actor: str) -> None:
            res["d"] = lifecycle.advance(state.store(), eid, out, units=units, actor=actor)
        _write(f"advance experiment #{eid}", go_, f"Experiment #{eid}: recorded.")


@_PENDING.register("stop")
@st.dialog("Stop experiment", icon=":material/stop_circle:", on_dismiss=_PENDING.clear)
def stop_dialog(eid: int) -> None:
    st.markdown(f"Stop experiment **#{eid}** for good (no verdict is stored).")
    reason = st.text_input("Reason (required, recorded in the audit trail)", key="exp.stop_reason")
    if _buttons("exp.stop", "Stop"):
        _write(f"stop experiment #{eid}", lambda a: lifecycle.stop(state.store(), eid, reason, actor=a),
               f"Experiment #{eid} stopped.")


@_PENDING.register("adopt")
@st.dialog("Adopt rule B", icon=":material/done_all:", width="large", on_dismiss=_PENDING.clear)
def adopt_dialog(eid: int) -> None:
    """Rule B in place of rule A in the policy: the apply preview, then confirm (approval rules apply)."""
    store = state.store()
    try:
        rules, pv = lifecycle.adoption(store, eid, POLICY)
    except StudioError as exc:
        st.error(f"Cannot preview this change: {exc}")
        return
    show_preview(pv, "; the A/B verdict is on the page")
    reason = st.text_input("Reason (required, recorded in the audit trail)", key="exp.adopt_reason",
                           value=f"adopt rule B of experiment #{eid}")
    if _buttons("exp.adopt", "Confirm and apply"):
        res: dict[str, Any] = {}

        def go_(actor: str) -> None:
            user, _ = session_user()
            res["v"] = pol.apply(store, POLICY, rules, base_version=pol.latest_number(store, POLICY),
                                 user=user, reason=reason, source="experiment", experiment_id=eid)
        _write(f"adopt experiment #{eid}", go_, f"Rule B of experiment #{eid} sent to the policy "
               "(a significant change waits for a second person's approval).")
