"""Thresholds page: the replay view (chart plus summary cards and episodes) and the threshold sweep.

The slider-to-chart path is :func:`threshold_view`: one :func:`core.alerting.replay.replay` of the edited
rule over the cached raw points plus a figure built from a cached, min/max-downsampled copy of the
series (so spikes survive). Nothing on that path touches the database.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.alerting.replay import Replay, replay
from core.alerting.rules import Rule
from core.alerting.sweep import SweepGrid, auto_levels, sweep, sweep_grid
from ui import state
from ui.policy_apply import MIN_EPISODES_PRECISION, MIN_INCIDENTS_RATE
from ui.thresholds.editor import CELL, SeriesData, _series_data

SWEEP_POINTS = 41


COLORS = {"warning": "#f59e0b", "critical": "#dc2626", "nodata": "#9ca3af", "incident": "#7c3aed"}


#: what the replay numbers are: a replay over the history the user is tuning on, not a prediction
IN_SAMPLE = ("In-sample: what this rule would have done over the stored history (these thresholds may "
             "have been chosen on that same history, so this is not a prediction).")


# ---------------------------------------------------------------------------- the replay view
@dataclass
class View:
    """What one slider move produces: the replay, its summary (dict of :meth:`Replay.summary`), the
    figure and the seconds it took."""

    replay: Replay
    summary: dict[str, Any]
    figure: go.Figure
    seconds: float


def _band(starts: Any, ends: Any, y0: float, y1: float, color: str, name: str, axis: str = "y2") -> go.Scatter:
    """One filled trace drawing a rectangle ``[start, end] x [y0, y1]`` per row (no loop over rows).

    Rectangles are separated by a point whose y is NaN (a gap); x stays a datetime64 array, which
    plotly copies and serialises far faster than an object array of datetimes.
    """
    s = pd.DatetimeIndex(starts).tz_convert("UTC").tz_localize(None).to_numpy()
    e = pd.DatetimeIndex(ends).tz_convert("UTC").tz_localize(None).to_numpy()
    x = np.column_stack([s, s, e, e, e]).ravel()
    y = np.tile(np.array([y0, y1, y1, y0, np.nan]), s.size)
    return go.Scatter(x=x, y=y, yaxis=axis, fill="toself", fillcolor=color, mode="none", name=name,
                      opacity=0.5, hoverinfo="skip", showlegend=True)


def _hline(y: float, color: str, dash: str, text: str, where: str = "top") -> tuple[dict, dict]:
    """A horizontal line across the plot and its label (layout dicts: far cheaper than ``add_hline``)."""
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
             "line": {"color": color, "dash": dash, "width": 1.5}}
    note = {"xref": "paper", "x": 0, "yref": "y", "y": y, "text": text, "showarrow": False, "xanchor": "left",
            "yanchor": "bottom" if where == "top" else "top", "font": {"size": 11, "color": color}}
    return shape, note


BAND_ROWS = {"warning": 2, "critical": 1, "nodata": 0}


def replay_figure(data: SeriesData, rep: Replay, rule: Rule, *, height: int = 440) -> go.Figure:
    """The series (downsampled, extremes kept) with incidents shaded, warning/critical (and recovery)
    lines, and a strip under the line with one band per firing episode (rows: warning, critical,
    no data). Built in one go (no per-element ``add_*`` calls) to stay fast on every slider move."""
    traces = []
    eps = rep.episodes
    for sev, row in BAND_ROWS.items():
        e = eps[eps["severity"] == sev]
        if len(e):
            traces.append(_band(e["start"], e["end"], row + 0.1, row + 0.9, COLORS[sev],
                                f"{sev} firing" if sev != "nodata" else "no data"))
    df = data.display
    traces.append(go.Scatter(x=df["ts"], y=df["value"], mode="lines", name="value", connectgaps=False,
                             line={"width": 1.2, "color": "#1f4e79"}))
    lines = [_hline(thr, COLORS[sev], "dash", f"{sev} {rule.comparator} {thr:g}")
             for sev, thr in rule.triggers().items()]
    if rule.recovery is not None:
        lines.append(_hline(rule.recovery, "#15803d", "dot", f"recovery {rule.recovery:g}", "bottom"))
    inc = data.incidents
    shapes = [{"type": "rect", "xref": "x", "yref": "paper", "x0": s0, "x1": s1, "y0": 0, "y1": 1,
               "fillcolor": COLORS["incident"], "opacity": 0.12, "line": {"width": 0}, "layer": "below"}
              for s0, s1 in zip(inc["start"], inc["end"], strict=True)] if len(inc) else []
    names = {v: ("no data" if k == "nodata" else k) for k, v in BAND_ROWS.items()}
    layout = {"height": height, "margin": {"l": 10, "r": 10, "t": 10, "b": 10}, "hovermode": "x unified",
              "yaxis": {"title": {"text": data.unit or ""}, "domain": [0.17, 1]},
              "yaxis2": {"domain": [0, 0.13], "range": [0, 3], "fixedrange": True, "showgrid": False,
                         "tickvals": [r + 0.5 for r in names], "ticktext": list(names.values()),
                         "tickfont": {"size": 9}},
              "xaxis": {"anchor": "y2"}, "legend": {"orientation": "h", "y": -0.08},
              "shapes": [sh for sh, _ in lines] + shapes, "annotations": [a for _, a in lines]}
    if len(inc):
        traces.append(go.Scatter(x=[None], y=[None], mode="markers", name="incident",
                                 marker={"symbol": "square", "size": 12, "color": COLORS["incident"],
                                         "opacity": 0.3}))
    return go.Figure(data=traces, layout=layout)


def threshold_view(data: SeriesData, rule: Rule, level: str | None = None) -> View:
    """Replay ``rule`` over the series and build the chart: the slider-to-chart path (causal replay,
    see :mod:`core.alerting.replay`). ``level``: judge one severity (default: any level firing)."""
    t0 = time.perf_counter()
    rep = replay(rule, data.values, series=data.key)
    summary = rep.summary(severity=level, incidents=data.incidents)
    fig = replay_figure(data, rep, rule)
    return View(rep, summary, fig, time.perf_counter() - t0)


def fmt_dur(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    sign, s = ("-" if seconds < 0 else ""), int(round(abs(seconds)))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    parts = [f"{d}d"] * bool(d) + [f"{h}h"] * bool(h) + [f"{m}m"] * bool(m) + [f"{s % 60}s"] * bool(s % 60)
    return sign + (" ".join(parts[:2]) or "0s")


def summary_cards(s: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(label, value, help)`` of the five summary cards from :meth:`Replay.summary` with incidents.

    Too little evidence is said in words: precision reads "insufficient" below
    :data:`MIN_EPISODES_PRECISION` episodes or without incidents; caught incidents are shown as a
    count (never a rate) below :data:`MIN_INCIDENTS_RATE` incidents.
    """
    epw, pct = s.get("episodes_per_week"), s.get("time_in_alert_pct")
    n_ep, n_inc = int(s.get("episodes") or 0), int(s.get("incidents") or 0)
    caught = n_inc - int(s.get("fn") or 0) if n_inc else 0
    span_note = ("in-sample, extrapolated: the history covers less than a week"
                 if (s.get("span_s") or 0) < 7 * 86400 else f"in-sample: {n_ep} episodes over the stored history")
    cards = [("Episodes / week", "-" if epw is None else f"{epw:.1f}", span_note),
             ("Time in alert", "-" if pct is None else f"{pct:.2f} %",
              "in-sample: share of the stored history spent firing")]
    if n_inc == 0:
        cards.append(("Incidents caught", "none labelled", "no incident is labelled for this series"))
    else:
        why = (f"only {n_inc} incident(s): too few for a recall rate (needs {MIN_INCIDENTS_RATE})"
               if n_inc < MIN_INCIDENTS_RATE else f"recall {caught / n_inc:.0%} (n={n_inc})")
        cards.append(("Incidents caught", f"{caught}/{n_inc}", why))
    delay = s.get("detection_delay_s")
    cards.append(("Median detection delay", "-" if not caught else fmt_dur(delay),
                  f"median over {caught} caught incident(s), incident start to first alert" if caught
                  else "no incident was caught"))
    prec = s.get("precision")
    if n_inc == 0 or prec is None or n_ep < MIN_EPISODES_PRECISION:
        why = ("no incidents labelled to judge alerts against" if n_inc == 0 else
               f"{n_ep} episode(s): precision needs at least {MIN_EPISODES_PRECISION}")
        cards.append(("Precision", "insufficient", why))
    else:
        dup = int(s.get("duplicates") or 0)
        cards.append(("Precision", f"{prec:.0%}",
                      f"{s.get('tp')} caught incident(s) vs {s.get('fp')} false alarm(s)"
                      + (f"; {dup} repeat episode(s) inside incidents already alerted on are not counted"
                         if dup else "")))
    return cards


def episodes_table(rep: Replay) -> pd.DataFrame:
    """Alert episodes (warning, critical) for display: start, end, severity, peak, duration, state.
    No-data episodes are left out (the chart's strip shows them)."""
    e = rep.episodes[rep.episodes["severity"] != "nodata"]
    return pd.DataFrame({"start": e["start"], "end": e["end"], "severity": e["severity"], "peak": e["peak"],
                         "duration": [fmt_dur(x) for x in e["duration_s"]], "state": e["state"]})


# ---------------------------------------------------------------------------- sweep
@st.cache_data(show_spinner=False, max_entries=32)
def _sweep(path: str, key: str, comparator: str, lo: float, hi: float, for_s: float, keep_s: float,
           rec_offset: float | None, consecutive: int, missing: str, interval_s: float | None) -> pd.DataFrame:
    data = _series_data(path, key)
    return sweep(data.values, comparator, np.linspace(lo, hi, SWEEP_POINTS), for_s=for_s,
                 keep_firing_for_s=keep_s, recovery_offset=rec_offset, consecutive=consecutive,
                 missing=missing, interval_s=interval_s, series=key,
                 incidents=data.incidents if len(data.incidents) else None)


def recovery_offset(rule: Rule, level: str) -> float | None:
    """Distance from the swept level's threshold to the recovery (held constant across the sweep)."""
    if rule.recovery is None:
        return None
    return abs(rule.triggers()[level] - rule.recovery)


def sweep_for(data: SeriesData, rule: Rule, level: str, lo: float, hi: float) -> pd.DataFrame:
    """Cached :func:`core.alerting.sweep.sweep` of ``level`` over ``[lo, hi]`` with the rule's other settings."""
    return _sweep(state.db_path(), data.key, rule.comparator, float(lo), float(hi), rule.for_s,
                  rule.keep_firing_for_s, recovery_offset(rule, level), rule.consecutive, rule.missing,
                  rule.interval_s)


def recall_gate(n_incidents: int) -> str | None:
    """Why a recall rate must not be shown for ``n_incidents`` labelled incidents (None: it may be)."""
    if n_incidents <= 0:
        return "no incidents labelled for this series: recall cannot be shown"
    if n_incidents < MIN_INCIDENTS_RATE:
        return (f"recall insufficient (n={n_incidents}): a recall rate needs at least {MIN_INCIDENTS_RATE} "
                "labelled incidents")
    return None


def sweep_figure(sw: pd.DataFrame, current: float, unit: str | None = None, *, n_incidents: int = 0,
                 height: int = 300) -> go.Figure:
    """Episodes per week (left axis) against the threshold, with the current value marked; recall
    (right axis) only with at least :data:`MIN_INCIDENTS_RATE` labelled incidents (see
    :func:`recall_gate`). All in-sample: replayed over the stored history."""
    fig = go.Figure(go.Scatter(x=sw["threshold"], y=sw["episodes_per_week"], name="episodes / week",
                               mode="lines+markers", marker={"size": 4}, line={"color": "#1f4e79"},
                               customdata=sw["time_in_alert_pct"],
                               hovertemplate="%{x:g}: %{y:.1f} episodes/week, %{customdata:.2f}% in alert"
                                             "<extra></extra>"))
    show_recall = "recall" in sw.columns and sw["recall"].notna().any() and recall_gate(n_incidents) is None
    if show_recall:
        fig.add_trace(go.Scatter(x=sw["threshold"], y=100 * sw["recall"], name=f"recall (%, n={n_incidents})",
                                 yaxis="y2", mode="lines", line={"color": COLORS["incident"], "shape": "hv"}))
    fig.update_layout(shapes=[{"type": "line", "xref": "x", "x0": current, "x1": current, "yref": "paper", "y0": 0,
                               "y1": 1, "line": {"color": "#dc2626", "dash": "dash"}}],
                      annotations=[{"xref": "x", "x": current, "yref": "paper", "y": 1, "text": f"current {current:g}",
                                    "showarrow": False, "yanchor": "bottom"}],
                      height=height, margin={"l": 10, "r": 10, "t": 24, "b": 10}, hovermode="x unified",
                      xaxis_title=f"threshold ({unit})" if unit else "threshold", yaxis_title="episodes / week",
                      yaxis2={"overlaying": "y", "side": "right", "range": [0, 105], "title": "recall (%)",
                              "tickmode": "array", "tickvals": [0, 25, 50, 75, 100], "showgrid": False,
                              "visible": bool(show_recall)},
                      legend={"orientation": "h", "y": -0.25})
    return fig


# ---------------------------------------------------------------------------- level x for grid
#: widget key of the heat map (its selection state)
GRID_KEY = "thr.grid"


#: rows of the heat map: levels from the series' own quantiles (dense in the comparator's tail)
GRID_LEVELS = 24


#: pending periods offered as columns (those that differ at the evaluation interval)
GRID_FORS = (0, 60, 120, 300, 600, 900, 1800, 3600, 7200)


#: (level x evaluation) cells per cached chunk of the grid: a chunk takes well under a second
GRID_CHUNK_CELLS = 6_000_000


#: colour choices of the heat map: label -> (cells column, log colour scale)
GRID_COLOURS = {"episodes / week": ("episodes_per_week", True), "recall": ("recall", False),
                "incidents caught": ("caught", False), "false alarms / week": ("false_alarms_per_week", True)}


def grid_fors(interval_s: float, current: float | None = None) -> list[float]:
    """Columns of the heat map (seconds, ascending): :data:`GRID_FORS` and the rule's current ``for``,
    one per number of evaluations they need at ``interval_s`` (``1m``, ``2m`` and ``5m`` are the same
    rule at a 5-minute interval): the current ``for`` if it is among them, else the whole multiple of
    the interval, else the shortest."""
    groups: dict[float, list[float]] = {}
    for f in sorted({*map(float, GRID_FORS), *([float(current)] if current is not None else [])}):
        need = math.ceil(round(f / interval_s, 9)) if interval_s > 0 else f
        groups.setdefault(need, []).append(f)
    out = []
    for need, fs in groups.items():
        pick = [f for f in fs if f == current] or [f for f in fs if f == need * interval_s] or fs[:1]
        out.append(pick[0])
    return sorted(out)


def grid_levels(data: SeriesData, comparator: str, lo: float, hi: float, step: float,
                n: int = GRID_LEVELS) -> list[float]:
    """Rows of the heat map: :func:`core.alerting.sweep.auto_levels` of the raw points, on the slider
    grid (so a selected cell is a slider value) and inside the slider range, ascending."""
    from core.alerting.recommend import snap

    lv = auto_levels(data.values.to_numpy(), comparator, n)
    return sorted({snap(float(x), step) for x in lv if lo <= snap(float(x), step) <= hi})


@st.cache_data(show_spinner=False, max_entries=64)
def _grid_chunk(path: str, key: str, comparator: str, levels: tuple[float, ...], fors: tuple[float, ...],
                keep_s: float, rec_offset: float | None, consecutive: int, missing: str,
                interval_s: float | None) -> SweepGrid:
    data = _series_data(path, key)
    return sweep_grid(data.values, comparator, list(levels), list(fors), keep_firing_for_s=keep_s,
                      recovery_offset=rec_offset, consecutive=consecutive, missing=missing, interval_s=interval_s,
                      series=key, incidents=data.incidents if len(data.incidents) else None)


def grid_for(data: SeriesData, rule: Rule, level: str, levels: list[float], interval_s: float,
             *, slow_s: float = 1.0) -> SweepGrid:
    """The level x for grid of ``level`` with the rule's other settings, at the rule's evaluation
    interval (``interval_s`` seconds): rows ``levels`` plus the rule's own level, columns
    :func:`grid_fors` (with the rule's own ``for``), level-major and ascending.

    Swept in cached chunks (cleared on every write): the fixed rows x fixed columns in chunks of
    levels, the rule's own level and its own ``for`` each on their own, so moving the slider or
    typing a ``for`` sweeps one row or one column, not the grid. A grid that takes longer than
    ``slow_s`` seconds shows a progress bar while the remaining chunks run."""
    fors = grid_fors(interval_s, rule.for_s)
    base = grid_fors(interval_s, None)
    extra = tuple(f for f in fors if f not in base)
    n_eval = max(1, int((data.values.index[-1] - data.values.index[0]).total_seconds() // interval_s) + 1)
    per = max(1, GRID_CHUNK_CELLS // n_eval)
    jobs = [(tuple(levels[i:i + per]), tuple(base)) for i in range(0, len(levels), per)]
    if extra:
        jobs += [(tuple(levels[i:i + per]), extra) for i in range(0, len(levels), per)]
    own = float(rule.triggers()[level])
    if own not in levels:
        jobs.append(((own,), tuple(base) + extra))
    shape = (rule.keep_firing_for_s, recovery_offset(rule, level), rule.consecutive, rule.missing, rule.interval_s)
    slot, t0, parts = st.empty(), time.perf_counter(), []
    for i, (lv, fs) in enumerate(jobs):
        parts.append(_grid_chunk(state.db_path(), data.key, rule.comparator, lv, fs, *shape))
        if time.perf_counter() - t0 > slow_s and i + 1 < len(jobs):
            slot.progress((i + 1) / len(jobs), text=f"Sweeping {len(levels) + 1} levels x {len(fors)} for periods "
                                                    f"over {n_eval:,} evaluations...")
    slot.empty()
    first = parts[0]
    cells = pd.concat([p.cells for p in parts], ignore_index=True)
    cells = cells[cells["for_s"].isin(fors)].sort_values(["level", "for_s"], kind="stable")
    return SweepGrid(first.series, first.comparator, first.interval_s, first.span_s, cells.reset_index(drop=True))


def _log_z(v: np.ndarray, floor: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(v), np.log10(np.maximum(v, floor)), np.nan)


def grid_figure(grid: SweepGrid, current: tuple[float, float] | None, colour: str = "episodes / week",
                unit: str | None = None, decimals: int = 2, height: int = 460) -> go.Figure:
    """Heat map of a level x for grid: levels as rows, ``for`` as columns, colour as chosen
    (:data:`GRID_COLOURS`; rates on a log scale, a zero shown at the bottom of the scale), hover with
    episodes, time in alert and, with incidents, caught / missed and the median detection delay. The
    current rule's cell (``(level, for_s)``) is outlined. An invisible marker per cell makes the cells
    selectable (``customdata = [level, for_s]``)."""
    cells = grid.cells
    col, log = GRID_COLOURS[colour]
    levels = list(dict.fromkeys(cells["level"].tolist()))
    fors = list(dict.fromkeys(cells["for_s"].tolist()))
    ylab = [f"{lv:.{decimals}f}" for lv in levels]
    xlab = [fmt_dur(f) for f in fors]
    li = {lv: i for i, lv in enumerate(levels)}
    fi = {f: j for j, f in enumerate(fors)}
    r = cells["level"].map(li).to_numpy()
    c = cells["for_s"].map(fi).to_numpy()
    raw = cells[col].to_numpy(dtype=float)
    z = np.full((len(levels), len(fors)), np.nan)
    if log:
        pos = raw[np.isfinite(raw) & (raw > 0)]
        floor = 10 ** math.floor(math.log10(pos.min())) / 10 if pos.size else 0.01
        z[r, c] = _log_z(raw, floor)
        lo_t, hi_t = math.floor(math.log10(floor)), math.ceil(math.log10(max(pos.max(), floor * 10))) if pos.size \
            else 1
        ticks = list(range(lo_t, hi_t + 1))
        colorbar = {"title": {"text": colour, "side": "right"}, "tickvals": ticks,
                    "ticktext": ["0"] + [f"{10.0 ** t:g}" for t in ticks[1:]]}
    else:
        z[r, c] = raw
        colorbar = {"title": {"text": colour, "side": "right"}}
    has_inc = "caught" in cells.columns
    text = []
    for row in cells.itertuples(index=False):
        epw = "-" if not math.isfinite(row.episodes_per_week) else f"{row.episodes_per_week:.2f}"
        pct = "-" if not math.isfinite(row.time_in_alert_pct) else f"{row.time_in_alert_pct:.2f}%"
        t = (f"level {row.level:.{decimals}f}{' ' + unit if unit else ''}, for {fmt_dur(row.for_s)}<br>"
             f"{row.episodes} episode(s), {epw} / week, in alert {pct}")
        if has_inc:
            n = int(row.incidents)
            t += (f"<br>incidents caught {int(row.caught)}/{n}, missed {n - int(row.caught)}; median detection "
                  f"delay {fmt_dur(row.detection_delay_s) if row.caught else '-'}")
            far = row.false_alarms_per_week
            t += f"<br>false alarms / week {'-' if not math.isfinite(far) else f'{far:.2f}'}"
        text.append(t)
    scale = "Viridis" if colour in ("recall", "incidents caught") else "YlOrRd"
    traces = [go.Heatmap(x=xlab, y=ylab, z=z, colorscale=scale, colorbar=colorbar, hoverinfo="skip",
                         zmin=0 if colour == "recall" else None, zmax=1 if colour == "recall" else None),
              go.Scatter(x=[xlab[j] for j in c], y=[ylab[i] for i in r], mode="markers", name="cells",
                         marker={"symbol": "square", "size": 14, "opacity": 0.0},
                         customdata=np.column_stack([cells["level"].to_numpy(), cells["for_s"].to_numpy()]),
                         text=text, hovertemplate="%{text}<extra></extra>", showlegend=False)]
    if current is not None and current[0] in li and current[1] in fi:
        traces.append(go.Scatter(x=[xlab[fi[current[1]]]], y=[ylab[li[current[0]]]], mode="markers",
                                 name="current rule", hoverinfo="skip",
                                 marker={"symbol": "square-open", "size": 22, "color": "#111827",
                                         "line": {"width": 3}}))
    layout = {"height": height, "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
              "xaxis": {"title": {"text": "for (pending period)"}, "type": "category"},
              "yaxis": {"title": {"text": f"level ({unit})" if unit else "level"}, "type": "category"},
              "legend": {"orientation": "h", "y": -0.15}, "clickmode": "event+select", "dragmode": False}
    return go.Figure(data=traces, layout=layout)


def cell_of_selection(event: Any) -> tuple[float, float] | None:
    """``(level, for_s)`` of the cell picked in the heat map's selection state, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        points = getattr(getattr(event, "selection", None), "points", None)
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, Mapping) else None
        if isinstance(cd, Mapping):          # the browser may send an array as {"0": ..., "1": ...}
            cd = [cd[k] for k in sorted(cd, key=lambda k: int(k))]
        if cd is not None and len(cd) >= 2:
            return float(cd[0]), float(cd[1])
    return None


def on_grid_select(level: str) -> None:
    """Heat-map selection callback: remember the picked cell for :func:`ui.thresholds.editor.take_cell`,
    which fills the editor on the rerun (the preview and the Apply confirmation still follow)."""
    cell = cell_of_selection(st.session_state.get(GRID_KEY))
    if cell is not None:
        st.session_state[CELL] = (level, cell[0], cell[1])


def colour_options(n_incidents: int) -> list[str]:
    """What the heat map may be coloured by: episodes per week always; with labelled incidents, recall
    (or, below :data:`MIN_INCIDENTS_RATE` incidents, the count caught: no rate from too few) and
    false alarms per week."""
    if n_incidents <= 0:
        return ["episodes / week"]
    return ["episodes / week", "recall" if recall_gate(n_incidents) is None else "incidents caught",
            "false alarms / week"]
