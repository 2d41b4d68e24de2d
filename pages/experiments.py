"""Experiments: simulated A/B tests of a candidate rule B against the rule in force A, planned with a
power analysis, run day by day under a pre-registered stopping rule, decided with intervals, and
adopted through the policy's apply preview. Logic in core.experiment and ui/experiments.py."""

import numpy as np
import streamlit as st

from core.errors import StudioError
from core.experiment.analyse import decide
from core.experiment.lifecycle import plan_of
from core.experiment.plan import STOPPING_RULES
from core.experiment.workflow import rule_for_series
from ui import experiments as ue
from ui import state
from ui.policy_apply import current_policy
from ui.session import session_user, write_note

ss = st.session_state
st.title("Experiments")
st.caption("Is candidate rule B really better than rule A, and how long would a test need? Plan with a power "
           "curve, run a simulated A/B test under an honest stopping rule, then adopt, reject or extend.")
ue.show_flash()
with st.expander("What is simulated (read this first)", icon=":material/info:"):
    st.markdown(ue.SIMULATION_TEXT)

series = state.series_table()
if series.empty or int(series["points"].sum()) == 0:
    st.info("No data yet: upload metric exports on the Data page first.", icon=":material/upload_file:")
    st.stop()
user, _ = session_user()
note = write_note(user)
if note:
    st.caption(note)

listing = ue.experiments()
if len(listing):
    st.dataframe(listing, hide_index=True, width="stretch", key="exp.list",
                 column_config={"action": st.column_config.TextColumn("result")})
labels = {int(r.id): f"#{int(r.id)} {r.name}" for r in listing.itertuples()}
prefill = ss.get(ue.PREFILL)
if prefill:
    ss["exp.pick"] = ue.NEW
if ue.SELECTED in ss:
    ss["exp.pick"] = labels.get(int(ss.pop(ue.SELECTED)), ue.NEW)
pick = st.selectbox("Experiment", [ue.NEW, *labels.values()], key="exp.pick")

# ---------------------------------------------------------------- new experiment
if pick == ue.NEW:
    keys = series["key"].tolist()
    if prefill and prefill.get("series") in keys and "exp.series" not in ss:
        ss["exp.series"] = prefill["series"]
    key = st.selectbox("Series", keys, key="exp.series")
    pts = state.points(key)
    vals = pts["value"].to_numpy(float)
    in_force = rule_for_series(current_policy()["rules"], key)
    c = st.columns(3)
    level_a = None
    if in_force is not None:
        c[0].markdown(f"**Rule A** (in force): `{in_force.name}` {in_force.comparator} {in_force.warning:g} "
                      f"for {in_force.to_dict()['for']}")
    else:
        level_a = c[0].number_input("Rule A level (no rule in force)", value=float(np.nanquantile(vals, 0.995)),
                                    key="exp.level_a", help="Alert when the value exceeds this.")
    rule_a = ue.rule_a_of(key, vals, in_force, level_a)
    b_default = float(prefill["warning"]) if prefill else float(rule_a.warning or 0) * 1.1
    lvl_b = c[1].number_input("Rule B warning level", value=b_default, key="exp.level_b")
    for_b = c[2].text_input("Rule B for", value=(prefill or {}).get("for") or rule_a.to_dict()["for"],
                            key="exp.for_b", help="Pending period, e.g. 2m, 5m.")
    p = st.columns(6)
    metric = p[0].selectbox("Primary metric", list(ue.METRICS), format_func=ue.METRICS.get, key="exp.metric")
    mde = p[1].slider("Minimum detectable effect", -0.9, 0.9, -0.5, 0.05, key="exp.mde", format="%+.2f",
                      help="Relative change of the metric per day that the test should detect (-0.5 = halved).")
    alpha = p[2].number_input("Alpha", 0.001, 0.2, 0.05, 0.01, key="exp.alpha", format="%.3f")
    power = p[3].number_input("Power", 0.5, 0.99, 0.8, 0.05, key="exp.power", format="%.2f")
    split = p[4].slider("Share of days in B", 0.1, 0.9, 0.5, 0.1, key="exp.split")
    stopping = p[5].selectbox("Stopping rule", STOPPING_RULES, key="exp.stopping",
                              help=" ".join(ue.STOPPING_HELP.values()))
    st.caption(ue.STOPPING_HELP[stopping])
    rate = st.number_input("Injected incidents per simulated day", 0.0, 5.0, 0.5, 0.1, key="exp.rate")
    settings = {**ue.DEFAULT_SETTINGS, "rate": float(rate)}
    try:
        rule_b = ue.rule_b_of(rule_a, float(lvl_b), for_b, prefill)
        plan = ue.make_plan(ue.pilot_pool(key, rule_a, settings), metric, float(mde), float(alpha), float(power),
                            float(split), stopping)
    except StudioError as exc:
        st.error(f"Cannot plan this experiment: {exc}", icon=":material/data_alert:")
        st.stop()
    st.markdown(ue.plan_text(plan))
    if not plan.in_range:
        st.error(f"Outside the allowed 3-60 days: {plan.note}", icon=":material/event_busy:")
    st.plotly_chart(ue.power_figure(plan), key="exp.power_chart")
    st.caption("Power: the chance the test detects an effect of the planned size by that day. The sequential "
               "rule is allowed to stop any day, so it needs more days for the same power.")
    name = st.text_input("Name", value=f"{rule_a.name}: {rule_a.warning:g} -> {rule_b.warning:g}", key="exp.name")
    if st.button("Create experiment...", type="primary", key="exp.create", icon=":material/science:",
                 disabled=note is not None or not plan.in_range or rule_a == rule_b):
        ue.request("create", spec={"name": name, "series": key, "rule_a": rule_a.to_dict(),
                                   "rule_b": rule_b.to_dict(), "plan": plan.to_dict(), "settings": settings})
    ue.show_pending()
    st.stop()

# ---------------------------------------------------------------- one experiment
eid = int(pick.split()[0][1:])
row = ue.experiment(eid)
plan = plan_of(row)
st.markdown(f"**Status: {row['status']}** | series `{row['series']}` | rule A {row['rule_a']['comparator']} "
            f"{row['rule_a'].get('warning')} for {row['rule_a'].get('for')} | rule B {row['rule_b']['comparator']} "
            f"{row['rule_b'].get('warning')} for {row['rule_b'].get('for')} | created by {row['created_by']}")
st.markdown(ue.plan_text(plan))
if not plan.in_range:
    st.warning(f"Outside the allowed 3-60 days: {plan.note}", icon=":material/event_busy:")
with st.expander("Power curve"):
    st.plotly_chart(ue.power_figure(plan), key="exp.power_chart")

b = st.columns(4)
status = row["status"]
if status == "planning" and b[0].button("Start...", key="exp.start", disabled=note is not None,
                                        icon=":material/play_arrow:"):
    ue.request("start", eid=eid)
if status == "running":
    if b[0].button("Advance one day...", key="exp.step", disabled=note is not None, icon=":material/skip_next:"):
        ue.request("advance", eid=eid, units=1)
    if b[1].button("Run to the end...", key="exp.run", disabled=note is not None, icon=":material/fast_forward:"):
        ue.request("advance", eid=eid, units=None)
if status in ("planning", "running") and b[2].button("Stop...", key="exp.stop", disabled=note is not None,
                                                     icon=":material/stop_circle:"):
    ue.request("stop", eid=eid)
if status == "stopped":
    st.info(f"Stopped: {row['stop_reason']}", icon=":material/stop_circle:")

units = ue.recorded(eid)
if len(units):
    dec = decide(plan, units)
    verdict = row["result"] or dec.to_dict()
    icon = {"adopt": ":material/thumb_up:", "reject": ":material/thumb_down:", "extend": ":material/update:"}
    msg = f"**{verdict['action'].upper()}**: {verdict['reason']}"
    {"adopt": st.success, "reject": st.error}.get(verdict["action"], st.info)(msg, icon=icon[verdict["action"]])
    st.caption(f"{len(units)} simulated days recorded ({int((units['arm'] == 'B').sum())} in B). Intervals are 95 %.")
    st.plotly_chart(ue.running_figure(dec.path, plan, verdict["action"]), key="exp.running_chart")
    st.caption(ue.running_caption(plan))
    st.dataframe(ue.verdict_rows(verdict), hide_index=True, width="stretch", key="exp.verdict")
    if status == "completed" and verdict["action"] == "adopt":
        if st.button("Adopt B...", type="primary", key="exp.adopt", disabled=note is not None,
                     icon=":material/done_all:"):
            ue.request("adopt", eid=eid)
        st.caption("Adopt hands rule B to the policy's apply preview; a significant change needs approval.")
elif status == "running":
    st.info("Running: no simulated day recorded yet.", icon=":material/hourglass_empty:")

with st.expander("The A/A lesson: why peeking needs a sequential test"):
    try:
        aa = ue.aa_lesson(row)
    except StudioError as exc:
        st.warning(f"Insufficient for the A/A lesson: {exc}")
    else:
        st.markdown(f"Rule A against itself, {aa['sequential']['runs']} simulated experiments of {aa['units']} "
                    f"days looked at daily. A false positive is declaring a difference where there is none; "
                    f"alpha is {plan.alpha:g}.")
        m = st.columns(4)
        for col, (k, label) in zip(m, ue.AA_LABELS.items(), strict=True):
            r = aa[k]
            col.metric(label, f"{r['false_positive_rate']:.1%}",
                       help=f"95 % interval {r['interval'][0]:.1%} to {r['interval'][1]:.1%}")
        st.caption("Naive peeking runs a t-test every day and stops at the first p < alpha: with enough looks it "
                   "finds 'significant' differences between identical rules far more often than alpha.")
ue.show_pending()
