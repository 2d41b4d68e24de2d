"""Plotly figure builders. Traces are downsampled (min/max per bucket) to a few thousand points."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.data.frame import downsample_minmax, insert_gap_breaks

MAX_BUCKETS = 2000
GRADE_COLORS = {"A": "#15803d", "B": "#65a30d", "C": "#ca8a04", "D": "#ea580c", "F": "#dc2626",
                "insufficient": "#9ca3af"}


def chart_points(points: pd.DataFrame, buckets: int = MAX_BUCKETS) -> pd.DataFrame:
    """The ``ts, value`` rows a line chart draws: a NaN row inside every gap (so the line breaks
    there), then at most about ``2 * buckets`` rows keeping each time bucket's min and max."""
    df = points[["ts", "value"]].sort_values("ts", kind="stable").reset_index(drop=True)
    return downsample_minmax(insert_gap_breaks(df), buckets)


def series_figure(points: pd.DataFrame, incidents: pd.DataFrame | None = None, *, title: str = "",
                  unit: str | None = None, height: int = 380,
                  x_range: tuple[object, object] | None = None) -> go.Figure:
    """Line chart of one series' ``ts, value`` with gaps broken and incidents shaded.

    ``x_range`` (two timestamps) fixes the time axis, e.g. to a picked window, so an incident that
    started before the window does not stretch the axis.

    SVG (not WebGL) traces: after downsampling there are at most a few thousand points, and SVG
    renders in every browser, headless ones included.
    """
    df = chart_points(points)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=df["ts"], y=df["value"], mode="lines", name="value",
                             line={"width": 1.2, "color": "#1f4e79"}, connectgaps=False))
    if incidents is not None and len(incidents):
        for row in incidents.itertuples():
            fig.add_vrect(x0=row.start, x1=row.end, fillcolor="#dc2626", opacity=0.12, line_width=0,
                          annotation_text=(getattr(row, "kind", None) or "incident"),
                          annotation_position="top left", annotation_font_size=10)
    fig.update_layout(title=title or None, height=height,
                      margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
                      yaxis_title=unit, hovermode="x unified", showlegend=False)
    if x_range is not None:
        fig.update_xaxes(range=[pd.Timestamp(x_range[0]), pd.Timestamp(x_range[1])])
    return fig


def grade_figure(counts: pd.Series, *, height: int = 220) -> go.Figure:
    """Bar chart of series per quality grade (index: grade, values: number of series)."""
    grades = [str(g) for g in counts.index]
    fig = go.Figure(go.Bar(x=grades, y=counts.to_numpy(), text=counts.to_numpy(), textposition="outside",
                           marker_color=[GRADE_COLORS.get(g, "#6b7280") for g in grades],
                           hovertemplate="grade %{x}: %{y} series<extra></extra>"))
    top = max(int(counts.max()) if len(counts) else 0, 1)
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                      yaxis={"title": "series", "range": [0, top * 1.25]}, xaxis={"type": "category"})
    return fig
