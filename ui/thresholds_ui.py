"""Pieces of the Thresholds page: cached series data, the rule editor's state, the replay view
(chart plus summary cards), the threshold sweep and the Apply dialog.

The slider-to-chart path is :func:`threshold_view`: one :func:`core.replay.replay` of the edited
rule over the cached raw points plus a figure built from a cached, min/max-downsampled copy of the
series (so spikes survive). Nothing on that path touches the database.

Editing is optimistic: the page remembers the policy version it loaded (:func:`loaded_policy`) and
passes it to :func:`core.policy.apply` as ``base_version``; if another version landed meanwhile
the dialog shows the :class:`~core.errors.ConflictError` message and the edits stay on the page.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core import policy as pol
from core import recommend
from core.errors import ConflictError, InsufficientDataError, StudioError
from core.frame import parse_key, series_values
from core.recommend import snap, step_decimals
from core.replay import Replay, replay, sweep
from core.rules import KNOWN_UNITS, Rule
from ui import state
from ui.charts import chart_points
from ui.policy_ui import diff_frame, session_user

POLICY = pol.DEFAULT_POLICY
#: a recall rate needs at least this many labelled incidents; below it the page shows counts only
MIN_INCIDENTS_RATE = 5
#: precision needs at least this many alert episodes (and one labelled incident)
MIN_EPISODES_PRECISION = 5
SWEEP_POINTS = 41
QUANTILES = {"min": 0.0, "p0.1": 0.001, "p1": 0.01, "p50": 0.5, "p99": 0.99, "p99.9": 0.999, "max": 1.0}
COLORS = {"warning": "#f59e0b", "critical": "#dc2626", "nodata": "#9ca3af", "incident": "#7c3aed"}

#: share of the history held out (at the end) to check a suggested rule's predicted alert rate
HOLDOUT = 0.3
#: what the replay numbers are: a replay over the history the user is tuning on, not a prediction
IN_SAMPLE = ("In-sample: what this rule would have done over the stored history (these thresholds may "
             "have been chosen on that same history, so this is not a prediction).")

# session-state keys
LOADED, CTX, DRAFT, DIALOG, FLASH = "thr.loaded", "thr.ctx", "thr.draft", "thr.dialog", "thr.flash"
SUGGESTION = "thr.suggestion"
#: editor field -> widget key
KEYS = {"comparator": "thr.cmp", "has_warning": "thr.has_w", "warning": "thr.w", "has_critical": "thr.has_c",
        "critical": "thr.c", "for": "thr.for", "keep_firing_for": "thr.keep", "recovery": "thr.rec",
        "consecutive": "thr.consec", "missing": "thr.missing"}
_EDITED = ("comparator", "warning", "critical", "for", "keep_firing_for", "recovery", "consecutive", "missing")


# ---------------------------------------------------------------------------- series data
@dataclass(frozen=True)
class SeriesData:
    """One series as the page needs it.

    ``values``: raw points (UTC index, NaN = missing, never filled); ``display``: ``ts, value`` rows
    for the chart (gap breaks, per-bucket min and max kept); ``incidents``: the series' own and the
    global incident windows; ``q``: percentiles of the finite raw values (``min``, ``p0.1`` ...
    ``max``), in the series' unit.
    """

    key: str
    unit: str | None
    values: pd.Series
    display: pd.DataFrame
    incidents: pd.DataFrame
    q: dict[str, float]
    n: int


def make_series_data(key: str, points: pd.DataFrame, incidents: pd.DataFrame, unit: str | None = None
                     ) -> SeriesData:
    """Build :class:`SeriesData` from a points frame of one series (pure).

    Raises :class:`InsufficientDataError` when the series has fewer than 2 finite values.
    """
    values = series_values(points, key)
    finite = values.to_numpy()[np.isfinite(values.to_numpy())]
    if finite.size < 2:
        raise InsufficientDataError(f"series {key!r} has {finite.size} finite value(s); replaying a rule "
                                    "needs at least 2")
    qs = np.quantile(finite, list(QUANTILES.values()))
    inc = incidents if incidents is not None else pd.DataFrame(columns=["series", "start", "end", "kind"])
    return SeriesData(key, unit or None, values, chart_points(points), inc.reset_index(drop=True),
                      {k: float(v) for k, v in zip(QUANTILES, qs, strict=True)}, int(finite.size))


@st.cache_data(show_spinner=False, max_entries=16)
def _series_data(path: str, key: str) -> SeriesData:
    s = state.store()
    meta = state.series_table()
    unit = meta.loc[meta["key"] == key, "unit"]
    return make_series_data(key, s.get_points(key), s.list_incidents(key),
                            str(unit.iloc[0]) if len(unit) and pd.notna(unit.iloc[0]) else None)


def series_data(key: str) -> SeriesData:
    """Cached :class:`SeriesData` of a stored series (dropped on every write)."""
    return _series_data(state.db_path(), key)


# ---------------------------------------------------------------------------- policy snapshot
@st.cache_data(show_spinner=False)
def _policy(path: str) -> dict[str, Any]:
    s = state.store()
    active = pol.active_version(s, POLICY)
    return {"active": active.number if active else None, "base": pol.latest_number(s, POLICY),
            "rules": active.rule_dicts if active else []}


def current_policy() -> dict[str, Any]:
    """``active`` (number in force or None), ``base`` (highest version number) and ``rules`` (dicts in force)."""
    return _policy(state.db_path())


def loaded_policy(reload: bool = False) -> dict[str, Any]:
    """The policy snapshot this session loaded (kept until an apply or an explicit reload): edits are
    based on it and ``base`` is the ``base_version`` passed to :func:`core.policy.apply`."""
    if reload or LOADED not in st.session_state:
        st.session_state[LOADED] = current_policy()
    return st.session_state[LOADED]


def matching_rules(rule_dicts: Iterable[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rules (dicts) whose selector matches the series key, in policy order."""
    return [dict(d) for d in rule_dicts if Rule.from_dict(d).matches(key)]


def default_index(keys: Sequence[str], rule_dicts: Iterable[Mapping[str, Any]]) -> int:
    """Index of the first key some rule matches (0 when none does)."""
    rules = [Rule.from_dict(d) for d in rule_dicts]
    return next((i for i, k in enumerate(keys) if any(r.matches(k) for r in rules)), 0)


# ---------------------------------------------------------------------------- slider and defaults
def nice_step(span: float) -> float:
    """A 1-2-5 step giving at most 200 slider positions over ``span`` (same unit as the series)."""
    if not (math.isfinite(span) and span > 0):
        return 1.0
    raw = span / 200.0
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))


def slider_spec(q: Mapping[str, float], comparator: str, current: Iterable[float | None] = (),
                unit: str | None = None) -> tuple[float, float, float]:
    """``(low, high, step)`` of the threshold sliders.

    The range is the raw-point median to the maximum for ``>``/``>=`` (minimum to median for
    ``<``/``<=``), widened to hold every current value and clipped to the unit's bounds (percent
    0..100).
    """
    up = comparator in (">", ">=")
    lo, hi = (q["p50"], q["max"]) if up else (q["min"], q["p50"])
    vals = [float(v) for v in current if v is not None and math.isfinite(float(v))]
    lo, hi = min([lo, *vals]), max([hi, *vals])
    if hi <= lo:
        hi = lo + max(abs(lo) * 0.1, 1.0)
    step = nice_step(hi - lo)
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    bounds = KNOWN_UNITS.get(unit.lower()) if unit else None
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return round(lo, step_decimals(step)), round(hi, step_decimals(step)), step


def direction_defaults(data: SeriesData, comparator: str) -> tuple[float, float]:
    """``(warning, critical)`` for a level the rule lacks or after a comparator flip: the levels
    :func:`core.recommend.fit_levels` fits (p99 / p99.9 for ``>``-like comparators, p1 / p0.1 for
    ``<``-like ones, of the first 70 % of the history with labelled incidents left out; the same fit
    as a suggested rule), on the slider grid, critical strictly beyond warning. When the fit period
    has too few points the levels sit at the far end of the slider (a level that rarely fires,
    rather than a percentile of the incidents and the later data)."""
    lo, hi, step = slider_spec(data.q, comparator, (), data.unit)
    try:
        fl = recommend.fit_levels(data.values, comparator, data.incidents, HOLDOUT, step=step)
    except InsufficientDataError:
        up = comparator in (">", ">=")
        return (snap(hi - step, step), hi) if up else (snap(lo + step, step), lo)
    assert fl.critical is not None             # always set when a step is given
    return fl.warning, fl.critical


def rule_name(key: str, taken: Iterable[str] = ()) -> str:
    """A CamelCase rule name from a series key: ``latency_p95_ms{service="checkout"}`` ->
    ``CheckoutLatencyP95MsHigh`` (a number is appended when the name is taken)."""
    name, labels = parse_key(key)
    words = re.split(r"[^A-Za-z0-9]+", " ".join([*labels.values(), name]))
    base = "".join(w[:1].upper() + w[1:] for w in words if w) + "High"
    taken, out, i = set(taken), base, 2
    while out in taken:
        out, i = f"{base}{i}", i + 1
    return out


def draft_suggestion(data: SeriesData, for_s: str = "5m", missing: str = "nodata") -> recommend.Suggestion:
    """Levels for a new ``>`` rule fit on the first 70 % of the series' history (labelled incidents left
    out, on the slider grid) and their predicted alert rate checked on the last 30 %
    (:func:`core.recommend.suggest_rule`). Raises :class:`InsufficientDataError` on too little data."""
    step = slider_spec(data.q, ">", (), data.unit)[2]
    return recommend.suggest_rule(data.values, ">", data.incidents, HOLDOUT, step=step, for_s=for_s,
                                  missing=missing)


def suggest_rule(data: SeriesData, taken: Iterable[str] = (),
                 suggestion: recommend.Suggestion | None = None) -> dict[str, Any]:
    """A new ``>`` rule dict for a series from :func:`draft_suggestion` (computed when not given):
    warning at the fit period's p99, critical at its p99.9, ``for: 5m``, ``missing: nodata``."""
    sug = suggestion if suggestion is not None else draft_suggestion(data)
    d = recommend.as_rule_dict(sug, rule_name(data.key, taken), data.key)
    if data.unit:
        try:
            Rule.from_dict({**d, "unit": data.unit})
            d["unit"] = data.unit
        except StudioError:  # a unit name (or bound) the rule schema does not accept: leave it out
            pass
    return d


# ---------------------------------------------------------------------------- editor state
def editor_values(rule: Mapping[str, Any], data: SeriesData) -> dict[str, Any]:
    """Widget values (by editor field) showing a rule dict; an absent level gets its fitted default
    (:func:`direction_defaults`)."""
    cmp = rule.get("comparator", ">")
    dw, dc = direction_defaults(data, cmp)
    return {"comparator": cmp, "has_warning": rule.get("warning") is not None,
            "warning": float(rule.get("warning") if rule.get("warning") is not None else dw),
            "has_critical": rule.get("critical") is not None,
            "critical": float(rule.get("critical") if rule.get("critical") is not None else dc),
            "for": str(rule.get("for", "0s")), "keep_firing_for": str(rule.get("keep_firing_for", "0s")),
            "recovery": None if rule.get("recovery") is None else float(rule["recovery"]),
            "consecutive": int(rule.get("consecutive", 1)), "missing": rule.get("missing", "nodata")}


def init_editor(ctx: tuple[Any, ...], rule: Mapping[str, Any], data: SeriesData) -> None:
    """Load ``rule`` into the editor widgets when the series/rule changed (or the widgets were reset)."""
    ss = st.session_state
    if ss.get(CTX) == ctx and all(k in ss for k in KEYS.values()):
        return
    for f, v in editor_values(rule, data).items():
        ss[KEYS[f]] = v
    ss[CTX] = ctx
    ss["thr.dir"] = ss[KEYS["comparator"]][0]


def on_comparator(data: SeriesData) -> None:
    """Widget callback: flipping direction (``>`` <-> ``<``) resets the levels to that direction's
    fitted defaults (:func:`direction_defaults`) and clears the recovery (the old values would be on
    the wrong side)."""
    ss = st.session_state
    cmp = ss[KEYS["comparator"]]
    if cmp[0] != ss.get("thr.dir"):
        ss[KEYS["warning"]], ss[KEYS["critical"]] = direction_defaults(data, cmp)
        ss[KEYS["recovery"]] = None
    ss["thr.dir"] = cmp[0]


def editor_state() -> dict[str, Any]:
    """The editor's current values by field."""
    return {f: st.session_state.get(k) for f, k in KEYS.items()}


def edited_rule(base: Mapping[str, Any], values: Mapping[str, Any]) -> Rule:
    """``base`` (a rule dict) with the editor's fields; other fields (labels, annotations, unit...) kept,
    except a suggestion's rationale once the edit moves away from the suggestion
    (:func:`core.recommend.revise_rationale`: it would describe levels the rule no longer has).

    Raises :class:`ValidationError` naming the field when the edit is not a valid rule.
    """
    d = {k: v for k, v in base.items() if k not in _EDITED}
    d.update({"comparator": values["comparator"], "for": values["for"] or "0s",
              "keep_firing_for": values["keep_firing_for"] or "0s", "missing": values["missing"],
              "consecutive": int(values["consecutive"] or 1)})
    for level in ("warning", "critical"):
        if values[f"has_{level}"]:
            d[level] = float(values[level])
    if values.get("recovery") is not None:
        d["recovery"] = float(values["recovery"])
    rule = Rule.from_dict(d, path="rule")
    ann = recommend.revise_rationale(base, rule)
    if ann != dict(rule.annotations):
        rule = Rule.from_dict({**d, "annotations": ann}, path="rule")
    return rule


def replace_rule(rule_dicts: Iterable[Mapping[str, Any]], rule: Rule | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The policy's rules with ``rule`` replacing the one of the same name (appended when new)."""
    new = pol.rule_to_dict(rule)
    out = [dict(d) for d in rule_dicts if d["name"] != new["name"]]
    return out + [new]


def changed(base: Mapping[str, Any], rule: Rule) -> bool:
    """Whether the edited rule differs from ``base`` (compared in normalised form)."""
    return Rule.from_dict(base).to_dict() != rule.to_dict()


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
    see :mod:`core.replay`). ``level``: judge one severity (default: any level firing)."""
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
    """Cached :func:`core.replay.sweep` of ``level`` over ``[lo, hi]`` with the rule's other settings."""
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
    fig.add_vline(x=current, line_dash="dash", line_color="#dc2626",
                  annotation_text=f"current {current:g}", annotation_position="top")
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 24, "b": 10}, hovermode="x unified",
                      xaxis_title=f"threshold ({unit})" if unit else "threshold", yaxis_title="episodes / week",
                      yaxis2={"overlaying": "y", "side": "right", "range": [0, 105], "title": "recall (%)",
                              "tickmode": "array", "tickvals": [0, 25, 50, 75, 100], "showgrid": False,
                              "visible": bool(show_recall)},
                      legend={"orientation": "h", "y": -0.25})
    return fig


# ---------------------------------------------------------------------------- apply dialog
def show_flash() -> None:
    """Toast and success line for the apply made in the previous run, if any."""
    msg = st.session_state.pop(FLASH, None)
    if msg:
        st.toast(msg, icon=":material/check_circle:")
        st.success(msg, icon=":material/check_circle:")


def _close() -> None:
    st.session_state.pop(DIALOG, None)


@st.cache_data(show_spinner="Replaying old and new rules over the stored history...")
def _preview(path: str, rules_json: str) -> pol.Preview:
    import json

    return pol.preview(state.store(), POLICY, json.loads(rules_json))


def _gated(r: Mapping[str, Any], side: str, metric: str) -> str:
    """One impact cell as text, with the same evidence gates as :func:`summary_cards`."""
    def val(m: str) -> Any:
        x = r.get(f"{side}_{m}")
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x

    x = val(metric)
    if val("incidents") is None and val("episodes_per_week") is None:
        return "-"                                   # no such rule on this side, or no replay
    n_inc = int(val("incidents") or 0)
    if metric == "recall":
        if n_inc == 0:
            return "no incidents"
        if n_inc < MIN_INCIDENTS_RATE:
            return f"insufficient (n={n_inc})"
        return "-" if x is None else f"{x:.0%} (n={n_inc})"
    if metric == "precision":
        n_ep = val("episodes")
        if n_inc == 0:
            return "no incidents"
        if n_ep is None:
            return "insufficient (episode count unknown)"
        if int(n_ep) < MIN_EPISODES_PRECISION:
            return f"insufficient (n={int(n_ep)} episodes)"
        return "-" if x is None else f"{x:.0%} (n={int(n_ep)} episodes)"
    if x is None:
        return "-"
    if metric in ("incidents", "incidents_caught", "episodes"):
        return str(int(x))
    return f"{x:.3f}" if metric == "time_in_alert_pct" else f"{x:.2f}"


def impact_frame(impact: pd.DataFrame) -> pd.DataFrame:
    """The preview's impact as rows ``series, metric, old, new`` (text, numbers rounded for reading).

    Recall reads "insufficient (n=...)" below :data:`MIN_INCIDENTS_RATE` incidents and precision below
    :data:`MIN_EPISODES_PRECISION` episodes (or when the preview does not give the episode count), as
    on the summary cards. In-sample: each rule replayed over the stored history.
    """
    names = {"episodes_per_week": "episodes / week", "time_in_alert_pct": "time in alert (%)",
             "incidents_caught": "incidents caught", "incidents": "incidents", "recall": "recall",
             "precision": "precision"}
    rows = [{"series": r["series"], "metric": label, "old": _gated(r, "old", m), "new": _gated(r, "new", m)}
            for r in impact.to_dict("records") for m, label in names.items()]
    return pd.DataFrame(rows, columns=["series", "metric", "old", "new"])


@st.dialog("Apply threshold change", icon=":material/tune:", width="large", on_dismiss=_close)
def apply_dialog(new_rules: list[dict[str, Any]], base: int, name: str) -> None:
    """Preview (diff, replayed impact, approval) and confirm; writes one new policy version."""
    import json

    try:
        pv = _preview(state.db_path(), json.dumps(new_rules, sort_keys=True, default=str))
    except StudioError as exc:
        st.error(f"Cannot preview this change: {exc}")
        return
    st.markdown(f"**{name}**: change against the version in force "
                f"({'v' + str(pv.active_number) if pv.active_number else 'none'}); based on **v{base}**.")
    st.dataframe(diff_frame(pv.diff), hide_index=True, width="stretch")
    if len(pv.impact):
        st.markdown("What the old and the new rules would have done over the stored history "
                    "(in-sample, not a prediction):")
        st.dataframe(impact_frame(pv.impact), hide_index=True, width="stretch")
    if pv.notes:
        with st.expander(f"Notes on the replay ({len(pv.notes)})"):
            for note in pv.notes:
                st.caption(note)
    if pv.significance:
        st.warning("Needs approval by a second person (approver role) before it takes effect: "
                   + "; ".join(pv.significance), icon=":material/how_to_reg:")
    else:
        st.info("Takes effect at once (not a significant change).", icon=":material/bolt:")
    reason = st.text_input("Reason (required, recorded in the audit trail)", key="thr.reason")
    if st.button("Confirm and apply", type="primary", key="thr.confirm", width="stretch"):
        user, _ = session_user()
        try:
            v = pol.apply(state.store(), POLICY, new_rules, base_version=base, user=user, reason=reason)
        except ConflictError as exc:
            st.error(f"Not applied. {exc}", icon=":material/sync_problem:")
            st.caption("Your edits are still on the page. Close this dialog, use 'Reload policy' to see "
                       "the latest version, then apply again.")
            return
        except StudioError as exc:
            st.error(str(exc))
            return
        state.after_write()
        _close()
        for k in (LOADED, CTX, DRAFT, SUGGESTION, "thr.reason"):   # reload the policy and the editor from it
            st.session_state.pop(k, None)
        st.session_state[FLASH] = (f"Created v{v.number}: " + (
            "waits for a second person's approval." if v.status == "pending_approval" else "it is in force."))
        st.rerun()


def show_policy_state(snap: dict, now: dict) -> None:
    """Warn when the policy changed since the page loaded it (apply would be refused), or note a version
    waiting for approval that an apply here would supersede."""
    if now["base"] != snap["base"]:
        st.warning(f"The policy changed since you loaded this page (now v{now['base']}, you loaded "
                   f"v{snap['base']}); applying will be refused until you reload.", icon=":material/sync_problem:")
        if st.button("Reload policy (discards your edits)", key="thr.reload"):
            loaded_policy(reload=True)
            st.session_state.pop(CTX, None)
            st.rerun()
    elif snap["active"] is not None and snap["base"] > snap["active"]:
        st.info(f"v{snap['base']} waits for approval; this page edits the version in force (v{snap['active']}) "
                f"and applying here supersedes v{snap['base']}.", icon=":material/pending:")


def show_suggestion_check(sug) -> None:
    """The held-out check of a suggested draft: predicted (fit period) vs measured (last part) alert rate."""
    if sug is None:
        return
    with st.expander("Held-out check of the suggested levels" + ("" if sug.sufficient else " (insufficient)"),
                     expanded=True):
        st.caption(f"Predicted from the fit period, measured on the last {HOLDOUT:.0%} of the history "
                   f"(from {sug.split:%Y-%m-%d %H:%M} UTC), for warning {sug.warning:g}"
                   + (f" / critical {sug.critical:g}" if sug.critical is not None else "")
                   + ", any level firing. Moving the sliders does not update this table.")
        st.dataframe(sug.rows(), hide_index=True, width="stretch")
        for line in sug.notes:
            st.caption(line)
