"""Malformed inputs: each gives an IngestError naming row/column/problem, and the store is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.data.ingest import read_metrics
from core.errors import IngestError
from tests.conftest import make_points

BAD = Path(__file__).parent / "data" / "bad"

# file -> (row, column, words the message must contain)
EXPECTED = {
    "01_empty.csv": (None, None, "empty"),
    "02_whitespace_only.csv": (None, None, "empty"),
    "03_binary_garbage.csv": (1, None, "binary"),
    "04_png_header.csv": (3, None, "binary"),
    "05_gzip.csv": (None, None, "gzip"),
    "06_zip_xlsx.csv": (None, None, "Excel"),
    "07_header_only.csv": (1, None, "no data rows"),
    "08_no_header.csv": (1, None, "no header"),
    "09_single_column.csv": (1, None, "only one column"),
    "10_unknown_layout.csv": (1, None, "no time column"),
    "11_bad_number.csv": (7, "value", "'abc' is not a number"),
    "12_unit_in_value.csv": (3, "value", "unit"),
    "13_comma_thousands.csv": (3, "value", "thousands separator"),
    "14_bad_timestamp.csv": (7, "timestamp", "'yesterday noon' is not a timestamp"),
    "15_empty_timestamp.csv": (3, "timestamp", "timestamp is empty"),
    "16_mixed_epoch_units.csv": (4, "time", "mixed epoch units"),
    "17_before_1970.csv": (3, "timestamp", "before 1970"),
    "18_after_2100.csv": (3, "timestamp", "after 2100"),
    "19_negative_epoch.csv": (3, "timestamp", "before 1970"),
    "20_epoch_after_2100.csv": (3, "timestamp", "after 2100"),
    "21_ragged_long_row.csv": (7, None, "has 4 fields but the header has 3"),
    "22_ragged_short_row.csv": (3, None, "has 2 fields but the header has 3"),
    "23_huge_number.csv": (3, "value", "too large"),
    "24_all_nan.csv": (None, "value", "all 3 values are missing"),
    "25_duplicate_columns.csv": (1, "value", "appears twice"),
    "26_empty_column_name.csv": (1, "#2", "no name"),
    "27_unbalanced_quote.csv": (3, None, "malformed CSV"),
    "28_empty_series.csv": (3, "series", "series name is empty"),
    "29_epoch_then_iso.csv": (3, "timestamp", "not an epoch number"),
    "30_iso_then_epoch.csv": (3, "timestamp", "epoch number but the rows above"),
    "31_control_chars.csv": (3, None, "control character 0x07"),
    "32_wide_all_blank.csv": (None, None, "blank"),
    "33_wide_bad_cell.csv": (3, "b", "'oops' is not a number"),
    "34_prometheus_vector.json": (None, "data.resultType", "'matrix'"),
    "35_prometheus_error.json": (None, "status", "bad_data"),
    "36_json_truncated.json": (1, "char 100", "not valid JSON"),
    "37_prometheus_bad_value.json": (None, "data.result[0].values[1] value", "'one' is not a number"),
    "38_unknown_json.json": (None, None, "unknown JSON layout"),
    "39_two_series_columns_same_key.csv": (1, 'cpu{host="a"}', "appears twice"),
    "40_us_date_format.csv": (2, "timestamp", "is not a timestamp"),
    "41_compact_date_among_epochs.csv": (3, "timestamp", "20260101 looks like a compact date YYYYMMDD, not an "
                                                         "epoch; write it as 2026-01-01 or as epoch seconds"),
    "42_epoch_before_2000.csv": (4, "timestamp", "read as epoch seconds is 1970-01-02, before 2000"),
    "43_semicolon_mixed_decimal.csv": (4, "value", "'12,5' has a decimal comma but row 2 ('1.234') has a "
                                                   "decimal point: the column mixes decimal comma and decimal point"),
    "44_tab_wide_mixed_decimal.csv": (4, "b", "'1.234' has a decimal point but row 3 ('12,5') has a decimal "
                                              "comma: the column mixes decimal comma and decimal point"),
    "45_compact_datetime_then_epoch.csv": (2, "timestamp", "write it as 2026-01-01T12:00:00Z or as epoch seconds"),
}


def test_corpus_is_complete():
    files = sorted(p.name for p in BAD.iterdir())
    assert len(files) >= 30
    assert set(files) == set(EXPECTED)


@pytest.mark.parametrize("fname", sorted(EXPECTED))
def test_reader_names_the_problem(fname):
    row, column, words = EXPECTED[fname]
    with pytest.raises(IngestError) as ei:
        read_metrics(BAD / fname)
    err = ei.value
    assert err.file == fname
    assert err.row == row
    assert err.column == column
    assert words in err.reason
    assert "expected" in err.reason          # says what was expected, not just what was wrong
    assert str(err).startswith(fname)


def _counts(store):
    return store.query_one("SELECT (SELECT count(*) FROM points), (SELECT count(*) FROM series), "
                           "(SELECT count(*) FROM uploads)")


@pytest.mark.parametrize("bulk", [False, True], ids=["careful", "bulk-first"])
def test_store_unchanged_by_every_bad_file(store, bulk):
    if bulk:
        store.bulk_min_bytes = 0           # let DuckDB's reader try first; it must fall back, not half-write
    store.write_points(make_points(50, series="keep"), name="keep.csv", sha256="keep", fmt="long")
    before = _counts(store)
    assert before == (50, 1, 1)
    for fname, (row, column, words) in EXPECTED.items():
        with pytest.raises(IngestError) as ei:
            store.ingest(BAD / fname)
        assert (ei.value.row, ei.value.column) == (row, column), fname
        assert words in ei.value.reason, fname
        assert _counts(store) == before, fname
    assert store.query_all("SELECT table_name FROM duckdb_tables() WHERE temporary") == []  # no leftovers
