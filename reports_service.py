"""Periodic reports: at each day's, ISO week's and month's end (UTC) the monitor builds the
report of the period that just ended from the stored history; an admin can build one on
demand. Reports are stored as JSON, one per kind and period."""

from __future__ import annotations

import asyncio
import json
import time

from loguru import logger

from . import crud
from .engine.reports import (
    PERIOD_KINDS as KINDS,
)
from .engine.reports import (
    BalanceSample,
    Period,
    ReportChannel,
    ReportFeeChange,
    ReportForward,
    ReportInput,
    ReportRebalance,
    build_report,
    period_bounds,
)


def _fee_change(row: dict) -> ReportFeeChange:
    verdict = json.loads(row["verdict"]) if row.get("verdict") else {}
    return ReportFeeChange(
        ts=int(row["updated_at"]),
        channel_id=row["channel_id"],
        fee_before_ppm=int(json.loads(row["before_policy"])["fee_rate_ppm"]),
        fee_after_ppm=int(json.loads(row["after_policy"])["fee_rate_ppm"]),
        outcome=row.get("outcome"),
        adjusted_change=verdict.get("adjusted_change"),
        rolled_back=bool(row.get("rolled_back")),
        node_change=verdict.get("node_change"),
    )


def _inputs(period: Period, rows: dict[str, list[dict]], failures_known: bool) -> ReportInput:
    forwards = [ReportForward.from_row(r) for r in rows["forwards"]]
    if not failures_known:  # LND reports settled forwards only
        forwards = [f for f in forwards if f.status == "settled"]
    return ReportInput(
        period=period,
        channels=[
            ReportChannel(
                r["channel_id"],
                r["peer_alias"],
                int(r["capacity_sat"]),
                int(r["local_msat"]),
                int(r["remote_msat"]),
                None,  # its opening time is not known (first_seen is when Daznode saw it)
            )
            for r in rows["channels"]
        ],
        forwards=forwards,
        rebalances=[ReportRebalance.from_row(r) for r in rows["rebalances"]],
        fee_changes=[_fee_change(r) for r in rows["fee_changes"]],
        samples=[
            *(BalanceSample.from_snapshot_row(r) for r in rows["snapshots"]),
            *(BalanceSample.from_bucket_row(r) for r in rows["hourly"]),
            *(BalanceSample.from_bucket_row(r) for r in rows["daily"]),
        ],
        failures_known=failures_known,
    )


async def _node() -> tuple[str, bool]:
    from .services import cached_backend

    state = await crud.get_monitor_state()
    backend = cached_backend()
    failures = bool(backend and backend.source.capabilities.forward_failures)
    return state.get("node_pubkey") or "", failures


async def generate(kind: str, at: int | None = None) -> int:
    """Build and store the report of the `kind` period that ended most recently before `at`."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    now = int(time.time())
    period = period_bounds(kind, at or now)
    pubkey, failures_known = await _node()
    rows = await crud.report_rows(pubkey, period.start, period.end)
    report = await asyncio.to_thread(
        lambda: build_report(_inputs(period, rows, failures_known)).to_dict()
    )
    report_id = await crud.save_report(kind, period.start, period.end, now, report)
    logger.info(f"daznode: {kind} report {period.label} stored")
    return report_id


async def generate_due(now: int) -> list[int]:
    """Called by the monitor: every period that ended since the last report gets one."""
    made = []
    for kind in KINDS:
        period = period_bounds(kind, now)
        if not await crud.has_report(kind, period.start):
            made.append(await generate(kind, now))
    return made
