"""Trends & anomalies: cached calls into core and the page's Plotly figures.

Every number comes from core: :func:`core.analysis.pipeline.analyse_range` (the range with earlier points as
causal context), :func:`core.analysis.pipeline.forecast_from` and :func:`core.analysis.explore.display_values`. The
``cached_*`` wrappers key them by (database path, series, range, options) with ``st.cache_data``,
so ``ui.state.after_write()`` (which clears that cache) invalidates them. Figure builders only lay
out what core computed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.analysis.detect import DEFAULT_DETECTOR, DEFAULT_THRESHOLD, AlarmRule, user_detector_names
from core.analysis.explore import display_values
from core.analysis.pipeline import Analysis, analyse_range, forecast_from
from core.analysis.wording import shifts_frame
from core.data.frame import series_values

#: Detectors offered on the page (first = default) and sensitivities (None = the default score threshold).
DETECTOR_CHOICES = (DEFAULT_DETECTOR, *[n for n in user_detector_names() if n != DEFAULT_DETECTOR])
SENSITIVITIES = (None, 0.5, 1.0, 2.0, 5.0, 10.0)
MAX_MARKERS = 500         # anomaly markers drawn (the highest scores)
MAX_SHADES = 200          # incident and outage windows shaded
DOW = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# ---------------------------------------------------------------------------- control labels
def detector_label(name: str) -> str:
    """Selectbox label of a detector name."""
    return {DEFAULT_DETECTOR: f"{DEFAULT_DETECTOR} (default)",
            "ensemble_burst": "ensemble_burst (for bursty series)"}.get(name, name)


def sensitivity_label(value: float | None) -> str:
    """Selectbox label of a sensitivity (false alarms per week, or the default threshold)."""
    return f"default (score >= {DEFAULT_THRESHOLD:g})" if value is None else f"{value:g} false alarms / week"


# ---------------------------------------------------------------------------- cached calls
def _meta(key: str) -> tuple[str, str]:
    from ui import state

    t = state.series_table()
    row = t[t["key"] == key]
    if not len(row):
        return "gauge", ""
    unit = row["unit"].iloc[0]
    return str(row["kind"].iloc[0] or "gauge"), "" if unit is None or pd.isna(unit) else str(unit)


def _values(key: str) -> pd.Series:
    from ui import state

    return series_values(state.points(key), key)


@st.cache_data(show_spinner="Analysing the series...", max_entries=32)
def _cached_analysis(path: str, key: str, start: str, end: str, exclude_incidents: bool,
                     exclude_outages: bool, detector: str = DEFAULT_DETECTOR,
                     false_alarms_per_week: float | None = None) -> Analysis:
    from ui import state

    kind, unit = _meta(key)
    rule = AlarmRule(false_alarms_per_week=false_alarms_per_week)
    return analyse_range(_values(key), start=start, end=end, kind=kind, unit=unit,
                         incidents=state.incidents(key), series=key, exclude_incidents=exclude_incidents,
                         exclude_outages=exclude_outages, horizon_days=None, detector=detector, threshold=rule)


@st.cache_data(show_spinner="Forecasting...", max_entries=32)
def _cached_forecast(path: str, key: str, end: str, horizon: float) -> tuple:
    kind, _ = _meta(key)
    return forecast_from(_values(key), end=end, kind=kind, horizon_days=horizon)


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_display(path: str, key: str, start: str, end: str, resolution: str, how: str) -> pd.DataFrame:
    from ui.charts import chart_points

    kind, _ = _meta(key)
    return chart_points(display_values(_values(key), kind, start, end, resolution, how))


def cached_analysis(key: str, start: pd.Timestamp, end: pd.Timestamp, exclude_incidents: bool = True,
                    exclude_outages: bool = True, horizon: float = 2.0, detector: str = DEFAULT_DETECTOR,
                    false_alarms_per_week: float | None = None) -> Analysis:
    """:func:`core.analysis.pipeline.analyse_range` of a stored series, cached per (db path, series, range,
    exclusions, detector, sensitivity); the forecast is cached apart (per db path, series, end,
    horizon) so changing the range start, an exclusion or the detector does not refit it.
    ``false_alarms_per_week`` None is the default alarm rule (score threshold)."""
    from ui import state

    path = state.db_path()
    res = _cached_analysis(path, key, start.isoformat(), end.isoformat(), bool(exclude_incidents),
                           bool(exclude_outages), str(detector),
                           None if false_alarms_per_week is None else float(false_alarms_per_week))
    fc, bt = _cached_forecast(path, key, end.isoformat(), float(horizon))
    return replace(res, forecast=fc, backtest=bt)


def cached_display(key: str, start: pd.Timestamp, end: pd.Timestamp, resolution: str, how: str) -> pd.DataFrame:
    """Chart-ready ``ts, value`` rows (gaps broken, min/max downsampled), cached like the analysis."""
    from ui import state

    return _cached_display(state.db_path(), key, start.isoformat(), end.isoformat(), resolution, how)


# ---------------------------------------------------------------------------- figures
def _ribbon(fig: go.Figure, ts: pd.Series, lo: pd.Series, hi: pd.Series, color: str, name: str,
            shape: str = "linear") -> None:
    """A filled band drawn as one closed polygon per run of finite bounds, so a withheld stretch (NaN)
    stays empty instead of being bridged by a fill across it. ``shape="hv"`` draws steps."""
    t = pd.DatetimeIndex(ts)
    lo_v, hi_v = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    ok = np.isfinite(lo_v) & np.isfinite(hi_v)
    if not ok.any():
        return
    edges = np.flatnonzero(np.diff(np.r_[0, ok.astype(np.int8), 0]))
    xs: list = []
    ys: list = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):   # loop over runs, not points
        x, l_, h = t[a:b], lo_v[a:b], hi_v[a:b]
        if shape == "hv" and b - a > 1:                       # steps: repeat each value until the next ts
            x = x.repeat(2)[1:]
            l_, h = l_.repeat(2)[:-1], h.repeat(2)[:-1]
        xs += [*x, *x[::-1], None]
        ys += [*h, *l_[::-1], None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"width": 0}, fill="toself", fillcolor=color,
                             hoverinfo="skip", name=name))


def trends_figure(display: pd.DataFrame, a: Analysis, *, height: int = 460) -> go.Figure:
    """The series with its causal band, anomaly markers, incidents, outages, level shifts and forecast."""
    fig = go.Figure()
    b = a.band
    has_band = len(b) and np.isfinite(b["expected"].to_numpy(dtype=float)).any()
    if has_band:
        _ribbon(fig, b["ts"], b["lower"], b["upper"], "rgba(107,114,128,0.18)", "seasonal band (95%, causal)",
                "hv")
    fig.add_trace(go.Scatter(x=display["ts"], y=display["value"], mode="lines", name="value",
                             line={"width": 1.2, "color": "#1f4e79"}, connectgaps=False))
    if has_band:                                     # drawn over the series, not under it
        fig.add_trace(go.Scatter(x=b["ts"], y=b["expected"], mode="lines", name="expected",
                                 line={"width": 1.2, "dash": "dot", "color": "#111827", "shape": "hv"}))
    fc = a.forecast
    if fc.sufficient and len(fc.frame):
        f = fc.frame
        _ribbon(fig, f["ts"], f["lo95"], f["hi95"], "rgba(234,88,12,0.15)", "forecast 95%")
        _ribbon(fig, f["ts"], f["lo80"], f["hi80"], "rgba(234,88,12,0.30)", "forecast 80%")
        fig.add_trace(go.Scatter(x=f["ts"], y=f["mean"], mode="lines", name="forecast",
                                 line={"width": 1.2, "dash": "dash", "color": "#ea580c"}))
    an = a.anomalies
    if len(an):
        an = an.nlargest(MAX_MARKERS, "score").sort_values("ts")
        custom = np.column_stack([an["score"], an["detectors"], an["expected"], an["lower"], an["upper"],
                                  an["confidence"]])
        fig.add_trace(go.Scatter(
            x=an["ts"], y=an["value"], mode="markers", name="anomaly", customdata=custom,
            marker={"color": "#dc2626", "size": 8, "symbol": "circle-open", "line": {"width": 2}},
            hovertemplate=("%{x}<br>value %{y:.4g}<br>score %{customdata[0]:.6f}<br>detectors: %{customdata[1]}"
                           "<br>expected %{customdata[2]:.4g} (range %{customdata[3]:.4g} to %{customdata[4]:.4g})"
                           "<br>confidence %{customdata[5]:.4%}<extra></extra>")))
    for row in a.incidents.head(MAX_SHADES).itertuples():   # the border keeps a short one visible
        fig.add_vrect(x0=row.start, x1=row.end, fillcolor="#dc2626", opacity=0.15, line_width=1,
                      line_color="#dc2626")
    for row in a.outages.head(MAX_SHADES).itertuples():
        fig.add_vrect(x0=row.start, x1=row.end, fillcolor="#f59e0b", opacity=0.18, line_width=0)
    cps = shifts_frame(a.change_points)
    if len(cps):
        for ts in cps["ts"]:
            fig.add_vline(x=ts, line_dash="dash", line_color="#7c3aed", line_width=1.2)
        fig.add_trace(go.Scatter(
            x=cps["ts"], y=cps["level_after"], mode="markers", name="level shift",
            marker={"symbol": "diamond", "size": 9, "color": "#7c3aed"},
            customdata=np.column_stack([cps["change"], cps["level_before"]]),
            hovertemplate=("level shift at %{x}<br>change %{customdata[0]:+.4g}<br>level %{customdata[1]:.4g} "
                           "to %{y:.4g}<extra></extra>")))
    right = fc.frame["ts"].iloc[-1] if fc.sufficient and len(fc.frame) else a.end
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_title=a.unit or None,
                      hovermode="closest", legend={"orientation": "h", "y": -0.12},
                      xaxis={"automargin": True, "range": [a.start, right]}, yaxis={"automargin": True})
    return fig


def heatmap_figure(profile: pd.DataFrame | None, unit: str = "", *, height: int = 260) -> go.Figure:
    """Weekday x hour heatmap of the median per hour of the week (UTC); empty cells stay blank."""
    z = np.full((7, 24), np.nan) if profile is None else profile.reindex(index=range(7), columns=range(24)).to_numpy()
    fig = go.Figure(go.Heatmap(z=z, x=list(range(24)), y=list(DOW), colorscale="Blues", hoverongaps=False,
                               colorbar={"title": unit or None},
                               hovertemplate="%{y} %{x}:00 UTC<br>median %{z:.4g}<extra></extra>"))
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      xaxis={"title": "hour (UTC)", "dtick": 3, "automargin": True},
                      yaxis={"autorange": "reversed", "automargin": True})
    return fig


def outage_table(a: Analysis) -> pd.DataFrame:
    """The outage rows as displayed: start, end, minutes, points, cause (layout only)."""
    o = a.outages
    mins = (pd.to_datetime(o["end"], utc=True) - pd.to_datetime(o["start"], utc=True)).dt.total_seconds() / 60
    return pd.DataFrame({"start": o["start"], "end": o["end"], "minutes": mins.round(1), "points": o["points"],
                         "cause": o["cause"].map({"detector": "anomaly episode", "flat": "stuck value"})})


__all__ = ["cached_analysis", "cached_display", "trends_figure", "heatmap_figure", "outage_table"]
