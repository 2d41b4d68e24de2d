"""Recommendations for a whole fleet: one :func:`~core.alerting.recommend.engine.recommend` per series,
run serially, in a local process pool, or on a Dask distributed cluster, with the same results.

The per-series recommendation is a pure function of that series' points (plus its incidents and rule
in force) with a fixed bootstrap seed, so where it runs cannot change what it returns: the tests run
the same fleet locally and on a ``distributed.LocalCluster`` and compare the outputs.

Pointing at a real cluster: start ``dask scheduler`` on one machine and ``dask worker
tcp://HOST:8786`` on each worker (with this project installed in the same Python environment), then
pass ``scheduler="tcp://HOST:8786"`` (CLI: ``--scheduler tcp://HOST:8786``) and ``parquet_dir`` (CLI:
``--parquet-dir``), a directory on a filesystem every worker mounts. The points of the series are
exported there as Parquet partitions, one per batch of series (DuckDB ``COPY ... PARTITION_BY``), and
each task reads its own partition; the tasks carry only the series keys, incidents and rules, and
workers never need the database file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.recommend.constraints import Constraints, LastChange, last_changes
from core.alerting.recommend.engine import recommend
from core.alerting.rules import Rule
from core.data.store.parquet import export_points, read_partition
from core.errors import ValidationError

__all__ = ["FleetItem", "split_points", "recommend_one", "recommend_fleet", "fleet_table", "apply_changes", "TABLE_COLUMNS"]

#: one series' task: (key, timestamps as int64 ns UTC, values, its incidents or None, rule in force as a
#: dict or None, that rule's older-policy bounds ``{min, max}`` or None, the last applied change of the
#: rule's (warning, critical) for the oscillation guard)
FleetItem = tuple[str, np.ndarray, np.ndarray, "pd.DataFrame | None", "dict[str, Any] | None",
                  "dict[str, float] | None", "tuple[LastChange | None, LastChange | None]"]


def split_points(points: pd.DataFrame, incidents: pd.DataFrame | None = None,
                 current: Mapping[str, Rule] | None = None,
                 bounds: Mapping[str, Mapping[str, float]] | None = None,
                 history: Iterable[tuple[Any, Iterable[Mapping[str, Any]]]] | None = None) -> list[FleetItem]:
    """One task per series of a points frame ``series, ts, value`` (sorted by series, then time).

    ``current`` maps a series key to its rule in force (whose ``limits`` constrain the
    recommendation); ``bounds`` maps a *rule name* to its ``{min, max}`` in a policy stored before
    rules had limits (the policy's ``meta["bounds"]``); ``history`` is the versions in force, oldest
    first, as ``(in force from, rule dicts)``, from which each rule's last level change is found
    (:func:`.constraints.last_changes`, for the oscillation guard)."""
    for col in ("series", "ts", "value"):
        if col not in points.columns:
            raise ValidationError(f"points frame lacks column {col!r}; expected series, ts, value", path=f"points.{col}")
    p = points.sort_values(["series", "ts"], kind="stable")
    keys = p["series"].astype(str).to_numpy()
    t = pd.DatetimeIndex(p["ts"]).tz_convert("UTC").as_unit("ns").asi8
    v = p["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    hist = [(at, [dict(r) for r in rules]) for at, rules in history] if history is not None else None
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
        last = last_changes(hist, rule.name) if (hist and rule is not None) else (None, None)
        items.append((key, t[a:b], v[a:b], inc, rule.to_dict() if rule is not None else None, b_ or None, last))
    return items


def recommend_one(item: FleetItem, options: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`recommend` of one task, as the JSON-ready dict (a module-level function, so it pickles).

    With a rule in force its comparator is used and its stored limits become :class:`Constraints`
    (what it leaves unset: the ``max_change`` option, default 20 %, a 7-day stability period and the
    older policy bounds of the task), with the task's last changes for the oscillation guard."""
    key, t, v, inc, rule, bounds, *rest = item
    last = rest[0] if rest else (None, None)
    s = pd.Series(v, index=pd.DatetimeIndex(t.astype("datetime64[ns]")).tz_localize("UTC"), name=key)
    opts = dict(options)
    max_change = opts.pop("max_change", 0.2)
    cur = Rule.from_dict(rule) if rule is not None else None
    if cur is not None:
        opts["comparator"] = cur.comparator
        cons = Constraints.from_rule(cur, max_change=max_change, bounds=bounds)
        opts["constraints"] = cons
        opts["last_changes"] = last
    out = recommend(s, incidents=inc, current=cur, **opts).to_dict()
    if cur is not None:
        out["rule"] = cur.name
        out["current"] = {"warning": cur.warning, "critical": cur.critical, "for_seconds": cur.for_s}
        out["limits"] = {"min": cons.min, "max": cons.max, "max_change": cons.max_change,
                         "stability_s": cons.stability_s, "text": cons.describe()}
    return out


def _chunk(items: list[FleetItem], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [recommend_one(i, options) for i in items]


def recommend_fleet(items: Iterable[FleetItem], *, workers: int | None = None, scheduler: Any = None,
                    progress: Callable[[int, int], None] | None = None, parquet_dir: str | None = None,
                    **options: Any) -> list[dict[str, Any]]:
    """Recommend every series; results in the order of ``items``.

    Parameters
    ----------
    items : iterable of FleetItem
        From :func:`split_points`.
    workers : int, optional
        Local processes (default: the CPU count; 1 = in this process). Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``tcp://host:8786``) or a client: run there instead. The points are
        exported as Parquet partitions (one per batch of series, written by DuckDB:
        :func:`core.data.store.parquet.export_points`) and each task reads its own.
    parquet_dir : str, optional
        Where the partitions go (with ``scheduler``): a directory every worker can read (a shared
        filesystem mount; a run writes and then removes its own ``studio-fleet-*`` subdirectory).
        Default: a temporary directory on this machine, which only workers on this machine (a
        ``LocalCluster``) can read.
    progress : callable, optional
        ``progress(done, total)`` after each finished series (local runs) or chunk.
    options
        Keyword arguments of :func:`~core.alerting.recommend.engine.recommend` (preset, train_fraction, ...).
    """
    items = list(items)
    total = len(items)
    if scheduler is not None:
        return _on_dask(items, scheduler, options, progress, parquet_dir)
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


def recommend_partition(path: str | None, metas: list[tuple[Any, ...]], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One Dask task: read a Parquet partition of points (:func:`core.data.store.parquet.read_partition`)
    and recommend each of its series. ``metas`` are the tasks' :data:`FleetItem` without the arrays
    (key, incidents, rule, bounds, last changes), in the order the results come back."""
    df = read_partition(path) if path is not None else pd.DataFrame({"series": [], "ts": [], "value": []})
    keys = df["series"].to_numpy()
    t = pd.DatetimeIndex(df["ts"]).as_unit("ns").asi8
    v = df["value"].to_numpy(dtype=np.float64, na_value=np.nan)
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    edges = np.concatenate(([0], cut, [keys.size])).astype(int)
    where = {str(keys[a]): (a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a}
    out = []
    for m in metas:
        a, b = where.get(m[0], (0, 0))
        out.append(recommend_one((m[0], t[a:b], v[a:b], *m[1:]), options))
    return out


def _on_dask(items: list[FleetItem], scheduler: Any, options: Mapping[str, Any],
             progress: Callable[[int, int], None] | None, parquet_dir: str | None) -> list[dict[str, Any]]:
    """Export the points as Parquet partitions (one per batch of series, written by DuckDB), then one
    task per partition that reads it and recommends its series; results in the order of ``items``."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
        raise ValidationError("running on a Dask cluster needs the 'distributed' package", path="scheduler") from exc
    own = not isinstance(scheduler, Client)
    try:
        client = Client(scheduler) if own else scheduler
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValidationError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}", path="scheduler") from exc
    tmp = None
    try:
        if parquet_dir is None:
            tmp = tempfile.mkdtemp(prefix="studio-fleet-")
            root = tmp
        else:
            root = f"{str(parquet_dir).rstrip('/')}/studio-fleet-{uuid.uuid4().hex[:12]}"
        threads = max(1, sum(client.nthreads().values()))
        size = max(1, -(-len(items) // (4 * threads)))             # ~4 partitions per worker thread
        batches = [items[a:a + size] for a in range(0, len(items), size)]
        frame = pd.DataFrame({
            "series": np.repeat([it[0] for it in items], [len(it[1]) for it in items]),
            "ts": pd.DatetimeIndex(np.concatenate([it[1] for it in items]).astype("datetime64[ns]")).tz_localize("UTC"),
            "value": np.concatenate([it[2] for it in items]) if items else np.zeros(0)})
        batch_no = np.repeat(np.arange(len(batches)), [sum(len(it[1]) for it in bt) for bt in batches])
        paths = export_points(frame, root, batch_no)
        futs = [client.submit(recommend_partition, paths.get(k), [(it[0], *it[3:]) for it in bt], dict(options),
                              pure=False) for k, bt in enumerate(batches)]
        sizes = {f.key: len(bt) for f, bt in zip(futs, batches, strict=True)}
        done = 0
        for f in as_completed(futs):
            done += sizes[f.key]
            if progress:
                progress(done, len(items))
        try:
            parts = client.gather(futs)
        except OSError as exc:
            raise ValidationError(f"the Dask workers could not read the points exported to {root}: {exc}; give a "
                                  "directory every worker can read (--parquet-dir, or STUDIO_DASK_PARQUET_DIR)",
                                  path="parquet_dir") from exc
        return [r for part in parts for r in part]
    finally:
        if own:
            client.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        elif parquet_dir is not None and os.path.isdir(root):
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------- fleet table
TABLE_COLUMNS = ["series", "rule", "strategy", "current_warning", "warning", "critical", "episodes_per_week_now",
                 "predicted_episodes_per_week", "predicted_low", "predicted_high", "held_out_actual",
                 "held_out_error", "incidents_caught", "incidents_missed", "risk", "noise_reduction", "insufficient"]


def fleet_table(results: Iterable[Mapping[str, Any]], glob: str | None = None) -> pd.DataFrame:
    """One row per series for the fleet view, sorted by expected noise reduction (largest first).

    ``episodes_per_week_now``: the rule in force replayed over the held-out period (None without
    one); ``predicted_*``: the recommendation's predicted episodes/week and its interval;
    ``held_out_actual`` / ``held_out_error``: what the recommendation did on the held-out period and
    the relative error; ``incidents_caught`` / ``incidents_missed``: over the whole history, by the
    recommendation; ``noise_reduction`` = now minus predicted (episodes/week). ``glob`` keeps the
    series whose key matches a shell-style pattern (``*checkout*``).
    """
    import fnmatch

    rows = []
    for r in results:
        if glob and not fnmatch.fnmatchcase(r["series"], glob):
            continue
        cmp_ = r.get("comparison") or {}
        now = (cmp_.get("current") or {}).get("held_episodes_per_week")
        rec = cmp_.get("recommended") or {}
        iv = r.get("predicted_interval") or [None, None]
        pred = r.get("predicted_episodes_per_week")
        v = r.get("validation") or {}
        rows.append({
            "series": r["series"], "rule": r.get("rule"), "strategy": r.get("strategy"),
            "current_warning": (r.get("current") or {}).get("warning"), "warning": r.get("warning"),
            "critical": r.get("critical"), "episodes_per_week_now": now, "predicted_episodes_per_week": pred,
            "predicted_low": iv[0], "predicted_high": iv[1], "held_out_actual": v.get("actual_episodes_per_week"),
            "held_out_error": v.get("relative_error") if v.get("sufficient") else None,
            "incidents_caught": rec.get("total_caught"), "incidents_missed": rec.get("total_missed"),
            "risk": r.get("risk"), "noise_reduction": (now - pred) if now is not None and pred is not None else None,
            "insufficient": r.get("insufficient"),
        })
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return df.sort_values("noise_reduction", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def apply_changes(rule_dicts: Iterable[Mapping[str, Any]], results: Iterable[Mapping[str, Any]],
                  selected: Iterable[str], keys: Iterable[str],
                  namer: Callable[[str, Iterable[str]], str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The policy's rules with the selected recommendations written in, as one change.

    A series whose rule in force selects only that series gets the recommended levels and ``for``
    (the predictions were made with it) and a rationale annotation; a series without a rule gets a
    new rule named by ``namer(key, taken)``. A rule that selects several stored series is left
    alone (one series' levels would change them all) and a note says so, as does an insufficient
    recommendation. Returns ``(new rule dicts, notes)``.
    """
    from core.alerting.rules import format_duration

    out = [dict(d) for d in rule_dicts]
    rules = [Rule.from_dict(d) for d in out]
    all_keys = list(keys)
    by_key = {r["series"]: r for r in results}
    notes: list[str] = []
    for key in selected:
        r = by_key.get(key)
        if r is None:
            continue
        if r.get("insufficient") or r.get("warning") is None:
            notes.append(f"{key}: no recommendation ({r.get('insufficient') or 'no level'}); left as it is")
            continue
        why = (f"Recommended ({r['preset']} preset, {r['strategy']}): predicted "
               f"{r['predicted_episodes_per_week']:.2f} episodes/week; risk {r['risk']}. {r['rationale']}")
        levels = {"warning": r["warning"], "critical": r["critical"]}
        idx = [i for i, rule in enumerate(rules) if rule.matches(key)]
        if len(idx) > 1 or (idx and len(rules[idx[0]].matching(all_keys)) > 1):
            name = rules[idx[0]].name
            notes.append(f"{key}: rule {name} selects several series; tune it on the Thresholds page")
            continue
        if idx:
            d = out[idx[0]]
            for lvl, val in levels.items():
                if val is None:
                    d.pop(lvl, None)
                else:
                    d[lvl] = float(val)
            d["for"] = format_duration(r["for_seconds"])
            d["annotations"] = {**dict(d.get("annotations") or {}), "rationale": why}
        else:
            name = namer(key, [d["name"] for d in out])
            d = {"name": name, "series": key, "comparator": r["comparator"],
                 **{k: float(v) for k, v in levels.items() if v is not None},
                 "for": format_duration(r["for_seconds"]), "annotations": {"rationale": why}}
            out.append(d)
            rules.append(Rule.from_dict(d))
    return out, notes
