"""Sentences that report analysis results: a verdict with its evidence, or why there is none.

Every function takes core result objects (:mod:`core.analysis.pipeline`, :mod:`core.analysis.trend`, ...) and returns
plain text (Markdown-safe, no HTML). A stage without enough data always reads
"Insufficient data for ...: <reason>", never a number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.analysis.forecast import Backtest, Forecast
from core.analysis.pipeline import Analysis
from core.analysis.trend import ChangePoints, Trend


def _num(x: float, unit: str = "") -> str:
    return f"{x:.4g}{' ' + unit if unit else ''}"


def _insufficient(what: str, reason: str) -> str:
    return f"Insufficient data for {what}: {reason or 'no reason given'}"


def trend_text(trend: Trend) -> str:
    """The trend verdict (direction, slope per day, p-value) or why none could be tested."""
    return trend.verdict if trend.sufficient else _insufficient("a trend", trend.reason)


def trend_headline(trend: Trend, unit: str = "") -> tuple[str, str, str]:
    """The trend panel's headline: ``(label, value, caption)`` for a metric widget.

    The slope (value units per day) is the headline value only when the Mann-Kendall test is
    significant at ``trend.alpha``; otherwise the value reads "no significant trend" and the slope,
    its confidence interval and the p-value go to the caption, so a number the test does not support
    is never shown as the finding. Without enough data the value reads "insufficient data" and the
    caption is :func:`trend_text` ("Insufficient data for a trend: <reason>").
    """
    if not trend.sufficient:
        return "Trend", "insufficient data", trend_text(trend)
    u = f" {unit}" if unit else ""
    p, a = f"p={trend.p_value:.2g}", f"{trend.alpha:g}"
    ci = f"{1 - trend.alpha:.0%} CI {trend.slope_lower:+.3g} to {trend.slope_upper:+.3g}{u}/day"
    if trend.significant:
        return (f"Slope per day ({p})", f"{trend.slope_per_day:+.3g}{u}",
                f"{trend.direction}: {ci}; significant ({p} < {a})")
    return (f"Trend ({p})", "no significant trend",
            f"slope {trend.slope_per_day:+.3g}{u}/day, {ci}; not significant ({p} >= {a})")


def seasonality_text(seas: Any) -> str:
    """Daily/weekly seasonality verdict (:class:`core.analysis.seasonality.Seasonality`)."""
    if not seas.sufficient:
        return _insufficient("seasonality", seas.reason)
    return seas.verdict + (f" ({seas.reason})" if seas.reason else "")


def baseline_text(a: Analysis) -> str:
    """Median and p95 with their 95% CIs, how many raw points (and effectively independent ones) they
    come from, and what was left out. A number whose interval is insufficient is not stated (the p95
    of 40 strongly autocorrelated points is a guess); the median keeps its value with the reason."""
    b, unit = a.baseline, a.unit
    if not b.sufficient:
        return _insufficient("a baseline", b.reason)
    m = b.median
    head = f"median {_num(m.value, unit)}"
    head += f" (95% CI {m.lower:.4g} to {m.upper:.4g})" if m.sufficient else f" (no honest CI: {m.reason})"
    parts = [head]
    p95 = b.percentiles.get(0.95)
    if p95 is not None and p95.sufficient and np.isfinite(p95.lower):
        parts.append(f"p95 {_num(p95.value, unit)} (95% CI {p95.lower:.4g} to {p95.upper:.4g})")
    elif p95 is not None:
        parts.append(f"p95 not stated: {p95.reason or 'no honest interval'}")
    parts.append(f"from {b.n:,} raw points (worth about {b.n_eff:,.0f} independent ones)"
                 if np.isfinite(b.n_eff) else f"from {b.n:,} raw points")
    n_inc, n_out = a.excluded.get("incidents", 0), a.excluded.get("outages", 0)
    if n_inc:
        parts.append(f"{n_inc:,} incident points excluded")
    if n_out:
        parts.append(f"{n_out:,} detected-outage points excluded")
    return "; ".join(parts)


def quality_text(q: Any) -> str:
    """Quality grade and score with the first issues (:class:`core.data.quality.SeriesQuality`)."""
    if q is None:
        return "Quality not assessed."
    if q.score is None:
        return f"grade insufficient: only {q.points} points" + (f" ({'; '.join(q.issues)})" if q.issues else "")
    return f"grade {q.grade} (score {q.score:.0f}/100)" + (f": {'; '.join(q.issues[:3])}" if q.issues else "")


def band_text(a: Analysis, coverage: float = 0.95) -> str:
    """How the seasonal band was built, and for how many hours its range is withheld (pool too small
    for a distribution-free ``coverage`` range, e.g. hourly data)."""
    from core.analysis.seasonality import min_band_points

    b = a.band
    out = ("Band: median and 95% range of the same hour in the 4 previous weeks (the 4 previous days "
           "where that pool is too small); causal, each hour uses only earlier data.")
    if not len(b):
        return out
    has_exp = np.isfinite(b["expected"].to_numpy(dtype=float))
    no_range = has_exp & ~np.isfinite(b["lower"].to_numpy(dtype=float))
    if no_range.any():
        n = b["n"].to_numpy()[no_range] if "n" in b.columns else np.zeros(1)
        out += (f" The 95% range is withheld for {int(no_range.sum()):,} of {len(b):,} hours: their pools "
                f"hold at most {int(n.max())} points and a 95% range needs {min_band_points(coverage)} "
                "(sample more often than every 5 minutes, or read the expected line alone).")
    return out


def forecast_text(fc: Forecast, bt: Backtest | None) -> str:
    """Forecast horizon and method, how its intervals were made (named), and the rolling-origin
    backtest: coverage per horizon band with its binomial interval and the origins behind it."""
    if not fc.sufficient:
        return _insufficient("a forecast", fc.reason)
    out = (f"{fc.horizon_hours / 24:g}-day forecast of hourly medians ({fc.method}) with 80%/95% intervals: "
           f"{fc.interval_text()}")
    if bt is None:
        return out + "; no backtest run."
    return out + ". Backtest: " + bt.summary() + "."


def trend_method_text(trend: Trend) -> str:
    """Which test, which autocorrelation correction and which seasonal removal the trend used."""
    if not trend.sufficient:
        return ""
    return (f"Mann-Kendall test on {trend.n} hourly medians; seasonality: {trend.seasonality_removed or 'none'}; "
            f"autocorrelation: {trend.correction or 'not assessed'}.")


def backtest_frame(bt: Backtest | None) -> pd.DataFrame:
    """The rolling-origin backtest per horizon band as a table (empty when not run or insufficient):
    hours ahead, origins, coverage of the 80% and 95% intervals with 95% Wilson intervals (percent),
    MAE and seasonal-naive MAE."""
    cols = ["hours ahead", "origins", "in 80% band", "80% CI", "in 95% band", "95% CI", "MAE", "naive MAE"]
    if bt is None or not bt.sufficient:
        return pd.DataFrame(columns=cols)
    rows = [(b.label, b.n_origins, f"{b.coverage80:.0%}", f"{b.ci80[0]:.0%}-{b.ci80[1]:.0%}",
             f"{b.coverage95:.0%}", f"{b.ci95[0]:.0%}-{b.ci95[1]:.0%}", float(b.mae), float(b.naive_mae))
            for b in bt.bands]
    return pd.DataFrame(rows, columns=cols)


def anomaly_text(a: Analysis) -> str:
    """How many alarms the range holds (and flagged points), the alert load per week, the rule, and how
    the detectors were trained."""
    d = a.detections
    if d is None:
        return "Anomaly detection not run."
    if not d.sufficient:
        return _insufficient("anomaly detection", d.reason) + (f" ({d.note})" if d.note else "")
    rate = (f"; {d.alarms_per_week:.1f} per week over {d.scored_days:.1f} scored days, "
            f"{d.false_alarms_per_week:.1f} per week outside labelled incidents (the false-alarm rate this "
            "sensitivity gave on this history)" if np.isfinite(d.false_alarms_per_week) else "")
    rule = f" Rule: {d.rule.describe()}." if d.rule is not None else ""
    return (f"{len(d.anomalies)} anomalies (alarms) in the range, from {len(d.flagged)} point(s) at score >= "
            f"{d.threshold:.6g}{rate} ({d.note}).{rule}")


def outage_text(a: Analysis, excluded: bool = True) -> str:
    """Detected outages in the range and whether they were left out of the baseline and band."""
    n = len(a.outages)
    if not n:
        return "No outage detected in the range."
    pts = int(np.sum(a.outage_mask))
    use = ("left out of the baseline, the band's history and the detectors' training" if excluded
           else "kept in the baseline and the band")
    return f"{n} detected outage(s) covering {pts:,} points of the range, {use}."


def shifts_frame(cp: ChangePoints) -> pd.DataFrame:
    """Level shifts as rows ``ts, level_before, level_after, change`` (empty when none or insufficient)."""
    if not cp.sufficient:
        return ChangePoints(False).to_frame()
    return cp.to_frame()


def shifts_text(cp: ChangePoints, unit: str = "", top: int = 3) -> str:
    """The largest level shifts as a sentence, or why none could be looked for."""
    if not cp.sufficient:
        return _insufficient("change points", cp.reason)
    caveat = ""
    if 168 not in cp.periods:
        caveat = (" With under 4 weeks of data the weekly pattern is not modelled: a weekend can look "
                  "like a shift.")
    df = cp.to_frame()
    if not len(df):
        return "No level shift found." + caveat
    big = df.reindex(df["change"].abs().sort_values(ascending=False).index).head(top)
    u = f" {unit}" if unit else ""
    items = "; ".join(f"{ts:%Y-%m-%d %H:%M} {c:+.3g}{u}" for ts, c in zip(big["ts"], big["change"], strict=True))
    more = f" (largest {top} of {len(df)})" if len(df) > top else ""
    how = " (multiplicative: fitted on the log scale)" if cp.scale == "log" else ""
    return f"Level shifts{more}{how}: {items}.{caveat}"


#: What each detector member's agreement means, in words (the anomaly explanations).
MEMBER_TEXT = {
    "seasonal_z": "unusual for this hour of the day/week",
    "cusum": "a sustained shift away from the recent level",
    "ewma_residual": "far from the short-term forecast",
    "drift_z": "level differs from the same time last week",
    "dist_change": "the last two hours' distribution changed",
    "iforest": "an unusual pattern of recent values",
    "mp_discord": "the recent shape (last 0.5-2 hours) has no close match in the three days before",
}


def member_reasons(members: str) -> str:
    """A comma-separated list of detector members as the reasons they give ("" for none)."""
    names = [m for m in str(members or "").split(",") if m]
    return "; ".join(f"{m}: {MEMBER_TEXT.get(m, m)}" for m in names)


def alarm_frame(a: Analysis) -> pd.DataFrame:
    """The alarms of an analysis as a table for people: ``start, value, score, explained by, expected,
    lower, upper, last flagged point, flagged points`` (one row per alarm, in time order)."""
    an = a.anomalies
    if not len(an):
        return pd.DataFrame(columns=["start", "value", "score", "explained by", "expected", "lower", "upper",
                                     "last flagged point", "flagged points"])
    return pd.DataFrame({"start": an["ts"], "value": an["value"], "score": an["score"],
                         "explained by": [member_reasons(m) or "combined evidence of several members"
                                          for m in an["detectors"]],
                         "expected": an["expected"], "lower": an["lower"], "upper": an["upper"],
                         "last flagged point": an["end"], "flagged points": an["points"]}).reset_index(drop=True)
