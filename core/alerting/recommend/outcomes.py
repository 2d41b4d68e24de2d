"""What each candidate rule of a recommendation did on the held-out period, with intervals.

The Recommendations page's detail view sets the rule in force, the recommendation and every scalar
strategy candidate side by side. Each is replayed once over the whole history (causal) and judged on
the held-out period only (after the split; the candidates were fit before it, so this is out of
sample): episodes per week, time in alert, incidents caught and missed, median detection delay and
reset time, each with a 90 % interval:

* episodes/week: :func:`.confidence.rate_interval` (moving-block bootstrap of the daily counts,
  united with the exact Poisson interval of the total);
* time in alert: moving-block bootstrap of the daily alert time (blocks of 3 days; below 6 days the
  interval is not given, and says so);
* incidents caught / missed: Clopper-Pearson interval of the share caught, times the number of
  held-out incidents;
* median detection delay and reset time: bootstrap of the median over the caught incidents (at least
  3 caught, else no interval).

Pure: a function of one series' points, its incidents and the recommendation's dict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta

from core.alerting.recommend.confidence import CONFIDENCE, rate_interval
from core.alerting.replay import replay
from core.alerting.rules import Rule
from core.analysis.scoring import score_events
from core.errors import ValidationError

__all__ = ["candidate_outcomes", "OUTCOME_COLUMNS", "MIN_CAUGHT_FOR_INTERVAL", "BLOCK_DAYS"]

#: caught incidents needed before the delay and reset medians get a bootstrap interval
MIN_CAUGHT_FOR_INTERVAL = 3
#: block length (days) of the time-in-alert bootstrap; at least two blocks are needed
BLOCK_DAYS = 3
_NS = 1_000_000_000
_DAY_NS = 86400 * _NS
OUTCOME_COLUMNS = ["rule", "strategy", "warning", "critical", "for_s", "episodes_per_week", "episodes_low",
                   "episodes_high", "time_in_alert_pct", "time_in_alert_low", "time_in_alert_high", "incidents",
                   "caught", "caught_low", "caught_high", "missed", "missed_low", "missed_high", "delay_s",
                   "delay_low", "delay_high", "reset_s", "reset_low", "reset_high", "note"]


def _clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def _median_interval(x: np.ndarray, confidence: float, n_boot: int, rng: np.random.Generator
                     ) -> tuple[float, float]:
    if x.size < MIN_CAUGHT_FOR_INTERVAL:
        return (math.nan, math.nan)
    meds = np.median(x[rng.integers(0, x.size, size=(n_boot, x.size))], axis=1)
    lo, hi = np.quantile(meds, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def _alert_time_interval(alert_s: np.ndarray, span_s: np.ndarray, confidence: float, n_boot: int,
                         rng: np.random.Generator) -> tuple[float, float]:
    days = alert_s.size
    if days < 2 * BLOCK_DAYS:
        return (math.nan, math.nan)
    nb = math.ceil(days / BLOCK_DAYS)
    starts = rng.integers(0, days - BLOCK_DAYS + 1, size=(n_boot, nb))
    ca, cs = np.concatenate(([0.0], np.cumsum(alert_s))), np.concatenate(([0.0], np.cumsum(span_s)))
    num = (ca[starts + BLOCK_DAYS] - ca[starts]).sum(axis=1)
    den = (cs[starts + BLOCK_DAYS] - cs[starts]).sum(axis=1)
    pct = 100.0 * num / np.where(den > 0, den, np.nan)
    lo, hi = np.nanquantile(pct, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


def _one(name: str, strategy: str | None, rule: Rule, s: pd.Series, split: pd.Timestamp,
         inc: pd.DataFrame | None, confidence: float, n_boot: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rep = replay(rule, s)
    t_end = int(rep.ts_ns[-1])
    a = int(split.value)
    # daily windows of the held-out period (the last one runs through the last evaluation)
    edges = list(range(a, t_end, _DAY_NS)) + [t_end]
    per = [rep.period(pd.Timestamp(x, tz="UTC"), None if y == t_end else pd.Timestamp(y, tz="UTC"))
           for x, y in zip(edges[:-1], edges[1:], strict=True)]
    held = rep.period(split, None)
    eps = rep.alert_episodes(None)
    st = eps["start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    e_lo, e_hi = rate_interval(st, a, t_end + 1, n_boot=n_boot, confidence=confidence, seed=seed)
    t_lo, t_hi = _alert_time_interval(np.array([p["time_in_alert_s"] for p in per], dtype=float),
                                      np.array([p["span_s"] for p in per], dtype=float), confidence, n_boot, rng)
    row: dict[str, Any] = {
        "rule": name, "strategy": strategy, "warning": rule.warning, "critical": rule.critical, "for_s": rule.for_s,
        "episodes_per_week": held["episodes_per_week"], "episodes_low": e_lo, "episodes_high": e_hi,
        "time_in_alert_pct": held["time_in_alert_pct"], "time_in_alert_low": t_lo, "time_in_alert_high": t_hi,
        "incidents": 0, "note": None}
    notes = []
    if len(per) < 2 * BLOCK_DAYS:
        notes.append(f"time-in-alert interval needs at least {2 * BLOCK_DAYS} held-out days ({len(per)})")
    sub = None if inc is None else inc[inc["start"] >= split].reset_index(drop=True)
    if sub is not None and len(sub):
        part = eps[eps["start"] >= split]
        alerts = part[["start", "end"]].copy()
        alerts.loc[part["open"].to_numpy(), "end"] = pd.NaT
        sc = score_events(alerts, sub)
        n, k = int(len(sub)), int(sc.tp)
        lo, hi = _clopper_pearson(k, n, confidence)
        pi = sc.per_incident
        caught = pi["caught"].to_numpy(dtype=bool)
        d = pi["delay_s"].to_numpy(dtype=float)[caught]
        r = pi["reset_s"].to_numpy(dtype=float)[caught]
        r = r[np.isfinite(r)]
        d_lo, d_hi = _median_interval(d, confidence, n_boot, rng)
        r_lo, r_hi = _median_interval(r, confidence, n_boot, rng)
        row.update({"incidents": n, "caught": k, "caught_low": n * lo, "caught_high": n * hi, "missed": n - k,
                    "missed_low": n * (1 - hi), "missed_high": n * (1 - lo),
                    "delay_s": sc.detection_delay_s, "delay_low": d_lo, "delay_high": d_hi,
                    "reset_s": sc.reset_time_s, "reset_low": r_lo, "reset_high": r_hi})
        if k < MIN_CAUGHT_FOR_INTERVAL:
            notes.append(f"{k} incident(s) caught: delay and reset intervals need at least "
                         f"{MIN_CAUGHT_FOR_INTERVAL}")
    else:
        notes.append("no labelled incident in the held-out period")
    row["note"] = "; ".join(notes) or None
    return row


def candidate_outcomes(values: pd.Series, rec: Mapping[str, Any], incidents: pd.DataFrame | None = None, *,
                       confidence: float = CONFIDENCE, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """The rule in force, the recommendation and each scalar candidate on the held-out period.

    Parameters
    ----------
    values : Series
        The series' raw points (UTC index; NaN = missing, never filled).
    rec : mapping
        A recommendation as :meth:`~core.alerting.recommend.engine.Recommendation.to_dict` (or a
        fleet result): its ``comparator``, ``for_seconds``, ``validation.split``, levels,
        ``candidates`` and, with a rule in force, ``current``.
    incidents : DataFrame, optional
        Labelled windows ``start, end`` (optional ``series``: the series' own and global ones count).
    confidence, n_boot, seed
        Interval level (0.9), bootstrap resamples and seed (fixed: the same inputs give the same rows).

    Returns
    -------
    DataFrame
        One row per rule (:data:`OUTCOME_COLUMNS`): ``rule`` is ``in force``, ``recommended`` or the
        strategy's name; rates in episodes per week, time in alert in percent, delays in seconds;
        ``*_low`` / ``*_high`` the interval (NaN when it cannot be given, with the reason in
        ``note``). Candidates the strategies refused, or with hourly levels, are left out.
    """
    split_raw = (rec.get("validation") or {}).get("split")
    if rec.get("insufficient") or split_raw is None:
        raise ValidationError(f"no recommendation for {rec.get('series')}: {rec.get('insufficient') or 'no split'}",
                              path="rec")
    s = values.sort_index()
    split = pd.Timestamp(split_raw)
    split = split.tz_localize("UTC") if split.tz is None else split.tz_convert("UTC")
    inc = None
    if incidents is not None and len(incidents):
        inc = incidents
        if "series" in inc.columns:
            inc = inc[inc["series"].isna() | (inc["series"] == rec.get("series"))]
        inc = inc[["start", "end"]].assign(start=lambda d: pd.to_datetime(d["start"], utc=True),
                                           end=lambda d: pd.to_datetime(d["end"], utc=True))
    cmp_, for_s, key = rec["comparator"], float(rec.get("for_seconds") or 0.0), str(rec.get("series"))
    rules: list[tuple[str, str | None, Rule]] = []
    cur = rec.get("current") or {}
    if cur.get("warning") is not None or cur.get("critical") is not None:
        rules.append(("in force", None, Rule(name="in force", series=key, comparator=cmp_, warning=cur.get("warning"),
                                             critical=cur.get("critical"), for_s=cur.get("for_seconds") or 0.0)))
    rules.append(("recommended", rec.get("strategy"), Rule(name="recommended", series=key, comparator=cmp_,
                                                           warning=rec.get("warning"), critical=rec.get("critical"),
                                                           for_s=for_s)))
    for c in rec.get("candidates") or []:
        if c.get("insufficient") or c.get("warning") is None or c.get("strategy") == "seasonal":
            continue
        crit = c.get("critical")
        up = cmp_ in (">", ">=")
        if crit is not None and ((crit <= c["warning"]) if up else (crit >= c["warning"])):
            crit = None
        rules.append((str(c["strategy"]), str(c["strategy"]),
                      Rule(name=str(c["strategy"]), series=key, comparator=cmp_, warning=c["warning"], critical=crit,
                           for_s=for_s)))
    rows = [_one(n, st, r, s, split, inc, confidence, n_boot, seed) for n, st, r in rules]
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
