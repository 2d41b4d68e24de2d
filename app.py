"""threshold studio: entry point. Navigation only; every page is a thin file in pages/."""

import streamlit as st

from ui import warmup

st.set_page_config(page_title="threshold studio", page_icon=":material/tune:", layout="wide")
warmup.start()

pages = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/upload_file:"),
    st.Page("pages/trends.py", title="Trends & anomalies", icon=":material/monitoring:"),
    st.Page("pages/thresholds.py", title="Thresholds", icon=":material/tune:"),
    st.Page("pages/recommendations.py", title="Recommendations", icon=":material/insights:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/science:"),
    st.Page("pages/slos.py", title="SLOs", icon=":material/speed:"),
    st.Page("pages/policies.py", title="Policies", icon=":material/policy:"),
]
st.navigation(pages).run()
