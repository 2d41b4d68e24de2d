"""Plotly figure builders. Traces are downsampled (min/max per bucket) to a few thousand points."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.frame import downsample_minmax, insert_gap_breaks

MAX_BUCKETS = 2000


def series_figure(points: pd.DataFrame, incidents: pd.DataFrame | None = None, *, title: str = "",
                  unit: str | None = None, height: int = 380) -> go.Figure:
    """Line chart of one series' ``ts, value`` with gaps broken and incidents shaded."""
    df = downsample_minmax(insert_gap_breaks(points[["ts", "value"]]), MAX_BUCKETS)
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=df["ts"], y=df["value"], mode="lines", name="value",
                               line={"width": 1.2, "color": "#1f4e79"}, connectgaps=False))
    if incidents is not None and len(incidents):
        for row in incidents.itertuples():
            fig.add_vrect(x0=row.start, x1=row.end, fillcolor="#dc2626", opacity=0.12, line_width=0,
                          annotation_text=(getattr(row, "kind", None) or "incident"),
                          annotation_position="top left", annotation_font_size=10)
    fig.update_layout(title=title or None, height=height, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
                      yaxis_title=unit, hovermode="x unified", showlegend=False)
    return fig
