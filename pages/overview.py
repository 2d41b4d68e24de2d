"""Overview: fleet health, the page an on-call lead opens first. What needs attention, one row per
series (quality, anomalies, alerts/week, SLO budget, open recommendation, drift), pending approvals,
running experiments and who was told what. Numbers from core.commands.fleet_health via ui/overview.py."""

import streamlit as st

from core.commands.fleet_health import FAST_GROUPS, GROUPS
from core.fmt import fmt_duration, fmt_ts
from ui import outcomes, state
from ui import overview as uo
from ui.widgets import PAGES_DIR, no_data

st.title("Overview")
st.caption("Fleet health: what needs attention first, then every series with its data quality, anomalies, "
           "alert load, SLO budget, open recommendation and drift.")

info = state.overview()
if info["series"] == 0:
    no_data("No data yet: the database has no series")
    st.stop()

c = st.columns(5)
c[0].metric("Series", f"{info['series']:,}")
c[1].metric("Points", f"{info['points']:,}")
c[2].metric("Time span", fmt_duration(info["span_s"]), help=f"{fmt_ts(info['start'])} to {fmt_ts(info['end'])}")
c[3].metric("Uploads", f"{info['uploads']:,}")
c[4].metric("Incidents", f"{info['incidents']:,}", help="labelled incident windows (used to score rules)")
h = uo.health(st.session_state.get("ovw.glob") or None)
b = h["base"]
st.caption(f"Data from {fmt_ts(info['start'])} to {fmt_ts(info['end'])}."
           + (f" Newest upload: {fmt_ts(info['newest_upload'])} ({info['newest_upload_name']})."
              if info.get("newest_upload") is not None else "")
           + (f" Policy in force: {b.version.label}." if b.version else " No policy in force."))

# ---------------------------------------------------------------- needs attention first
st.subheader("Needs attention first")
att = h["attention"]
if len(att):
    st.caption(uo.attention_summary(att))
    st.dataframe(uo.attention_frame(att), hide_index=True, width="stretch", key="ovw.attention")
else:
    st.success("Nothing needs attention among what has been computed.", icon=":material/check_circle:")
if h["fresh"]["alerts"]["n"] < len(h["table"]) or h["fresh"]["recommendation"]["n"] < len(h["table"]):
    st.caption("Alert storms, poor quality and large recommendations are only found for series whose "
               "columns have been computed (below); SLO budgets, drift notices and approvals always count.")

# ---------------------------------------------------------------- recent changes: predicted vs actual
outcomes.render_recent_changes()
outcomes.render_effectiveness_download()

# ---------------------------------------------------------------- fleet table
st.subheader("Fleet health")
f, g1, g2 = st.columns([2, 1, 1])
glob = f.text_input("Filter series (glob)", key="ovw.glob", placeholder='e.g. latency* or checkout')
shown = h["shown"]
if glob and not len(shown):
    st.warning(f"No series matches {glob!r}; clear the filter to see all {len(h['table'])} series.")
if g1.button(f"Compute quality and alerts ({len(shown)})", key="ovw.fast", disabled=not len(shown),
             help=f"Reads the raw points of the rows shown: {uo.estimate(shown, FAST_GROUPS)}."):
    uo.compute(shown["series"].tolist(), FAST_GROUPS)
    st.rerun()
if g2.button(f"Compute everything ({len(shown)})", key="ovw.all", disabled=not len(shown),
             help=f"Adds anomalies and the balanced recommendation: {uo.estimate(shown, GROUPS)}."):
    uo.compute(shown["series"].tolist(), GROUPS)
    st.rerun()
st.caption(uo.freshness_text(h["fresh"]))
st.caption(f"Rules, SLOs, drift notices, approvals and notifications read at {fmt_ts(b.computed_at)} (again after "
           "any change). Computed columns are kept by this server until the data (an upload, an incident) or the "
           "series' rules change. Click a column header to sort.")
st.dataframe(shown[uo.TABLE_SHOWN], hide_index=True, width="stretch", key="ovw.table",
             column_config=uo.TABLE_CONFIG)
if len(shown):
    o1, o2, o3 = st.columns([2, 1, 1])
    pick = o1.selectbox("Open a series", shown["series"].tolist(), key="ovw.pick")
    if o2.button("Trends & anomalies", key="ovw.trends", icon=":material/monitoring:"):
        uo.open_series(pick, "trends")
    if o3.button("Recommendations", key="ovw.rec", icon=":material/insights:"):
        uo.open_series(pick, "recommendations")

# ---------------------------------------------------------------- approvals, experiments, notifications
st.subheader("Pending approvals")
if len(b.approvals):
    st.dataframe(b.approvals.assign(waiting=b.approvals["waiting_s"].map(fmt_duration))
                 [["version", "author", "created_at", "waiting", "reason", "significance"]],
                 hide_index=True, width="stretch", key="ovw.approvals")
    st.page_link(f"{PAGES_DIR}/policies.py", label="Review on the Policies page", icon=":material/policy:")
else:
    st.caption("No policy change waits for approval.")

st.subheader("Running experiments")
if len(b.experiments):
    st.dataframe(b.experiments, hide_index=True, width="stretch", key="ovw.experiments")
    st.page_link(f"{PAGES_DIR}/experiments.py", label="Open Experiments", icon=":material/science:")
else:
    st.caption("No experiment is being planned or running.")

st.subheader("Recent notifications")
if len(b.notifications):
    st.dataframe(b.notifications, hide_index=True, width="stretch", key="ovw.notices", column_config={
        "channels": st.column_config.TextColumn("who was told", help="channel: delivery state")})
else:
    st.caption("No notification has been raised.")
