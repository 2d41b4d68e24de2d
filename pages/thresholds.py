"""Thresholds: replay a series' alert rule over its history, tune it with evidence, apply it as a new
policy version (preview, approval check, optimistic concurrency). Logic lives in ui/thresholds/."""

from functools import partial

import streamlit as st

from core.alerting.recommend import step_decimals
from core.alerting.recommend.strategies import PRESETS
from core.alerting.rules import COMPARATORS, MISSING_MODES, Rule
from core.errors import StudioError
from ui import state
from ui.session import session_user, write_note
from ui.thresholds import apply as ta
from ui.thresholds import editor as te
from ui.thresholds import view as tv

ss = st.session_state
st.title("Thresholds")
st.caption("Replay an alert rule over the stored history, drag a threshold and watch episodes, time in "
           "alert and caught incidents change; then apply it as a new policy version.")
ta.show_flash()

series = state.series_table()
series = series[series["points"] > 0]
if series.empty:
    st.info("No data yet: upload metric exports on the Data page first.", icon=":material/upload_file:")
    st.page_link("pages/data.py", label="Go to Data", icon=":material/upload_file:")
    st.stop()

snap = te.loaded_policy()
now = te.current_policy()
keys = series["key"].tolist()
ta.show_policy_state(snap, now)

key = st.selectbox("Series", keys, index=te.default_index(keys, snap["rules"]), key="thr.series",
                   help="Type to search. Defaults to the first series that has a rule in force.")
try:
    data = te.series_data(key)
except StudioError as exc:
    st.warning(str(exc))
    st.stop()

matches = te.matching_rules(snap["rules"], key)
draft = ss.get(te.DRAFT)
if matches:
    names = [r["name"] for r in matches]
    if ss.get("thr.rule") not in names:
        ss.pop("thr.rule", None)
    name = st.selectbox("Rule", names, key="thr.rule") if len(names) > 1 else names[0]
    base_rule, is_new = next(r for r in matches if r["name"] == name), False
    selected = Rule.from_dict(base_rule).matching(keys)
    where = f"v{snap['active']} (in force)" if snap["active"] else "the policy"
    st.caption(f"Rule **{name}** from {where} selects {len(selected)} stored series"
               + (": a change applies to all of them." if len(selected) > 1 else "."))
elif draft is not None and draft["series"] == key:
    base_rule, is_new = draft, True
    taken = [r["name"] for r in snap["rules"]]
    st.caption(f"New rule **{draft['name']}**: levels from the recommendation engine (strategies chosen on the "
               f"first {1 - te.HOLDOUT:.0%} of this series' history, labelled incidents and detected outages left "
               "out), on the slider grid. Pick another preset to suggest again.")
    st.selectbox("Suggestion preset", list(PRESETS), key=te.PRESET, on_change=te.on_preset, args=(data, taken))
    if ss.get(te.SUGGEST_ERROR):
        st.warning(f"Cannot suggest levels: {ss.pop(te.SUGGEST_ERROR)}")
    ta.show_check(ss.get(te.SUGGESTION), "Held-out check of the suggested levels",
                  "Moving the sliders does not update this check; use 'Check these levels' below.")
else:
    st.info("No rule in force matches this series.", icon=":material/rule:")
    a, b = st.columns([1, 2], vertical_alignment="bottom")
    preset = a.selectbox("Suggestion preset", list(PRESETS), key=te.PRESET,
                         index=list(PRESETS).index(te.DEFAULT_PRESET),
                         help="Conservative: fewer alerts; balanced: p99 and 3 warnings a week; aggressive: more.")
    if b.button("New rule for this series", icon=":material/add:", key="thr.new"):
        try:
            with st.spinner("Recommending levels..."):
                sug = te.draft_suggestion(data, preset)
        except StudioError as exc:
            st.warning(f"Cannot suggest levels: {exc}")
            st.stop()
        ss[te.DRAFT] = te.suggest_rule(data, [r["name"] for r in snap["rules"]], sug)
        ss[te.SUGGESTION] = sug
        ss.pop(te.CHECK, None)
        st.rerun()
    st.stop()


@st.fragment
def tune(key: str, data: te.SeriesData, base_rule: dict, is_new: bool, snap: dict, keys: list[str]) -> None:
    """The editor, the replay, the sweep, the heat map and Apply: a fragment, so moving a slider or
    picking a level reruns this part only (not the series listing and the rule lookup above)."""
    # ---------------------------------------------------------------- editor
    te.init_editor((key, base_rule["name"], is_new), base_rule, data)
    te.take_cell()                     # a heat-map cell picked on the last run fills the level and for
    K = te.KEYS
    c = st.columns([1, 1, 1, 1, 1, 1.3])
    c[0].selectbox("Comparator", COMPARATORS, key=K["comparator"], on_change=te.on_comparator, args=(data,))
    c[1].text_input("For", key=K["for"], help="Pending period before it fires, e.g. 5m, 1h30m")
    c[2].text_input("Keep firing for", key=K["keep_firing_for"], help="Keeps firing this long after it clears")
    c[3].number_input("Consecutive", min_value=1, step=1, key=K["consecutive"],
                      help="Breaching evaluations in a row before pending starts")
    c[4].number_input("Recovery", value=None, key=K["recovery"], placeholder="none",
                      help="Hysteresis: a firing alert resolves only past this value")
    c[5].selectbox("Missing data", MISSING_MODES, key=K["missing"],
                   help="A missing value never breaches (keep firing for can bridge a gap). nodata: also report "
                        "a gap once it lasts the export's lookback (10m, or the for period if longer), when "
                        "the exported NoData alert fires; keep_last: carry the last value for at most that "
                        "long; resolve: nothing more")
    values = te.editor_state()
    lo, hi, step = te.slider_spec(data.q, values["comparator"], [values["warning"], values["critical"]], data.unit)
    fmt = f"%.{step_decimals(step)}f"
    for level in ("warning", "critical"):
        a, b = st.columns([1, 6])
        on = a.checkbox(level.capitalize(), key=K[f"has_{level}"])
        b.slider(f"{level} threshold ({data.unit or 'value'})", lo, hi, step=step, format=fmt, key=K[level],
                 disabled=not on, label_visibility="collapsed")
    q = {k: f"{v:.4g}" for k, v in data.q.items()}
    st.caption(f"Slider range from raw-point percentiles ({data.n:,} points): median {q['p50']}, p99 {q['p99']}, "
               f"p99.9 {q['p99.9']}, max {q['max']}; widened to hold the current thresholds.")
    with st.expander("Change limits", icon=":material/tune:"):
        st.caption("Stored with the rule: what a recommendation may do to it. Levels stay within the bounds; one "
                   "apply moves a level at most the maximum change; a change that reverses the last one within the "
                   "stability period is held back. Empty fields use the defaults (20 % per apply, 7d).")
        lc = st.columns(4)
        lc[0].number_input("Minimum level", value=None, key=K["limit_min"], placeholder="none", format="%g")
        lc[1].number_input("Maximum level", value=None, key=K["limit_max"], placeholder="none", format="%g")
        lc[2].number_input("Max change per apply (%)", value=None, min_value=0.1, key=K["max_change_pct"],
                           placeholder="20 (default)", format="%g")
        lc[3].text_input("Stability period", key=K["stability"], placeholder="7d (default)",
                         help="No reversal of the last change within this period (oscillation guard), e.g. 3d")
    values = te.editor_state()
    try:
        rule = te.edited_rule(base_rule, values)
    except StudioError as exc:
        st.error(f"Not a valid rule: {exc}", icon=":material/error:")
        st.stop()
    if st.button("Check these levels on the held-out part", key="thr.check", icon=":material/fact_check:",
                 help="Replays these levels, comparator and for: the rate on the first 70 % predicts the last 30 %"):
        try:
            ss[te.CHECK] = ((key, rule.comparator, rule.warning, rule.critical, rule.for_s), te.check_levels(data, rule))
        except StudioError as exc:
            st.warning(f"Cannot check these levels: {exc}")
    got = ss.get(te.CHECK)
    if got and got[0] == (key, rule.comparator, rule.warning, rule.critical, rule.for_s):
        ta.show_check(got[1], "Held-out check of these levels",
                      "Given levels are not chosen on the fit period, so its rate is the prediction; if you set them "
                      "by looking at the whole history, the check is not out of sample.")

    # ---------------------------------------------------------------- replay
    levels = list(rule.triggers())
    if ss.get("thr.level") not in levels:
        ss["thr.level"] = levels[0]
    level = st.radio("Judge level", levels, horizontal=True, key="thr.level",
                     help="The cards and the sweep judge this level's episodes")
    try:
        view = tv.threshold_view(data, rule, level)
    except StudioError as exc:
        st.warning(f"Cannot replay: {exc}")
        st.stop()
    st.plotly_chart(view.figure, key="thr.chart")
    st.caption(tv.IN_SAMPLE)
    for col, (label, value, help_) in zip(st.columns(5), tv.summary_cards(view.summary), strict=True):
        col.metric(label, value, help=help_)
    for note in view.summary.get("notes", []):
        st.caption(note)

    left, right = st.columns([3, 2])
    with left:
        st.subheader("Episodes")
        when = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")
        st.dataframe(tv.episodes_table(view.replay), hide_index=True, height=300, width="stretch",
                     column_config={"start": when, "end": when, "peak": st.column_config.NumberColumn(format="%.4g")})
        if view.summary["nodata_episodes"]:
            st.caption(f"{view.summary['nodata_episodes']} no-data episode(s) ({tv.fmt_dur(view.summary['nodata_s'])} "
                       "without data) are not listed; they are grey in the chart's strip.")
    with right:
        st.subheader("Trade-off")
        current = rule.triggers()[level]
        try:
            sw = tv.sweep_for(data, rule, level, lo, hi)
            n_inc = len(data.incidents)
            st.plotly_chart(tv.sweep_figure(sw, current, data.unit, n_incidents=n_inc), key="thr.sweep")
            gate = tv.recall_gate(n_inc)
            st.caption("In-sample, over the stored history." + (f" {gate[0].upper()}{gate[1:]}." if gate else ""))
        except StudioError as exc:
            st.caption(f"Sweep unavailable: {exc}")

    # ---------------------------------------------------------------- level x for grid
    st.subheader(f"When would it have fired? {level.capitalize()} level x for")
    n_inc = len(data.incidents)
    options = tv.colour_options(n_inc)
    colour = (st.radio("Colour by", options, horizontal=True, key="thr.grid_colour",
                       help="Episodes per week and false alarms per week on a log scale")
              if len(options) > 1 else options[0])
    try:
        grid = tv.grid_for(data, rule, level, tv.grid_levels(data, rule.comparator, lo, hi, step),
                           view.replay.interval_s)
        st.plotly_chart(tv.grid_figure(grid, (rule.triggers()[level], rule.for_s), colour, data.unit,
                                       step_decimals(step)),
                        key=tv.GRID_KEY, on_select=partial(tv.on_grid_select, level), selection_mode="points")
        st.caption(f"Each cell replays this rule with that {level} level and that for (the other settings as "
                   f"edited), every {tv.fmt_dur(grid.interval_s)} over the stored history: in-sample. A longer for "
                   "buys silence at the cost of detection delay. Click a cell to put its level and for into the "
                   "editor above; the outlined cell is the current rule.")
    except StudioError as exc:
        st.caption(f"Grid unavailable: {exc}")

    # ---------------------------------------------------------------- apply
    user, user_error = session_user()
    note = write_note(user) or user_error
    unchanged = not is_new and not te.changed(base_rule, rule)
    if st.button("Apply...", type="primary", icon=":material/publish:", key="thr.apply",
                 disabled=bool(note) or unchanged):
        ss[te.DIALOG] = True
    if note:
        st.caption(f"Read-only: {note}")
    elif unchanged:
        st.caption("Move a threshold or change a setting to apply a new version.")
    if ss.get(te.DIALOG):
        ta.apply_dialog(te.replace_rule(snap["rules"], rule), snap["base"], rule.name)


tune(key, data, base_rule, is_new, snap, keys)
