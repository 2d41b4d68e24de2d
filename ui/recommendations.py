"""Recommendations page helpers: the fleet run (with a progress bar, kept per session), the detail
chart and the "Apply selected" dialog (one reviewed policy change through the apply preview).

Every computation is a call into :mod:`core.alerting.recommend`; this module only wires it to the
store and to Streamlit. ``STUDIO_DASK_SCHEDULER`` (an address such as ``tcp://host:8786``) runs the
fleet on that Dask cluster instead of in this process, with the points exported as Parquet under
``STUDIO_DASK_PARQUET_DIR`` (a directory every worker can read; default a local temporary one).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.alerting.recommend.fleet import apply_changes, recommend_fleet, split_points
from core.alerting.recommend.outcomes import candidate_outcomes
from core.alerting.replay import replay
from core.alerting.rules import Rule
from core.errors import StudioError
from core.policy import versions as pol
from ui import state, widgets
from ui.charts import series_figure
from ui.policy_apply import POLICY, confirm_apply, current_policy, outcome, rule_name, show_preview

RESULTS = "rec.results"
DIALOG = "rec.dialog"
FLASH = "rec.flash"
SCHEDULER_ENV = "STUDIO_DASK_SCHEDULER"
PARQUET_ENV = "STUDIO_DASK_PARQUET_DIR"


def run_context(preset: str, train: float) -> tuple[Any, ...]:
    """What a fleet run depends on: database, policy version, data version (series and points), settings."""
    pol_now = current_policy()
    series = state.series_table()
    return (state.db_path(), pol_now["base"], int(series["points"].sum()) if len(series) else 0, len(series),
            preset, round(float(train), 3))


def results(ctx: tuple[Any, ...]) -> list[dict[str, Any]] | None:
    """The fleet results computed for ``ctx`` in this session, or None."""
    got = st.session_state.get(RESULTS)
    return got[1] if got and got[0] == ctx else None


def compute(ctx: tuple[Any, ...], preset: str, train: float) -> list[dict[str, Any]]:
    """Recommend every stored series (progress bar), with the policy in force and stored incidents."""
    store = state.store()
    pol_now = current_policy()
    active = pol.active_version(store, POLICY)
    bounds = dict(active.meta.get("bounds") or {}) if active else {}
    points = store.get_points()
    keys = [str(k) for k in pd.unique(points["series"])]
    rules = [Rule.from_dict(d) for d in pol_now["rules"]]
    current: dict[str, Rule] = {}
    for r in rules:
        for k in r.matching(keys):
            current.setdefault(k, r)
    versions = sorted((v for v in pol.history(store, POLICY) if v.in_force_from is not None),
                      key=lambda v: v.in_force_from)
    items = split_points(points, store.list_incidents(), current, bounds,
                         history=[(v.in_force_from, v.rule_dicts) for v in versions])
    bar = st.progress(0.0, text=f"Recommending {len(items)} series...")

    def tick(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Recommended {done} of {total} series")

    out = recommend_fleet(items, workers=1, scheduler=os.environ.get(SCHEDULER_ENV) or None, progress=tick,
                          parquet_dir=os.environ.get(PARQUET_ENV) or None,
                          preset=preset, train_fraction=train)
    bar.empty()
    st.session_state[RESULTS] = (ctx, out)
    return out


def detail_figure(points: pd.DataFrame, incidents: pd.DataFrame, rec: dict[str, Any]) -> go.Figure:
    """The series with the current and recommended levels, the fit / held-out split and a marker at
    the start of every episode each rule would have fired (replayed by :func:`core.alerting.replay.replay`)."""
    fig = series_figure(points, incidents, height=360)
    cur = rec.get("current") or {}
    for label, val, color, dash in (("current warning", cur.get("warning"), "#6b7280", "dot"),
                                    ("current critical", cur.get("critical"), "#6b7280", "dash"),
                                    ("recommended warning", rec.get("warning"), "#ca8a04", "solid"),
                                    ("recommended critical", rec.get("critical"), "#dc2626", "solid")):
        if val is not None:
            fig.add_hline(y=val, line_color=color, line_dash=dash, annotation_text=f"{label} {val:.4g}",
                          annotation_position="top left", annotation_font_size=10)
    split = (rec.get("validation") or {}).get("split")
    if split:
        fig.add_vline(x=pd.Timestamp(split), line_color="#1f2937", line_dash="dot")
    values = points.set_index("ts")["value"].rename(rec["series"])
    rules = [("current", cur, "#6b7280"), ("recommended", rec, "#ca8a04")]
    for name, d, color in rules:
        if d.get("warning") is None and d.get("critical") is None:
            continue
        rule = Rule(name=name, series=rec["series"], comparator=rec["comparator"], warning=d.get("warning"),
                    critical=d.get("critical"), for_s=d.get("for_seconds") or 0.0)
        eps = replay(rule, values).alert_episodes(None)
        if len(eps):
            fig.add_trace(go.Scatter(x=eps["start"], y=eps["peak"], mode="markers", name=f"{name} episodes",
                                     marker={"color": color, "size": 6, "symbol": "triangle-up"}))
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.15})
    return fig


def series_unit(series: pd.DataFrame, key: str) -> str | None:
    """The unit of a stored series from the series table (None when unknown)."""
    u = series.loc[series["key"] == key, "unit"]
    return str(u.iloc[0]) if len(u) and pd.notna(u.iloc[0]) and str(u.iloc[0]) else None


def _cut_by(reasons: list[str], limits: dict[str, Any]) -> str:
    """Which constraint a level's reasons name, in a few words."""
    text = " ".join(reasons)
    if "per apply" in text:
        mc = limits.get("max_change")
        return f"max change {mc:.0%}" if mc is not None else "max change"
    if "stability period" in text:
        return "the stability period (no reversal of the last change)"
    if "minimum" in text or "maximum" in text:
        return "the rule's bounds"
    if "beyond warning" in text:
        return "the warning/critical order"
    return "a constraint"


def constraint_lines(rec: dict[str, Any], unit: str | None = None) -> list[str]:
    """One line per level a constraint cut: ``"warning cut by max change 20%: unconstrained 412 ms,
    recommended 330 ms"`` (the rule's limits are in ``rec["limits"]``, the reasons in
    ``rec["constraints"]``)."""
    u = f" {unit}" if unit else ""
    notes = [str(n) for n in rec.get("constraints") or []]
    unc = rec.get("unconstrained") or {}
    limits = rec.get("limits") or {}
    out = []
    for lvl in ("warning", "critical"):
        before, after = unc.get(lvl), rec.get(lvl)
        if before is None or (after is not None and abs(after - before) <= 1e-9 * max(1.0, abs(before))):
            continue
        why = [n for n in notes if n.startswith(lvl)]
        out.append(f"{lvl} cut by {_cut_by(why, limits)}: unconstrained {before:.4g}{u}, "
                   + (f"recommended {after:.4g}{u}" if after is not None else "no level set"))
    return out


def _num(x: Any, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _iv(x: Any, lo: Any, hi: Any, fmt: str) -> str:
    """``"2.10 [0.64, 6.03]"``; the interval left out when it cannot be given (NaN)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    ok = lo is not None and hi is not None and not (math.isnan(float(lo)) or math.isnan(float(hi)))
    return format(x, fmt) + (f" [{format(lo, fmt)}, {format(hi, fmt)}]" if ok else "")


@st.cache_data(show_spinner=False, max_entries=32)
def _outcomes(path: str, key: str, rec_json: str) -> pd.DataFrame:
    rec = json.loads(rec_json)
    pts = state.points(key)
    values = pts.set_index("ts")["value"].rename(key)
    return candidate_outcomes(values, rec, state.incidents(key))


def outcomes_frame(rec: dict[str, Any]) -> pd.DataFrame:
    """The rule in force, the recommendation and each strategy's candidate on the held-out period, each
    figure with its 90 % interval (:func:`core.alerting.recommend.outcomes.candidate_outcomes`), for
    display; cached per series and recommendation."""
    df = _outcomes(state.db_path(), rec["series"], json.dumps(rec, sort_keys=True, default=str))
    chosen = next((c["strategy"] for c in rec.get("candidates") or [] if c.get("chosen")), None)
    rows = []
    for r in df.to_dict("records"):
        has_inc = r["incidents"] > 0
        rows.append({
            "rule": r["rule"] + (" (chosen)" if r["rule"] == chosen else ""),
            "warning": _num(r["warning"], ".4g"), "critical": _num(r["critical"], ".4g"),
            "episodes/week": _iv(r["episodes_per_week"], r["episodes_low"], r["episodes_high"], ".2f"),
            "time in alert %": _iv(r["time_in_alert_pct"], r["time_in_alert_low"], r["time_in_alert_high"], ".3f"),
            "caught": _iv(r["caught"], r["caught_low"], r["caught_high"], ".3g") + f" of {r['incidents']}"
            if has_inc else "-",
            "missed": _iv(r["missed"], r["missed_low"], r["missed_high"], ".3g") if has_inc else "-",
            "median detection delay (s)": _iv(r["delay_s"], r["delay_low"], r["delay_high"], ".0f") if has_inc else "-",
            "reset time (s)": _iv(r["reset_s"], r["reset_low"], r["reset_high"], ".0f") if has_inc else "-",
            "note": r["note"] or "",
        })
    return pd.DataFrame(rows)


def candidates_frame(rec: dict[str, Any]) -> pd.DataFrame:
    """The rule in force and the recommendation side by side: held-out episodes/week with its 90 %
    Poisson interval, time in alert, and over the whole history episodes, incidents caught / missed,
    median detection delay and reset time."""
    cmp_ = rec.get("comparison") or {}
    rows = []
    for side in ("current", "recommended"):
        c = cmp_.get(side)
        if not c:
            continue
        iv = c.get("held_episodes_per_week_interval") or [None, None]
        rows.append({"rule": side,
                     "episodes/week (held-out)": _num(c.get("held_episodes_per_week"), ".2f")
                     + (f" [{iv[0]:.2f}, {iv[1]:.2f}]" if iv[0] is not None else ""),
                     "time in alert % (held-out)": _num(c.get("held_time_in_alert_pct"), ".3f"),
                     "episodes (all history)": c.get("total_episodes"),
                     "incidents caught": c.get("total_caught"), "incidents missed": c.get("total_missed"),
                     "median detection delay (s)": _num(c.get("total_detection_delay_s"), ".0f"),
                     "reset time (s)": _num(c.get("total_reset_time_s"), ".0f")})
    return pd.DataFrame(rows)


def show_flash() -> None:
    """Success line for the write made in the previous run, if any."""
    widgets.show_flash(FLASH)


def _close() -> None:
    st.session_state.pop(DIALOG, None)


@st.dialog("Apply selected recommendations", icon=":material/done_all:", width="large", on_dismiss=_close)
def apply_dialog(res: list[dict[str, Any]], selected: list[str]) -> None:
    """Preview (diff, replayed impact, approval) and confirm: one new policy version for all selected."""
    snap = current_policy()
    store = state.store()
    new_rules, notes = apply_changes(snap["rules"], res, selected, store.series_keys(), rule_name)
    for n in notes:
        st.caption(n)
    try:
        pv = pol.preview(store, POLICY, new_rules)
    except StudioError as exc:
        st.error(f"Cannot preview this change: {exc}")
        return
    if pv.diff.is_empty:
        st.info("Nothing to change: the selected recommendations are already in force or were left out.")
        return
    show_preview(pv, "; the held-out check is in the table on the page")
    chosen = set(selected)
    v = confirm_apply(new_rules, snap["base"], key="rec", action="apply recommendations",
                      predictions={r["series"]: r for r in res if r.get("series") in chosen})
    if v is not None:
        _close()
        st.session_state[FLASH] = f"Created v{v.number}: {outcome(v)}"
        st.rerun()

