"""Trends page (placeholder until its issue lands)."""

import streamlit as st

st.title("Trends")
st.info("This page is being built.")
