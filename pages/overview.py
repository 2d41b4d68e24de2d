"""Overview: what is loaded, data quality at a glance, and where to go next."""

import streamlit as st

from core.fmt import fmt_duration, fmt_ts
from ui import outcomes, state
from ui.charts import grade_figure
from ui.widgets import (
    PAGES_DIR,
    grade_counts,
    next_steps,
    no_data,
    show_issue_list,
    show_quality_table,
    worst_series,
)

st.title("Overview")
st.caption("Tune alert thresholds with evidence: load metric exports, check their quality, then study "
           "trends, replay rules and recommend thresholds.")

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
st.caption(f"Data from {fmt_ts(info['start'])} to {fmt_ts(info['end'])}."
           + (f" Newest upload: {fmt_ts(info['newest_upload'])} ({info['newest_upload_name']})."
              if info.get("newest_upload") is not None else ""))

st.subheader("Data quality")
q = state.quality()
if q is None:
    st.info("The data-quality report is not available in this build.")
elif not len(q):
    st.info("No series with points to assess.")
else:
    counts = grade_counts(q)
    left, right = st.columns([2, 3])
    with left:
        st.markdown("**Series per grade**")
        st.plotly_chart(grade_figure(counts), width="stretch", config={"displayModeBar": False})
        n_insuff = int(counts.get("insufficient", 0))
        if n_insuff:
            st.caption(f"{n_insuff} series have too little data to grade: treat their numbers with care.")
    with right:
        st.markdown("**Worst series and their issues**")
        worst = worst_series(q, 10)
        show_quality_table(worst, columns=["series", "grade", "score", "issues"], max_rows=6)
        show_issue_list(worst, 5)
    st.page_link(f"{PAGES_DIR}/data.py", label="Full quality table and series explorer", icon=":material/table:")

st.subheader("Next steps")
next_steps()

outcomes.render_recent_changes()
outcomes.render_effectiveness_download()
