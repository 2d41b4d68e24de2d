"""Hypothesis properties of ingest: writer -> reader round trips for every layout, arbitrary bytes only
ever raise IngestError, and the DuckDB bulk path stores what the careful reader reads."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data.frame import make_key
from core.data.ingest import FORMATS, SERIES_COLUMNS, TIME_COLUMNS, VALUE_COLUMNS, read_metrics, write_metrics
from core.data.store import Store
from core.errors import IngestError

GOOD = Path(__file__).parent / "data" / "good"
RESERVED = set(TIME_COLUMNS) | set(SERIES_COLUMNS) | set(VALUE_COLUMNS) | {"agg", "stat", "namespace"}
T_LO = 946_684_800          # 2000-01-01, epoch seconds
T_HI = 3_786_825_600        # 2090-01-01

name_st = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(lambda s: s not in RESERVED)
label_name_st = st.from_regex(r"[a-z][a-z0-9_]{0,4}", fullmatch=True).filter(lambda s: s not in RESERVED)
# Datadog and CloudWatch headers separate tags with , : = and spaces, so their values avoid those.
plain_value_st = st.from_regex(r"[A-Za-z0-9_.\-]{1,6}", fullmatch=True)
any_value_st = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=8)
value_st = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def frames(draw, label_values=any_value_st, max_series=3, single_plain=False):
    n_series = 1 if single_plain else draw(st.integers(1, max_series))
    keys: list[str] = []
    while len(keys) < n_series:
        name = draw(name_st)
        labels = {} if single_plain else draw(st.dictionaries(label_name_st, label_values, max_size=2))
        k = make_key(name, labels)
        if k not in keys:
            keys.append(k)
    rows = []
    for k in keys:
        secs = draw(st.lists(st.integers(T_LO, T_HI), min_size=1, max_size=6, unique=True))
        for s in secs:
            rows.append((k, pd.Timestamp(s, unit="s", tz="UTC"), draw(value_st)))
    if all(np.isnan(v) for _, _, v in rows):   # an all-missing file is refused by design
        rows[0] = (rows[0][0], rows[0][1], draw(st.floats(allow_nan=False, width=64)))
    df = pd.DataFrame(rows, columns=["series", "ts", "value"])
    df["ts"] = df["ts"].astype("datetime64[ns, UTC]")
    df["value"] = df["value"].astype("float64")
    df["series"] = df["series"].astype(object)
    return df


def _norm(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["series", "ts"]).reset_index(drop=True)


def _check_round_trip(df: pd.DataFrame, fmt: str, name: str = "rt.csv") -> None:
    text = write_metrics(df, fmt)
    back = read_metrics(text.encode(), fmt=fmt, name=name)
    assert back.format == fmt
    pd.testing.assert_frame_equal(_norm(df), _norm(back.points), check_exact=True)


SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(frames())
def test_round_trip_long(df):
    _check_round_trip(df, "long")


@SETTINGS
@given(frames())
def test_round_trip_wide(df):
    _check_round_trip(df, "wide")


@SETTINGS
@given(frames())
def test_round_trip_prometheus(df):
    _check_round_trip(df, "prometheus")


@SETTINGS
@given(frames(label_values=plain_value_st))
def test_round_trip_datadog(df):
    _check_round_trip(df, "datadog")


@SETTINGS
@given(frames(label_values=plain_value_st))
def test_round_trip_cloudwatch(df):
    _check_round_trip(df, "cloudwatch")


@SETTINGS
@given(frames(single_plain=True))
def test_round_trip_nab(df):
    _check_round_trip(df, "nab", name=f"{df['series'].iloc[0]}.csv")


def test_every_format_has_a_round_trip_test():
    tested = {n.removeprefix("test_round_trip_") for n in globals() if n.startswith("test_round_trip_")}
    assert tested == set(FORMATS)


def _only_ingest_errors(data: bytes) -> None:
    try:
        p = read_metrics(data, name="fuzz.csv")
    except IngestError as exc:
        assert str(exc)
        return
    assert list(p.points.columns) == ["series", "ts", "value"]
    assert str(p.points["ts"].dtype) == "datetime64[ns, UTC]"
    assert len(p.points) > 0


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_ingest_error(data):
    _only_ingest_errors(data)


SAMPLES = [p.read_bytes() for p in sorted(GOOD.iterdir())]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255),
                                                    st.sampled_from(["flip", "cut", "insert", "delete"])),
                                          min_size=1, max_size=4))
def test_mutated_exports_raise_only_ingest_error(sample, edits):
    data = bytearray(sample)
    for pos, byte, op in edits:
        if not data:
            break
        i = pos % len(data)
        if op == "flip":
            data[i] = byte
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data.insert(i, byte)
        else:
            del data[i]
    _only_ingest_errors(bytes(data))


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                          min_size=1, max_size=3))
def test_mutated_exports_never_half_write(sample, edits):
    """Through Store.ingest (bulk path first): either a full upload or an IngestError and no change."""
    data = bytearray(sample)
    for pos, byte in edits:
        data[pos % len(data)] = byte
    with Store(":memory:") as s:
        s.bulk_min_bytes = 0
        try:
            r = s.ingest(bytes(data), name="m.csv")
        except IngestError:
            assert s.query_one("SELECT (SELECT count(*) FROM points) + (SELECT count(*) FROM series) "
                               "+ (SELECT count(*) FROM uploads)")[0] == 0
            return
        assert s.query_one("SELECT count(*) FROM points")[0] == r.accepted


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(max_series=3), st.booleans(), st.data())
def test_bulk_path_stores_what_the_careful_path_stores(df, epoch, data):
    # some rows repeated later in the file with other values: the last one must win on both paths
    reps = data.draw(st.lists(st.integers(0, len(df) - 1), max_size=3))
    extra = df.iloc[reps].assign(value=data.draw(st.lists(value_st, min_size=len(reps), max_size=len(reps))))
    df = pd.concat([df, extra], ignore_index=True)
    text = write_metrics(df, "long")
    if epoch:  # the same file with epoch-second timestamps
        lines = text.splitlines()
        secs = (df["ts"].astype("int64") // 10**9).astype(str).tolist()
        text = "\n".join(["timestamp,series,value"] + [s + ln[ln.index(","):] for s, ln in
                                                       zip(secs, lines[1:], strict=True)]) + "\n"
    results = []
    for bulk in (False, True):
        with Store(":memory:") as s:
            s.bulk_min_bytes = 0 if bulk else 1 << 40
            r = s.ingest(text.encode(), name="b.csv")
            results.append(((r.rows, r.accepted, r.rejected, r.inserted, r.series_count), s.get_points()))
    (rc, pc), (rb, pb) = results
    assert rc == rb
    assert rc[2] == len(reps)          # every repeated row is counted as rejected
    assert pc["series"].tolist() == pb["series"].tolist()
    assert (pc["ts"].to_numpy() == pb["ts"].to_numpy()).all()
    assert np.array_equal(pc["value"].to_numpy(), pb["value"].to_numpy(), equal_nan=True)


def _semicolon_text(df: pd.DataFrame, cells: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\n")
    w.writerow(["timestamp", "series", "value"])
    w.writerows(zip(df["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), df["series"], cells, strict=True))
    return buf.getvalue()


@SETTINGS
@given(frames(label_values=plain_value_st), st.data())
def test_decimal_comma_file_reads_like_decimal_point(df, data):
    """A ';' file written with decimal commas reads exactly like the original; turning one comma cell
    back into a point is refused at that row as a mix of conventions."""
    cells = [write_metrics(df.iloc[[i]], "nab").splitlines()[1].split(",", 1)[1] for i in range(len(df))]
    commas = [c.replace(".", ",") for c in cells]
    back = read_metrics(_semicolon_text(df, commas).encode(), name="dc.csv")
    pd.testing.assert_frame_equal(_norm(df), _norm(back.points), check_exact=True)
    with_comma = [i for i, c in enumerate(commas) if "," in c]
    if with_comma:
        k = data.draw(st.sampled_from(with_comma))
        if k != with_comma[0]:   # the first comma cell sets the convention; a later point cell is the misfit
            mixed = commas[:k] + [cells[k]] + commas[k + 1:]
            with pytest.raises(IngestError) as ei:
                read_metrics(_semicolon_text(df, mixed).encode(), name="dc.csv")
            assert (ei.value.row, ei.value.column) == (k + 2, "value")
            assert "mixes decimal comma and decimal point" in ei.value.reason
