"""Thresholds page: the series data it tunes on (cached raw points, quantiles, incidents), the policy
version it loaded, and the rule editor's state (widget keys, defaults, the edited rule, suggestions).

Editing is optimistic: the page remembers the policy version it loaded (:func:`loaded_policy`) and
passes it to :func:`core.policy.versions.apply` as ``base_version``; if another version landed meanwhile
the Apply dialog shows the :class:`~core.errors.ConflictError` message and the edits stay on the page.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.alerting import recommend
from core.alerting.recommend import engine, snap, step_decimals
from core.alerting.recommend.engine import Recommendation
from core.alerting.recommend.strategies import PRESETS
from core.alerting.rules import KNOWN_UNITS, Rule, format_duration
from core.data.frame import series_values
from core.errors import InsufficientDataError, StudioError
from core.policy import versions as pol
from ui import state
from ui.charts import chart_points
from ui.policy_apply import current_policy, rule_name

QUANTILES = {"min": 0.0, "p0.1": 0.001, "p1": 0.01, "p50": 0.5, "p99": 0.99, "p99.9": 0.999, "max": 1.0}


#: share of the history held out (at the end) to check a suggested rule's predicted alert rate
HOLDOUT = 0.3


# session-state keys
LOADED, CTX, DRAFT, DIALOG, FLASH = "thr.loaded", "thr.ctx", "thr.draft", "thr.dialog", "thr.flash"


SUGGESTION = "thr.suggestion"
#: the suggestion's preset (widget key), the last suggestion error, the edited levels' held-out check
PRESET, SUGGEST_ERROR, CHECK = "thr.preset", "thr.suggest_error", "thr.levels_check"
DEFAULT_PRESET = "balanced"


#: a heat-map cell picked on the last run, ``(level name, level value, for seconds)``, applied to the
#: editor by :func:`take_cell` before its widgets are drawn
CELL = "thr.cell"


#: editor field -> widget key
KEYS = {"comparator": "thr.cmp", "has_warning": "thr.has_w", "warning": "thr.w", "has_critical": "thr.has_c",
        "critical": "thr.c", "for": "thr.for", "keep_firing_for": "thr.keep", "recovery": "thr.rec",
        "consecutive": "thr.consec", "missing": "thr.missing", "limit_min": "thr.lim_min", "limit_max": "thr.lim_max",
        "max_change_pct": "thr.lim_change", "stability": "thr.lim_stab"}


_EDITED = ("comparator", "warning", "critical", "for", "keep_firing_for", "recovery", "consecutive", "missing",
           "limits")


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


def loaded_policy(reload: bool = False) -> dict[str, Any]:
    """The policy snapshot this session loaded (kept until an apply or an explicit reload): edits are
    based on it and ``base`` is the ``base_version`` passed to :func:`core.policy.versions.apply`."""
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
    :func:`core.alerting.recommend.fit_levels` fits (p99 / p99.9 for ``>``-like comparators, p1 / p0.1 for
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


def draft_suggestion(data: SeriesData, preset: str = DEFAULT_PRESET) -> Recommendation:
    """The recommendation engine's levels for a new ``>`` rule (:func:`core.alerting.recommend.engine.recommend`
    with ``preset``, fit on the first 70 % of the series' history, labelled incidents and detected
    outages left out, checked on the last 30 %). Fixed levels only (the seasonal strategy's hourly
    levels cannot be set in this editor). Raises :class:`InsufficientDataError` with the engine's reason."""
    names = tuple(n for n in PRESETS[preset].strategies if n != "seasonal")
    rec = engine.recommend(data.values.rename(data.key), comparator=">", preset=preset, incidents=data.incidents,
                           train_fraction=1 - HOLDOUT, strategies=names)
    if rec.insufficient:
        raise InsufficientDataError(rec.insufficient)
    return rec


def suggest_rule(data: SeriesData, taken: Iterable[str] = (), suggestion: Recommendation | None = None,
                 preset: str = DEFAULT_PRESET) -> dict[str, Any]:
    """A new ``>`` rule dict for a series from :func:`draft_suggestion` (computed when not given): the
    recommended levels on the slider grid, the recommendation's ``for``, ``missing: nodata``, and a
    rationale quoting the prediction and the held-out check."""
    rec = suggestion if suggestion is not None else draft_suggestion(data, preset)
    step = slider_spec(data.q, ">", (), data.unit)[2]
    d = recommend.as_rule_dict(rec, rule_name(data.key, taken), data.key, step=step)
    if data.unit:
        try:
            Rule.from_dict({**d, "unit": data.unit})
            d["unit"] = data.unit
        except StudioError:  # a unit name (or bound) the rule schema does not accept: leave it out
            pass
    return d


def check_levels(data: SeriesData, rule: Rule) -> Recommendation:
    """The held-out check of the edited levels (the engine's ``levels=`` path): the rule's levels,
    comparator and ``for`` replayed over the history, the fit-period rate as the prediction (with
    its interval) and the last 30 % as the measurement, plus the risk. Other settings (keep firing
    for, recovery, consecutive, missing) are not part of the check."""
    p = dataclasses.replace(PRESETS[DEFAULT_PRESET], for_s=rule.for_s)
    return engine.recommend(data.values.rename(data.key), comparator=rule.comparator, preset=p,
                            incidents=data.incidents, train_fraction=1 - HOLDOUT,
                            levels=(rule.warning, rule.critical), exclude_outages=False)


def on_preset(data: SeriesData, taken: Iterable[str]) -> None:
    """Widget callback: a new preset re-suggests the draft rule (its levels, ``for`` and check)."""
    ss = st.session_state
    try:
        rec = draft_suggestion(data, ss[PRESET])
    except StudioError as exc:
        ss[SUGGEST_ERROR] = str(exc)
        return
    ss[DRAFT], ss[SUGGESTION] = suggest_rule(data, taken, rec), rec
    ss.pop(CTX, None)
    ss.pop(CHECK, None)


# ---------------------------------------------------------------------------- editor state
def editor_values(rule: Mapping[str, Any], data: SeriesData) -> dict[str, Any]:
    """Widget values (by editor field) showing a rule dict; an absent level gets its fitted default
    (:func:`direction_defaults`)."""
    cmp = rule.get("comparator", ">")
    dw, dc = direction_defaults(data, cmp)
    lim = dict(rule.get("limits") or {})
    stab = lim.get("stability", lim.get("stability_s"))
    return {"limit_min": lim.get("min"), "limit_max": lim.get("max"),
            "max_change_pct": None if lim.get("max_change") is None else round(100.0 * float(lim["max_change"]), 6),
            "stability": "" if stab is None else (format_duration(stab) if isinstance(stab, (int, float)) else str(stab)),
            "comparator": cmp, "has_warning": rule.get("warning") is not None,
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


def take_cell() -> tuple[str, float, float] | None:
    """Fill the editor from a heat-map cell picked on the last run (:data:`CELL`), if any: its level
    goes to that level's slider (switched on) and its pending period to ``for``; the other settings
    stay. Call after :func:`init_editor` and before the widgets are drawn. Returns the cell applied."""
    ss = st.session_state
    cell = ss.pop(CELL, None)
    if cell is None:
        return None
    level, value, for_s = cell
    ss[KEYS[level]] = float(value)
    ss[KEYS[f"has_{level}"]] = True
    ss[KEYS["for"]] = format_duration(float(for_s))
    return str(level), float(value), float(for_s)


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
    (:func:`core.alerting.recommend.revise_rationale`: it would describe levels the rule no longer has).

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
    limits = {"min": values.get("limit_min"), "max": values.get("limit_max"),
              "max_change": None if values.get("max_change_pct") is None else float(values["max_change_pct"]) / 100.0,
              "stability": (values.get("stability") or "").strip() or None}
    limits = {k: v for k, v in limits.items() if v is not None}
    if limits:
        d["limits"] = limits
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
