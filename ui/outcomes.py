"""Predicted vs actual of applied changes, the effectiveness report downloads, the rollback trigger panel
and the post-upload trigger check. Every number comes from :mod:`core.policy.outcomes` and
:mod:`core.policy.triggers`; this module only lays them out."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.commands.ingest import post_ingest_checks
from core.data.store import Store
from core.errors import StudioError
from core.fmt import fmt_ts
from core.policy import outcomes as oc
from core.policy import triggers as trg
from core.policy import versions as pol
from ui import state

POLICY = pol.DEFAULT_POLICY
MEASURE_LABELS = {"episodes_per_week": "episodes/week", "time_in_alert_pct": "time in alert %",
                  "incidents_caught": "incidents caught %"}


@st.cache_data(show_spinner="Comparing predictions with what happened...")
def _outcomes(path: str, policy: str) -> pd.DataFrame:
    return oc.change_outcomes(state.store(), policy)


@st.cache_data(show_spinner="Building the effectiveness report...")
def _report(path: str, policy: str) -> pd.DataFrame:
    return oc.effectiveness_report(state.store(), policy)


@st.cache_data(show_spinner=False)
def _firings(path: str, policy: str) -> pd.DataFrame:
    return trg.firing_history(state.store(), policy)


def _num(x: Any) -> str:
    return "-" if x is None or pd.isna(x) else f"{float(x):.3g}"


def outcomes_frame(o: pd.DataFrame) -> pd.DataFrame:
    """The outcomes as a display table: predicted with its interval, actual, error (percent), verdict."""
    return pd.DataFrame({
        "version": [f"v{v}" for v in o["version"]],
        "in force from": [fmt_ts(t) for t in o["effective_at"]],
        "rule": o["rule"], "series": o["series"], "measure": o["measure"].map(MEASURE_LABELS),
        "predicted [interval]": [f"{_num(p)} [{_num(lo)}, {_num(hi)}]" if not pd.isna(p) else "-"
                                 for p, lo, hi in zip(o["predicted"], o["predicted_low"], o["predicted_high"],
                                                      strict=True)],
        "actual": [_num(a) for a in o["actual"]],
        "error %": [_num(100 * e) if e is not None and not pd.isna(e) else "-" for e in o["relative_error"]],
        "data since (h)": [f"{h:.0f}" for h in o["hours_since_change"]],
        "verdict": o["verdict"]})


def error_figure(o: pd.DataFrame) -> go.Figure | None:
    """Relative prediction error (percent) per judged outcome against when its change took effect, one
    trace per measure (None when nothing was judged yet)."""
    d = o[pd.to_numeric(o["relative_error"], errors="coerce").notna()]
    if d.empty:
        return None
    fig = go.Figure()
    for m, g in d.groupby("measure"):
        fig.add_trace(go.Scatter(x=g["effective_at"], y=100 * g["relative_error"].astype(float), mode="markers",
                                 name=MEASURE_LABELS.get(str(m), str(m)),
                                 text=[f"v{v} {r} on {s}" for v, r, s in zip(g["version"], g["rule"], g["series"],
                                                                             strict=True)]))
    fig.add_hline(y=0, line_dash="dot", line_color="grey")
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_title="error (actual vs predicted) %",
                      legend={"orientation": "h"})
    return fig


def accuracy_text(acc: dict[str, Any]) -> str:
    si, mape = acc.get("share_inside"), acc.get("mape_pct")
    return (f"{'-' if si is None else f'{100 * si:.0f}%'} of actuals inside the predicted interval (n = {acc['n']}); "
            f"mean absolute percentage error {'-' if mape is None else f'{mape:.0f}%'} (n = {acc['n_mape']})")


def render_recent_changes(policy: str = POLICY, versions: int = 5) -> None:
    """Recent changes with predicted vs actual (the last ``versions`` changes), a chart of prediction error
    over time, the model's accuracy with its sample size, and the rollback triggers that fired."""
    st.subheader("Recent changes: predicted vs actual")
    path = state.db_path()
    try:
        o = _outcomes(path, policy)
    except StudioError as exc:
        st.warning(f"Predicted vs actual not available: {exc}")
        return
    if o.empty:
        st.info("No applied change has a stored prediction yet: predictions are stored when a policy change is "
                "applied, and compared once newer data arrive.", icon=":material/query_stats:")
        return
    acc = oc.prediction_accuracy(o)
    st.caption("Model accuracy over all changes: " + accuracy_text(acc) + f". Actuals use only data after each "
               f"change; with less than {oc.MIN_HOURS:.0f} h of data the row says so instead of a number.")
    recent = sorted(set(o["version"]), reverse=True)[:versions]
    st.dataframe(outcomes_frame(o[o["version"].isin(recent)]), hide_index=True, width="stretch")
    fig = error_figure(o)
    if fig is not None:
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False})
    fired = _firings(path, policy)
    if len(fired):
        st.markdown("**Rollback triggers that fired**")
        st.dataframe(firings_frame(fired.head(5)), hide_index=True, width="stretch")


def render_effectiveness_download(policy: str = POLICY) -> None:
    """CSV and printable HTML downloads of the before/after effectiveness report."""
    path = state.db_path()
    try:
        rep = _report(path, policy)
        acc = oc.prediction_accuracy(_outcomes(path, policy))
    except StudioError as exc:
        st.warning(f"Effectiveness report not available: {exc}")
        return
    st.caption(f"Effectiveness report: {len(rep)} rule x series row(s), before vs after each change "
               "(episodes/week, incidents caught, time in alert).")
    c = st.columns(2)
    c[0].download_button("Effectiveness report (CSV)", oc.report_csv(rep), "effectiveness.csv", "text/csv",
                         key="out.csv", icon=":material/download:", width="stretch")
    c[1].download_button("Effectiveness report (HTML, printable)", oc.report_html(rep, acc).encode("utf-8"),
                         "effectiveness.html", "text/html", key="out.html", icon=":material/print:", width="stretch")


def firings_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Trigger firings for display: when, which change, trigger, what it did, the evidence in words."""
    rows = []
    for r in df.to_dict("records"):
        f = trg.Firing(POLICY, int(r["version"]), r["trigger"], r["mode"], r["evidence"], r["result_version"])
        try:
            what = f.summary()
        except (KeyError, TypeError, ValueError):
            what = str(r["evidence"])
        rows.append({"fired": fmt_ts(r["fired_at"]), "change": f"v{r['version']}", "trigger": r["trigger"],
                     "action": (f"rolled back (v{r['result_version']})" if r["mode"] == "rollback"
                                else f"proposed rollback v{r['result_version']}"), "evidence": what})
    return pd.DataFrame(rows, columns=["fired", "change", "trigger", "action", "evidence"])


def render_triggers(active: pol.PolicyVersion | None, policy: str = POLICY) -> None:
    """An expander with the rollback trigger settings of the version in force and the trigger history."""
    with st.expander("Rollback triggers", icon=":material/undo:"):
        if active is None:
            st.caption("No version in force: nothing to judge.")
        else:
            try:
                cfg = trg.trigger_config(active.meta)
                st.caption(f"Settings of v{active.number} (kept with the version, `rollback_triggers` in the policy "
                           "YAML; defaults where unset). Checked after every upload and by "
                           "`python -m core policy check-triggers`.")
                st.json(cfg.to_dict(), expanded=True)
            except StudioError as exc:
                st.error(f"v{active.number} has unusable trigger settings: {exc}")
        fired = _firings(state.db_path(), policy)
        if fired.empty:
            st.caption("No trigger has fired.")
        else:
            st.dataframe(firings_frame(fired), hide_index=True, width="stretch")


def after_upload(store: Store | None = None, reports: list[Any] | None = None) -> list[str]:
    """The post-upload checks of the Data page, the same as after ``python -m core ingest``
    (:func:`core.commands.ingest.post_ingest_checks`): SLO budget alerts, drift of the series the
    uploads changed, then the rollback triggers of the change in force (a firing writes its rollback or
    proposal, audit entry and notice). Each notice or firing is announced with a toast; a check that
    could not run is shown as a warning. Never fails the upload. Returns the lines said."""
    said: list[tuple[str, bool]] = []

    def say(text: str, *, err: bool = False) -> None:
        said.append((text.strip(), err))

    post_ingest_checks(store if store is not None else state.store(), list(reports or []), say)
    if said:
        state.after_write()
    for text, err in said:
        if err:
            st.warning(text)
        else:
            st.toast(text, icon=":material/undo:" if text.startswith("trigger:") else ":material/notifications:")
    return [t for t, _ in said]
