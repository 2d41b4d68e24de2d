"""Thresholds page (placeholder until its issue lands)."""

import streamlit as st

st.title("Thresholds")
st.info("This page is being built.")
