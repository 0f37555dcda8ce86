"""The monitor: a background loop that snapshots the node and ingests its forwards.

One LNbits process at a time runs it (a lease row in the database); the others stand by and
take over when the holder stops renewing. A failing node is retried with exponential backoff
and reported in the status; nothing here can crash LNbits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass

from lnbits.core.services.websockets import websocket_manager
from loguru import logger

from . import graph_service, sim_service
from .actions import propose_actions
from .crud import (
    get_channels,
    get_forward_cursor,
    get_monitor_state,
    get_settings,
    release_lease,
    roll_up,
    store_channels_snapshot,
    store_forwards,
    supersede_orphans,
    try_acquire_lease,
    update_monitor_state,
)
from .engine.backoff import backoff_seconds
from .engine.level_trials import engine_waits
from .engine.node_source import NodeSource, NodeSourceError
from .execution import (
    evaluate_applied_changes,
    expire_stale_levels,
    load_execution_settings,
    maintain_backups,
    notify,
    propose,
    reconcile_journal,
)
from .level_service import levels_now, step_level_trials
from .reports_service import generate_due
from .services import evaluate, get_backend, load_profile

HOLDER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
NODE_CALL_TIMEOUT = 60.0
FORWARD_PAGE_SIZE = 1000
MAX_FORWARD_PAGES_PER_RUN = 50  # a large backlog is ingested over several runs
MAX_BACKOFF_SECONDS = 900
WS_CHANNEL = "daznode-monitor"


@dataclass
class Runtime:
    """What this process knows about its own monitor (the database holds the rest)."""

    state: str = "starting"  # starting | running | standby | failing
    leader: bool = False
    failures: int = 0
    reconciled: bool = False  # the journal was reconciled since this process took the lease


runtime = Runtime()
_wake = asyncio.Event()
_cycle_lock = asyncio.Lock()


def wake_monitor() -> None:
    """Run the next cycle now (after a settings change, for instance)."""
    _wake.set()


async def _ingest_forwards(source: NodeSource, pubkey: str, now: int) -> int:
    cursor = await get_forward_cursor(pubkey)
    new = 0
    for _ in range(MAX_FORWARD_PAGES_PER_RUN):
        page = await asyncio.wait_for(
            source.forwards_since(cursor, FORWARD_PAGE_SIZE), NODE_CALL_TIMEOUT
        )
        if page.events or page.next_cursor != cursor:
            new += await store_forwards(pubkey, page.events, page.next_cursor, now)
            cursor = page.next_cursor
        if not page.has_more:
            break
    return new


async def run_monitor_cycle() -> float:
    """One monitor pass. Returns the seconds to wait before the next one."""
    async with _cycle_lock:
        cfg = await get_settings()
        interval = cfg.monitor_interval_seconds
        now = int(time.time())
        if not await try_acquire_lease(HOLDER_ID, now, ttl=max(30, 3 * interval)):
            runtime.state, runtime.leader, runtime.reconciled = "standby", False, False
            return float(interval)
        runtime.leader = True
        started = time.perf_counter()
        try:
            backend = await get_backend(cfg)
            source = backend.source
            info = await asyncio.wait_for(source.get_info(), NODE_CALL_TIMEOUT)
            channels = await asyncio.wait_for(source.list_channels(), NODE_CALL_TIMEOUT)
            await store_channels_snapshot(channels, now)
            new = await _ingest_forwards(source, info.pubkey, now)
            await roll_up(now, cfg)
            await maintain_backups(now, cfg.backup_compress_after_days, cfg.backup_keep_days)
            await graph_service.maybe_sync(source, info.pubkey, now, cfg.graph_sync_hours)
            if not runtime.reconciled:  # first pass as leader: settle what a crash left
                for note in await reconcile_journal(source):
                    logger.warning(f"daznode: journal reconciled: {note}")
                runtime.reconciled = True
        except (NodeSourceError, asyncio.TimeoutError, ValueError, OSError) as exc:
            return await _record_failure(_describe(exc), now, interval)
        except Exception as exc:  # never let a bug stop the monitor or reach LNbits
            logger.exception("daznode: monitor cycle failed")
            return await _record_failure(f"internal error: {type(exc).__name__}", now, interval)
        duration_ms = int((time.perf_counter() - started) * 1000)
        runtime.state, runtime.failures = "running", 0
        await update_monitor_state(
            backend=backend.info.kind,
            node_pubkey=info.pubkey,
            node_info=json.dumps(asdict(info)),
            last_run=now,
            last_success=now,
            last_duration_ms=duration_ms,
            last_error=None,
            consecutive_failures=0,
            next_run=now + interval,
            last_rollup=now,
        )
        logger.debug(f"daznode: monitor {len(channels)} channels, {new} new forwards")
        await _propose(now)
        await _notify_pages(now)
        return float(interval)


async def _propose(now: int) -> None:
    """Recommendations -> proposals (approve mode) or applied changes (auto mode). A failure
    here is Daznode's, not the node's: logged, and the monitor carries on."""
    try:
        state = await get_monitor_state()
        open_ids = [c["channel_id"] for c in await get_channels()]
        if await supersede_orphans(open_ids, now):
            logger.info("daznode: proposals for channels no longer open left the queue")
        await expire_stale_levels(now)
        await evaluate_applied_changes(state.get("node_pubkey") or "", now)
        await generate_due(now)
        cfg = await load_execution_settings()
        trials = await step_level_trials(await load_profile(), cfg, now)
        recs, _profile, _net = await evaluate(now)
        levels = await levels_now()
        if not engine_waits(trials.day_start, now, cfg.bounds.cooldown_seconds):
            await propose(recs, now, levels)
        await propose_actions(recs, cfg, now, levels)
        await sim_service.maybe_shadow(now)
        await sim_service.maybe_propose_level(now)
    except Exception:
        logger.exception("daznode: proposing changes failed")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"node did not answer within {NODE_CALL_TIMEOUT:.0f} s"
    return str(exc) or type(exc).__name__


async def _record_failure(message: str, now: int, interval: int) -> float:
    runtime.state = "failing"
    runtime.failures += 1
    delay = backoff_seconds(runtime.failures, interval, cap=MAX_BACKOFF_SECONDS)
    logger.warning(f"daznode: monitor failed ({runtime.failures}x): {message}")
    if runtime.failures in (1, 10, 100):  # the first failure, then rarely: no alert storm
        await notify(
            "node_unreachable",
            f"Node not answering ({runtime.failures}x)",
            {"error": message[:300], "next_try_in_s": int(delay)},
        )
    await update_monitor_state(
        last_run=now,
        last_error=message[:500],
        last_error_at=now,
        consecutive_failures=runtime.failures,
        next_run=now + int(delay),
    )
    return delay


async def _notify_pages(now: int) -> None:
    # Only a tick: pages re-read the data through the authenticated API. One send per page:
    # LNbits' manager sends to all in one loop, so a page that went away without closing its
    # socket (not yet removed) stopped the tick from reaching the pages after it.
    tick = json.dumps({"event": "monitor", "ts": now})
    for conn in websocket_manager.get_connections(WS_CHANNEL):
        try:
            await conn.websocket.send_text(tick)
        except Exception as exc:  # a dropped browser must not fail the cycle
            logger.debug(f"daznode: page notification failed: {exc}")


async def _funding_source_ready(timeout: float = 60.0) -> None:
    """Extension tasks start before LNbits sets its funding source: wait for it."""
    from lnbits import wallets

    deadline = time.monotonic() + timeout
    # LNbits offers no event for this; a short poll at start-up only.
    while wallets.funding_source is wallets.fake_wallet and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


async def monitor_loop() -> None:
    await _funding_source_ready()
    while True:
        try:
            delay = await run_monitor_cycle()
        except Exception:  # database down, for instance: wait and try again
            logger.exception("daznode: monitor could not run")
            delay = 30.0
        _wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_wake.wait(), timeout=delay)


async def stop_monitor() -> None:
    await sim_service.stop()  # its worker process must not outlive LNbits
    if runtime.leader:
        await release_lease(HOLDER_ID)  # a successor need not wait for the lease to expire
        runtime.leader = False
