"""Trends & anomalies: one series with its causal seasonal band, anomalies, incidents, detected
outages, change points and forecast, and a side panel of trend, seasonality, baseline and quality.
Every number comes from core (core.analysis.pipeline.analyse_range); ui/trends.py caches it and draws it."""

import pandas as pd
import streamlit as st

from core.analysis import explore as ex
from core.analysis import wording as wd
from core.errors import StudioError
from ui import state
from ui import trends as tr

st.title("Trends & anomalies")

table = state.series_table()
table = table[table["points"] > 0] if len(table) else table
if not len(table):
    st.info("No data yet: the database has no series with points. Upload metric exports on the Data page.",
            icon=":material/inbox:")
    st.page_link("pages/data.py", label="Go to Data", icon=":material/upload_file:")
    st.stop()

# ---------------------------------------------------------------------------- controls
pick, flt = st.columns([3, 2])
text = flt.text_input("Filter by label text", key="trends.filter", placeholder='e.g. service="checkout"')
keys = ex.filter_keys(list(table["key"]), text)
if not keys:
    st.warning(f"No series matches {text!r}; clear the filter to see all {len(table)} series.")
    st.stop()
key = pick.selectbox(f"Series ({len(keys)} of {len(table)})", keys, key="trends.series")
row = table[table["key"] == key].iloc[0]
kind = str(row["kind"] or "gauge")

c = st.columns([2, 1, 1, 1, 2])
choice = c[0].radio("Time range", list(ex.RANGES), index=list(ex.RANGES).index(ex.DEFAULT_RANGE),
                    horizontal=True, key="trends.range")
dates = None
if choice == "date range":
    first_d, last_d = pd.Timestamp(row["first_ts"]).date(), pd.Timestamp(row["last_ts"]).date()
    dates = c[0].date_input("Dates (UTC)", (first_d, last_d), min_value=first_d, max_value=last_d,
                            key="trends.dates")
resolution = c[1].selectbox("Resolution", list(ex.RESOLUTIONS), key="trends.resolution",
                            help="Raw points, or one value per bucket computed from the raw points in it.")
hows = ex.aggregations(kind)
how = c[2].selectbox("Aggregate", hows, key=f"trends.how.{kind}", disabled=resolution == "raw",
                     help="A histogram-quantile series (e.g. a p95) is never averaged: median or max only.")
horizon = c[3].selectbox("Forecast", [1, 2, 3, 7], index=1, key="trends.horizon",
                         format_func=lambda d: f"{d} day{'s' if d > 1 else ''}")
exclude = c[4].toggle("Exclude incidents from baseline", value=True, key="trends.exclude",
                      help="Leave points inside labelled incident windows out of the baseline, the band's "
                           "history and the detectors' training data.")
outages = c[4].toggle("Exclude detected outages", value=True, key="trends.outages",
                      help="Leave detected outages (runs of 3+ anomalies a few points apart, and stuck "
                           "values of a continuous metric) out of the baseline and the band's history.")

d = st.columns([2, 2, 3])
detector = d[0].selectbox("Detector", tr.DETECTOR_CHOICES, key="trends.detector",
                          format_func=tr.detector_label,
                          help="The anomaly detector: the default ensemble, its variant for bursty series, "
                               "or a single member.")
sensitivity = d[1].selectbox("Sensitivity", tr.SENSITIVITIES, key="trends.sensitivity",
                             format_func=tr.sensitivity_label,
                             help="A target number of false alarms per week (the score threshold is set "
                                  "from the series' sampling step), or the default score threshold. "
                                  "Repeats within 6 hours of an alarm belong to it.")

start, end = ex.resolve_range(choice, row["first_ts"], row["last_ts"], dates)
try:
    res = tr.cached_analysis(key, start, end, exclude, outages, horizon, detector, sensitivity)
except StudioError as exc:
    st.warning(f"Insufficient data: {exc}")
    st.stop()
disp = tr.cached_display(key, start, end, resolution, how)

# ---------------------------------------------------------------------------- chart and panel
st.caption(f"{key} ({kind}{', ' + res.unit if res.unit else ''}): {res.n_points:,} points from "
           f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
           + (", counter shown as a per-second rate" if kind == "counter" else ""))
left, right = st.columns([3, 1])
with left:
    st.plotly_chart(tr.trends_figure(disp, res), width="stretch", key="trends.chart")
    st.caption(wd.band_text(res) + " Red circles: anomalies, one per alarm (hover for score, detectors, expected range "
               "and confidence). Red shading: incidents; amber: detected outages. Purple dashed lines and "
               "diamonds: level shifts (at the new level). Orange: forecast with 80%/95% intervals.")
    st.markdown(f"**Anomalies.** {wd.anomaly_text(res)}")
    alarms = wd.alarm_frame(res)
    if len(alarms):
        st.dataframe(alarms, hide_index=True, key="trends.alarm_table",
                     column_config={"start": st.column_config.DatetimeColumn("start (UTC)"),
                                    "last flagged point": st.column_config.DatetimeColumn("last flagged (UTC)")})
    st.markdown(f"**Outages.** {wd.outage_text(res, outages)}")
    if len(res.outages):
        st.dataframe(tr.outage_table(res), hide_index=True, key="trends.outage_table",
                     column_config={"start": st.column_config.DatetimeColumn("start (UTC)"),
                                    "end": st.column_config.DatetimeColumn("end (UTC)")})
    st.markdown(f"**Forecast.** {wd.forecast_text(res.forecast, res.backtest)}")
    bt_table = wd.backtest_frame(res.backtest)
    if len(bt_table):
        st.dataframe(bt_table, hide_index=True, key="trends.backtest_table")
        st.caption("Rolling-origin backtest: the model is fitted before the last days, then forecasts from "
                   "every hour of them as the data arrive; a share near 80% / 95% means the bands say what "
                   "they claim. CI: 95% Wilson interval counting one observation per day of origins.")
with right:
    t = res.trend
    st.markdown("**Trend**")
    label, value, note = wd.trend_headline(t, res.unit)
    st.metric(label, value, help="Theil-Sen slope of hourly medians; p-value of the Mann-Kendall test "
                                 "on the deseasonalised hourly medians, corrected for autocorrelation. The slope is the headline only when the "
                                 f"test is significant (p < {t.alpha:g}).")
    st.caption(note)
    st.caption(wd.trend_method_text(t))
    st.caption(wd.shifts_text(res.change_points, res.unit))
    st.markdown("**Seasonality**")
    s = res.seasonality
    if s.sufficient:
        a, b = st.columns(2)
        a.metric("Daily", "-" if pd.isna(s.daily_strength) else f"{s.daily_strength:.2f}")
        b.metric("Weekly", "-" if pd.isna(s.weekly_strength) else f"{s.weekly_strength:.2f}")
    st.markdown(wd.seasonality_text(s))
    st.markdown("**Baseline**")
    st.markdown(wd.baseline_text(res))
    st.markdown("**Quality**")
    st.markdown(wd.quality_text(res.quality))

st.subheader("Median by weekday and hour (UTC)")
prof = res.seasonality.profile
if prof is None or not prof.notna().to_numpy().any():
    st.info("Insufficient data for the weekday x hour profile: each cell needs at least 3 points.")
else:
    st.plotly_chart(tr.heatmap_figure(prof, res.unit), width="stretch", key="trends.heatmap")
    st.caption("Median of the raw points in each hour of the week over the selected range; blank cells "
               "have fewer than 3 points.")
