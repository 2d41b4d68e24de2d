"""Policies page (placeholder until its issue lands)."""

import streamlit as st

st.title("Policies")
st.info("This page is being built.")
