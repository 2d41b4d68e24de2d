"""Trends & anomalies: the analysis behind the page, its cached calls and its figures.

:func:`analyse` is a pure function of one series' points (and its incidents): quality, baseline,
trend, change points, seasonality, the causal seasonal band, anomalies and a forecast over a time
range, each stage either a result or the sentence saying why the data is insufficient. The
``cached_*`` wrappers key it by (database path, series, range, options) with ``st.cache_data``, so
``ui.state.after_write()`` (which clears that cache) invalidates them. Figure builders only lay out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.errors import InsufficientDataError, StudioError
from core.frame import series_values

RANGES: dict[str, float | None] = {"last 1 day": 1, "last 7 days": 7, "last 30 days": 30, "all": None,
                                   "date range": None}
DEFAULT_RANGE = "last 7 days"
RESOLUTIONS: dict[str, str | None] = {"raw": None, "5m": "5min", "15m": "15min", "1h": "1h"}
TRAIN_DAYS = 7.0          # detector training window taken from just before the range, days
MIN_TRAIN_POINTS = 200    # fewer points before the range: train on the start of the range instead
MAX_MARKERS = 500         # anomaly markers drawn (the highest scores)
MAX_SHADES = 200          # incident windows shaded
DOW = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# ---------------------------------------------------------------------------- choices
def filter_keys(keys: Sequence[str], text: str) -> list[str]:
    """Keys containing every whitespace-separated word of ``text`` (case-insensitive), in order."""
    words = [w.lower() for w in str(text or "").split()]
    return [k for k in keys if all(w in k.lower() for w in words)]


def aggregations(kind: str) -> tuple[str, ...]:
    """Bucket aggregations offered for a series kind. A histogram-quantile series (a p95 exported per
    scrape) is never averaged: only the median or the max of its raw points per bucket."""
    return ("median", "max") if kind == "histogram_quantile" else ("median", "mean", "max", "min", "p95")


def resolve_range(choice: str, first: Any, last: Any, dates: Sequence[Any] | None = None
                  ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(start, end)`` (UTC, inclusive) of a range choice for a series spanning ``first..last``.

    "last N days" counts back from the series' last point (exports are often older than today);
    "date range" takes whole UTC days ``dates[0]`` to ``dates[-1]``; "all" is the whole span.
    """
    first, last = _utc(first), _utc(last)
    if choice == "date range" and dates:
        a, b = _utc(dates[0]).normalize(), _utc(dates[-1]).normalize()
        return a, b + pd.Timedelta("1D") - pd.Timedelta("1ns")
    days = RANGES.get(choice)
    if days is None:
        return first, last
    return max(first, last - pd.Timedelta(days=days)), last


def _utc(x: Any) -> pd.Timestamp:
    ts = pd.Timestamp(x)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


# ---------------------------------------------------------------------------- analysis
@dataclass
class Stage:
    """One analysis stage: ``value`` (the core result) or ``note`` (why it could not be computed)."""

    value: Any = None
    note: str = ""


def _stage(fn: Callable[[], Any]) -> Stage:
    try:
        return Stage(fn())
    except StudioError as exc:   # InsufficientDataError, ValidationError: say so, never a number
        return Stage(None, str(exc))


@dataclass
class TrendsResult:
    """Everything the page shows about one series over ``[start, end]`` (UTC)."""

    key: str
    kind: str
    unit: str
    start: pd.Timestamp
    end: pd.Timestamp
    n_points: int
    quality: Stage
    baseline: Stage
    trend: Stage
    changes: Stage
    seasonality: Stage
    band: pd.DataFrame
    anomalies: Stage
    anomaly_note: str
    forecast: Stage
    backtest: Stage
    incidents: pd.DataFrame = field(default_factory=pd.DataFrame)


def band_steps(values: pd.Series, *, lookback: int = 4, coverage: float = 0.95) -> pd.DataFrame:
    """Causal seasonal band of a series, one row per hour (the band only changes at hour boundaries).

    Same hour of the week in the ``lookback`` previous weeks (:func:`core.seasonality.seasonal_band`);
    where fewer than 2 earlier weeks hold that hour, the same hour of the day in the previous
    ``lookback`` days. Columns ``ts`` (hour start), ``expected``, ``lower``, ``upper``, ``period``
    ("week", "day" or "" where neither has enough history: NaN band). Causal.
    """
    from core.seasonality import seasonal_band

    cols = ["ts", "expected", "lower", "upper", "period"]
    if not len(values):
        return pd.DataFrame({c: [] for c in cols})
    wk = seasonal_band(values, period="week", lookback=lookback, coverage=coverage)
    dy = seasonal_band(values, period="day", lookback=lookback, coverage=coverage)
    use_wk = np.isfinite(wk["expected"].to_numpy())
    out = pd.DataFrame({"ts": wk["ts"].dt.floor("h")})
    for c in ("expected", "lower", "upper"):
        out[c] = np.where(use_wk, wk[c].to_numpy(), dy[c].to_numpy())
    out["period"] = np.where(use_wk, "week", np.where(np.isfinite(dy["expected"].to_numpy()), "day", ""))
    out = out.drop_duplicates("ts", keep="first").set_index("ts")
    # hours without points get a NaN row, so the band breaks at a gap instead of bridging it
    grid = pd.date_range(out.index[0], out.index[-1], freq="h", name="ts")
    out = out.reindex(grid)
    out["period"] = out["period"].fillna("")
    return out.reset_index()


def _anomalies(s: pd.Series, start: pd.Timestamp, excl: np.ndarray) -> tuple[Stage, str]:
    """Ensemble anomalies of ``s`` inside the range (``s`` holds the range and earlier points).

    The detectors are fitted on up to :data:`TRAIN_DAYS` before the range (incident points left out
    when ``excl`` marks them), so every scored point is judged by a model that never saw it. Without
    enough history the first part of the range trains and is not scored (the note says how much).
    """
    from core.detect import make_detector

    hist = s[s.index < start]
    hist = hist[hist.index >= start - pd.Timedelta(days=TRAIN_DAYS)]
    rng = s[s.index >= start]
    if np.isfinite(hist.to_numpy()).sum() >= MIN_TRAIN_POINTS:
        train, scored = hist, rng
        note = f"detectors trained on the {_span(train)} before the range; every point in the range is scored"
    else:
        t0 = rng.index[0]
        cut = t0 + min(pd.Timedelta(days=TRAIN_DAYS), (rng.index[-1] - t0) / 4)
        train, scored = rng[rng.index < cut], rng[rng.index >= cut]
        note = (f"no history before the range: the first {_span(train)} of it trained the detectors and "
                "is not scored")
    train = train.where(~pd.Series(excl, index=s.index).reindex(train.index, fill_value=False))
    if not len(scored):
        return Stage(None, "nothing left to score after the training window"), note

    def run() -> pd.DataFrame:
        det = make_detector("ensemble").fit(train)
        return det.explain(scored)

    return _stage(run), note


def _span(x: pd.Series) -> str:
    if len(x) < 2:
        return f"{len(x)} points"
    d = (x.index[-1] - x.index[0]).total_seconds()
    return f"{d / 86400:.1f} days" if d >= 86400 else f"{d / 3600:.1f} hours"


def _prepare(points: pd.DataFrame, key: str, kind: str, start: Any, end: Any
             ) -> tuple[pd.Series, pd.Series, pd.Timestamp, pd.Timestamp, str]:
    """``(raw, values, start, end, kind for analysis)``: the stored points up to ``end`` and the values
    analysed (counters as per-second rates, +/-inf as missing)."""
    from core.baseline import counter_to_rate

    raw = series_values(points, key)
    if not len(raw):
        raise InsufficientDataError(f"series {key!r} has no points")
    start = raw.index[0] if start is None else _utc(start)
    end = raw.index[-1] if end is None else _utc(end)
    raw = raw[raw.index <= end]
    if not (raw.index >= start).any():
        raise InsufficientDataError(f"series {key!r} has no points between {start} and {end}")
    s = counter_to_rate(raw) if kind == "counter" else raw
    s = s.where(np.isfinite(s.to_numpy()))   # +/-inf is a broken value: missing for the analysis
    return raw, s, start, end, "rate" if kind == "counter" else kind


def forecast_stages(points: pd.DataFrame, key: str, kind: str = "gauge", *, end: Any = None,
                    horizon_days: float = 2.0) -> tuple[Stage, Stage]:
    """``(forecast, backtest)`` of the hourly medians of every point up to ``end``.

    The forecast starts at ``end``; the backtest holds out the last ``min(3, 1.5 x horizon)`` days of
    that history, fits on the rest and reports the measured interval coverage (time-ordered hold-out).
    """
    from core.forecast import backtest, forecast
    from core.seasonality import hourly

    _, s, _, _, akind = _prepare(points, key, kind, None, end)
    h = hourly(s, akind)
    return (_stage(lambda: forecast(hourly_values=h, horizon_days=horizon_days, kind=akind)),
            _stage(lambda: backtest(hourly_values=h, holdout_days=min(3.0, horizon_days * 1.5), kind=akind)))


def analyse(points: pd.DataFrame, key: str, kind: str = "gauge", unit: str = "", *, start: Any = None,
            end: Any = None, incidents: pd.DataFrame | None = None, exclude_incidents: bool = True,
            horizon_days: float | None = 2.0) -> TrendsResult:
    """Every stage of the page for series ``key`` of a points frame over ``[start, end]``.

    Counters are turned into per-second rates first. Points before ``start`` are used only as causal
    context (band pools, detector training); points after ``end`` are never used. Quality, baseline,
    trend, change points and seasonality describe the range (not causal); ``exclude_incidents``
    leaves incident points out of the baseline, the band's pools and the detectors' training.
    The forecast (:func:`forecast_stages`) starts at ``end``; ``horizon_days=None`` skips it.
    """
    from core.baseline import compute_baseline, exclusion_mask
    from core.quality import assess_series
    from core.seasonality import analyse_seasonality, hourly
    from core.trend import change_points, trend_test

    raw, s, start, end, akind = _prepare(points, key, kind, start, end)
    inc = incidents if incidents is not None else pd.DataFrame(columns=["series", "start", "end"])
    excl = exclusion_mask(s.index, inc, series=key) if exclude_incidents else np.zeros(len(s), bool)
    r = s[np.asarray(s.index >= start)]
    h = hourly(r, akind)
    seas = _stage(lambda: analyse_seasonality(r, akind, hourly_values=h))
    dec = getattr(seas.value, "decomposition", None)
    seasonal = dec.seasonal_total() if dec is not None and dec.sufficient else None
    band = band_steps(s.where(~excl))
    band = band[band["ts"] >= start.floor("h")].reset_index(drop=True)
    anomalies, note = _anomalies(s, start, excl)
    if horizon_days is None:
        fc = bt = Stage(None, "not computed")
    else:
        fc, bt = forecast_stages(points, key, kind, end=end, horizon_days=horizon_days)
    return TrendsResult(
        key, kind, unit, start, end, int(np.isfinite(r.to_numpy()).sum()),
        quality=_stage(lambda: assess_series(raw[raw.index >= start], kind)),
        baseline=_stage(lambda: compute_baseline(r, akind, incidents=inc, exclude=exclude_incidents,
                                                 series=key)),
        trend=_stage(lambda: trend_test(hourly_values=h, seasonal=seasonal, unit=unit, kind=akind)),
        changes=_stage(lambda: change_points(hourly_values=h, kind=akind)),
        seasonality=seas, band=band, anomalies=anomalies, anomaly_note=note, forecast=fc, backtest=bt,
        incidents=_overlapping(inc, start, end))


def _overlapping(inc: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Incident windows that overlap ``[start, end]`` (the ones the chart shades)."""
    if not len(inc):
        return inc.reset_index(drop=True)
    a, b = pd.to_datetime(inc["start"], utc=True), pd.to_datetime(inc["end"], utc=True)
    return inc[(b >= start) & (a <= end)].reset_index(drop=True)


def display_points(points: pd.DataFrame, key: str, kind: str, start: Any, end: Any, resolution: str = "raw",
                   how: str = "median") -> pd.DataFrame:
    """``ts, value`` rows of the range at a resolution: raw points, or one value per bucket from the raw
    points in it (:func:`core.baseline.aggregate`; empty buckets stay NaN). Counters become rates."""
    from core.baseline import aggregate, counter_to_rate

    s = series_values(points, key)
    if kind == "counter":
        s = counter_to_rate(s)
    s = s[(s.index >= pd.Timestamp(start)) & (s.index <= pd.Timestamp(end))]
    freq = RESOLUTIONS.get(resolution)
    if freq is not None and len(s):
        s = aggregate(s, freq, how, "rate" if kind == "counter" else kind)
    return pd.DataFrame({"ts": s.index, "value": s.to_numpy()})


# ---------------------------------------------------------------------------- cached calls
def _meta(key: str) -> tuple[str, str]:
    from ui import state

    t = state.series_table()
    row = t[t["key"] == key]
    if not len(row):
        return "gauge", ""
    unit = row["unit"].iloc[0]
    return str(row["kind"].iloc[0] or "gauge"), "" if unit is None or pd.isna(unit) else str(unit)


@st.cache_data(show_spinner="Analysing the series...", max_entries=32)
def _cached_analysis(path: str, key: str, start: str, end: str, exclude: bool) -> TrendsResult:
    from ui import state

    kind, unit = _meta(key)
    return analyse(state.points(key), key, kind, unit, start=start, end=end, incidents=state.incidents(key),
                   exclude_incidents=exclude, horizon_days=None)


@st.cache_data(show_spinner="Forecasting...", max_entries=32)
def _cached_forecast(path: str, key: str, end: str, horizon: float) -> tuple[Stage, Stage]:
    from ui import state

    kind, _ = _meta(key)
    return forecast_stages(state.points(key), key, kind, end=end, horizon_days=horizon)


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_display(path: str, key: str, start: str, end: str, resolution: str, how: str) -> pd.DataFrame:
    from ui import state
    from ui.charts import chart_points

    kind, _ = _meta(key)
    return chart_points(display_points(state.points(key), key, kind, start, end, resolution, how))


def cached_analysis(key: str, start: pd.Timestamp, end: pd.Timestamp, exclude: bool, horizon: float) -> TrendsResult:
    """:func:`analyse` of a stored series, cached per (db path, series, range, options); the forecast is
    cached apart (per db path, series, end, horizon) so changing other options does not refit it."""
    from ui import state

    path = state.db_path()
    res = _cached_analysis(path, key, start.isoformat(), end.isoformat(), bool(exclude))
    fc, bt = _cached_forecast(path, key, end.isoformat(), float(horizon))
    return replace(res, forecast=fc, backtest=bt)


def cached_display(key: str, start: pd.Timestamp, end: pd.Timestamp, resolution: str, how: str) -> pd.DataFrame:
    """Chart-ready ``ts, value`` rows (gaps broken, min/max downsampled), cached like the analysis."""
    from ui import state

    return _cached_display(state.db_path(), key, start.isoformat(), end.isoformat(), resolution, how)


# ---------------------------------------------------------------------------- sentences
def _num(x: float, unit: str = "") -> str:
    return f"{x:.4g}{' ' + unit if unit else ''}"


def trend_text(st_: Stage) -> str:
    t = st_.value
    if t is None or not t.sufficient:
        return "Insufficient data for a trend: " + (st_.note or t.reason)
    return t.verdict


def seasonality_text(st_: Stage) -> str:
    s = st_.value
    if s is None or not s.sufficient:
        return "Insufficient data for seasonality: " + (st_.note or s.reason)
    return s.verdict + (f" ({s.reason})" if s.reason else "")


def baseline_text(st_: Stage, unit: str = "") -> str:
    b = st_.value
    if b is None or not b.sufficient:
        return "Insufficient data for a baseline: " + (st_.note or b.reason)
    m = b.median
    parts = [f"median {_num(m.value, unit)}"]
    parts[0] += (f" (95% CI {m.lower:.4g} to {m.upper:.4g})" if m.sufficient else f" (no honest CI: {m.reason})")
    p95 = b.percentiles.get(0.95)
    if p95 is not None:
        parts.append(f"p95 {_num(p95.value, unit)} from {b.n:,} raw points")
    if b.n_excluded:
        parts.append(f"{b.n_excluded:,} incident points excluded")
    return "; ".join(parts)


def quality_text(st_: Stage) -> str:
    q = st_.value
    if q is None:
        return "Quality not assessed: " + st_.note
    if q.score is None:
        return f"grade insufficient: only {q.points} points" + (f" ({'; '.join(q.issues)})" if q.issues else "")
    return f"grade {q.grade} (score {q.score:.0f}/100)" + (f": {'; '.join(q.issues[:3])}" if q.issues else "")


def forecast_text(fc: Stage, bt: Stage) -> str:
    f = fc.value
    if f is None or not f.sufficient:
        return "Insufficient data for a forecast: " + (fc.note or f.reason)
    out = f"{f.horizon_hours / 24:g}-day forecast of hourly medians ({f.method}) with 80%/95% intervals"
    b = bt.value
    return out + ("; " + b.summary() if b is not None else f"; backtest not possible: {bt.note}")


def anomaly_text(res: TrendsResult) -> str:
    a = res.anomalies
    if a.value is None:
        return "Insufficient data for anomaly detection: " + a.note
    return f"{len(a.value)} anomalies in the range ({res.anomaly_note})"


# ---------------------------------------------------------------------------- figures
def trends_figure(display: pd.DataFrame, res: TrendsResult, *, height: int = 460) -> go.Figure:
    """The series with its causal band, anomaly markers, incidents, change points and forecast."""
    fig = go.Figure()
    b = res.band
    if len(b) and np.isfinite(b["expected"].to_numpy()).any():
        fig.add_trace(go.Scatter(x=b["ts"], y=b["upper"], mode="lines", line={"width": 0, "shape": "hv"},
                                 hoverinfo="skip", showlegend=False, name="band upper"))
        fig.add_trace(go.Scatter(x=b["ts"], y=b["lower"], mode="lines", line={"width": 0, "shape": "hv"},
                                 fill="tonexty", fillcolor="rgba(107,114,128,0.18)", hoverinfo="skip",
                                 name="seasonal band (95%, causal)"))
    fig.add_trace(go.Scatter(x=display["ts"], y=display["value"], mode="lines", name="value",
                             line={"width": 1.2, "color": "#1f4e79"}, connectgaps=False))
    if len(b) and np.isfinite(b["expected"].to_numpy()).any():     # drawn over the series, not under it
        fig.add_trace(go.Scatter(x=b["ts"], y=b["expected"], mode="lines", name="expected",
                                 line={"width": 1.2, "dash": "dot", "color": "#111827", "shape": "hv"}))
    fc = res.forecast.value
    if fc is not None and fc.sufficient and len(fc.frame):
        f = fc.frame
        for lo, hi, color, name in (("lo95", "hi95", "rgba(234,88,12,0.15)", "forecast 95%"),
                                    ("lo80", "hi80", "rgba(234,88,12,0.30)", "forecast 80%")):
            fig.add_trace(go.Scatter(x=f["ts"], y=f[hi], mode="lines", line={"width": 0}, hoverinfo="skip",
                                     showlegend=False, name=name + " upper"))
            fig.add_trace(go.Scatter(x=f["ts"], y=f[lo], mode="lines", line={"width": 0}, fill="tonexty",
                                     fillcolor=color, name=name, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=f["ts"], y=f["mean"], mode="lines", name="forecast",
                                 line={"width": 1.2, "dash": "dash", "color": "#ea580c"}))
    a = res.anomalies.value
    if a is not None and len(a):
        a = a.nlargest(MAX_MARKERS, "score").sort_values("ts")
        custom = np.column_stack([a["score"], a["detectors"], a["expected"], a["lower"], a["upper"],
                                  a["confidence"]])
        fig.add_trace(go.Scatter(
            x=a["ts"], y=a["value"], mode="markers", name="anomaly", customdata=custom,
            marker={"color": "#dc2626", "size": 8, "symbol": "circle-open", "line": {"width": 2}},
            hovertemplate=("%{x}<br>value %{y:.4g}<br>score %{customdata[0]:.6f}<br>detectors: %{customdata[1]}"
                           "<br>expected %{customdata[2]:.4g} (range %{customdata[3]:.4g} to %{customdata[4]:.4g})"
                           "<br>confidence %{customdata[5]:.4%}<extra></extra>")))
    inc = res.incidents
    for row in inc.head(MAX_SHADES).itertuples():   # the border keeps a short incident visible on a long range
        fig.add_vrect(x0=row.start, x1=row.end, fillcolor="#dc2626", opacity=0.15, line_width=1,
                      line_color="#dc2626")
    cps = shifts(res)
    if len(cps):
        for ts in cps["ts"]:
            fig.add_vline(x=ts, line_dash="dash", line_color="#7c3aed", line_width=1.2)
        fig.add_trace(go.Scatter(
            x=cps["ts"], y=cps["level_after"], mode="markers", name="level shift",
            marker={"symbol": "diamond", "size": 9, "color": "#7c3aed"},
            customdata=np.column_stack([cps["change"], cps["level_before"]]),
            hovertemplate=("level shift at %{x}<br>change %{customdata[0]:+.4g}<br>level %{customdata[1]:.4g} "
                           "to %{y:.4g}<extra></extra>")))
    right = fc.frame["ts"].iloc[-1] if fc is not None and fc.sufficient and len(fc.frame) else res.end
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_title=res.unit or None,
                      hovermode="closest", legend={"orientation": "h", "y": -0.12},
                      xaxis={"automargin": True, "range": [res.start, right]}, yaxis={"automargin": True})
    return fig


def shifts(res: TrendsResult) -> pd.DataFrame:
    """Level shifts found by :func:`core.trend.change_points`: ``ts, level_before, level_after, change``."""
    cp = res.changes.value
    cols = ["ts", "level_before", "level_after", "change"]
    if cp is None or not cp.sufficient or not cp.points:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame([{c: getattr(p, c) for c in cols} for p in cp.points], columns=cols)


def shifts_text(res: TrendsResult, top: int = 3) -> str:
    """The largest level shifts as a sentence, or why none could be looked for."""
    cp = res.changes.value
    if cp is None or not cp.sufficient:
        return "Insufficient data for change points: " + (res.changes.note or cp.reason)
    df = shifts(res)
    if not len(df):
        return "No level shift found."
    big = df.reindex(df["change"].abs().sort_values(ascending=False).index).head(top)
    unit = f" {res.unit}" if res.unit else ""
    items = "; ".join(f"{ts:%Y-%m-%d %H:%M} {c:+.3g}{unit}" for ts, c in zip(big["ts"], big["change"], strict=True))
    more = f" (largest {top} of {len(df)})" if len(df) > top else ""
    return f"Level shifts{more}: {items}."


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


__all__ = ["RANGES", "RESOLUTIONS", "TrendsResult", "Stage", "filter_keys", "aggregations", "resolve_range",
           "analyse", "forecast_stages", "band_steps", "display_points", "cached_analysis", "cached_display", "trends_figure",
           "heatmap_figure", "shifts", "shifts_text", "trend_text", "seasonality_text", "baseline_text", "quality_text", "forecast_text",
           "anomaly_text"]
