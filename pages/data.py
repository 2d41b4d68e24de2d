"""Data: upload metric exports and incidents, check their quality, explore a series, delete."""

import streamlit as st

from core.data.ingest import FORMATS
from core.fmt import fmt_duration, fmt_ts
from ui import dialogs, state
from ui.charts import series_figure
from ui.widgets import (
    DEFAULT_RANGE,
    TIME_RANGES,
    flush_toast,
    gaps_in_window,
    import_files,
    import_incident_file,
    incident_label,
    preview_file,
    show_import_results,
    show_preview,
    show_quality_table,
    table_height,
    window_start,
)

RESULTS, INC_RESULT, GEN = "data.import_results", "data.incident_result", "data.uploader_gen"

st.title("Data")
flush_toast()
series = state.series_table()
gen = st.session_state.setdefault(GEN, 0)
NO_DATA = "No data yet: upload metric exports in the Upload tab."
editable = state.can_edit()
if not editable:
    st.caption("Read-only: " + (state.identity_error()
                                or f"{state.actor()} lacks the 'editor' role needed to import or delete data."))

t_upload, t_quality, t_explore, t_uploads = st.tabs(["Upload", "Quality", "Series explorer", "Uploads"])

with t_upload:
    st.subheader("Metric exports")
    left, right = st.columns([1, 3])
    fmt = left.selectbox("Format", ["auto", *FORMATS], key="data.format",
                         help="'auto' detects the format from the file's content; pick one to force it.")
    files = right.file_uploader("Metric files (CSV, JSON or text)", type=["csv", "json", "txt"],
                             accept_multiple_files=True, key=f"data.files.{gen}")
    if files:
        st.caption("Check each file's format and first points, then import. Nothing is stored yet.")
        for f in files:
            with st.expander(f"Preview: {f.name}", expanded=len(files) <= 2):
                show_preview(f.name, preview_file(f.getvalue(), f.name, fmt))
        if st.button(f"Import {len(files)} file(s)", type="primary", icon=":material/upload:", key="data.import",
                     disabled=not editable):
            refusal = state.edit_refusal(f"import {len(files)} file(s)")  # roles read again at the click
            if refusal:
                st.error(refusal, icon=":material/block:")
            else:
                bar = st.progress(0.0, text="Importing...")
                results = import_files(files, fmt, state.actor(),
                                       progress=lambda i, n, name: bar.progress(i / n, text=f"{name} ({i}/{n})"))
                st.session_state[RESULTS] = results
                st.session_state[GEN] = gen + 1  # a fresh uploader: the imported files are cleared
                st.rerun()
    if st.session_state.get(RESULTS):
        st.markdown("**Last import**")
        show_import_results(st.session_state[RESULTS])

    st.subheader("Incidents")
    st.caption("Known incident windows, used to score rules: a CSV with columns series, start, end "
               "(optional kind, note; empty series = every series) or a NAB windows.json.")
    inc_file = st.file_uploader("Incident file", type=["csv", "json"], key=f"data.incidents.{gen}")
    if inc_file is not None and st.button("Import incidents", icon=":material/upload:", key="data.import_inc",
                                             disabled=not editable):
        refusal = state.edit_refusal(f"import incidents from {inc_file.name}")
        if refusal:
            st.error(refusal, icon=":material/block:")
        else:
            st.session_state[INC_RESULT] = import_incident_file(inc_file, state.actor())
            st.session_state[GEN] = gen + 1
            st.rerun()
    r = st.session_state.get(INC_RESULT)
    if r is not None:
        (st.error if not r.ok else st.info if r.is_noop else st.success)(
            r.message if r.ok else f"{r.where}: {r.message}")
    inc_all = state.incidents()
    if len(inc_all):
        st.dataframe(inc_all, hide_index=True, width="stretch", height=table_height(len(inc_all), 6))
        labels = {int(r["id"]): incident_label(r) for _, r in inc_all.iterrows()}  # one per window
        pick = st.multiselect("Incident windows to delete", list(labels), format_func=labels.get,
                              key="data.inc_pick", disabled=not editable)
        if st.button(f"Delete {len(pick)} incident window(s)...", icon=":material/delete:", key="data.del_inc",
                     disabled=not editable or not pick):
            dialogs.request("delete_incidents", ids=list(pick), labels=[labels[i] for i in pick],
                            clear_key="data.inc_pick")

with t_quality:
    if series.empty:
        st.info(NO_DATA, icon=":material/inbox:")
    else:
        q = state.quality()
        if q is None:
            st.info("The data-quality report is not available in this build.")
        elif len(q):
            st.caption("One row per series, worst first. Grades need enough points: too little data is "
                       "graded 'insufficient' rather than given a confident score.")
            show_quality_table(q.sort_values("score", na_position="first", kind="stable"), max_rows=14)

with t_explore:
    if series.empty:
        st.info(NO_DATA, icon=":material/inbox:")
    else:
        key = st.selectbox("Series", series["key"].tolist(), key="data.series")
        span = st.segmented_control("Time range", list(TIME_RANGES), default=DEFAULT_RANGE, required=True,
                                    key="data.range", help="Windows end at the series' last point.")
        meta = series.loc[series["key"] == key].iloc[0]
        start = window_start(meta["last_ts"], span)
        shown_from = meta["first_ts"] if start is None else max(start, meta["first_ts"])
        pts = state.points(key, start)
        unit = meta["unit"] if isinstance(meta["unit"], str) else None
        st.plotly_chart(series_figure(pts, state.incidents(key, start), title=key, unit=unit,
                                      x_range=None if start is None else (shown_from, meta["last_ts"])), width="stretch")
        st.caption(f"{len(pts):,} points ({int(pts['value'].isna().sum()):,} missing), "
                   f"{fmt_ts(shown_from)} to {fmt_ts(meta['last_ts'])}. "
                   "Line breaks mark gaps; red bands are incidents. Long series are drawn with each time "
                   "bucket's min and max.")
        gaps = gaps_in_window(state.gaps(key), start)
        if gaps is not None:
            st.markdown(f"**Gaps** ({len(gaps)})")
            if len(gaps):
                show = gaps.assign(duration=gaps["duration_s"].map(fmt_duration))
                st.dataframe(show, hide_index=True, width="stretch", height=table_height(len(show)))
        inc = state.incidents(key)
        own = int((inc["series"] == key).sum()) if len(inc) else 0
        if st.button("Delete this series...", icon=":material/delete:", key="data.del_series", disabled=not editable):
            dialogs.request("delete_series", key=key, points=int(meta["points"]), own_incidents=own)

with t_uploads:
    ups = state.uploads()
    if ups.empty:
        st.info("No uploads yet." if series.empty else "No uploads recorded.", icon=":material/inbox:")
    else:
        cols = ["id", "name", "format", "rows", "accepted", "rejected", "inserted", "updated", "unchanged",
                "series_count", "actor", "created_at"]
        st.dataframe(ups[[c for c in cols if c in ups.columns]], hide_index=True, width="stretch")
        names = dict(zip(ups["id"], ups["name"], strict=True))
        pick = st.selectbox("Upload", list(names), format_func=lambda i: f"#{i} {names[i]}", key="data.upload")
        if st.button("Delete this upload...", icon=":material/delete:", key="data.del_upload", disabled=not editable):
            row = ups.loc[ups["id"] == pick].iloc[0]
            dialogs.request("delete_upload", upload_id=int(pick), name=str(row["name"]),
                            accepted=int(row["accepted"]))

dialogs.show_pending()
