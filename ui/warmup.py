"""Import the heavy analytics modules in the background once per server process, so the first visit
to the Trends or Thresholds page does not pay ~5 s of imports (scipy.stats, statsmodels, sklearn).

Then the pages' own helpers (plotly, ``ui.thresholds`` with the recommendation engine, ...): about
2 s more under load that a page's first visit in the browser would otherwise pay (measured with
``python -X importtime``; the AppTest figures of ``bench/pages.py`` import them up front)."""

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

#: the pages' helper modules, imported after :data:`HEAVY_MODULES` (names, not imports: ``ui.warmup``
#: stays free of the pages' import graph)
PAGE_MODULES = (
    "plotly.graph_objects",
    "ui.charts",
    "ui.widgets",
    "core.alerting.recommend.engine",
    "core.alerting.recommend.fleet",
    "core.experiment.analyse",
    "core.slo",
    "core.policy.versions",
    "ui.thresholds.editor",
    "ui.thresholds.view",
    "ui.thresholds.apply",
    "ui.trends",
    "ui.recommendations",
    "ui.experiments",
    "ui.slos",
    "ui.policies",
)


def _import_all() -> None:
    for name in HEAVY_MODULES + PAGE_MODULES:
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
