"""Recommendations for a whole fleet: one :func:`~core.alerting.recommend.engine.recommend` per series,
run serially, in a local process pool, or on a Dask distributed cluster, with the same results.

The per-series recommendation is a pure function of that series' points (plus its incidents and rule
in force) with a fixed bootstrap seed, so where it runs cannot change what it returns: the tests run
the same fleet locally and on a ``distributed.LocalCluster`` and compare the outputs.

Pointing at a real cluster: start ``dask scheduler`` on one machine and ``dask worker
tcp://HOST:8786`` on each worker (with this project installed in the same Python environment), then
pass ``scheduler="tcp://HOST:8786"`` (CLI: ``--scheduler tcp://HOST:8786``). Each task carries its
series' points as numpy arrays through the scheduler, so workers need no access to the database file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.recommend.constraints import Constraints
from core.alerting.recommend.engine import recommend
from core.alerting.rules import Rule
from core.errors import ValidationError

__all__ = ["FleetItem", "split_points", "recommend_one", "recommend_fleet"]

#: one series' task: (key, timestamps as int64 ns UTC, values, its incidents or None, rule in force as a
#: dict or None, that rule's bounds ``{min, max}`` or None)
FleetItem = tuple[str, np.ndarray, np.ndarray, "pd.DataFrame | None", "dict[str, Any] | None",
                  "dict[str, float] | None"]


def split_points(points: pd.DataFrame, incidents: pd.DataFrame | None = None,
                 current: Mapping[str, Rule] | None = None,
                 bounds: Mapping[str, Mapping[str, float]] | None = None) -> list[FleetItem]:
    """One task per series of a points frame ``series, ts, value`` (sorted by series, then time).

    ``current`` maps a series key to its rule in force; ``bounds`` maps a *rule name* to its
    ``{min, max}`` (the policy's ``meta["bounds"]``)."""
    for col in ("series", "ts", "value"):
        if col not in points.columns:
            raise ValidationError(f"points frame lacks column {col!r}; expected series, ts, value", path=f"points.{col}")
    p = points.sort_values(["series", "ts"], kind="stable")
    keys = p["series"].astype(str).to_numpy()
    t = pd.DatetimeIndex(p["ts"]).tz_convert("UTC").as_unit("ns").asi8
    v = p["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    edges = np.concatenate(([0], cut, [keys.size]))
    items: list[FleetItem] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b <= a:
            continue
        key = str(keys[a])
        inc = None
        if incidents is not None and len(incidents):
            inc = incidents[incidents["series"].isna() | (incidents["series"] == key)] \
                if "series" in incidents.columns else incidents
            inc = inc.reset_index(drop=True) if len(inc) else None
        rule = current.get(key) if current else None
        b_ = dict(bounds.get(rule.name, {})) if (bounds and rule is not None) else None
        items.append((key, t[a:b], v[a:b], inc, rule.to_dict() if rule is not None else None, b_ or None))
    return items


def recommend_one(item: FleetItem, options: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`recommend` of one task, as the JSON-ready dict (a module-level function, so it pickles).

    With a rule in force its comparator is used and its bounds become :class:`Constraints` (with the
    ``max_change`` option, default 20 %)."""
    key, t, v, inc, rule, bounds = item
    s = pd.Series(v, index=pd.DatetimeIndex(t.astype("datetime64[ns]")).tz_localize("UTC"), name=key)
    opts = dict(options)
    max_change = opts.pop("max_change", 0.2)
    cur = Rule.from_dict(rule) if rule is not None else None
    if cur is not None:
        opts["comparator"] = cur.comparator
        opts["constraints"] = Constraints.from_bounds(bounds, max_change=max_change)
    out = recommend(s, incidents=inc, current=cur, **opts).to_dict()
    if cur is not None:
        out["rule"] = cur.name
        out["current"] = {"warning": cur.warning, "critical": cur.critical, "for_seconds": cur.for_s}
    return out


def _chunk(items: list[FleetItem], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [recommend_one(i, options) for i in items]


def recommend_fleet(items: Iterable[FleetItem], *, workers: int | None = None, scheduler: Any = None,
                    progress: Callable[[int, int], None] | None = None, **options: Any) -> list[dict[str, Any]]:
    """Recommend every series; results in the order of ``items``.

    Parameters
    ----------
    items : iterable of FleetItem
        From :func:`split_points`.
    workers : int, optional
        Local processes (default: the CPU count; 1 = in this process). Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``tcp://host:8786``) or a client: run there instead.
    progress : callable, optional
        ``progress(done, total)`` after each finished series (local runs) or chunk.
    options
        Keyword arguments of :func:`~core.alerting.recommend.engine.recommend` (preset, train_fraction, ...).
    """
    items = list(items)
    total = len(items)
    if scheduler is not None:
        return _on_dask(items, scheduler, options, progress)
    n = workers or os.cpu_count() or 1
    if n <= 1 or total <= 1:
        out = []
        for i, it in enumerate(items):
            out.append(recommend_one(it, options))
            if progress:
                progress(i + 1, total)
        return out
    size = max(1, -(-total // (4 * n)))                       # ~4 chunks per worker: balance vs overhead
    chunks = [items[a:a + size] for a in range(0, total, size)]
    out: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=n) as ex:
        for res in ex.map(_chunk, chunks, [options] * len(chunks)):
            out.extend(res)
            if progress:
                progress(len(out), total)
    return out


def _on_dask(items: list[FleetItem], scheduler: Any, options: Mapping[str, Any],
             progress: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
        raise ValidationError("running on a Dask cluster needs the 'distributed' package", path="scheduler") from exc
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler) if own else scheduler
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValidationError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}", path="scheduler") from exc
    try:
        futs = client.map(recommend_one, items, options=dict(options), pure=False)
        done = 0
        for _ in as_completed(futs):
            done += 1
            if progress:
                progress(done, len(items))
        return client.gather(futs)
    finally:
        if own:
            client.close()
