"""Import the heavy analytics modules in the background once per server process, so the first visit
to the Trends or Thresholds page does not pay ~5 s of imports (scipy.stats, statsmodels, sklearn)."""

from __future__ import annotations

import importlib
import threading

import streamlit as st

HEAVY_MODULES = (
    "scipy.stats",
    "statsmodels.tsa.seasonal",
    "statsmodels.tsa.exponential_smoothing.ets",
    "sklearn.ensemble",
    "core.analysis.detect",
    "core.analysis.pipeline",
    "core.alerting.replay",
)


def _import_all() -> None:
    for name in HEAVY_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # a failed warm-up must never break the app; the page import will report it
            pass


@st.cache_resource(show_spinner=False)
def start() -> threading.Thread:
    """Start the warm-up thread (once per process; later calls return the same thread)."""
    t = threading.Thread(target=_import_all, name="studio-warmup", daemon=True)
    t.start()
    return t
