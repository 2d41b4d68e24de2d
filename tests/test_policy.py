"""Versioned policies: optimistic concurrency, approvals, scheduling, rollback, diff, preview, CLI."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pandas as pd
import pytest

from core.alerting.rules import Rule
from core.data.store import Store, audit
from core.errors import ConflictError, NotFound, PermissionDenied, ValidationError
from core.policy import versions as pol
from core.policy.identity import User

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
# Local-mode users (not authenticated), each on their own OS account.
ED = User("ed", "ed@example.com", frozenset({"viewer", "editor"}), os_account="ed-os")
ED2 = User("eve", "eve@example.com", frozenset({"viewer", "editor"}), os_account="eve-os")
AP = User("ann", "ann@example.com", frozenset({"viewer", "approver"}), os_account="ann-os")
BOTH = User("bo", "bo@example.com", frozenset({"viewer", "editor", "approver"}), os_account="bo-os")
VIEWER = User("vic", None, frozenset({"viewer"}), os_account="vic-os")


def R(name="A", warning=80.0, critical=None, series='m{h="a"}', **kw) -> Rule:
    return Rule(name=name, series=series, warning=warning, critical=critical, **kw)


@pytest.fixture
def s(store):
    audit.install(store)
    return store


def _v1(s, rules=None):
    return pol.apply(s, "default", rules or [R("A", 80.0), R("B", 50.0, series='m{h="b"}')], base_version=0,
                     user=ED, reason="initial", now=T0)


def _n_audit(s) -> int:
    return len(audit.list_audit(s))


# ---------------------------------------------------------------------------------------- basics
def test_first_version_is_active_with_canonical_content(s):
    v = _v1(s)
    assert (v.number, v.parent_number, v.status, v.author) == (1, None, "approved", "ed@example.com")
    assert v.content_hash == hashlib.sha256(v.content.encode()).hexdigest()
    assert [r["name"] for r in v.rule_dicts] == ["A", "B"]
    assert pol.active_version(s, "default", now=T0).number == 1
    assert pol.active_version(s, "default", now=T0 - pd.Timedelta(seconds=1)) is None
    assert [r.name for r in v.rules()] == ["A", "B"]
    # rule order does not change the content hash
    same = pol.canonical_content(pol.normalise_rules([R("B", 50.0, series='m{h="b"}'), R("A", 80.0)]))
    assert same[1] == v.content_hash


def test_bootstrap_first_change_needs_no_approval_and_says_so(s):
    # A critical rule would need approval against a policy in force; with none it is a bootstrap.
    assert pol.approval_reasons(s, "default", [R("A", 80.0, critical=95.0)], now=T0) == []
    v1 = pol.apply(s, "default", [R("A", 80.0, critical=95.0)], base_version=0, user=ED, reason="start",
                   now=T0)
    assert (v1.status, v1.requires_approval, v1.significance) == ("approved", False, ())
    assert pol.active_version(s, now=T0).number == 1
    assert pol.approval_reasons(s, "default", [R("A", 80.0, critical=99.0)], now=T0) != []
    e = audit.list_audit(s, action="policy.apply").iloc[0]
    assert e["reason"] == "start (bootstrap: no policy in force)" and e["detail"]["bootstrap"] is True
    assert v1.reason == "start"
    # The next significant change is judged against v1: no bootstrap any more.
    v2 = pol.apply(s, "default", [R("A", 80.0, critical=99.0)], base_version=1, user=ED, reason="x", now=T0)
    assert v2.status == "pending_approval"
    e2 = audit.list_audit(s, action="policy.apply").iloc[0]
    assert e2["reason"] == "x" and "bootstrap" not in e2["detail"]


def test_scheduled_first_version_means_no_bootstrap_for_the_next(s):
    eff = T0 + pd.Timedelta(hours=6)
    pol.apply(s, "default", [R("A", 80.0)], base_version=0, user=ED, reason="tonight", effective_at=eff, now=T0)
    assert pol.active_version(s, now=T0) is None                 # nothing in force yet, but one is approved
    v2 = pol.apply(s, "default", [R("A", 80.0, critical=95.0)], base_version=1, user=ED, reason="crit", now=T0)
    assert v2.status == "pending_approval"


def test_double_install_records_each_store_write_once(s):
    audit.install(s)
    audit.install(s)
    pts = pd.DataFrame({"series": "m", "ts": pd.date_range(T0, periods=3, freq="1min"), "value": 1.0})
    s.write_points(pts, name="x.csv", sha256="x", fmt="long")
    s.delete_series("m")
    assert audit.list_audit(s, action="delete_series")["object"].tolist() == ["series:m"]
    assert len(audit.list_audit(s, action="upload")) == 1 and audit.verify_audit(s)[0]


def test_stale_base_is_a_conflict_and_writes_nothing(s):
    _v1(s)
    n = _n_audit(s)
    with pytest.raises(ConflictError, match="based on v0 but v1 now exists"):
        pol.apply(s, "default", [R("A", 85.0)], base_version=0, user=ED2, reason="late", now=T0)
    assert [v.number for v in pol.history(s)] == [1] and _n_audit(s) == n


def test_viewer_cannot_apply(s):
    with pytest.raises(PermissionDenied, match="editor"):
        pol.apply(s, "default", [R()], base_version=0, user=VIEWER, reason="x", now=T0)
    assert pol.history(s) == [] and _n_audit(s) == 0


def test_reason_required_and_no_op_refused(s):
    with pytest.raises(ValidationError) as ei:
        pol.apply(s, "default", [R()], base_version=0, user=ED, reason="  ", now=T0)
    assert ei.value.path == "reason"
    v1 = _v1(s)
    with pytest.raises(ValidationError, match="nothing to apply"):
        pol.apply(s, "default", v1.rules(), base_version=1, user=ED, reason="same", now=T0)


def test_duplicate_rule_names_rejected(s):
    with pytest.raises(ValidationError) as ei:
        pol.apply(s, "default", [R("A"), R("A", 90.0)], base_version=0, user=ED, reason="x", now=T0)
    assert ei.value.path == "rules[1].name"


# ---------------------------------------------------------------------------------------- concurrency
def _race(stores, s_check):
    """Two editors apply different changes from the same base at the same moment."""
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def work(i):
        barrier.wait()
        try:
            results[i] = pol.apply(stores[i], "default", [R("A", 81.0 + i), R("B", 50.0, series='m{h="b"}')],
                                   base_version=1, user=[ED, ED2][i], reason=f"editor {i}", now=T0)
        except ConflictError as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    wins = [r for r in results if isinstance(r, pol.PolicyVersion)]
    losses = [r for r in results if isinstance(r, ConflictError)]
    assert len(wins) == 1 and len(losses) == 1, results
    hist = pol.history(s_check)
    assert [v.number for v in hist] == [1, 2]             # no version lost, none duplicated
    assert hist[1].content_hash == wins[0].content_hash and hist[1].author == wins[0].author
    entries = audit.list_audit(s_check, action="policy.apply")
    assert len(entries) == 2                              # v1 and the winner only
    assert audit.verify_audit(s_check)[0]
    return wins[0]


def test_concurrent_applies_same_store_one_wins(s):
    _v1(s)
    _race([s, s], s)


def test_concurrent_applies_two_connections_one_wins(tmp_path):
    a = audit.install(Store(tmp_path / "shared.duckdb"))
    b = audit.install(Store(tmp_path / "shared.duckdb"))
    try:
        _v1(a)
        _race([a, b], a)
        # the losing connection is usable afterwards
        v3 = pol.apply(b, "default", [R("A", 83.0)], base_version=2, user=ED2, reason="after", now=T0)
        assert v3.number == 3
    finally:
        b.close()
        a.close()


# ---------------------------------------------------------------------------------------- approvals
def test_significance_rules_by_hand():
    old = [R("A", 100.0)]
    assert pol.significant_changes(old, [R("A", 119.0)]) == []                # 19% <= 20%
    assert pol.significant_changes(old, [R("A", 81.0)]) == []
    assert len(pol.significant_changes(old, [R("A", 121.0)])) == 1            # 21% > 20%
    assert len(pol.significant_changes(old, [R("A", 100.0, critical=200.0)])) == 1  # rule gains a critical
    assert len(pol.significant_changes(old, [R("A", 100.0), R("C", 1.0, critical=2.0)])) == 1  # critical added
    assert pol.significant_changes(old, [R("A", 100.0), R("C", 1.0)]) == []   # warning-only rule added
    assert pol.significant_changes([R("A", 100.0, for_s=60)], [R("A", 100.0, for_s=600)]) == \
        ["changes how rule 'A' fires or is routed (for: 1m -> 10m)"]
    assert pol.significant_changes([R("A", 100.0, for_s=60)], [R("A", 100.0, for_s=600)],
                                   pol.SignificanceConfig(behaviour_fields=())) == []
    assert len(pol.significant_changes(old, [R("A", 121.0)], pol.SignificanceConfig(25.0))) == 0
    crit = [R("A", 100.0, critical=200.0)]
    assert len(pol.significant_changes(crit, [R("A", 100.0, critical=200.0, for_s=60)])) == 1
    assert len(pol.significant_changes(crit, [])) == 1                        # critical rule removed
    assert pol.significant_changes(crit, [R("A", 100.0, critical=200.0, for_s=60)],
                                   pol.SignificanceConfig(critical_rules=False, behaviour_fields=())) == []
    assert pol.significant_changes(crit, [R("A", 100.0, critical=200.0, annotations={"summary": "s"})],
                                   pol.SignificanceConfig(critical_rules=False)) == []


@pytest.mark.parametrize("change, field", [
    ({"for_s": 600}, "for"), ({"missing": "resolve"}, "missing"), ({"comparator": ">="}, "comparator"),
    ({"series": 'm{h="z"}'}, "series"), ({"matchers": {"zone": "eu"}}, "matchers.zone"),
    ({"consecutive": 3}, "consecutive"), ({"keep_firing_for_s": 300}, "keep_firing_for"),
    ({"recovery": 70.0}, "recovery"), ({"interval_s": 30}, "interval"), ({"labels": {"team": "y"}}, "labels.team"),
    ({"severity_labels": {"warning": "page"}}, "severity_labels.warning"),
])
def test_behaviour_changes_of_any_rule_are_significant(change, field):
    old = [R("A", 80.0, labels={"team": "x"})]
    new = [R("A", 80.0, **{"labels": {"team": "x"}, **change})]
    (why,) = pol.significant_changes(old, new)
    assert why.startswith("changes how rule 'A' fires or is routed (") and f"{field}:" in why
    assert pol.significant_changes(old, new, pol.SignificanceConfig(behaviour_fields=())) == []


def test_descriptive_changes_and_additions_are_not_significant():
    old = [R("A", 80.0, unit="ms")]
    assert pol.significant_changes(old, [R("A", 80.0, unit="s", annotations={"summary": "x"})]) == []
    assert pol.significant_changes(old, old + [R("B", 1.0, series="n")]) == []     # warning-only rule added


def test_removing_or_renaming_any_rule_is_significant():
    old = [R("A", 80.0), R("B", 50.0, series="n")]
    assert pol.significant_changes(old, [R("A", 80.0)]) == ["removes rule 'B'"]
    assert pol.significant_changes(old, [R("A", 80.0), R("B2", 50.0, series="n")]) == ["removes rule 'B'"]
    assert pol.significant_changes(old, [R("A", 80.0)], pol.SignificanceConfig(removals=False)) == []


def test_thresholds_are_measured_against_the_last_reviewed_value():
    reviewed, active = [R("A", 100.0)], [R("A", 119.0)]
    assert pol.significant_changes(active, [R("A", 138.0)]) == []              # +16% on the active value
    (why,) = pol.significant_changes(active, [R("A", 138.0)], reviewed=reviewed)
    assert why == ("moves the warning threshold of 'A' from 119 to 138 (38% away from 100, the value last "
                   "reviewed, > 20%)")
    assert pol.significant_changes(active, [R("A", 90.0)], reviewed=reviewed) == []   # back near 100
    # a rule added since the review is measured against the version in force
    assert pol.significant_changes(active + [R("B", 10.0, series="n")],
                                   active + [R("B", 11.0, series="n")], reviewed=reviewed) == []


def test_creeping_small_steps_need_approval_once_the_total_passes_the_limit(s):
    t = [T0 + pd.Timedelta(hours=h) for h in range(8)]
    pol.apply(s, "default", [R("A", 100.0)], base_version=0, user=ED, reason="bootstrap", now=t[0])
    v2 = pol.apply(s, "default", [R("A", 119.0)], base_version=1, user=ED, reason="+19%", now=t[1])
    assert v2.status == "approved"
    assert pol.approval_reasons(s, "default", [R("A", 141.0)], now=t[2]) != []   # +18.5% on v2, +41% on v1
    v3 = pol.apply(s, "default", [R("A", 141.0)], base_version=2, user=ED, reason="+19% again", now=t[2])
    assert v3.status == "pending_approval" and "41% away from 100" in v3.significance[0]
    e = audit.list_audit(s, action="policy.apply").iloc[0]
    assert e["detail"]["reviewed_version"] == 1
    pol.approve(s, 3, AP, "replayed, fine", now=t[3])
    # v3 is now the reviewed baseline: +13% is fine, +24% on 141 is not (though only +9% on v4)
    assert pol.apply(s, "default", [R("A", 160.0)], base_version=3, user=ED, reason="a", now=t[4]).status == \
        "approved"
    v5 = pol.apply(s, "default", [R("A", 175.0)], base_version=4, user=ED, reason="b", now=t[5])
    assert v5.status == "pending_approval" and "away from 141" in v5.significance[0]


def test_significant_change_waits_for_a_second_person(s):
    _v1(s)
    v2 = pol.apply(s, "default", [R("A", 100.0), R("B", 50.0, series='m{h="b"}')], base_version=1, user=BOTH,
                   reason="A was too noisy", now=T0 + pd.Timedelta(hours=1))
    assert v2.status == "pending_approval" and v2.requires_approval
    assert "from 80 to 100" in v2.significance[0]
    later = T0 + pd.Timedelta(hours=2)
    assert pol.active_version(s, now=later).number == 1
    with pytest.raises(PermissionDenied, match="own change"):
        pol.approve(s, 2, BOTH, "lgtm", now=later)
    with pytest.raises(PermissionDenied, match="approver"):
        pol.approve(s, 2, ED2, "lgtm", now=later)
    assert pol.get_version(s, "default", 2).status == "pending_approval"
    v2 = pol.approve(s, 2, AP, "checked the replay", now=later)
    assert (v2.status, v2.decided_by) == ("approved", "ann@example.com")
    assert pol.active_version(s, now=later - pd.Timedelta(seconds=1)).number == 1   # in force from approval
    assert pol.active_version(s, now=later).number == 2
    with pytest.raises(ConflictError, match="already approved"):
        pol.approve(s, 2, AP, "again", now=later)
    e = audit.list_audit(s, action="policy.approve").iloc[0]
    assert (e["actor"], e["object"]) == ("ann@example.com", "policy:default@v2")
    assert e["before_hash"] == pol.get_version(s, "default", 1).content_hash
    assert e["after_hash"] == v2.content_hash


def test_approval_and_rejection_blockers_say_why(s):
    _v1(s)
    v2 = pol.apply(s, "default", [R("A", 200.0)], base_version=1, user=BOTH, reason="big", now=T0)
    assert v2.status == "pending_approval"
    assert pol.approval_blocker(AP, v2) is None and pol.rejection_blocker(AP, v2) is None
    assert "wrote v2" in pol.approval_blocker(BOTH, v2)               # own change
    assert pol.rejection_blocker(BOTH, v2) is None                     # the author may withdraw it
    assert "'approver' role" in pol.approval_blocker(ED2, v2)
    assert "'approver' role" in pol.rejection_blocker(ED2, v2)
    v1 = pol.get_version(s, "default", 1)
    assert "approved" in pol.approval_blocker(AP, v1) and "approved" in pol.rejection_blocker(AP, v1)


def test_rejected_version_never_comes_into_force(s):
    _v1(s)
    v2 = pol.apply(s, "default", [R("A", 80.0, critical=95.0), R("B", 50.0, series='m{h="b"}')],
                   base_version=1, user=ED, reason="add critical", now=T0)
    assert v2.status == "pending_approval"
    pol.reject(s, 2, AP, "needs a replay first", now=T0 + pd.Timedelta(minutes=5))
    assert pol.get_version(s, "default", 2).status == "rejected"
    assert pol.active_version(s, now=T0 + pd.Timedelta(days=30)).number == 1
    with pytest.raises(ConflictError):
        pol.approve(s, 2, AP, "changed my mind", now=T0 + pd.Timedelta(minutes=6))


def test_superseded_pending_version_cannot_be_approved(s):
    _v1(s)
    pol.apply(s, "default", [R("A", 200.0)], base_version=1, user=ED, reason="big", now=T0)   # pending v2
    pol.apply(s, "default", [R("A", 85.0)], base_version=2, user=ED, reason="small", now=T0)  # v3
    with pytest.raises(ConflictError, match="superseded by v3"):
        pol.approve(s, 2, AP, "ok", now=T0)


def test_pending_change_cannot_be_smuggled_in_by_a_small_follow_up(s):
    _v1(s)
    pol.apply(s, "default", [R("A", 200.0)], base_version=1, user=ED, reason="big", now=T0)     # pending
    v3 = pol.apply(s, "default", [R("A", 205.0)], base_version=2, user=ED, reason="tweak", now=T0)
    assert v3.status == "pending_approval"       # judged against v1, which is in force, not against v2


# ---------------------------------------------------------------------------------------- scheduling
def test_scheduled_change_takes_effect_only_at_effective_at(s):
    _v1(s)
    eff = T0 + pd.Timedelta(hours=6)
    v2 = pol.apply(s, "default", [R("A", 85.0), R("B", 50.0, series='m{h="b"}')], base_version=1, user=ED,
                   reason="tighten tonight", effective_at=eff, now=T0)
    assert v2.status == "approved" and pd.Timestamp(v2.effective_at) == eff
    assert pol.active_version(s, now=eff - pd.Timedelta(microseconds=1)).number == 1
    assert pol.active_version(s, now=eff).number == 2
    with pytest.raises(ValidationError) as ei:
        pol.apply(s, "default", [R("A", 86.0)], base_version=2, user=ED, reason="x",
                  effective_at=T0 - pd.Timedelta(hours=1), now=T0)
    assert ei.value.path == "effective_at"


def test_scheduled_significant_change_needs_approval_and_its_time(s):
    _v1(s)
    eff = T0 + pd.Timedelta(hours=6)
    pol.apply(s, "default", [R("A", 160.0)], base_version=1, user=ED, reason="big, tonight", effective_at=eff,
              now=T0)
    pol.approve(s, 2, AP, "ok", now=T0 + pd.Timedelta(hours=1))
    assert pol.active_version(s, now=T0 + pd.Timedelta(hours=2)).number == 1
    assert pol.active_version(s, now=eff).number == 2
    pol.apply(s, "default", [R("A", 400.0)], base_version=2, user=ED, reason="pending", now=T0)
    hist = pol.history(s)
    for t in (T0 - pd.Timedelta(hours=1), T0, T0 + pd.Timedelta(hours=2), eff, eff + pd.Timedelta(days=1)):
        want = pol.active_version(s, now=t)
        got = pol.in_force(hist, t)                  # the same answer from the history alone
        assert (got.number if got else None) == (want.number if want else None)


# ---------------------------------------------------------------------------------------- rollback
def test_rollback_creates_new_version_equal_in_content(s):
    v1 = _v1(s)
    pol.apply(s, "default", [R("A", 85.0), R("B", 50.0, series='m{h="b"}')], base_version=1, user=ED,
              reason="v2", now=T0)
    v3 = pol.apply(s, "default", [R("A", 90.0), R("B", 50.0, series='m{h="b"}')], base_version=2, user=ED,
                   reason="v3", now=T0)
    with pytest.raises(ConflictError):
        pol.rollback(s, "default", 1, ED, "too noisy", base_version=2, now=T0)
    v4 = pol.rollback(s, "default", 1, ED, "too noisy", base_version=3, now=T0 + pd.Timedelta(minutes=1))
    assert (v4.number, v4.parent_number, v4.source) == (4, 3, "rollback")
    assert v4.content == v1.content and v4.content_hash == v1.content_hash
    assert v4.reason == "rollback to v1: too noisy"
    hist = pol.history(s)
    assert [v.number for v in hist] == [1, 2, 3, 4]
    assert hist[2].content_hash == v3.content_hash                       # history not rewritten
    assert pol.active_version(s, now=T0 + pd.Timedelta(minutes=1)).number == 4
    e = audit.list_audit(s, action="policy.rollback").iloc[0]
    assert e["before_hash"] == v3.content_hash and e["after_hash"] == v1.content_hash
    assert e["detail"]["rollback_to"] == 1


def test_rollback_undo_is_immediate_a_far_rollback_is_judged(s):
    t = [T0 + pd.Timedelta(hours=h) for h in range(8)]
    pol.apply(s, "default", [R("A", 100.0)], base_version=0, user=ED, reason="v1", now=t[0])
    pol.apply(s, "default", [R("A", 200.0)], base_version=1, user=ED, reason="v2", now=t[1])   # pending
    pol.approve(s, 2, AP, "reviewed", now=t[2])
    pol.apply(s, "default", [R("A", 210.0)], base_version=2, user=ED, reason="v3", now=t[3])   # +5%
    assert pol.active_version(s, now=t[3]).number == 3
    # v1 is far from the rules in force: back from 210 to 100 is 50% from the reviewed 200
    assert "50% away from 200" in pol.rollback_reasons(s, "default", 1, now=t[4])[0]
    # undo: v2 was in force when v3 took over, so restoring it is immediate
    assert pol.rollback_reasons(s, "default", 2, now=t[4]) == []
    v4 = pol.rollback(s, "default", 2, ED, "v3 misbehaves", base_version=3, now=t[4])
    assert (v4.status, v4.content_hash) == ("approved", pol.get_version(s, "default", 2).content_hash)
    assert audit.list_audit(s, action="policy.rollback").iloc[0]["detail"]["undo_of"] == 3
    v5 = pol.rollback(s, "default", 1, ED, "start over", base_version=4, now=t[5])
    assert v5.status == "pending_approval" and pol.active_version(s, now=t[5]).number == 4
    assert "undo_of" not in audit.list_audit(s, action="policy.rollback").iloc[0]["detail"]
    pol.approve(s, 5, AP, "ok", now=t[6])
    assert pol.active_version(s, now=t[6]).content_hash == pol.get_version(s, "default", 1).content_hash


def test_rollback_only_to_an_approved_version(s):
    _v1(s)
    pol.apply(s, "default", [R("A", 300.0)], base_version=1, user=ED, reason="big", now=T0)   # pending
    with pytest.raises(ValidationError, match="pending_approval"):
        pol.rollback(s, "default", 2, ED, "x", base_version=2, now=T0)
    with pytest.raises(NotFound):
        pol.rollback(s, "default", 9, ED, "x", base_version=2, now=T0)
    with pytest.raises(PermissionDenied):
        pol.rollback(s, "default", 1, VIEWER, "x", base_version=2, now=T0)


# ---------------------------------------------------------------------------------------- diff
def test_diff_field_level():
    a = [R("A", 80.0), R("B", 50.0, series='m{h="b"}', labels={"team": "x"}), R("C", 1.0)]
    b = [R("A", 90.0, for_s=300), R("B", 50.0, series='m{h="b"}', labels={"team": "y", "tier": "1"}),
         R("D", 2.0, critical=3.0)]
    d = pol.diff(a, b)
    assert [r["name"] for r in d.added] == ["D"] and [r["name"] for r in d.removed] == ["C"]
    ch = {c.name: c.fields for c in d.changed}
    assert ch == {"A": {"warning": (80.0, 90.0), "for": ("0s", "5m")},
                  "B": {"labels.team": ("x", "y"), "labels.tier": (None, "1")}}
    assert d.unchanged == () and d.affected == ["A", "B", "C", "D"]
    assert pol.diff(a, a).is_empty and pol.diff(a, a).unchanged == ("A", "B", "C")
    assert pol.diff(None, a).added[0]["name"] == "A"
    assert pol.diff(a, []).to_dict()["removed"] == ["A", "B", "C"]


def test_diff_between_stored_versions(s):
    v1 = _v1(s)
    v2 = pol.apply(s, "default", [R("A", 85.0)], base_version=1, user=ED, reason="drop B", now=T0)
    d = pol.diff(v1, v2)
    assert [r["name"] for r in d.removed] == ["B"] and d.changed[0].fields == {"warning": (80.0, 85.0)}


# ---------------------------------------------------------------------------------------- preview
def test_preview_replays_only_affected_series(s):
    ts = pd.date_range(T0, periods=1440, freq="1min", tz="UTC")
    v = np.full(1440, 100.0)
    for st in (100, 500, 900):
        v[st:st + 5] = 200.0                                  # three 5-minute spikes
    pts = pd.concat([pd.DataFrame({"series": 'lat{svc="a"}', "ts": ts, "value": v}),
                     pd.DataFrame({"series": 'lat{svc="b"}', "ts": ts, "value": v})])
    s.write_points(pts, name="x.csv", sha256="x", fmt="long")
    s.add_incidents(pd.DataFrame({"series": ['lat{svc="a"}'], "start": [ts[99]], "end": [ts[106]]}),
                    source="manual")
    now = T0 + pd.Timedelta(days=2)
    a, b = R("A", 150.0, series='lat{svc="a"}'), R("B", 150.0, series='lat{svc="b"}')
    pol.apply(s, "default", [a, b], base_version=0, user=ED, reason="r", now=now)
    p = pol.preview(s, "default", [R("A", 250.0, series='lat{svc="a"}'), b], now=now)
    assert p.base_version == 1 and p.active_number == 1 and p.requires_approval
    assert p.impact["series"].tolist() == ['lat{svc="a"}']      # B unchanged: not replayed
    row = p.impact.iloc[0]
    # 3 episodes over a 1439-minute span; 15 firing minutes
    assert row["old_episodes_per_week"] == pytest.approx(3 * 10080 / 1439)
    assert row["old_time_in_alert_pct"] == pytest.approx(100 * 15 / 1439)
    assert (row["old_incidents"], row["old_incidents_caught"], row["old_recall"]) == (1, 1, 1.0)
    assert row["new_episodes_per_week"] == 0.0 and row["new_incidents_caught"] == 0
    assert (row["old_episodes"], row["new_episodes"]) == (3, 0)     # the count the precision gate needs
    assert any("extrapolated" in n for n in p.notes)
    assert len(pol.history(s)) == 1                             # preview writes nothing


def test_preview_replays_keep_last_with_the_export_lookback(s):
    """One breach (200 at minute 10) before a 59-minute gap. resolve: firing at minute 10 only (60 s).
    keep_last carries 200 while it is younger than the export lookback: minutes 10..19 with the
    default 10m (600 s), 10..39 with a 30m mapping (1800 s), as last_over_time(x[w]) would."""
    from core.alerting.prometheus import PromMapping

    ts = pd.date_range(T0, periods=120, freq="1min", tz="UTC")
    v = np.full(120, 100.0)
    v[10] = 200.0
    v[11:70] = np.nan
    s.write_points(pd.DataFrame({"series": 'm{h="a"}', "ts": ts, "value": v}), name="k.csv", sha256="k",
                   fmt="long")
    now = T0 + pd.Timedelta(days=1)
    pol.apply(s, "default", [R("A", 150.0, missing="resolve")], base_version=0, user=ED, reason="r", now=now)
    new = [R("A", 150.0, missing="keep_last")]
    span = 119 * 60.0
    for mapping, lookback, firing_s in ((None, 600.0, 600.0), (PromMapping(lookback="30m"), 1800.0, 1800.0)):
        p = pol.preview(s, "default", new, now=now, mapping=mapping)
        row = p.impact.iloc[0]
        assert p.lookback_s == lookback
        assert (row["old_episodes"], row["new_episodes"]) == (1, 1)
        assert row["old_time_in_alert_pct"] == pytest.approx(100 * 60.0 / span)
        assert row["new_time_in_alert_pct"] == pytest.approx(100 * firing_s / span)


def test_preview_notes_unmatched_series(s):
    p = pol.preview(s, "default", [R("Z", 1.0, series='nothing{x="y"}')], now=T0)
    assert p.impact.empty and "no stored series matches" in p.notes[0]
    assert p.base_version == 0 and p.active_number is None


# ---------------------------------------------------------------------------------------- seed / import / CLI
def test_seed_demo_policy_once(s):
    v = pol.seed_demo_policy(s, now=T0)
    assert (v.number, v.status, v.author, v.source) == (1, "approved", "seed", "seed")
    assert len(v.rule_dicts) == 12 and v.meta["policy"] == "default"
    assert pol.seed_demo_policy(s, now=T0) is None
    assert pol.active_version(s, now=T0).number == 1


def test_import_yaml_goes_through_apply(s):
    text = "rules:\n  - {name: A, series: 'm{h=\"a\"}', warning: 80}\n"
    v = pol.import_yaml(s, text, user=ED, reason="from git", now=T0)
    assert (v.number, v.source, v.status) == (1, "import", "approved")
    assert audit.list_audit(s, action="policy.import")["object"].tolist() == ["policy:default@v1"]
    with pytest.raises(PermissionDenied):
        pol.import_yaml(s, text.replace("80", "81"), user=VIEWER, reason="x", now=T0)


def test_cli_import_history_export_rollback(tmp_path, monkeypatch, capsys):
    import yaml

    from core.__main__ import main

    db = str(tmp_path / "cli.duckdb")
    monkeypatch.setenv("STUDIO_USER", "ed@example.com")
    monkeypatch.setenv("STUDIO_ROLES", str(tmp_path / "none.toml"))         # default roles: editor
    f1, f2 = tmp_path / "p1.yaml", tmp_path / "p2.yaml"
    f1.write_text("rules:\n  - {name: A, series: 'm{h=\"a\"}', warning: 80, for: 5m}\n")
    f2.write_text("rules:\n  - {name: A, series: 'm{h=\"a\"}', warning: 90, for: 5m}\n")
    assert main(["policy", "--db", db, "import", str(f1), "--reason", "first"]) == 0
    assert main(["policy", "--db", db, "import", str(f2)]) == 0
    assert main(["policy", "--db", db, "import", str(f2), "--base", "1"]) == 2   # stale base
    assert "changed while you were editing" in capsys.readouterr().err
    assert main(["policy", "--db", db, "rollback", "1", "--reason", "undo"]) == 0
    capsys.readouterr()
    assert main(["policy", "--db", db, "history"]) == 0
    out = capsys.readouterr().out
    assert "v3" in out and "rollback to v1: undo" in out and "* v3" in out
    out_file = tmp_path / "rules.yml"
    assert main(["policy", "--db", db, "export", "--format", "prometheus", "--out", str(out_file)]) == 0
    doc = yaml.safe_load(out_file.read_text())
    assert doc["groups"][0]["rules"][0]["expr"] == 'm{h="a"} > 80'
    from core.data.store import Store
    from core.data.store.audit import last_entry

    with Store(db) as s:
        seq, head = last_entry(s)
    assert f"# audit head: entry {seq}, HMAC-SHA256 {head} " in out_file.read_text()
    assert main(["policy", "--db", db, "export", "--format", "yaml"]) == 0
    out = capsys.readouterr().out
    assert "warning: 80" in out and f"\n# audit head: entry {seq}, HMAC-SHA256 {head} " in out
    assert out.index("# audit head") < out.index("rules:")
    assert main(["policy", "--db", db, "verify-audit"]) == 0
    assert "audit trail intact" in capsys.readouterr().out


def test_cli_import_error_names_the_file(tmp_path, monkeypatch, capsys):
    from core.__main__ import main

    monkeypatch.setenv("STUDIO_ROLES", str(tmp_path / "none.toml"))
    f = tmp_path / "bad.yaml"
    f.write_text("rules:\n  - {name: A, series: 'm{h=\"a\"}', warning: abc}\n")
    assert main(["policy", "--db", str(tmp_path / "c.duckdb"), "import", str(f)]) == 2
    assert f"{f}: rules[0].warning: expected a number, got 'abc'" in capsys.readouterr().err


def test_cli_local_self_approval_under_another_name_is_refused(tmp_path, monkeypatch, capsys):
    """The reported scenario: local-operator imports v2, then STUDIO_USER=alice@example.com approves it
    from the same OS account. Refused; from another OS account it goes through and is recorded."""
    from core.__main__ import main
    from core.data.store import Store
    from core.policy import identity

    db = str(tmp_path / "cli.duckdb")
    roles = tmp_path / "roles.toml"
    roles.write_text('[roles]\n"alice@example.com" = ["editor", "approver"]\n')
    monkeypatch.setenv("STUDIO_ROLES", str(roles))
    monkeypatch.setattr(identity, "os_account", lambda: "sre")
    monkeypatch.delenv("STUDIO_USER", raising=False)                       # local-operator: editor
    f1, f2 = tmp_path / "p1.yaml", tmp_path / "p2.yaml"
    f1.write_text("rules:\n  - {name: A, series: 'm{h=\"a\"}', warning: 80}\n")
    f2.write_text("rules:\n  - {name: A, series: 'm{h=\"a\"}', warning: 160}\n")    # +100%: significant
    assert main(["policy", "--db", db, "import", str(f1)]) == 0
    assert main(["policy", "--db", db, "import", str(f2)]) == 0
    assert "pending_approval" in capsys.readouterr().out
    monkeypatch.setenv("STUDIO_USER", "alice@example.com")
    assert main(["policy", "--db", db, "approve", "2", "--reason", "lgtm"]) == 2
    assert "OS account 'sre'" in capsys.readouterr().err
    monkeypatch.setattr(identity, "os_account", lambda: "alice")
    assert main(["policy", "--db", db, "approve", "2", "--reason", "lgtm"]) == 0
    with Store(db) as s:
        e = audit.list_audit(s, action="policy.approve").iloc[0]
        assert e["actor"] == "alice@example.com"
        assert (e["detail"]["os_account"], e["detail"]["author_os_account"]) == ("alice", "sre")
        assert audit.list_audit(s, action="policy.import")["detail"].iloc[0]["os_account"] == "sre"


def test_seed_demo_policy_audits_the_given_actor_keeps_author_seed(s):
    v = pol.seed_demo_policy(s, now=T0, actor="demo-generator")
    assert (v.author, v.source) == ("seed", "seed")
    e = audit.list_audit(s, action="policy.seed")
    assert e["actor"].tolist() == ["demo-generator"] and e["object"].tolist() == ["policy:default@v1"]


def test_cli_prometheus_export_prints_its_warnings_to_stderr(tmp_path, monkeypatch, capsys):
    from core.__main__ import main

    db = str(tmp_path / "cli.duckdb")
    monkeypatch.setenv("STUDIO_USER", "ed@example.com")
    monkeypatch.setenv("STUDIO_ROLES", str(tmp_path / "none.toml"))         # default roles: editor
    f = tmp_path / "p.yaml"
    f.write_text("rules:\n  - {name: Quiet, series: 'm{h=\"a\"}', warning: 80}\n")
    assert main(["policy", "--db", db, "import", str(f)]) == 0
    capsys.readouterr()
    assert main(["policy", "--db", db, "export", "--format", "prometheus"]) == 0
    out, err = capsys.readouterr()
    assert "WARNING" not in out and "warning" not in err                     # matches the replay: silent
    # nodata + keep_firing_for replays as Prometheus runs it (silent); hysteresis evaluated every 10m
    # cannot see its ALERTS sample through Prometheus' 5m lookback (warned)
    f.write_text("rules:\n  - {name: Quiet, series: 'm{h=\"a\"}', warning: 80}\n"
                 "  - {name: Gap, series: 'm{h=\"b\"}', warning: 5, missing: nodata, keep_firing_for: 2m}\n"
                 "  - {name: Slow, series: 'm{h=\"c\"}', warning: 5, recovery: 4, interval: 10m}\n")
    assert main(["policy", "--db", db, "import", str(f)]) == 0
    capsys.readouterr()
    out_file = tmp_path / "rules.yml"
    assert main(["policy", "--db", db, "export", "--format", "prometheus", "--out", str(out_file)]) == 0
    err_lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(err_lines) == 1
    assert err_lines[0].startswith("warning: Prometheus will differ from the replay: Slow: ")
    assert "ALERTS" in err_lines[0] and "10m interval" in err_lines[0]
    assert out_file.read_text().startswith("# WARNING: Slow: ")                # and still in the file


# ---------------------------------------------------------------------------------------- OS accounts
def test_every_version_and_decision_records_the_os_account(s):
    _v1(s)
    pol.apply(s, "default", [R("A", 200.0)], base_version=1, user=BOTH, reason="big", now=T0)
    pol.approve(s, 2, AP, "ok", now=T0 + pd.Timedelta(minutes=1))
    trail = audit.list_audit(s)
    newest_first = list(zip(trail["action"], trail["detail"], strict=True))
    by_action = dict(reversed(newest_first))                           # the newest entry of each action
    assert by_action["policy.apply"]["os_account"] == "bo-os"          # v2
    assert by_action["policy.approve"]["os_account"] == "ann-os"
    assert by_action["policy.approve"]["author_os_account"] == "bo-os"
    assert by_action["policy.approve"]["authenticated"] is False
    assert pol.author_os_account(s, "default", 1) == "ed-os"
    assert pol.author_os_account(s, "default", 2) == "bo-os"


def test_local_approval_from_the_authors_os_account_is_refused(s):
    """The reported hole: local-operator imported v2, then STUDIO_USER=alice approved it from the same
    OS account. The claimed names differ; the OS account does not."""
    _v1(s)
    author = User("local-operator", None, frozenset({"viewer", "editor"}), os_account="sre")
    claimed = User("alice@example.com", None, frozenset({"viewer", "approver"}), os_account="sre")
    v2 = pol.apply(s, "default", [R("A", 200.0)], base_version=1, user=author, reason="big", now=T0)
    assert v2.status == "pending_approval"
    assert "same account" in pol.approval_blocker(claimed, v2, s)
    assert pol.approval_blocker(claimed, v2) is None                   # without the store it cannot tell
    n = _n_audit(s)
    with pytest.raises(PermissionDenied, match="OS account 'sre'.*not proof of identity"):
        pol.approve(s, 2, claimed, "lgtm", now=T0)
    assert pol.get_version(s, "default", 2).status == "pending_approval" and _n_audit(s) == n
    # a second person on their own OS account may approve
    other = User("alice@example.com", None, frozenset({"viewer", "approver"}), os_account="alice")
    assert pol.approval_blocker(other, v2, s) is None
    assert pol.approve(s, 2, other, "checked", now=T0).status == "approved"


def test_oidc_approver_is_not_held_to_the_os_account(s):
    _v1(s)
    v2 = pol.apply(s, "default", [R("A", 200.0)], base_version=1, user=BOTH, reason="big", now=T0)
    oidc = User("Ann", "ann@example.com", frozenset({"viewer", "approver"}), authenticated=True,
                os_account="bo-os")                                   # same server process account
    assert pol.approval_blocker(oidc, v2, s) is None
    v = pol.approve(s, 2, oidc, "ok", now=T0)
    assert v.status == "approved"
    assert audit.list_audit(s, action="policy.approve")["detail"].iloc[0]["authenticated"] is True


def test_local_approval_of_a_version_without_recorded_os_account_is_refused(s):
    _v1(s)
    pol.apply(s, "default", [R("A", 200.0)], base_version=1, user=BOTH, reason="big", now=T0)
    with s.transaction() as con:                    # as written before OS accounts were recorded
        con.execute("UPDATE audit SET detail = replace(detail, '\"os_account\":\"bo-os\",', '') "
                    "WHERE object = 'policy:default@v2'")
    assert pol.author_os_account(s, "default", 2) is None
    with pytest.raises(PermissionDenied, match="no recorded OS account"):
        pol.approve(s, 2, AP, "ok", now=T0)


def test_author_lookup_does_not_confuse_v1_with_v10(s):
    _v1(s)
    for i in range(2, 11):
        pol.apply(s, "default", [R("A", 80.0 + i * 0.1)], base_version=i - 1,
                  user=ED if i < 10 else ED2, reason=f"step {i}", now=T0 + pd.Timedelta(days=i))
    assert pol.author_os_account(s, "default", 1) == "ed-os"
    assert pol.author_os_account(s, "default", 10) == "eve-os"


def test_rollback_targets_and_scheduled_changes_by_hand():
    from types import SimpleNamespace as V

    import pandas as pd

    t0 = pd.Timestamp("2026-03-01", tz="UTC")
    vs = [V(number=1, status="approved", content_hash="a", effective_at=None),
          V(number=2, status="approved", content_hash="b", effective_at=None),
          V(number=3, status="rejected", content_hash="c", effective_at=None),
          V(number=4, status="approved", content_hash="b", effective_at=t0 + pd.Timedelta("1D")),
          V(number=5, status="rejected", content_hash="d", effective_at=t0 + pd.Timedelta("2D"))]
    assert pol.rollback_targets(vs) == [4, 2, 1]          # approved, and not the latest's (v5's) rules
    assert pol.rollback_targets(vs[:4]) == [1]              # v2 and v4 hold the latest's rules (hash b)
    assert pol.rollback_targets([]) == []
    assert [v.number for v in pol.scheduled(vs, t0)] == [4]                      # v5 was rejected
    assert pol.scheduled(vs, t0 + pd.Timedelta("3D")) == []
