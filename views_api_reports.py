"""HTTP API for reports and exports under /daznode/api/v1 (LNbits admins: the node's money)."""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, Extra, Field

from . import reports_service
from .crud import (
    balance_series,
    daily_series,
    forward_stats_by_channel,
    forwards_between,
    get_channels,
    get_monitor_state,
    get_report,
    get_reports,
)
from .engine.exports import (
    FORMATS,
    MEDIA_TYPES,
    PYARROW_HINT,
    ExportUnavailable,
    export_rows,
    parquet_available,
    report_schemas,
    report_tables,
    to_json,
)
from .engine.reports import PERIOD_KINDS, Period
from .views_api import Admin

daznode_reports_router = APIRouter(prefix="/api/v1", tags=["daznode"])
MAX_EXPORT_ROWS = 1_000_000


class GenerateIn(BaseModel):
    kind: str = Field(description=" | ".join(PERIOD_KINDS))
    at: int | None = Field(None, ge=0, description="Epoch seconds; default now")

    class Config:
        extra = Extra.forbid


def _label(row: dict) -> str:
    return Period(row["kind"], row["period_start"], row["period_end"]).label


def _format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"format must be one of {', '.join(FORMATS)}.")
    if fmt == "parquet" and not parquet_available():
        raise HTTPException(HTTPStatus.CONFLICT, PYARROW_HINT)
    return fmt


def _download(data: bytes, fmt: str, name: str) -> Response:
    return Response(
        content=data,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )


@daznode_reports_router.get("/reports", summary="Stored reports, newest first (admins)")
async def api_reports(
    _: Admin,
    kind: Annotated[str | None, Query(description=" | ".join(PERIOD_KINDS))] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict]:
    if kind is not None and kind not in PERIOD_KINDS:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"kind must be one of {', '.join(PERIOD_KINDS)}."
        )
    return [{**r, "label": _label(r)} for r in await get_reports(kind, limit)]


@daznode_reports_router.get("/reports/formats", summary="Export formats available here")
async def api_report_formats(_: Admin) -> dict:
    return {"formats": list(FORMATS), "parquet": parquet_available(), "hint": PYARROW_HINT}


@daznode_reports_router.get("/reports/series", summary="Daily earnings, balance, flow (admins)")
async def api_report_series(_: Admin, days: Annotated[int, Query(ge=1, le=366)] = 30) -> dict:
    since = int(time.time()) - days * 86400
    state = await get_monitor_state()
    pubkey = state.get("node_pubkey") or ""
    stats = await forward_stats_by_channel(pubkey, since)
    channels = [
        {
            "channel_id": c["channel_id"],
            "peer_alias": c["peer_alias"],
            "volume_out_msat": stats.get(c["channel_id"], {}).get("volume_out", 0),
            "volume_in_msat": stats.get(c["channel_id"], {}).get("volume_in", 0),
            "fees_msat": stats.get(c["channel_id"], {}).get("fees", 0),
        }
        for c in await get_channels()
    ]
    return {
        "days": await daily_series(pubkey, since),
        "balance": await balance_series(since),
        "channels": channels,
    }


@daznode_reports_router.post(
    "/reports/generate",
    status_code=HTTPStatus.CREATED,
    summary="Build the report of the period that ended most recently (admins)",
)
async def api_generate_report(_: Admin, body: GenerateIn) -> dict:
    try:
        report_id = await reports_service.generate(body.kind, body.at)
    except ValueError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    return await api_report(report_id, _)


@daznode_reports_router.get("/reports/{report_id}", summary="One report (admins)")
async def api_report(report_id: int, _: Admin) -> dict:
    row = await get_report(report_id)
    if row is None:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"No report {report_id}.")
    return {**row, "label": _label(row)}


@daznode_reports_router.get(
    "/reports/{report_id}/export",
    summary="Download a report as CSV, JSON or Parquet (one table for CSV/Parquet)",
)
async def api_export_report(
    report_id: int,
    _: Admin,
    format: Annotated[str, Query(description=" | ".join(FORMATS))] = "csv",
    table: Annotated[str, Query()] = "channels",
) -> Response:
    fmt = _format(format)
    row = await get_report(report_id)
    if row is None:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"No report {report_id}.")
    name = f"daznode-{row['kind']}-{_label(row)}"
    if fmt == "json":
        return _download(to_json(row["data"]), fmt, name)
    tables = report_tables(row["data"])
    if table not in tables:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"table must be one of {', '.join(tables)}.")
    schema = report_schemas().get(table)
    try:
        data = await asyncio.to_thread(export_rows, tables[table], fmt, schema)
    except ExportUnavailable as exc:
        raise HTTPException(HTTPStatus.CONFLICT, str(exc)) from None
    return _download(data, fmt, f"{name}-{table}")


@daznode_reports_router.get("/exports/forwards", summary="Raw forwards as CSV, JSON or Parquet")
async def api_export_forwards(
    _: Admin,
    format: Annotated[str, Query(description=" | ".join(FORMATS))] = "csv",
    since: Annotated[int, Query(ge=0)] = 0,
    until: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    fmt = _format(format)
    until = until if until is not None else int(time.time()) + 1
    if until <= since:
        raise HTTPException(HTTPStatus.BAD_REQUEST, "until must be after since.")
    pubkey = (await get_monitor_state()).get("node_pubkey") or ""
    rows = await forwards_between(pubkey, since, until, MAX_EXPORT_ROWS)
    try:
        data = await asyncio.to_thread(export_rows, rows, fmt)
    except ExportUnavailable as exc:
        raise HTTPException(HTTPStatus.CONFLICT, str(exc)) from None
    return _download(data, fmt, f"daznode-forwards-{since}-{until}")
