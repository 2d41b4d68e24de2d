"""Pieces of the Policies page: cached policy and audit queries, the audit integrity banner, export
helpers, and confirm dialogs for rollback, approve, reject and import.

Dialogs follow :mod:`ui.dialogs`: a button calls :func:`request` and the page calls
:func:`show_pending` once per run, so a dialog stays open across reruns until it is answered or
dismissed. A dialog writes through :mod:`core.policy.versions` as the session user, then clears the query
cache (``ui.state.after_write``) and queues a toast plus a success line for the next run.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.data.store import audit
from core.errors import StudioError
from core.policy import versions as pol
from ui import state, widgets
from ui.pending import PendingDialogs
from ui.policy_tables import fmt_ts, show_diff
from ui.session import session_user

POLICY = pol.DEFAULT_POLICY


PENDING = "policy_ui.pending"


FLASH = "policy_ui.flash"


EXPORT_FOR = "policy_ui.export_for"   # the version in force when the export selectbox was last reset


# ---------------------------------------------------------------------------- cached queries
@st.cache_data(show_spinner=False)
def _history(path: str, policy: str) -> list[pol.PolicyVersion]:
    return pol.history(state.store(), policy)


def history(policy: str = POLICY) -> list[pol.PolicyVersion]:
    """Every version, oldest first (cached until the next write)."""
    return _history(state.db_path(), policy)


@st.cache_data(show_spinner=False)
def _audit(path: str, actor: str | None, action: str | None, since: Any, until: Any) -> pd.DataFrame:
    return audit.list_audit(state.store(), actor=actor, action=action, since=since, until=until)


def audit_log(actor: str | None = None, action: str | None = None, since: Any = None,
              until: Any = None) -> pd.DataFrame:
    """Audit entries matching the filters, newest first (cached until the next write)."""
    return _audit(state.db_path(), actor, action, since, until)


@st.cache_data(show_spinner=False)
def _verify(path: str) -> audit.Integrity:
    return audit.check_integrity(state.store())


def verify() -> tuple[bool, int | None, str]:
    """:func:`core.data.store.audit.verify_audit` of the app's database (cached until the next write)."""
    r = integrity()
    return r.ok, r.seq, r.message


def integrity() -> audit.Integrity:
    """:func:`core.data.store.audit.check_integrity` of the app's database (cached until the next write)."""
    return _verify(state.db_path())


#: What to do when the check fails, per status.
INTEGRITY_ADVICE = {
    "broken": ("Treat the trail as evidence of tampering or of a restored/replaced database file: keep a copy of "
               "the database, the key and the anchor file as they are now, compare with your latest backup "
               "(`python -m core backup` manifests and exported policy files carry the audit head), and find "
               "out who had write access to the file. Do not write further changes until it is understood."),
    "unverifiable": ("The trail cannot be checked here: restore the audit key this database was written with "
                     "(the key file, or STUDIO_AUDIT_KEY) and reload. An unsealed old trail is sealed the "
                     "next time the database is opened for writing."),
}


def show_integrity(entries: int) -> None:
    """Green when the keyed chain verifies and matches the anchor (with the anchor's time); red naming the
    entry at fault, or amber when it cannot be checked, each with what to do."""
    r = integrity()
    anchored = (f" Last anchored entry {r.anchor_seq} at {r.anchor_time} ({r.anchor_path})."
                if r.anchor_seq else " No anchor file yet." if r.anchor_path else "")
    if r.ok:
        note = f" Note: {r.note}." if r.note else ""
        st.success(f"Audit chain intact, {entries} entr{'y' if entries == 1 else 'ies'}. Keyed chain verified, "
                   f"head {(r.head or audit.GENESIS)[:12]}...{anchored}{note}",
                   icon=":material/verified:")
    elif r.status == "unverifiable":
        st.warning(f"Audit chain unverifiable: {r.message}.{anchored}\n\n{INTEGRITY_ADVICE['unverifiable']}",
                   icon=":material/key_off:")
    else:
        where = f" at entry #{r.seq}" if r.seq else ""
        st.error(f"Audit chain broken{where}: {r.message}.{anchored}\n\n{INTEGRITY_ADVICE['broken']}",
                 icon=":material/gpp_bad:")


# ---------------------------------------------------------------------------- dialogs
_PENDING = PendingDialogs(PENDING)


request = _PENDING.request


_clear = _PENDING.clear


show_pending = _PENDING.show


def show_flash() -> None:
    """Toast and success line for the write made in the previous run, if any. Call near the top.

    Both go into one container that is created on every run, flash or not, so the elements after it
    keep their place in the page (a success line that comes and goes would shift them, and the
    browser would remount what follows: unkeyed tabs reopen on their first tab, tables lose their
    scroll and sort)."""
    widgets.show_flash(FLASH, toast=True)


def _confirm(label: str, write: Any, message: Any, default_reason: str = "") -> None:
    """Reason box and Confirm/Cancel; on confirm run ``write(user, reason)`` and report ``message(v)``."""
    reason = st.text_input("Reason (recorded in the audit trail)", value=default_reason, key="pdlg.reason")
    c1, c2 = st.columns(2)
    yes = c1.button(label, type="primary", key="pdlg.yes", width="stretch")
    if c2.button("Cancel", key="pdlg.no", width="stretch"):
        _clear()
        st.rerun()
    if yes:
        user, _ = session_user()
        try:
            v = write(user, reason)
        except StudioError as exc:  # conflict, permission, validation: say so, keep the dialog open
            st.error(str(exc))
            return
        _clear()
        state.after_write()
        st.session_state[FLASH] = message(v)
        st.rerun()


def _status_msg(v: pol.PolicyVersion) -> str:
    if v.status == "pending_approval":
        return f"waits for a second person's approval ({'; '.join(v.significance)})"
    return "is in force" if v.effective_at is None else f"takes effect {fmt_ts(v.effective_at)}"


@_PENDING.register("rollback")
@st.dialog("Roll back", icon=":material/history:", on_dismiss=_clear, width="large")
def rollback_dialog(to: int, base: int) -> None:
    store = state.store()
    target = pol.get_version(store, POLICY, to)
    active = pol.active_version(store, POLICY)
    reasons = pol.rollback_reasons(store, POLICY, to)
    if reasons:
        st.markdown(f"Creates **v{base + 1}** with the rules of **v{to}** ({target.reason}). History is kept. "
                    "It goes back past the version in force before the current one and changes rules in a "
                    "significant way, so it **needs a second person's approval** before it takes effect:")
        for why in reasons:
            st.markdown(f"- {why}")
    else:
        st.markdown(f"Creates **v{base + 1}** with the rules of **v{to}** ({target.reason}). History is kept; "
                    "it takes effect at once (it restores the rules in force before the current version, or "
                    "changes nothing significant).")
    show_diff(pol.diff(active, target), f"Against the version in force (v{active.number if active else '-'}): ")

    def done(v: pol.PolicyVersion) -> str:
        tail = "" if v.status == "approved" else f" It {_status_msg(v)}."
        return f"Rolled back: v{v.number} has the rules of v{to}.{tail}"

    _confirm("Roll back", lambda u, r: pol.rollback(store, POLICY, to, u, r, base), done)


def _decision_body(number: int) -> pol.PolicyVersion:
    store = state.store()
    v = pol.get_version(store, POLICY, number)
    st.markdown(f"**v{number}** by {v.author}, {fmt_ts(v.created_at)}: {v.reason}")
    for why in v.significance:
        st.markdown(f"- needs approval: {why}")
    show_diff(pol.diff(pol.active_version(store, POLICY), v), "Against the version in force: ")
    return v


@_PENDING.register("approve")
@st.dialog("Approve change", icon=":material/check:", on_dismiss=_clear, width="large")
def approve_dialog(number: int) -> None:
    _decision_body(number)
    _confirm("Approve", lambda u, r: pol.approve(state.store(), number, u, r, policy=POLICY),
             lambda v: f"Approved v{v.number}; it {_status_msg(v)}.")


@_PENDING.register("reject")
@st.dialog("Reject change", icon=":material/block:", on_dismiss=_clear, width="large")
def reject_dialog(number: int) -> None:
    _decision_body(number)
    _confirm("Reject", lambda u, r: pol.reject(state.store(), number, u, r, policy=POLICY),
             lambda v: f"Rejected v{v.number}; it will never come into force.")


@_PENDING.register("import")
@st.dialog("Import policy", icon=":material/upload:", on_dismiss=_clear, width="large")
def import_dialog(text: str, name: str, base: int) -> None:
    st.markdown(f"Creates **v{base + 1}** from `{name}`.")
    _confirm("Import", lambda u, r: pol.import_yaml(state.store(), text, user=u, reason=r, base_version=base,
                                                    policy=POLICY, file=name),
             lambda v: f"Imported {name} as v{v.number}; it {_status_msg(v)}.", f"import {name}")


def import_preview(text: str, name: str | None = None) -> tuple[pol.PolicyDiff | None, list[str], str | None]:
    """``(diff against the version in force, reasons it needs approval, error)`` of a policy YAML text;
    ``name`` (the file's) starts an error message."""
    from core.policy.policy_yaml import policy_from_yaml

    try:
        rules, _ = policy_from_yaml(text, source=name)
        new = pol.normalise_rules(rules)
    except StudioError as exc:
        return None, [], str(exc)
    store = state.store()
    return pol.diff(pol.active_version(store, POLICY), new), pol.approval_reasons(store, POLICY, new), None


def prometheus_export(version: pol.PolicyVersion, mapping: pd.DataFrame, scrape_interval_s: float) -> Any:
    """:class:`core.alerting.prometheus.PromExport` of ``version`` with the edited ``series -> selector`` table
    (``.to_yaml()`` is the file; ``.warnings`` what Prometheus will do differently from the replay)."""
    from core.alerting.prometheus import PromMapping, prometheus_export

    sel = {str(s): str(q).strip() for s, q in zip(mapping["series"], mapping["selector"], strict=True)
           if isinstance(s, str) and s and isinstance(q, str) and q.strip()}
    m = PromMapping(selectors=sel, scrape_interval_s=float(scrape_interval_s))
    return prometheus_export(version.rules(), m, policy=version.policy, version=version.number,
                             carried=version.meta.get("carried_rules") or ())


@st.cache_data(show_spinner="Replaying the stored history into promtool tests...", max_entries=8)
def _rule_tests(path: str, policy: str, number: int, selectors: tuple[tuple[str, str], ...], scrape_s: float,
                rules_file: str) -> tuple[str, str]:
    from core.alerting.prometheus import PromMapping
    from core.policy.rule_tests import summary, version_rule_tests

    store = state.store()
    m = PromMapping(selectors=dict(selectors), scrape_interval_s=scrape_s)
    rt = version_rule_tests(store, pol.get_version(store, policy, number), m, rules_file=rules_file)
    return rt.text, summary(rt)


def rule_tests(version: pol.PolicyVersion, mapping: pd.DataFrame, scrape_interval_s: float,
               rules_file: str) -> tuple[str, str]:
    """``(promtool test file, one-line summary)`` pinning ``version``'s Prometheus export (with the edited
    mapping) to its replay on the stored history; ``rules_file`` is the rules file's name beside it
    (cached until the next write)."""
    sel = tuple(sorted((str(s), str(q).strip()) for s, q in zip(mapping["series"], mapping["selector"], strict=True)
                       if isinstance(s, str) and s and isinstance(q, str) and q.strip()))
    return _rule_tests(state.db_path(), version.policy, version.number, sel, float(scrape_interval_s), rules_file)


def rules_import_preview(files: list[tuple[str, str]], fmt: str, merge: bool
                         ) -> tuple[Any, pol.PolicyDiff | None, list[str], str | None]:
    """``(plan, diff against the version in force, reasons it needs approval, error)`` of deployed rule
    files (Prometheus rule files, Grafana alert exports); see :func:`core.policy.versions.plan_rule_import`."""
    from core.alerting.rule_import import import_rule_files

    store = state.store()
    try:
        plan = pol.plan_rule_import(store, import_rule_files(files, fmt), policy=POLICY, merge=merge)
        new = pol.normalise_rules(plan.rules)
    except StudioError as exc:
        return None, None, [], str(exc)
    return plan, pol.diff(pol.active_version(store, POLICY), new), pol.approval_reasons(store, POLICY, new), None


@_PENDING.register("import_rules")
@st.dialog("Import deployed rules", icon=":material/upload:", on_dismiss=_clear, width="large")
def import_rules_dialog(files: list, fmt: str, merge: bool, base: int) -> None:
    names = ", ".join(n for n, _ in files)
    how = "merged by rule name into the policy" if merge else "replacing the policy's rules"
    st.markdown(f"Creates **v{base + 1}** from `{names}`, {how}.")

    def write(u: Any, r: str) -> pol.PolicyVersion:
        from core.alerting.rule_import import import_rule_files

        plan = pol.plan_rule_import(state.store(), import_rule_files([tuple(f) for f in files], fmt),
                                    policy=POLICY, merge=merge)
        return pol.import_rules(state.store(), plan, user=u, reason=r, base_version=base)

    _confirm("Import", write, lambda v: f"Imported {names} as v{v.number}; it {_status_msg(v)}.",
             f"import-rules {names}")


def series_changes(version: pol.PolicyVersion, edited: pd.DataFrame) -> dict[str, str]:
    """Rule name -> new ``series`` from the edited expression table (only real changes)."""
    now = {r.name: r.series for r in version.rules()}
    return {str(n): str(s).strip() for n, s in zip(edited["rule"], edited["series"], strict=True)
            if isinstance(s, str) and s.strip() and now.get(str(n)) not in (None, s.strip())}


@_PENDING.register("map_series")
@st.dialog("Map imported expressions to series", icon=":material/link:", on_dismiss=_clear, width="large")
def map_series_dialog(changes: dict, base: int) -> None:
    store = state.store()
    active = pol.active_version(store, POLICY)
    new = [dict(r, series=changes.get(r["name"], r["series"])) for r in active.rule_dicts]
    st.markdown(f"Creates **v{base + 1}**: each rule below replays on the stored series given; its PromQL "
                "expression is kept for the export.")
    show_diff(pol.diff(active, new), "Against the version in force: ")
    _confirm("Save", lambda u, r: pol.apply(store, POLICY, new, base_version=base, user=u, reason=r),
             lambda v: f"Saved the mapping as v{v.number}; it {_status_msg(v)}.", "map imported expressions")


def prometheus_text(version: pol.PolicyVersion, mapping: pd.DataFrame, scrape_interval_s: float) -> str:
    """Prometheus rules YAML of ``version`` with the edited ``series -> selector`` table."""
    return audit.stamp_head(state.store(), prometheus_export(version, mapping, scrape_interval_s).to_yaml())


def policy_text(version: pol.PolicyVersion) -> str:
    """The version as a studio policy YAML file."""
    from core.policy.policy_yaml import policy_to_yaml

    return audit.stamp_head(state.store(), policy_to_yaml(version.rules(), {**version.meta,
                                                                       "policy": version.policy}))


def date_bounds(days: object) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """A ``st.date_input`` range as inclusive UTC bounds (whole days); ``(None, None)`` when empty."""
    if not isinstance(days, (tuple, list)) or len(days) < 1:
        return None, None
    since = pd.Timestamp(days[0], tz="UTC")
    until = pd.Timestamp(days[-1], tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return since, until


def follow_in_force(key: str, numbers: list[int], in_force: int) -> None:
    """Make the version selectbox ``key`` follow the version in force: whenever that changes (a write here
    or on another page) select it again; in between, the user's choice stands. Set through session state
    so the browser's copy of the widget is replaced too."""
    if st.session_state.get(EXPORT_FOR) != in_force or st.session_state.get(key) not in numbers:
        st.session_state[key] = in_force
        st.session_state[EXPORT_FOR] = in_force
