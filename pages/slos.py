"""SLOs: define a service-level objective on a stored series (or label glob), see its compliance, error
budget and burn rate, and add its multi-window burn-rate alert rules to the policy. Logic in core.slo
and ui/slos.py."""

import streamlit as st

from core.errors import InsufficientDataError, StudioError
from core.slo import DEFAULT_MIN_EVENTS, SLO, WINDOWS_DAYS, budget_report
from ui import slos as us
from ui import state
from ui.session import session_user, write_note

st.title("SLOs")
st.caption("Error budgets and burn rates (Google SRE workbook): page at 14.4x over 1 h and 5 m, at 6x over 6 h "
           "and 30 m, ticket at 1x over 3 d and 6 h of a 30-day budget (scaled for 7 and 28 days).")
us.show_flash()

series = state.series_table()
if series.empty:
    st.info("No data yet: upload metric exports on the Data page first.", icon=":material/upload_file:")
    st.stop()
keys = series["key"].tolist()
snap = us.policy_snapshot()
saved = us.saved_slos(snap)

pick = st.selectbox("SLO", ["New SLO...", *saved], key="slo.pick",
                    help="SLOs are kept with the policy: one added with its burn-rate rules is in the policy "
                         "version's settings and comes back with a rollback.")
base = saved.get(pick)
c = st.columns([1.2, 1, 1, 1])
name = c[0].text_input("Name", value=base.name if base else "", key=f"slo.name.{pick}")
sli = c[1].radio("SLI", ["threshold", "ratio"], horizontal=True, key=f"slo.sli.{pick}",
                 index=0 if not base or base.sli == "threshold" else 1,
                 help="threshold: good and bad minutes of a series; ratio: errors / total of two count series")
target_pct = c[2].number_input("Target (%)", 50.0, 99.999, value=100 * (base.target if base else 0.999),
                               step=0.1, format="%.3f", key=f"slo.target.{pick}")
window = c[3].selectbox("Window (days)", WINDOWS_DAYS, key=f"slo.window.{pick}",
                        index=WINDOWS_DAYS.index(base.window_days) if base else WINDOWS_DAYS.index(30))
d = st.columns([2, 1, 1, 1])
if sli == "threshold":
    glob = d[0].text_input("Series key or label glob", value=base.series if base else keys[0], key=f"slo.series.{pick}",
                           help='e.g. latency_p95_ms{service="*"}: every matching series counts')
    comparator = d[1].selectbox("A minute is bad when value is", [">", ">=", "<", "<="], key=f"slo.cmp.{pick}",
                                index=[">", ">=", "<", "<="].index(base.comparator) if base else 0)
    threshold = d[2].number_input("Threshold", value=float(base.threshold) if base and base.threshold is not None
                                  else 500.0, key=f"slo.thr.{pick}")
    spec = {"series": glob, "comparator": comparator, "threshold": threshold}
else:
    err = d[0].selectbox("Errors series", keys, key=f"slo.err.{pick}",
                         index=keys.index(base.series) if base and base.series in keys else 0)
    tot = d[1].selectbox("Total series", keys, key=f"slo.tot.{pick}",
                         index=keys.index(base.total) if base and base.total in keys else 0)
    spec = {"series": err, "total": tot}
min_events = d[3].number_input("Minimum events per window", 1, value=base.min_events if base else DEFAULT_MIN_EVENTS,
                               key=f"slo.min.{pick}")
st.caption(f"Low-traffic guard: a window with fewer than {int(min_events)} events (minutes with data, or "
           "requests) gets no compliance verdict and no burn-rate alert; the chart leaves it blank.")

if not name.strip():
    st.info("Name the SLO to see its budget.", icon=":material/edit:")
    st.stop()
try:
    slo = SLO(name=name.strip(), sli=sli, target=round(target_pct / 100.0, 8), window_days=int(window),
              min_events=int(min_events), **spec)
    ev = us.slo_events(slo)
    rep = budget_report(slo, ev)
except (StudioError, InsufficientDataError) as exc:
    st.warning(str(exc), icon=":material/data_alert:")
    st.stop()

m = st.columns(4)
m[0].metric("Compliance", "insufficient" if rep.compliance is None else f"{rep.compliance:.4%}",
            help=f"good events / events over {rep.start:%Y-%m-%d %H:%M} to {rep.end:%Y-%m-%d %H:%M} UTC")
m[1].metric("Budget consumed", "-" if rep.consumed is None else f"{rep.consumed:.1%}",
            help=f"{rep.bad:g} bad of {rep.allowed_bad:.4g} allowed")
m[2].metric("Budget remaining", "-" if rep.remaining is None else f"{rep.remaining:.1%}")
m[3].metric("Events in window", f"{rep.events:,.0f}")
if not rep.sufficient:
    st.warning(f"Insufficient: {rep.reason}.", icon=":material/data_alert:")
elif rep.met is False:
    st.error("The error budget of this window is spent.", icon=":material/local_fire_department:")
if sli == "threshold" and rep.window_minutes_without_data:
    st.caption(f"{rep.window_minutes_without_data:,} minutes of the window have no data; they count as neither "
               "good nor bad.")

burn_fig, pairs = us.burn_view(slo)
st.plotly_chart(burn_fig, key="slo.chart")
st.dataframe(pairs, hide_index=True, width="stretch", key="slo.pairs")
st.caption("Each rule fires when the burn rate over both its long and its short window exceeds its factor; "
           "the episodes are its replay over the stored history (in-sample).")

user, _ = session_user()
note = write_note(user)
if st.button("Add burn-rate rules to the policy...", type="primary", key="slo.apply", disabled=note is not None,
             help=note):
    st.session_state[us.DIALOG] = True
if st.session_state.get(us.DIALOG):
    us.apply_dialog(slo)
