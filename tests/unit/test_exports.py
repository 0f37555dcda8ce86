import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.exports import (
    MEDIA_TYPES,
    ExportUnavailable,
    export_rows,
    parquet_available,
    read_csv,
    read_json,
    read_parquet,
    report_schemas,
    report_tables,
    schema_of,
    to_csv,
    to_json,
    to_parquet,
)
from engine.reports import Report, build_report
from tests.unit.test_reports import node_input

REPORT = build_report(node_input())
FORWARD_ROWS = [
    {
        "node_pubkey": "02ab",
        "idx": 1,
        "ts": 1_709_164_800,
        "ts_ns": 1_709_164_800_123_456_789,
        "chan_in": "850000x1x0",
        "chan_out": "850001x2x1",
        "amt_in_msat": 2_001_000,
        "amt_out_msat": 2_000_000,
        "fee_msat": 1_000,
        "status": "settled",
        "fail_reason": None,
    },
    {
        "node_pubkey": "02ab",
        "idx": 2,
        "ts": 1_709_168_400,
        "ts_ns": 1_709_168_400_000_000_000,
        "chan_in": "850001x2x1",
        "chan_out": "850000x1x0",
        "amt_in_msat": 10**15,
        "amt_out_msat": 10**15 - 7,
        "fee_msat": 7,
        "status": "failed",
        "fail_reason": '=HYPERLINK("http://evil")',
    },
]


def exact(rows):
    """Values with their types, so 1 == 1.0 == True cannot pass for one another."""
    return [{k: (type(v).__name__, v) for k, v in row.items()} for row in rows]


# -- report tables ------------------------------------------------------------------------------


def test_report_tables_shape():
    tables = report_tables(REPORT)
    schemas = report_schemas()
    assert list(tables) == ["summary", "channels", "fee_changes", "balance_buckets", "highlights"]
    for name, rows in tables.items():
        for row in rows:
            assert list(row) == list(schemas[name]), name
            for column, value in row.items():
                assert value is None or type(value) is schemas[name][column], (name, column)
    summary = tables["summary"]
    assert len(summary) == 1
    assert summary[0]["fees_msat"] == 3_800 and summary[0]["net_profit_msat"] == 2_600
    assert summary[0]["period_label"] == "2024-02-29" and summary[0]["failures"] == "known"
    assert summary[0]["top_earner"] == "B" and summary[0]["idle_channels"] == 2
    assert summary[0]["changes_hurt"] == 1 and summary[0]["changes_pending"] == 1
    assert [r["channel_id"] for r in tables["channels"]] == ["B", "A", "C", "D"]
    assert len(tables["fee_changes"]) == 3 and len(tables["balance_buckets"]) == 5
    assert tables["highlights"][0] == {"position": 1, "text": REPORT.highlights[0]}


def test_report_tables_from_a_stored_report():
    stored = json.loads(json.dumps(REPORT.to_dict()))
    assert report_tables(stored) == report_tables(REPORT)


def test_summary_of_a_report_with_unknown_failures_keeps_the_column_types():
    settled = tuple(f for f in node_input().forwards if f.settled)
    report = build_report(node_input(forwards=settled, failures_known=False))
    summary = report_tables(report)["summary"][0]
    assert summary["failed"] is None and summary["success_ratio"] is None
    assert summary["failures"] == "unknown"
    schema = report_schemas()["summary"]
    back = read_csv(to_csv([summary], schema), schema)
    assert back == [summary]


# -- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["summary", "channels", "fee_changes", "balance_buckets"])
def test_csv_round_trip_of_report_tables(name):
    rows = report_tables(REPORT)[name]
    schema = report_schemas()[name]
    assert exact(read_csv(to_csv(rows, schema), schema)) == exact(rows)


@pytest.mark.parametrize(
    "name", ["summary", "channels", "fee_changes", "balance_buckets", "highlights"]
)
def test_csv_round_trip_without_a_schema_keeps_the_types(name):
    rows = report_tables(REPORT)[name]
    assert exact(read_csv(to_csv(rows))) == exact(rows)


def test_csv_tells_none_from_empty_text():
    rows = [{"a": None, "b": ""}, {"a": "x", "b": None}]
    data = to_csv(rows)
    assert data.decode("utf-8-sig") == '"a","b"\r\n,""\r\n"x",\r\n'
    assert read_csv(data) == rows
    assert read_csv(data, {"a": str, "b": str}) == rows


def test_csv_saved_by_a_spreadsheet_reads_with_the_schema():
    # Quotes dropped, LF line ends, no BOM: the schema still gives the types.
    data = b"channel_id,fees_msat,fee_share,idle\n850000x1x0,1000,0.5,false\n42,,1.0,true\n"
    schema = {"channel_id": str, "fees_msat": int, "fee_share": float, "idle": bool}
    assert exact(read_csv(data, schema)) == exact(
        [
            {"channel_id": "850000x1x0", "fees_msat": 1000, "fee_share": 0.5, "idle": False},
            {"channel_id": "42", "fees_msat": None, "fee_share": 1.0, "idle": True},
        ]
    )
    # Without it, bare cells are read as what they look like.
    assert read_csv(data)[1]["channel_id"] == 42


def test_csv_round_trip_of_raw_forwards():
    assert exact(read_csv(to_csv(FORWARD_ROWS))) == exact(FORWARD_ROWS)


def test_json_round_trip_of_a_report():
    data = read_json(to_json(REPORT))
    assert data == REPORT.to_dict()
    assert Report.from_dict(data) == REPORT
    assert type(data["totals"]["fees_msat"]) is int
    assert read_json(to_json(FORWARD_ROWS)) == FORWARD_ROWS
    assert "\u26a1" in to_json({"alias": "\u26a1 zap"}).decode("utf-8")  # not \\u escaped


def test_json_refuses_nan():
    with pytest.raises(ValueError):
        to_json({"x": float("nan")})


@pytest.mark.parametrize(
    "name", ["summary", "channels", "fee_changes", "balance_buckets", "highlights"]
)
def test_parquet_round_trip_of_report_tables(name):
    rows = report_tables(REPORT)[name]
    assert exact(read_parquet(to_parquet(rows, report_schemas()[name]))) == exact(rows)


def test_parquet_round_trip_of_raw_forwards_keeps_int64():
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data = to_parquet(FORWARD_ROWS)
    assert exact(read_parquet(data)) == exact(FORWARD_ROWS)
    schema = pq.read_table(pa.BufferReader(data)).schema
    assert schema.field("ts_ns").type == pa.int64()
    assert schema.field("fail_reason").type == pa.string()


def test_empty_tables_keep_their_columns():
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    schema = report_schemas()["fee_changes"]
    assert to_csv([], schema).decode("utf-8-sig") == ",".join(f'"{c}"' for c in schema) + "\r\n"
    assert read_csv(to_csv([], schema), schema) == []
    data = to_parquet([], schema)
    assert read_parquet(data) == []
    assert pq.read_table(pa.BufferReader(data)).column_names == list(schema)
    assert to_csv([]) == "".encode("utf-8-sig") and read_csv(b"") == []
    assert read_parquet(to_parquet([])) == []


def test_parquet_is_deterministic():
    rows = report_tables(REPORT)["channels"]
    assert to_parquet(rows) == to_parquet(rows)


def test_export_rows_by_format():
    rows = report_tables(REPORT)["channels"]
    assert export_rows(rows, "csv") == to_csv(rows)
    assert read_json(export_rows(rows, "json")) == rows
    assert read_parquet(export_rows(rows, "parquet")) == rows
    assert set(MEDIA_TYPES) == {"csv", "json", "parquet"}
    with pytest.raises(ValueError, match=r"^format:"):
        export_rows(rows, "xlsx")


# -- pyarrow missing ----------------------------------------------------------------------------


def test_without_pyarrow_parquet_says_how_to_enable_it(monkeypatch):
    # None in sys.modules makes `import pyarrow` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert not parquet_available()
    with pytest.raises(ExportUnavailable, match=r"pip install pyarrow") as info:
        to_parquet(FORWARD_ROWS)
    assert "LNbits" in str(info.value)
    with pytest.raises(ExportUnavailable):
        read_parquet(b"PAR1")
    with pytest.raises(ExportUnavailable):
        export_rows(FORWARD_ROWS, "parquet")
    # CSV and JSON do not need it.
    assert read_csv(to_csv(FORWARD_ROWS)) == FORWARD_ROWS
    assert read_json(to_json(FORWARD_ROWS)) == FORWARD_ROWS


def test_parquet_available_with_pyarrow():
    pytest.importorskip("pyarrow")
    assert parquet_available()


# -- formula injection --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+1+2", "'+1+2"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\r=1", "'\r=1"),
        ("'already", "''already"),
        ("-5", "-5"),  # a plain number runs nothing
        ("-2.5", "-2.5"),
        ("safe=1", "safe=1"),
        ('="x"', '\'=""x""'),
        ("", ""),
    ],
)
def test_csv_text_that_could_run_as_a_formula_is_escaped(text, cell):
    schema = {"alias": str}
    data = to_csv([{"alias": text}], schema).decode("utf-8-sig")
    assert data == f'"alias"\r\n"{cell}"\r\n'
    assert read_csv(to_csv([{"alias": text}], schema), schema) == [{"alias": text}]


def test_csv_keeps_negative_numbers_numbers():
    rows = [{"net_msat": -2_600, "ratio": -0.25, "note": "-1+1"}]
    data = to_csv(rows).decode("utf-8-sig")
    assert data == '"net_msat","ratio","note"\r\n-2600,-0.25,"\'-1+1"\r\n'
    assert exact(read_csv(to_csv(rows))) == exact(rows)


def test_csv_hyperlink_in_raw_rows_is_escaped():
    data = to_csv(FORWARD_ROWS).decode("utf-8-sig")
    assert ',"\'=HYPERLINK(""http://evil"")"\r\n' in data
    assert '"=HYPERLINK' not in data


def test_csv_carries_a_bom_for_spreadsheets():
    assert to_csv([{"a": 1}]).startswith("\ufeff".encode())


# -- types --------------------------------------------------------------------------------------


def test_schema_of():
    rows = [{"a": 1, "b": None, "c": True}, {"a": 2, "b": 0.5, "d": "x"}]
    assert schema_of(rows) == {"a": int, "b": float, "c": bool, "d": str}
    assert schema_of([{"r": 1}, {"r": 0.5}]) == {"r": float}  # a whole ratio
    assert schema_of([{"n": None}]) == {"n": str}


def test_mixed_and_unsupported_types_are_refused_by_column():
    with pytest.raises(ValueError, match=r"^a: mixed types int and str"):
        schema_of([{"a": 1}, {"a": "1"}])
    with pytest.raises(ValueError, match=r"^a: mixed types bool and int"):
        schema_of([{"a": True}, {"a": 1}])
    with pytest.raises(ValueError, match=r"^b: cannot export a dict"):
        to_csv([{"b": {"x": 1}}])
    with pytest.raises(ValueError, match=r"^a: expected int"):
        to_csv([{"a": "x"}], {"a": int})
    with pytest.raises(ValueError, match=r"^z: column not in the schema"):
        to_csv([{"z": 1}], {"a": int})
    with pytest.raises(ValueError, match=r"^a: unsupported column type"):
        to_csv([], {"a": list})


def test_read_csv_refuses_malformed_files():
    with pytest.raises(ValueError, match=r"^a: '1.5' is not a int"):
        read_csv(b"a\r\n1.5\r\n", {"a": int})
    with pytest.raises(ValueError, match=r"^line 3:"):
        read_csv(b"a,b\r\n1,2\r\n3\r\n")
    with pytest.raises(ValueError, match=r"^line 2: unexpected '\"'"):
        read_csv(b'a\r\nx"y\r\n')
    with pytest.raises(ValueError, match=r"^b: column not in the schema"):
        read_csv(b"b\r\n1\r\n", {"a": int})


def test_whole_ratios_read_back_as_floats():
    rows = [{"r": 1}, {"r": 0.5}]
    assert exact(read_csv(to_csv(rows))) == exact([{"r": 1.0}, {"r": 0.5}])
    assert exact(read_parquet(to_parquet(rows))) == exact([{"r": 1.0}, {"r": 0.5}])


# -- properties ---------------------------------------------------------------------------------

cell_text = st.text(st.characters(exclude_categories=("Cs",)))
row_values = st.fixed_dictionaries(
    {
        "n": st.none() | st.integers(-(2**63), 2**63 - 1),
        "x": st.none() | st.floats(allow_nan=False, allow_infinity=False),
        "ok": st.none() | st.booleans(),
        "text": cell_text,
    }
)
SCHEMA = {"n": int, "x": float, "ok": bool, "text": str}


@settings(max_examples=200, deadline=None)
@given(st.lists(row_values, max_size=8))
def test_csv_round_trip_property(rows):
    data = to_csv(rows, SCHEMA)
    assert exact(read_csv(data, SCHEMA)) == exact(rows)
    assert exact(read_csv(data)) == exact(rows)


@settings(max_examples=100, deadline=None)
@given(st.lists(row_values, max_size=8))
def test_parquet_round_trip_property(rows):
    assert exact(read_parquet(to_parquet(rows, SCHEMA))) == exact(rows)


@settings(max_examples=200, deadline=None)
@given(cell_text)
def test_no_csv_cell_starts_a_formula(text):
    data = to_csv([{"t": text}], {"t": str}).decode("utf-8-sig")
    cell = data[len('"t"\r\n"') :]  # after the opening quote
    plain_number = text.lstrip("-").replace(".", "", 1).isdigit() and text.isascii()
    assert plain_number or not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
