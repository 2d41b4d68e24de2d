"""Policies: the policy in force, history and diffs, rollback, approvals, scheduled changes, the audit
trail with its integrity check, and import/export. Widgets and layout only; logic is in core/."""

import pandas as pd
import streamlit as st

from core.errors import StudioError
from core.policy import versions as pol
from ui import notifications, outcomes, session, state
from ui import policies as pu
from ui import policy_tables as tables

st.title("Policies")
pu.show_flash()
user, user_error = session.session_user()
session.show_identity(user, user_error)
note = session.write_note(user)                      # None when the user may change policies
if note:
    st.info(f"Read-only: {note}. Everything is visible; write controls are disabled.", icon=":material/lock:")

store = state.store()
versions = pu.history()
by_number = {v.number: v for v in versions}
now = pd.Timestamp.now(tz="UTC")
active = pol.in_force(versions, now)                  # from the cached history: no database read per render
latest = versions[-1].number if versions else 0

# keyed: the browser remembers the open tab by this key, so a rerun (e.g. after a write) keeps it open
t_active, t_hist, t_appr, t_audit, t_io = st.tabs(
    ["Active policy", "History & diff", "Approvals & schedule", "Audit log", "Import / export"], key="pol.tabs")

with t_active:
    if active is None:
        st.info("No policy is in force yet. Import a policy YAML (Import / export tab); with no policy in "
                "force the first one takes effect without approval (bootstrap).", icon=":material/policy:")
    else:
        c = st.columns([1, 2, 3, 1])
        c[0].metric("Version", f"v{active.number}")
        c[1].metric("Author", active.author)
        c[2].metric("In force since", tables.fmt_ts(active.in_force_from))
        c[3].metric("Rules", len(active.rule_dicts))
        st.caption(f"Reason: {active.reason} | content hash {active.content_hash[:12]}")
        if latest > active.number:
            lv = by_number[latest]
            when = f", effective {tables.fmt_ts(lv.effective_at)}" if lv.effective_at else ""
            st.warning(f"v{latest} exists but is not in force ({lv.status}{when}).")
        st.dataframe(tables.rules_frame(active), hide_index=True, width="stretch")
        exprs = tables.expression_frame(active)
        if len(exprs):
            st.subheader("Imported expressions")
            st.caption("These rules compare a PromQL expression (kept for the export). Set the stored series "
                       "each one replays on.")
            edited = st.data_editor(exprs, hide_index=True, width="stretch", key="pol.expr_map",
                                    disabled=["rule", "promql"] if not note else True)
            changes = pu.series_changes(active, edited)
            if st.button("Save mapping...", key="pol.expr_save", disabled=bool(note) or not changes, help=note,
                         icon=":material/link:"):
                pu.request("map_series", changes=changes, base=latest)
        carried = active.meta.get("carried_rules") or []
        if carried:
            st.subheader("Not tunable (kept unchanged)")
            st.caption("Imported rules the studio does not tune; exported again as they came.")
            st.dataframe(tables.carried_frame(carried), hide_index=True, width="stretch")
    outcomes.render_triggers(active)

with t_hist:
    st.subheader("Version history")
    if not versions:
        st.info("No versions yet.")
    else:
        st.dataframe(tables.versions_frame(versions, active.number if active else None), hide_index=True,
                     width="stretch")
        st.subheader("Diff")
        nums = [v.number for v in versions]
        c1, c2 = st.columns(2)
        a = c1.selectbox("From (A)", nums, index=max(len(nums) - 2, 0), format_func=lambda n: f"v{n}",
                         key="pol.diff_a")
        b = c2.selectbox("To (B)", nums, index=len(nums) - 1, format_func=lambda n: f"v{n}", key="pol.diff_b")
        tables.show_diff(pol.diff(by_number[a], by_number[b]), f"v{a} -> v{b}: ")
        st.subheader("Roll back")
        targets = pol.rollback_targets(versions)
        if not targets:
            st.caption("No approved older version differs from the latest one; nothing to roll back to.")
        else:
            to = st.selectbox("Restore the rules of", targets, format_func=lambda n: f"v{n}: {by_number[n].reason}",
                              key="pol.rollback_to")
            if st.button("Roll back...", key="pol.rollback", icon=":material/history:", disabled=bool(note),
                         help=note or f"creates v{latest + 1} equal in content to v{to}; you confirm first"):
                pu.request("rollback", to=int(to), base=latest)
            st.caption(f"A rollback creates a new version (v{latest + 1}); history is never rewritten.")

with t_appr:
    st.subheader("Approvals queue")
    pending = [v for v in versions if v.status == "pending_approval"]
    if not pending:
        st.caption("No change is waiting for approval.")
    for v in pending:
        with st.container(border=True):
            st.markdown(f"**v{v.number}** by {v.author}, {tables.fmt_ts(v.created_at)}: {v.reason}")
            for why in v.significance:
                st.markdown(f"- {why}")
            why_a, why_r = pol.approval_blocker(user, v, store), pol.rejection_blocker(user, v)
            c1, c2 = st.columns(2)
            if c1.button("Approve...", key=f"pol.approve.{v.number}", disabled=why_a is not None, help=why_a,
                         icon=":material/check:"):
                pu.request("approve", number=v.number)
            if c2.button("Reject...", key=f"pol.reject.{v.number}", disabled=why_r is not None, help=why_r,
                         icon=":material/block:"):
                pu.request("reject", number=v.number)
            for why in dict.fromkeys(w for w in (why_a, why_r) if w):
                st.caption(f"Disabled: {why}.")
    st.subheader("Scheduled changes")
    sched = pol.scheduled(versions, now)
    if sched:
        st.dataframe(tables.versions_frame(sched, None), hide_index=True, width="stretch")
    else:
        st.caption("No change is scheduled for later.")

with t_audit:
    full = pu.audit_log()
    pu.show_integrity(len(full))
    c1, c2, c3 = st.columns(3)
    who = c1.selectbox("Actor", ["(all)", *sorted(full["actor"].unique())], key="pol.audit_actor")
    act = c2.selectbox("Action", ["(all)", *sorted(full["action"].unique())], key="pol.audit_action")
    days = c3.date_input("Dates (UTC)", value=(), key="pol.audit_dates")
    since, until = pu.date_bounds(days)
    shown = pu.audit_log(None if who == "(all)" else who, None if act == "(all)" else act, since, until)
    st.caption(f"{len(shown)} of {len(full)} entries, newest first.")
    st.dataframe(tables.audit_frame(shown), hide_index=True, width="stretch")
    notifications.show_log()
    st.caption("Backups of the whole database (policies, audit trail, data): `python -m core backup DIR` takes a "
               "consistent snapshot while the app runs; `python -m core restore DIR --yes` brings one back after "
               "checking its audit chain, and records the restore here (README: *Running the studio for a team*).")

with t_io:
    st.subheader("Import a policy")
    up = st.file_uploader("Policy YAML", type=["yaml", "yml"], disabled=bool(note), key="pol.import_file")
    pasted = st.text_area("...or paste policy YAML", disabled=bool(note), key="pol.import_text")
    text, name = (up.getvalue().decode("utf-8", "replace"), up.name) if up else (pasted, "pasted YAML")
    if text.strip():
        d, reasons, error = pu.import_preview(text, name)
        if error:
            st.error(f"Not importable: {error}", icon=":material/error:")
        else:
            tables.show_diff(d, "Against the version in force: ")
            for why in reasons:
                st.warning(f"Needs a second person's approval: {why}")
            if not reasons:
                st.caption("Takes effect at once (no significant change).")
            if st.button("Import...", key="pol.import", disabled=bool(note) or d.is_empty, help=note,
                         icon=":material/upload:"):
                pu.request("import", text=text, name=name, base=latest)
    st.subheader("Import deployed rules")
    st.caption("Prometheus rule files or Grafana alert rule exports: thresholds become tunable rules, "
               "everything else is kept unchanged and exported again. All files together make one version.")
    ups = st.file_uploader("Rule files", type=["yaml", "yml", "json"], accept_multiple_files=True,
                           disabled=bool(note), key="pol.rules_files")
    pasted_rules = st.text_area("...or paste one rule file", disabled=bool(note), key="pol.rules_text")
    c1, c2 = st.columns(2)
    rfmt = c1.selectbox("Format", ["auto", "prometheus", "grafana"], key="pol.rules_fmt")
    merge = c2.checkbox("Merge by rule name (keep the other rules)", key="pol.rules_merge")
    rfiles = [(f.name, f.getvalue().decode("utf-8", "replace")) for f in ups or []]
    if pasted_rules.strip():
        rfiles.append(("pasted rules", pasted_rules))
    if rfiles:
        plan, rd, rreasons, rerror = pu.rules_import_preview(rfiles, rfmt, merge)
        if rerror:
            st.error(f"Not importable: {rerror}", icon=":material/error:")
        else:
            st.markdown(f"The new version: {len(plan.rules)} tunable rules, {len(plan.carried)} kept unchanged "
                        "(not tunable).")
            tables.show_diff(rd, "Against the version in force: ")
            for n in plan.notes:
                st.caption(n)
            for why in rreasons:
                st.warning(f"Needs a second person's approval: {why}")
            if st.button("Import rules...", key="pol.rules_import", disabled=bool(note) or rd.is_empty, help=note,
                         icon=":material/upload:"):
                pu.request("import_rules", files=rfiles, fmt=rfmt, merge=merge, base=latest)
    st.subheader("Export")
    if versions:
        numbers = [v.number for v in reversed(versions)]
        in_force = (active or versions[-1]).number
        pu.follow_in_force("pol.export_v", numbers, in_force)
        n = st.selectbox("Version", numbers, format_func=lambda x: f"v{x}", key="pol.export_v")
        v = by_number[n]
        st.download_button("Policy YAML", pu.policy_text(v), file_name=f"{v.policy}-v{v.number}.yaml",
                           mime="application/yaml", icon=":material/download:", key="pol.dl_yaml")
        st.caption("Prometheus mapping: edit a selector to map a studio series to your PromQL (default: as is).")
        mapping = st.data_editor(tables.mapping_frame(v), hide_index=True, width="stretch", key="pol.mapping",
                                 disabled=["series"])
        scrape = st.number_input("Scrape interval (seconds)", 1.0, 3600.0, 60.0, key="pol.scrape",
                                 help="Also the rule group's evaluation interval, as the replay assumed.")
        try:
            prom = pu.prometheus_export(v, mapping, scrape)
            rules_name = f"{v.policy}-v{v.number}.rules.yml"
            st.download_button("Prometheus rules YAML", prom.to_yaml(), file_name=rules_name,
                               mime="application/yaml", icon=":material/download:", key="pol.dl_prom")
            if st.toggle("With promtool unit tests from the stored history", key="pol.with_tests",
                         help="A test file that pins the tuned levels and for: run it in CI with "
                              "promtool test rules (save both files in one folder)."):
                tests_text, tests_summary = pu.rule_tests(v, mapping, scrape, rules_name)
                st.download_button("promtool tests YAML", tests_text, file_name=f"{v.policy}-v{v.number}.test.yml",
                                   mime="application/yaml", icon=":material/download:", key="pol.dl_tests")
                st.caption(f"{tests_summary}. In CI: `promtool test rules {v.policy}-v{v.number}.test.yml`")
            for w in prom.warnings:
                st.warning(f"Prometheus will differ from the replay: {w}", icon=":material/warning:")
        except StudioError as exc:
            st.error(f"Cannot export Prometheus rules: {exc}")
    else:
        st.caption("Nothing to export yet.")

pu.show_pending()
