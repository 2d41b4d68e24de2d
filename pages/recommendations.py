"""Recommendations: recommended thresholds for every stored series, validated on held-out history,
with confidence and risk; apply the chosen ones as one reviewed policy change. Logic in core and
ui/recommendations.py."""

import streamlit as st

from core.alerting.recommend.fleet import fleet_table
from core.alerting.recommend.strategies import PRESETS
from core.errors import StudioError
from ui import experiments as ue
from ui import recommendations as ur
from ui import state
from ui.session import session_user, write_note

ss = st.session_state
st.title("Recommendations")
st.caption("One recommendation per series: strategies scored on the older part of the history (reliability, "
           "alert budget, stability), checked on the newer part it was not fit on, with intervals and a risk level.")
ur.show_flash()

series = state.series_table()
if series.empty or int(series["points"].sum()) == 0:
    st.info("No data yet: upload metric exports on the Data page first.", icon=":material/upload_file:")
    st.page_link("pages/data.py", label="Go to Data", icon=":material/upload_file:")
    st.stop()

c = st.columns([1, 1, 1.4])
preset = c[0].selectbox("Preset", list(PRESETS), index=list(PRESETS).index("balanced"), key="rec.preset",
                        help="Conservative: fewer alerts (p99.5, 1/week); balanced: p99, 3/week; aggressive: more.")
train = c[1].slider("Fit on the first", 0.5, 0.9, 0.7, 0.05, key="rec.train", format="%.2f",
                    help="Share of each series' time span the levels are fit on; the rest checks them.")
glob = c[2].text_input("Filter series (glob)", key="rec.glob", placeholder='e.g. latency*checkout*')

ctx = ur.run_context(preset, train)
res = ur.results(ctx)
if res is None:
    st.info(f"{len(series)} series stored. Recommending them replays every candidate over each history.",
            icon=":material/insights:")
    if st.button("Compute recommendations", type="primary", key="rec.run", icon=":material/play_arrow:"):
        res = ur.compute(ctx, preset, train)
    else:
        st.stop()

table = fleet_table(res, glob or None)
ok = table[table["insufficient"].isna()]
st.markdown(f"**{len(ok)}** of {len(table)} series recommended ({preset}); sorted by expected noise "
            "reduction (episodes/week now minus predicted). Intervals are 90 %.")
st.dataframe(table, hide_index=True, width="stretch", key="rec.table", column_config={
    "episodes_per_week_now": st.column_config.NumberColumn("now /wk (held-out)", format="%.2f"),
    "predicted_episodes_per_week": st.column_config.NumberColumn("predicted /wk", format="%.2f"),
    "predicted_low": st.column_config.NumberColumn("low", format="%.2f"),
    "predicted_high": st.column_config.NumberColumn("high", format="%.2f"),
    "held_out_actual": st.column_config.NumberColumn("held-out /wk", format="%.2f"),
    "held_out_error": st.column_config.NumberColumn("held-out error", format="percent"),
    "noise_reduction": st.column_config.NumberColumn("noise reduction /wk", format="%.2f"),
})

# ---------------------------------------------------------------- detail
keys = table["series"].tolist()
if keys:
    key = st.selectbox("Detail", keys, key="rec.detail")
    rec = next(r for r in res if r["series"] == key)
    if rec.get("insufficient"):
        st.warning(f"Insufficient: {rec['insufficient']}", icon=":material/data_alert:")
    else:
        m = st.columns(4)
        iv = rec["predicted_interval"] or [None, None]
        m[0].metric("Recommended warning", f"{rec['warning']:.4g}",
                    help="90 % interval: " + (", ".join(f"{x:.4g}" for x in rec["confidence"]["warning_interval"])
                                              if rec["confidence"]["warning_interval"] else "not available"))
        m[1].metric("Critical", "-" if rec["critical"] is None else f"{rec['critical']:.4g}")
        m[2].metric("Predicted episodes / week", f"{rec['predicted_episodes_per_week']:.2f}",
                    help=f"90 % interval {iv[0]:.2f} to {iv[1]:.2f}")
        m[3].metric("Risk", rec["risk"])
        pts = state.points(key)
        st.plotly_chart(ur.detail_figure(pts, state.incidents(key), rec), key="rec.chart")
        st.markdown("**Each candidate on the held-out period** (after the split; the levels were fit before "
                    "it), with 90 % intervals")
        try:
            st.dataframe(ur.outcomes_frame(rec), hide_index=True, width="stretch", key="rec.outcomes")
        except StudioError as exc:
            st.caption(f"Candidates unavailable: {exc}")
        st.caption("Episodes/week: block bootstrap of daily counts united with the exact Poisson interval; time "
                   "in alert: block bootstrap of daily alert time; caught/missed: Clopper-Pearson; delay and "
                   "reset: bootstrap of the median over caught incidents. Candidates are shown as their strategy "
                   "proposed them, before the change limits; the recommendation after them.")
        cf = ur.candidates_frame(rec)
        if len(cf):
            st.caption("Rule in force and recommendation over the whole history (in-sample for the recommendation):")
            st.dataframe(cf, hide_index=True, width="stretch")
        st.markdown(rec["rationale"])
        for r in rec["risk_reasons"]:
            st.caption(f"Risk: {r}")
        unit = ur.series_unit(series, key)
        for line in ur.constraint_lines(rec, unit):
            st.info(line[0].upper() + line[1:], icon=":material/content_cut:")
        for n in rec.get("constraints") or []:
            st.caption(f"Constraint: {n}")
        if rec.get("limits"):
            st.caption(f"Change limits of rule {rec.get('rule')}: {rec['limits']['text']}.")

# ---------------------------------------------------------------- apply
user, err = session_user()
note = write_note(user)
pick = st.multiselect("Recommendations to apply", ok["series"].tolist(), key="rec.pick")
a, b = st.columns(2)
if a.button("Apply selected...", key="rec.apply", disabled=not pick or note is not None, icon=":material/done_all:"):
    ss[ur.DIALOG] = True
ab = ue.prefill_from(res, ss.get("rec.detail"))
if b.button("Test in an A/B simulation", key="rec.ab", disabled=ab is None or note is not None,
             icon=":material/science:"):
    ss[ue.PREFILL] = ab
    st.switch_page("pages/experiments.py")
b.caption("Opens the Experiments page with the detail view's recommendation as rule B.")
if note:
    st.caption(note)
if ss.get(ur.DIALOG) and pick:
    ur.apply_dialog(res, pick)
