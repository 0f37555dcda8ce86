"""HTTP API under /daznode/api/v1.

Reading needs a wallet key (invoice or admin, header X-API-KEY) or a logged-in LNbits user
with the extension enabled; changing anything needs an LNbits admin.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Security
from lnbits.core.models.wallets import KeyType
from lnbits.decorators import (
    KeyChecker,
    api_key_header,
    api_key_query,
    check_access_token,
    check_account_exists,
)
from lnbits.settings import settings as lnbits_settings
from pydantic import ValidationError

from .crud import (
    channel_history,
    count_rows,
    forward_stats_by_channel,
    forwards_page,
    get_channel,
    get_channels,
    get_forward_cursor,
    get_lease,
    get_monitor_state,
    get_settings,
    save_settings,
)
from .engine.graph_io import GraphFormatError, load_graph
from .engine.node_source import BLOCKS_PER_DAY, normalize_channel_id
from .models import (
    ChannelHistory,
    ChannelOut,
    DaznodeSettings,
    ForwardsPage,
    NodeOut,
    Policy,
    StatusOut,
)
from .services import cached_backend
from .tasks import run_monitor_cycle, runtime, wake_monitor

daznode_api_router = APIRouter(prefix="/api/v1", tags=["daznode"])

WEEK = 7 * 86400


@dataclass(frozen=True)
class Caller:
    user_id: str
    is_admin: bool
    via_key: KeyType | None  # None: logged-in session


async def require_reader(
    request: Request,
    key_header: Annotated[str | None, Security(api_key_header)] = None,
    key_query: Annotated[str | None, Security(api_key_query)] = None,
    access_token: Annotated[str | None, Depends(check_access_token)] = None,
) -> Caller:
    key = key_header or key_query
    if key:
        try:
            info = await KeyChecker(api_key=key)(request)
        except HTTPException as exc:
            if exc.status_code == HTTPStatus.NOT_FOUND:  # LNbits says "Wallet not found."
                raise HTTPException(HTTPStatus.UNAUTHORIZED, "Invalid API key.") from None
            raise
        user = info.wallet.user
        return Caller(user, lnbits_settings.is_admin_user(user), info.key_type)
    account = await check_account_exists(request, access_token)
    is_admin = lnbits_settings.is_admin_user(account.id) and account.has_password
    return Caller(account.id, is_admin, None)


async def require_node_admin(caller: Annotated[Caller, Depends(require_reader)]) -> Caller:
    if not caller.is_admin:
        raise HTTPException(HTTPStatus.FORBIDDEN, "Only LNbits admins can change Daznode.")
    if caller.via_key == KeyType.invoice:
        raise HTTPException(HTTPStatus.FORBIDDEN, "Changes need the wallet's admin key.")
    return caller


Reader = Annotated[Caller, Depends(require_reader)]
Admin = Annotated[Caller, Depends(require_node_admin)]


def _node_pubkey(state: dict) -> str:
    return state.get("node_pubkey") or ""


@daznode_api_router.get("/node", response_model=NodeOut, summary="The node and its totals")
async def api_node(_: Reader) -> NodeOut:
    state = await get_monitor_state()
    if not state.get("last_success"):
        raise HTTPException(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "The monitor has not read the node yet; see /daznode/api/v1/status.",
        )
    info = json.loads(state["node_info"])
    channels = await get_channels()
    stats = await forward_stats_by_channel(_node_pubkey(state), int(time.time()) - WEEK)
    backend = cached_backend()
    return NodeOut(
        backend=state["backend"],
        demo=bool(backend and backend.info.demo),
        pubkey=info["pubkey"],
        alias=info["alias"],
        network=info["network"],
        version=info["version"],
        block_height=info["block_height"],
        synced_to_chain=info["synced_to_chain"],
        num_channels=len(channels),
        num_active_channels=sum(1 for c in channels if c["active"]),
        capacity_sat=sum(c["capacity_sat"] for c in channels),
        local_msat=sum(c["local_msat"] for c in channels),
        remote_msat=sum(c["remote_msat"] for c in channels),
        fees_7d_msat=sum(s["fees"] for s in stats.values()),
        forwards_7d=sum(s["out"] for s in stats.values()),
        as_of=state["last_success"],
    )


def _channel_out(row: dict, stats: dict[str, int], block_height: int) -> ChannelOut:
    total = row["local_msat"] + row["remote_msat"]
    return ChannelOut(
        channel_id=row["channel_id"],
        native_id=row["native_id"],
        channel_point=row["channel_point"],
        peer_id=row["peer_id"],
        peer_alias=row["peer_alias"],
        capacity_sat=row["capacity_sat"],
        local_msat=row["local_msat"],
        remote_msat=row["remote_msat"],
        local_ratio=round(row["local_msat"] / total, 4) if total else 0.0,
        active=row["active"],
        private=row["private"],
        age_days=round(max(0, block_height - row["funding_height"]) / BLOCKS_PER_DAY, 1),
        local_policy=Policy(**row["local_policy"]) if row["local_policy"] else None,
        remote_policy=Policy(**row["remote_policy"]) if row["remote_policy"] else None,
        forwards_out_7d=stats.get("out", 0),
        forwards_in_7d=stats.get("in", 0),
        volume_out_7d_msat=stats.get("volume_out", 0),
        fees_7d_msat=stats.get("fees", 0),
        failed_7d=stats.get("failed", 0),
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
    )


async def _block_height(state: dict) -> int:
    return int(json.loads(state.get("node_info") or "{}").get("block_height", 0))


@daznode_api_router.get(
    "/channels",
    response_model=list[ChannelOut],
    summary="Open channels with 7-day activity",
)
async def api_channels(
    _: Reader, include_closed: Annotated[bool, Query()] = False
) -> list[ChannelOut]:
    state = await get_monitor_state()
    stats = await forward_stats_by_channel(_node_pubkey(state), int(time.time()) - WEEK)
    height = await _block_height(state)
    return [
        _channel_out(row, stats.get(row["channel_id"], {}), height)
        for row in await get_channels(include_closed)
    ]


async def _known_channel(channel_id: str) -> dict:
    try:
        channel_id = normalize_channel_id(channel_id)
    except ValueError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    row = await get_channel(channel_id)
    if not row:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"No channel {channel_id} on this node.")
    return row


@daznode_api_router.get(
    "/channels/{channel_id}/history",
    response_model=ChannelHistory,
    summary="Balance and fee history of one channel",
    description="Raw snapshots where still kept, hourly and daily roll-ups before that. "
    "channel_id: short channel id (BLOCKxTXxOUT) or LND's numeric chan_id.",
)
async def api_channel_history(
    channel_id: str,
    _: Reader,
    since: Annotated[int | None, Query(ge=0, description="epoch seconds")] = None,
    until: Annotated[int | None, Query(ge=0, description="epoch seconds")] = None,
) -> ChannelHistory:
    row = await _known_channel(channel_id)
    now = int(time.time())
    until = now if until is None else until
    since = until - 30 * 86400 if since is None else since
    if since > until:
        raise HTTPException(HTTPStatus.BAD_REQUEST, "since must not be after until.")
    points = await channel_history(row["channel_id"], since, until)
    return ChannelHistory(channel_id=row["channel_id"], resolution="auto", points=points)


FORWARD_STATUSES = ("settled", "failed", "local_failed")


@daznode_api_router.get(
    "/forwards", response_model=ForwardsPage, summary="Forwarding history, newest first"
)
async def api_forwards(
    _: Reader,
    since: Annotated[int | None, Query(ge=0, description="epoch seconds")] = None,
    until: Annotated[int | None, Query(ge=0, description="epoch seconds")] = None,
    channel_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[str | None, Query(description="settled | failed | local_failed")] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ForwardsPage:
    if since is not None and until is not None and since > until:
        raise HTTPException(HTTPStatus.BAD_REQUEST, "since must not be after until.")
    if status is not None and status not in FORWARD_STATUSES:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"status must be one of {', '.join(FORWARD_STATUSES)}."
        )
    if channel_id:
        try:
            channel_id = normalize_channel_id(channel_id)
        except ValueError as exc:
            raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    state = await get_monitor_state()
    return await forwards_page(
        node_pubkey=_node_pubkey(state),
        since=since,
        until=until,
        channel_id=channel_id,
        status=status,
        page=page,
        size=size,
    )


async def _status() -> StatusOut:
    state = await get_monitor_state()
    cfg = await get_settings()
    lease = await get_lease()
    backend = cached_backend()
    pubkey = _node_pubkey(state)
    return StatusOut(
        backend=backend.info if backend else None,
        state=runtime.state,
        leader=runtime.leader,
        lease_holder=lease["holder"] if lease["expires_at"] > time.time() else "",
        interval_seconds=cfg.monitor_interval_seconds,
        last_run=state.get("last_run", 0),
        last_success=state.get("last_success", 0),
        last_duration_ms=state.get("last_duration_ms", 0),
        last_error=state.get("last_error"),
        last_error_at=state.get("last_error_at", 0),
        consecutive_failures=state.get("consecutive_failures", 0),
        next_run=state.get("next_run", 0),
        forward_cursor=await get_forward_cursor(pubkey) if pubkey else 0,
        stored_forwards=await count_rows("forwards"),
        stored_snapshots=await count_rows("snapshots"),
    )


@daznode_api_router.get("/status", response_model=StatusOut, summary="Backend and monitor state")
async def api_status(_: Reader) -> StatusOut:
    return await _status()


@daznode_api_router.post(
    "/monitor/run", response_model=StatusOut, summary="Run a monitor pass now (admins)"
)
async def api_monitor_run(_: Admin) -> StatusOut:
    await run_monitor_cycle()
    return await _status()


@daznode_api_router.get(
    "/settings", response_model=DaznodeSettings, summary="Daznode settings (admins)"
)
async def api_get_settings(_: Admin) -> DaznodeSettings:
    return await get_settings()


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"] if p != "__root__")
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


@daznode_api_router.put(
    "/settings",
    response_model=DaznodeSettings,
    summary="Change settings (admins); fields left out keep their value",
)
async def api_put_settings(_: Admin, body: Annotated[Any, Body()] = None) -> DaznodeSettings:
    if not isinstance(body, dict):
        raise HTTPException(HTTPStatus.BAD_REQUEST, "Send a JSON object of settings.")
    current = await get_settings()
    try:
        new = DaznodeSettings.parse_obj({**current.dict(), **body})
    except ValidationError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, _validation_message(exc)) from None
    if new.sim_graph_path and new.sim_graph_path != current.sim_graph_path:
        await _check_graph_file(new.sim_graph_path)
    await save_settings(new, int(time.time()))
    wake_monitor()
    return new


async def _check_graph_file(path: str) -> None:
    try:
        await asyncio.to_thread(load_graph, Path(path))
    except GraphFormatError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"sim_graph_path: {exc}") from None
