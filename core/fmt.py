"""Short text for timestamps and durations, shared by the pages, the CLI and core's own reports, and
:func:`json_safe` (plain JSON values from numpy/pandas ones).

No Streamlit import. Both functions accept "nothing" (None, NaN, NaT; for durations also an infinite
value) and return the ``missing`` text for it, so a table cell or a caption never reads ``nan``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["fmt_duration", "fmt_ts", "json_safe"]

# (suffix, seconds) from the largest unit down.
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def fmt_ts(ts: Any, missing: str = "-") -> str:
    """A timestamp as ``2026-01-02 03:04 UTC`` (minute precision).

    A tz-aware value is converted to UTC first; a naive one is taken to be UTC already (the store's
    convention). ``missing`` for None/NaN/NaT.
    """
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return missing
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.strftime("%Y-%m-%d %H:%M UTC")


def fmt_duration(seconds: float | None, missing: str = "-") -> str:
    """A duration in seconds as at most two adjacent units: ``3d 4h``, ``2h 5m``, ``2m 5s``, ``45s``.

    Rounded to whole seconds, then cut (not rounded) to the two largest adjacent units, so
    ``3d 4h 59s`` reads ``3d 4h``; a zero second unit is dropped (``1h``, not ``1h 0m``). Negative
    durations keep their sign (``-2m 5s``); zero is ``0s``. ``missing`` for None, NaN or infinity.
    """
    if seconds is None:
        return missing
    try:
        x = float(seconds)
    except (TypeError, ValueError):
        return missing
    if not math.isfinite(x):
        return missing
    s = int(round(abs(x)))
    if s == 0:
        return "0s"
    sign = "-" if x < 0 else ""
    for i, (name, size) in enumerate(_UNITS):
        if s >= size:
            text = f"{s // size}{name}"
            if i + 1 < len(_UNITS):
                nxt, nsize = _UNITS[i + 1]
                rest = s % size // nsize
                if rest:
                    text += f" {rest}{nxt}"
            return sign + text
    raise AssertionError("unreachable: s >= 1 always matches the seconds unit")


def json_safe(v: Any) -> Any:
    """A JSON-ready copy of ``v``: dicts, lists and tuples (as lists) recursively; timestamps as ISO
    8601; NaN, infinities, NaT and None as None; numpy scalars as Python ones."""
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):   # numpy scalar
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
