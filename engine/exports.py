"""Reports and raw rows (forwards, rebalances, ...) as CSV, JSON or Parquet bytes, and readers
that give the same values and types back: the round trips the tests prove.

A table is a list of flat rows (mappings of column to int, float, bool, str or None). Its
schema maps each column to one of those four types; `schema_of` infers it from the values
and `report_schemas` gives the report tables' schemas from the report dataclasses, so even an
empty table keeps its columns and a column of None keeps its type.

CSV (RFC 4180): UTF-8 with a byte-order mark (spreadsheets then read non-ASCII aliases
right), CRLF line ends, a header row. Text is always quoted and nothing else is, so the types
come back without a schema: numbers bare, booleans true/false, None an empty bare cell (and ""
a quoted empty one). Text that a spreadsheet would run as a formula (starting with = + - @, a
tab or a carriage return) gets a leading apostrophe, and so does text that already starts
with one, so `read_csv` can take exactly one off again. Numbers are never prefixed: a negative
amount stays a number, and so does text that is a plain number ("-5" cannot run anything).

Parquet needs pyarrow, which LNbits does not ship: without it `to_parquet` raises
`ExportUnavailable` saying how to install it.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from .reports import (
    OUTCOME_ORDER,
    PENDING,
    BalanceBucket,
    ChannelSummary,
    FeeChangeResult,
    Report,
    Totals,
)

Row = Mapping[str, Any]
Schema = Mapping[str, type]
COLUMN_TYPES: tuple[type, ...] = (bool, int, float, str)

FORMATS = ("csv", "json", "parquet")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
}

# What spreadsheets treat as the start of a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|-?inf|nan")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_TRUE, _FALSE = "true", "false"
_BOM = "\ufeff".encode()
_EOL = "\r\n"
_OUTCOME_COLUMNS = (*OUTCOME_ORDER, PENDING)  # summary columns changes_<outcome>

PYARROW_HINT = (
    "Parquet export needs the pyarrow package, which LNbits does not include: install it into "
    "LNbits' own environment (`pip install pyarrow`, or `uv pip install pyarrow`) and restart "
    "LNbits. CSV and JSON work without it."
)


class ExportUnavailable(RuntimeError):
    """An export format that needs an optional package that is not installed."""


# -- schemas --------------------------------------------------------------------------------


def _value_type(column: str, value: Any) -> type | None:
    if value is None:
        return None
    for kind in COLUMN_TYPES:  # bool first: True is an int to Python
        if isinstance(value, kind):
            return kind
    raise ValueError(f"{column}: cannot export a {type(value).__name__} ({value!r})")


def _merge_types(column: str, known: type | None, new: type | None) -> type | None:
    if known is None or new is None or known is new:
        return known or new
    if {known, new} == {int, float}:
        return float  # a ratio that happened to be whole
    raise ValueError(f"{column}: mixed types {known.__name__} and {new.__name__}")


def schema_of(rows: Sequence[Row]) -> dict[str, type]:
    """Columns in the order first seen, each with its type; a column holding only None is
    text (any type would do, text is what a reader expects of an empty cell)."""
    found: dict[str, type | None] = {}
    for row in rows:
        for column, value in row.items():
            found[column] = _merge_types(column, found.get(column), _value_type(column, value))
    return {column: kind or str for column, kind in found.items()}


def _check_schema(schema: Schema) -> None:
    for column, kind in schema.items():
        if kind not in COLUMN_TYPES:
            raise ValueError(f"{column}: unsupported column type {kind!r}")


# -- CSV ------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    risky = text.startswith((*FORMULA_STARTS, ESCAPE))
    return ESCAPE + text if risky and not _PLAIN_NUMBER.fullmatch(text) else text


def _unescape(text: str) -> str:
    return text[1:] if text.startswith(ESCAPE) else text


def _quoted(text: str) -> str:
    return '"' + _escape(text).replace('"', '""') + '"'


def _csv_cell(column: str, value: Any, kind: type) -> str:
    if value is None:
        return ""
    actual = _value_type(column, value)
    if actual is not kind and not (actual is int and kind is float):
        raise ValueError(f"{column}: expected {kind.__name__}, got {value!r}")
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is float:
        return repr(float(value))  # repr is the shortest text that reads back the same
    if kind is int:
        return str(value)
    return _quoted(value)


def to_csv(rows: Sequence[Row], schema: Schema | None = None) -> bytes:
    """The rows as CSV (see the module docstring). With a schema its columns come in its
    order, and a table without rows still has its header."""
    cols = dict(schema) if schema is not None else schema_of(rows)
    _check_schema(cols)
    if not cols:
        return _BOM
    lines = [",".join(_quoted(c) for c in cols)]
    for row in rows:
        unknown = set(row) - set(cols)
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: column not in the schema")
        lines.append(",".join(_csv_cell(c, row.get(c), kind) for c, kind in cols.items()))
    return _BOM + "".join(line + _EOL for line in lines).encode("utf-8")


# A field: quoted (doubled quotes inside, unrolled so matching stays linear) or bare. Python's
# csv module cannot tell a quoted empty field from a bare one before 3.12, and that difference
# is "" versus None here.
_FIELD = re.compile(r'"([^"]*(?:""[^"]*)*)"|([^,"\r\n]*)')
_RECORD_ENDS = ("\r\n", "\n")


def _read_field(text: str, pos: int) -> tuple[tuple[str, bool], int]:
    match = _FIELD.match(text, pos)
    assert match is not None  # the bare branch matches the empty string
    if match.group(1) is not None:
        return (match.group(1).replace('""', '"'), True), match.end()
    return (match.group(2), False), match.end()


def _split_records(text: str) -> list[list[tuple[str, bool]]]:
    """RFC 4180 records as (value, quoted) pairs."""
    records: list[list[tuple[str, bool]]] = []
    pos = 0
    while pos < len(text):
        record: list[tuple[str, bool]] = []
        while True:
            cell, pos = _read_field(text, pos)
            record.append(cell)
            if not text.startswith(",", pos):
                break
            pos += 1
        end = next((e for e in _RECORD_ENDS if text.startswith(e, pos)), "")
        if not end and pos < len(text):
            raise ValueError(f"line {len(records) + 1}: unexpected {text[pos]!r}")
        pos += len(end)
        records.append(record)
    return records


def _typed_cell(value: str, quoted: bool) -> Any:
    """A cell's value by how `to_csv` wrote it: text quoted, None bare and empty."""
    if quoted:
        return _unescape(value)
    if value == "":
        return None
    if value in (_TRUE, _FALSE):
        return value == _TRUE
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return _unescape(value)  # bare text, from a file saved by another program


def _schema_cell(column: str, value: str, quoted: bool, kind: type) -> Any:
    if kind is str:
        return None if value == "" and not quoted else _unescape(value)
    if value == "":
        return None
    if kind is bool and value in (_TRUE, _FALSE):
        return value == _TRUE
    if kind is int and _INT.fullmatch(value):
        return int(value)
    if kind is float and _FLOAT.fullmatch(value):
        return float(value)
    raise ValueError(f"{column}: {value!r} is not a {kind.__name__}")


def read_csv(data: bytes, schema: Schema | None = None) -> list[dict[str, Any]]:
    """Rows back from `to_csv`, with the values and types written: quoted cells are text, bare
    ones numbers, true/false or (empty) None. With a schema every column is converted to its
    type instead, which also reads files whose text lost its quotes in a spreadsheet."""
    text = data.decode("utf-8")
    records = _split_records(text.removeprefix("\ufeff"))
    if not records:
        return []
    header = [_unescape(value) for value, _ in records[0]]
    for n, record in enumerate(records[1:], start=2):
        if len(record) != len(header):
            raise ValueError(f"line {n}: {len(record)} cells, the header has {len(header)}")
    if schema is None:
        return [
            {c: _typed_cell(v, q) for c, (v, q) in zip(header, record, strict=True)}
            for record in records[1:]
        ]
    _check_schema(schema)
    missing = [c for c in header if c not in schema]
    if missing:
        raise ValueError(f"{missing[0]}: column not in the schema")
    return [
        {c: _schema_cell(c, v, q, schema[c]) for c, (v, q) in zip(header, record, strict=True)}
        for record in records[1:]
    ]


# -- JSON -----------------------------------------------------------------------------------


def to_json(obj: Any) -> bytes:
    """JSON (UTF-8). A report, or anything else with `to_dict()`, is written as that dict."""
    data = obj.to_dict() if hasattr(obj, "to_dict") else obj
    return json.dumps(data, ensure_ascii=False, allow_nan=False, indent=1).encode("utf-8")


def read_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


# -- Parquet --------------------------------------------------------------------------------


def _pyarrow() -> tuple[Any, Any]:
    """pyarrow and its parquet module, imported on use: an optional dependency."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise ExportUnavailable(PYARROW_HINT) from exc
    return pyarrow, pyarrow.parquet


def parquet_available() -> bool:
    try:
        _pyarrow()
    except ExportUnavailable:
        return False
    return True


def to_parquet(rows: Sequence[Row], schema: Schema | None = None) -> bytes:
    """The rows as a Parquet file: whole numbers as int64, decimals as float64, booleans and
    UTF-8 text; None as null. Raises ExportUnavailable without pyarrow."""
    pa, pq = _pyarrow()
    cols = dict(schema) if schema is not None else schema_of(rows)
    _check_schema(cols)
    arrow_types = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}
    arrays = {}
    for column, kind in cols.items():
        values = [row.get(column) for row in rows]
        if kind is float:  # a whole ratio may arrive as an int
            values = [v if v is None else float(v) for v in values]
        arrays[column] = pa.array(values, type=arrow_types[kind])
    table = pa.table(arrays)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def read_parquet(data: bytes) -> list[dict[str, Any]]:
    pa, pq = _pyarrow()
    return list(pq.read_table(pa.BufferReader(data)).to_pylist())


def export_rows(rows: Sequence[Row], fmt: str, schema: Schema | None = None) -> bytes:
    """One table in `fmt` (csv, json or parquet); JSON is a list of row objects."""
    if fmt == "csv":
        return to_csv(rows, schema)
    if fmt == "json":
        return to_json([dict(r) for r in rows])
    if fmt == "parquet":
        return to_parquet(rows, schema)
    raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")


# -- report tables --------------------------------------------------------------------------


def _field_types(cls: type) -> dict[str, type]:
    """A dataclass's columns and their types, with `X | None` read as X."""
    hints = typing.get_type_hints(cls)
    out: dict[str, type] = {}
    for f in fields(cls):
        hint = hints[f.name]
        if isinstance(hint, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        out[f.name] = hint
    return out


def report_schemas() -> dict[str, dict[str, type]]:
    """The columns of each table `report_tables` makes, in order, with their types."""
    summary: dict[str, type] = {
        "period_kind": str,
        "period_label": str,
        "period_start": int,
        "period_end": int,
        **_field_types(Totals),
        "failures": str,  # known | unknown
        "idle_channels": int,
        "drained_channels": int,
        "top_earner": str,
    }
    summary.update({f"changes_{o}": int for o in _OUTCOME_COLUMNS})
    return {
        "summary": summary,
        "channels": _field_types(ChannelSummary),
        "fee_changes": _field_types(FeeChangeResult),
        "balance_buckets": _field_types(BalanceBucket),
        "highlights": {"position": int, "text": str},
    }


def report_tables(report: Report | Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A report (or its stored `to_dict()`) as flat tables: summary (one row), channels,
    fee_changes, balance_buckets and highlights; columns as in `report_schemas()`."""
    r = report if isinstance(report, Report) else Report.from_dict(report)
    summary: dict[str, Any] = {
        "period_kind": r.period.kind,
        "period_label": r.period.label,
        "period_start": r.period.start,
        "period_end": r.period.end,
        **r.totals.to_dict(),
        "idle_channels": len(r.idle),
        "drained_channels": len(r.drained),
        "top_earner": r.top_earners[0] if r.top_earners else "",
    }
    summary.update({f"changes_{o}": r.outcomes.get(o, 0) for o in _OUTCOME_COLUMNS})
    return {
        "summary": [_ordered(summary, "summary")],
        "channels": [c.to_dict() for c in r.channels],
        "fee_changes": [c.to_dict() for c in r.fee_changes],
        "balance_buckets": [b.to_dict() for b in r.balance_buckets],
        "highlights": [{"position": i, "text": t} for i, t in enumerate(r.highlights, 1)],
    }


def _ordered(row: Mapping[str, Any], table: str) -> dict[str, Any]:
    return {column: row[column] for column in report_schemas()[table]}
