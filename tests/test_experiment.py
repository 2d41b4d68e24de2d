"""Simulated A/B tests: the bootstrap, injection and assignment, per-unit outcomes with known answers,
the mixture sequential test against its definition, planning against statsmodels, the analysis and
verdict, and the honesty checks (A/A false-positive rate over 1000 seeded runs, achieved power,
the naive-peeking contrast) and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.stats import norm
from statsmodels.stats.power import TTestIndPower

from core.alerting.rules import Rule
from core.errors import InsufficientDataError, ValidationError
from core.experiment.__main__ import main
from core.experiment.analyse import compare, decide, guardrails
from core.experiment.checks import aa_check, draw_runs, outcome_pool, power_check
from core.experiment.groupseq import (
    crossing_probability,
    drift_for_power,
    look_fractions,
    obf_boundaries,
    obf_spending,
)
from core.experiment.plan import fixed_power, plan_experiment, power_curve, sequential_power
from core.experiment.sequential import msprt_half_width, msprt_log_lr, msprt_reject, running_moments, welch
from core.experiment.simulate import (
    assign_units,
    bootstrap,
    inject_incidents,
    simulate,
    synthetic_history,
    unit_outcomes,
)

DAY = pd.Timedelta("1D")


@pytest.fixture(scope="module")
def history() -> pd.Series:
    return synthetic_history(28, seed=3)


@pytest.fixture(scope="module")
def rule(history) -> Rule:
    return Rule(name="A", series=str(history.name), comparator=">",
                warning=float(np.quantile(history, 0.995)), for_s=120)


@pytest.fixture(scope="module")
def pool(history, rule) -> np.ndarray:
    return outcome_pool(history, rule, days=90, seed=0)["false_episodes"].to_numpy()


# ------------------------------------------------------------------------------ simulation
def test_bootstrap_days_are_whole_past_days_of_the_same_weekday(history):
    h = history.copy()
    h.iloc[1000:1010] = np.nan                           # a gap on day 0 (a Monday) stays a gap
    fut, carried, src = bootstrap(h, 21, rng=np.random.default_rng(1))
    past = h.to_numpy().reshape(28, 1440)
    got = fut.to_numpy().reshape(21, 1440)
    assert fut.index[0] == h.index[-1] + pd.Timedelta("1min")    # the midnight after the history
    for d in range(21):
        np.testing.assert_array_equal(got[d], past[src[d]])
        assert fut.index[d * 1440].day_of_week == h.index[src[d] * 1440].day_of_week
    assert np.isnan(got[src == 0]).sum() == 10 * int((src == 0).sum())
    assert carried.empty


def test_bootstrap_keeps_jittered_samples_in_their_slot(history):
    jittered = pd.Series(history.to_numpy(), index=history.index + pd.Timedelta("2s"))
    fut, _, src = bootstrap(jittered, 7, rng=np.random.default_rng(1))
    past = history.to_numpy().reshape(28, 1440)
    # the first whole day now starts at the second midnight: source day k is the history's day k + 1
    np.testing.assert_array_equal(fut.to_numpy().reshape(7, 1440), past[src + 1])


def test_bootstrap_weeks_are_consecutive_days(history):
    _, _, src = bootstrap(history, 14, rng=np.random.default_rng(2), block="week")
    assert (np.diff(src[:7]) == 1).all() and (np.diff(src[7:]) == 1).all()


def test_bootstrap_needs_a_week(history):
    with pytest.raises(InsufficientDataError, match="at least 7"):
        bootstrap(history.iloc[: 6 * 1440], 5, rng=np.random.default_rng(0))


def test_bootstrap_carries_labelled_incidents_with_their_day(history):
    inc = pd.DataFrame({"start": [history.index[3 * 1440 + 600]], "end": [history.index[3 * 1440 + 660]]})
    fut, carried, src = bootstrap(history, 28, rng=np.random.default_rng(5), incidents=inc)
    days = np.flatnonzero(src == 3)
    assert len(carried) == days.size > 0
    for d, (_, row) in zip(days, carried.iterrows(), strict=True):
        assert row["start"] == fut.index[d * 1440 + 600] and row["end"] == fut.index[d * 1440 + 660]


def test_injected_incidents_change_values_only_inside_their_windows(history):
    fut, _, _ = bootstrap(history, 10, rng=np.random.default_rng(0))
    out, win = inject_incidents(fut, rng=np.random.default_rng(1), rate=3.0)
    assert len(win) > 10 and set(win["shape"]) <= {"spike", "degradation", "level_shift", "oscillation"}
    assert (win["start"].dt.floor("D") == win["end"].dt.floor("D")).all()      # confined to their day
    inside = np.zeros(len(fut), dtype=bool)
    for _, w in win.iterrows():
        inside |= (fut.index >= w["start"]) & (fut.index <= w["end"])
    d = out.to_numpy() - fut.to_numpy()
    assert (d[~inside] == 0).all() and (d[inside] >= 0).all() and d[inside].max() > 0
    down, _ = inject_incidents(fut, rng=np.random.default_rng(1), rate=3.0, direction=-1)
    np.testing.assert_allclose(down.to_numpy() - fut.to_numpy(), -d)
    same, none = inject_incidents(fut, rng=np.random.default_rng(1), rate=0.0)
    assert none.empty and same.equals(fut)


def test_assignment_has_the_exact_split_and_refuses_bad_ones():
    arm = assign_units(30, 0.3, np.random.default_rng(0))
    assert arm.sum() == 9 and arm.size == 30
    for bad in (0.05, 0.95):
        with pytest.raises(ValidationError, match="split"):
            assign_units(30, bad, np.random.default_rng(0))


def test_unit_outcomes_known_answer():
    idx = pd.date_range("2026-01-05", periods=2 * 1440, freq="1min", tz="UTC")
    v = np.full(idx.size, 10.0)
    v[600:610] = 50          # day 0: a labelled incident, caught at its start
    v[1440 + 300:1440 + 305] = 50   # day 1: an alert with no incident (false)
    v[1440 + 900:1440 + 920] = 50   # day 1: an incident the rule catches 5 minutes late (for 5m)
    inc = pd.DataFrame({"start": [idx[600], idx[1440 + 895]], "end": [idx[609], idx[1440 + 919]]})
    r = Rule(name="r", series="x", comparator=">", warning=20)
    out = unit_outcomes(r, pd.Series(v, index=idx), inc)
    assert out[["episodes", "false_episodes", "incidents", "caught", "missed"]].to_numpy().tolist() == [
        [1, 0, 1, 1, 0], [2, 1, 1, 1, 0]]
    assert out["delay_s"].tolist() == [0.0, 300.0]


def test_simulate_same_rule_in_both_arms_gives_identical_counterfactuals(history, rule):
    sim = simulate(history, rule, rule, days=20, split=0.4, seed=11)
    cf = sim.counterfactual
    for c in ("episodes", "false_episodes", "caught", "missed"):
        np.testing.assert_array_equal(cf[f"{c}_A"], cf[f"{c}_B"])
    out = sim.outcomes
    assert (out["arm"] == "B").sum() == 8 and len(out) == 20
    assert (out["caught"] + out["missed"] == out["incidents"]).all()
    assert (out["false_episodes"] <= out["episodes"]).all()
    again = simulate(history, rule, rule, days=20, split=0.4, seed=11)
    pd.testing.assert_frame_equal(out, again.outcomes)                       # seeded


def test_simulate_keeps_each_days_outcomes_from_its_own_arm(history, rule):
    strict = Rule(name="B", series=rule.series, comparator=">", warning=rule.warning * 0.9, for_s=120)
    sim = simulate(history, rule, strict, days=15, seed=4)
    cf, out = sim.counterfactual, sim.outcomes
    b = out["arm"].to_numpy() == "B"
    np.testing.assert_array_equal(out["episodes"].to_numpy(),
                                  np.where(b, cf["episodes_B"], cf["episodes_A"]))
    assert cf["episodes_B"].sum() > cf["episodes_A"].sum()      # a lower threshold alerts more


# ------------------------------------------------------------------------------ sequential test
def test_mixture_likelihood_ratio_matches_its_definition():
    diff, var, tau = 0.7, 0.09, 0.5
    # Lambda = integral of N(diff; theta, var) N(theta; 0, tau^2) dtheta / N(diff; 0, var)
    num, _ = integrate.quad(lambda th: stats.norm.pdf(diff, th, np.sqrt(var)) * stats.norm.pdf(th, 0, tau),
                            -10, 10)
    expected = np.log(num / stats.norm.pdf(diff, 0, np.sqrt(var)))
    assert msprt_log_lr(diff, var, tau) == pytest.approx(expected, rel=1e-9)


def test_confidence_sequence_edge_is_the_rejection_boundary():
    var, tau, alpha = 0.04, 0.3, 0.05
    hw = float(msprt_half_width(var, tau, alpha))
    assert msprt_log_lr(hw, var, tau) == pytest.approx(np.log(1 / alpha))
    assert bool(msprt_reject(hw * 1.001, var, tau, alpha)) and not bool(msprt_reject(hw * 0.999, var, tau, alpha))
    assert not bool(msprt_reject(1.0, 0.0, tau, alpha))                 # no variance: no decision


def test_running_moments_and_welch_match_scipy():
    rng = np.random.default_rng(0)
    y = rng.poisson(2, 40).astype(float)
    b = rng.permutation(np.arange(40) < 20)
    w = welch(running_moments(y, b))
    ref = stats.ttest_ind(y[b], y[~b], equal_var=False)
    assert w["t"][-1] == pytest.approx(ref.statistic) and w["p"][-1] == pytest.approx(ref.pvalue)
    assert w["df"][-1] == pytest.approx(ref.df)


def test_obrien_fleming_boundaries_spend_alpha_as_planned():
    t = np.array([0.25, 0.5, 0.75, 1.0])
    c = obf_boundaries(t, 0.05)
    assert c[0] == pytest.approx(norm.ppf(1 - obf_spending(0.25, 0.05) / 2), abs=1e-5)   # first look: spend alone
    assert (np.diff(c) < 0).all() and 1.96 < c[-1] < 2.1
    assert crossing_probability(t, c, 0.0) == pytest.approx(0.05, abs=1e-4)
    mu = drift_for_power(t, c, 0.8)
    assert 1.0 < (mu / (norm.ppf(0.975) + norm.ppf(0.8))) ** 2 < 1.05            # a few percent more units
    rng = np.random.default_rng(0)                                                 # Brownian check
    dt = np.diff(np.r_[0.0, t])
    for drift, target in ((0.0, 0.05), (mu, 0.8)):
        z = np.cumsum(rng.standard_normal((100_000, 4)) * np.sqrt(dt) + drift * dt, axis=1) / np.sqrt(t)
        assert (np.abs(z) >= c).any(axis=1).mean() == pytest.approx(target, abs=0.006)
    n, frac = look_fractions(30, 7)
    assert n.tolist() == [7, 14, 21, 28, 30] and frac[-1] == 1.0


# ------------------------------------------------------------------------------ planning
def test_fixed_plan_matches_statsmodels_and_says_when_too_long():
    p = plan_experiment(1.0, 1.0, mde_d=0.5, stopping="fixed")
    n = TTestIndPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8, ratio=1.0)
    assert p.n_a == p.n_b == int(np.ceil(n)) == 64
    assert p.days == 128 and not p.in_range and "60" in p.note
    q = plan_experiment(2.0, 1.0, mde_rel=-0.4, stopping="fixed")            # d = 0.4 x 2 / 1 = 0.8
    assert q.mde_d == pytest.approx(0.8) and q.units == 52 and q.in_range and q.note == ""
    r = plan_experiment(2.0, 1.0, mde_d=0.8, split=0.25, stopping="fixed")   # uneven split needs more units
    assert r.n_b < r.n_a and r.units > q.units


def test_group_sequential_plan_costs_a_few_percent_over_fixed():
    fixed = plan_experiment(1.0, 1.0, mde_d=0.8, stopping="fixed")
    obf = plan_experiment(1.0, 1.0, mde_d=0.8, stopping="obf")
    assert obf.look_every == 7 and 1.0 < obf.inflation < 1.1
    assert fixed.units < obf.units <= np.ceil(fixed.units * 1.1)
    assert fixed.look_every == fixed.units and fixed.inflation == 1.0


def test_sequential_plan_is_longer_and_its_power_curve_reaches_the_target():
    fixed = plan_experiment(1.0, 1.0, mde_d=1.0, stopping="fixed")
    seq = plan_experiment(1.0, 1.0, mde_d=1.0, stopping="msprt")
    assert seq.units > fixed.units and seq.tau == pytest.approx(1.0)
    curve = power_curve(seq)
    assert list(curve.columns) == ["days", "units", "power_fixed", "power_sequential", "power_group_sequential"]
    assert curve["days"].tolist() == list(range(3, 61))
    at = curve.set_index("units")
    assert at.loc[seq.units, "power_sequential"] >= 0.8 > at.loc[seq.units - 1, "power_sequential"]
    assert at.loc[fixed.units, "power_fixed"] >= 0.8
    assert (np.diff(curve["power_sequential"]) >= 0).all()
    assert fixed_power(fixed.units, 1.0, 0.5, 0.05) == pytest.approx(
        TTestIndPower().power(1.0, fixed.units / 2, 0.05))
    assert sequential_power(10, 1.0, 0.5, 0.05)[:9].max() == 0             # no look before 5 per arm


@pytest.mark.parametrize("kw, field", [({"split": 0.95}, "split"), ({"stopping": "peek"}, "stopping"),
                                       ({"alpha": 0.7}, "alpha"), ({"mde_d": None}, "mde")])
def test_plan_refuses_bad_settings(kw, field):
    args = {"mde_d": 0.5} | kw
    with pytest.raises(ValidationError) as e:
        plan_experiment(1.0, 1.0, **args)
    assert e.value.path.startswith(field)


def test_plan_needs_a_varying_baseline():
    with pytest.raises(InsufficientDataError):
        plan_experiment(0.0, 0.0, mde_d=0.5)
    with pytest.raises(InsufficientDataError, match="relative"):
        plan_experiment(0.0, 1.0, mde_rel=-0.3)


# ------------------------------------------------------------------------------ analysis
def test_compare_known_answer():
    c = compare([1, 2, 3], [2, 3, 4, np.nan])
    assert c["n_a"] == 3 and c["n_b"] == 3 and c["diff"] == 1.0 and c["cohen_d"] == pytest.approx(1.0)
    assert c["rel_change"] == pytest.approx(0.5)
    ref = stats.ttest_ind([2, 3, 4], [1, 2, 3], equal_var=False)
    assert c["welch_p"] == pytest.approx(ref.pvalue)
    assert c["mw_p"] == pytest.approx(stats.mannwhitneyu([2, 3, 4], [1, 2, 3]).pvalue)
    assert c["diff_ci"][0] < 1.0 < c["diff_ci"][1]
    assert c["rel_ci"][0] < 0.5 < c["rel_ci"][1]
    z = compare([0, 0, 0], [1, 2, 3])
    assert z["rel_change"] is None and "undefined" in z["notes"][0]
    with pytest.raises(InsufficientDataError):
        compare([1], [1, 2])


def _outcomes(fe_a, fe_b, missed_a, missed_b, delay_a, delay_b, seed=0):
    rng = np.random.default_rng(seed)
    n = len(fe_a) + len(fe_b)
    arm = np.array(["A"] * len(fe_a) + ["B"] * len(fe_b))
    df = pd.DataFrame({"arm": arm, "false_episodes": np.r_[fe_a, fe_b], "incidents": 2.0,
                       "missed": np.r_[missed_a, missed_b], "delay_s": np.r_[delay_a, delay_b]})
    df["caught"] = df["incidents"] - df["missed"]
    return df.iloc[rng.permutation(n)].reset_index(drop=True)


def test_guardrails_pass_and_fail():
    rng = np.random.default_rng(1)
    ok = _outcomes(rng.poisson(2, 30), rng.poisson(2, 30), np.zeros(30), np.zeros(30),
                   rng.normal(120, 10, 30), rng.normal(120, 10, 30))
    g = {x["name"]: x for x in guardrails(ok)}
    assert g["missed_incidents"]["status"] == "pass" and g["detection_delay"]["status"] == "pass"
    bad = _outcomes(rng.poisson(2, 30), rng.poisson(2, 30), np.zeros(30), np.ones(30),
                    rng.normal(120, 10, 30), rng.normal(600, 10, 30))
    g = {x["name"]: x for x in guardrails(bad)}
    assert g["missed_incidents"]["status"] == "fail" and g["detection_delay"]["status"] == "fail"


def test_decide_adopts_a_clear_improvement_early_and_refuses_to_peek_with_a_fixed_plan():
    rng = np.random.default_rng(2)
    out = _outcomes(rng.poisson(3, 30).astype(float), rng.poisson(0.5, 30).astype(float), np.zeros(30),
                    np.zeros(30), rng.normal(120, 10, 30), rng.normal(110, 10, 30))
    plan = plan_experiment(3.0, 1.7, mde_rel=-0.5, stopping="msprt")
    d = decide(plan, out)
    assert d.action == "adopt" and d.stopped_early and d.units < 60
    assert d.primary["cs"][1] < 0 and d.primary["log_lr"] >= d.primary["log_threshold"]
    fixed = plan_experiment(3.0, 1.7, mde_rel=-0.5, stopping="fixed")
    assert fixed.units > 10
    early = decide(fixed, out.iloc[:10])
    assert early.action == "extend" and "no decision before" in early.reason
    obf = plan_experiment(3.0, 1.7, mde_rel=-0.5, stopping="obf", look_every=5)
    g = decide(obf, out)
    assert g.action == "adopt" and g.units % 5 == 0 and g.units < obf.units and g.stopped_early
    assert g.primary["obf_boundary"] > 1.96
    assert decide(obf, out.iloc[:4]).action == "extend"


def test_decide_rejects_on_a_failed_guardrail_and_without_an_effect():
    rng = np.random.default_rng(3)
    worse = _outcomes(rng.poisson(3, 30).astype(float), rng.poisson(0.5, 30).astype(float), np.zeros(30),
                      np.ones(30) * 2, rng.normal(120, 10, 30), rng.normal(110, 10, 30))
    plan = plan_experiment(3.0, 1.7, mde_rel=-0.5, stopping="msprt")
    d = decide(plan, worse)
    assert d.action == "reject" and "misses significantly more" in d.reason
    same = _outcomes(rng.poisson(3, 40).astype(float), rng.poisson(3, 40).astype(float), np.zeros(40),
                     np.zeros(40), rng.normal(120, 10, 40), rng.normal(120, 10, 40))
    fixed = plan_experiment(3.0, 1.7, mde_rel=-0.5, stopping="fixed")
    v = decide(fixed, same.iloc[: fixed.units])
    assert v.action == "reject" and "no difference" in v.reason


# ------------------------------------------------------------------------------ honesty checks
@pytest.mark.parametrize("days", [30, 60])
def test_aa_false_positive_rate_sequential_within_alpha_naive_peeking_above(pool, days):
    plan = plan_experiment(pool.mean(), pool.std(ddof=1), mde_d=0.8, stopping="msprt")
    res = aa_check(pool, plan, runs=1000, units=days, peek="daily", seed=7)
    seq, naive = res["sequential"], res["naive_peeking"]
    assert seq["runs"] == naive["runs"] == 1000
    assert seq["false_positive_rate"] <= plan.alpha + 0.01
    assert res["group_sequential"]["false_positive_rate"] <= plan.alpha + 0.01
    assert naive["false_positive_rate"] > plan.alpha
    assert naive["interval"][0] > plan.alpha                   # visibly, not by chance
    assert naive["false_positive_rate"] > 2 * seq["false_positive_rate"]
    assert res["fixed_horizon"]["false_positive_rate"] <= plan.alpha + 0.02


@pytest.mark.parametrize("stopping", ["fixed", "msprt", "obf"])
def test_achieved_power_is_within_five_points_of_planned(pool, stopping):
    plan = plan_experiment(pool.mean(), pool.std(ddof=1), mde_d=1.0, stopping=stopping)
    res = power_check(pool, plan, runs=1000, seed=9)
    assert abs(res["achieved"] - res["planned"]) <= 0.05


def test_draw_runs_refuses_a_constant_pool():
    with pytest.raises(InsufficientDataError):
        draw_runs(np.zeros(50), runs=10, units=10, split=0.5)


# ------------------------------------------------------------------------------ command line
def test_cli_aa_json(capsys):
    assert main(["aa", "--runs", "300", "--peek", "daily", "--pool-days", "40", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for k in ("sequential", "naive_peeking"):
        assert set(res[k]) == {"runs", "alpha", "false_positive_rate", "interval"}
        assert res[k]["runs"] == 300 and res[k]["interval"][0] <= res[k]["false_positive_rate"]
    assert res["naive_peeking"]["false_positive_rate"] > res["sequential"]["false_positive_rate"]


def test_cli_power_json_and_bad_input(capsys):
    assert main(["power", "--runs", "200", "--effect", "1.2", "--pool-days", "40", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["fixed_horizon"]["planned"] == 0.8 and 0 <= res["sequential"]["achieved"] <= 1
    assert main(["power", "--runs", "50", "--effect", "1", "--split", "0.95"]) == 2
    assert "split" in capsys.readouterr().err


# ------------------------------------------------------------------------------ benchmark
@pytest.mark.bench
def test_bench_experiment_speed_goals():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "bench" / "experiment.py"), "--quick"], capture_output=True,
                          text=True, timeout=600, cwd=root)
    print(proc.stdout)
    assert proc.returncode == 0 and "goals met" in proc.stdout, proc.stdout + proc.stderr


def test_cli_on_a_stored_series_with_its_incidents(tmp_path, capsys, history):
    from core.data.store import Store

    db = tmp_path / "s.duckdb"
    pts = pd.DataFrame({"series": history.name, "ts": history.index, "value": history.to_numpy()})
    with Store(db) as st:
        st.write_points(pts, name="h.csv", sha256="h", fmt="long")
        st.add_incidents(pd.DataFrame({"series": [history.name], "start": [history.index[3 * 1440 + 600]],
                                       "end": [history.index[3 * 1440 + 700]]}), source="test")
    assert main(["run", "--db", str(db), "--series", str(history.name), "--threshold-b", "999",
                 "--pool-days", "20", "--days", "20", "--stopping", "fixed", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["days"] == 20 and res["decision"]["action"] in ("adopt", "reject", "extend")
    # B never fires: it misses every incident, so it can never be adopted
    assert res["decision"]["action"] != "adopt"
    assert main(["aa", "--db", str(db), "--series", "nope", "--runs", "10"]) == 2
    assert "no stored points" in capsys.readouterr().err
