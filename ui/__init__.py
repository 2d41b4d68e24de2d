"""Streamlit helpers shared by the pages: cached store and queries, figures, dialogs."""
