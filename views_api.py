"""HTTP API under /daznode/api/v1.

Reading needs a wallet key (invoice or admin, header X-API-KEY) or a logged-in LNbits user
with the extension enabled; changing anything needs an LNbits admin.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response, Security
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
    save_doc,
    save_settings,
)
from .engine.chargelnd import import_chargelnd
from .engine.decide import Decision, Recommendation
from .engine.graph_io import GraphFormatError, load_graph
from .engine.node_source import BLOCKS_PER_DAY, normalize_channel_id
from .engine.profiles import (
    BUILTIN,
    ProfileError,
    profile_from_dict,
    profile_from_yaml,
    profile_to_yaml,
)
from .engine.rules import RuleError, parse_rules, rules_to_doc
from .models import (
    ChannelHistory,
    ChannelOut,
    ChargeLndImportOut,
    DaznodeSettings,
    ForwardsPage,
    NodeOut,
    Policy,
    ProfileOut,
    RecommendationOut,
    RecommendationsOut,
    RulesOut,
    StatusOut,
)
from .services import cached_backend, evaluate, load_profile, load_rules
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


# -- engine: recommendations, scores, profile, rules ------------------------------------------


def _recommendation_out(rec: Recommendation, current: dict[str, int | None]) -> RecommendationOut:
    data = asdict(rec)
    data["decision"] = rec.decision.value
    data["heuristics"] = [
        {"name": h.name, "score": h.score, "facts": dict(h.facts)} for h in rec.heuristics
    ]
    data["current_fee_ppm"] = current.get(rec.channel_id)
    return RecommendationOut.parse_obj(data)


async def _evaluation() -> tuple[RecommendationsOut, dict[str, RecommendationOut]]:
    state = await get_monitor_state()
    if not state.get("last_success"):
        raise HTTPException(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "The monitor has not read the node yet; see /daznode/api/v1/status.",
        )
    now = int(time.time())
    recs, profile, net = await evaluate(now)
    current = {
        row["channel_id"]: (row["local_policy"] or {}).get("fee_rate_ppm")
        for row in await get_channels()
    }
    out = [_recommendation_out(r, current) for r in recs]
    result = RecommendationsOut(
        profile=profile.name, graph_available=net.graph_available, evaluated_at=now, data=out
    )
    return result, {r.channel_id: r for r in out}


DECISIONS = tuple(d.value for d in Decision)


@daznode_api_router.get(
    "/recommendations",
    response_model=RecommendationsOut,
    summary="What the engine recommends for every channel",
)
async def api_recommendations(
    _: Reader,
    min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
    decision: Annotated[list[str] | None, Query(description=" | ".join(DECISIONS))] = None,
) -> RecommendationsOut:
    wanted = set(decision or [])
    unknown = sorted(wanted - set(DECISIONS))
    if unknown:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST,
            f"unknown decision {', '.join(unknown)}; use one of {', '.join(DECISIONS)}.",
        )
    result, _by_id = await _evaluation()
    result.data = [
        r
        for r in result.data
        if r.confidence >= min_confidence and (not wanted or r.decision in wanted)
    ]
    return result


@daznode_api_router.get(
    "/channels/{channel_id}/score",
    response_model=RecommendationOut,
    summary="Scores, decision and reasoning for one channel",
)
async def api_channel_score(channel_id: str, _: Reader) -> RecommendationOut:
    row = await _known_channel(channel_id)
    _result, by_id = await _evaluation()
    if row["channel_id"] not in by_id:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"Channel {row['channel_id']} is closed.")
    return by_id[row["channel_id"]]


async def _profile_out() -> ProfileOut:
    active = await load_profile()
    return ProfileOut(active=active.to_dict(), builtin={k: v.to_dict() for k, v in BUILTIN.items()})


@daznode_api_router.get("/profile", response_model=ProfileOut, summary="Decision profile")
async def api_get_profile(_: Admin) -> ProfileOut:
    return await _profile_out()


async def _save_profile(data: Any) -> ProfileOut:
    try:
        profile = profile_from_dict(data)
    except ProfileError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"profile: {exc}") from None
    await save_doc("profile", profile.to_dict(), int(time.time()))
    return await _profile_out()


@daznode_api_router.put(
    "/profile",
    response_model=ProfileOut,
    summary="Choose or customise the profile (admins)",
    description='{"name": "aggressive"} picks a built-in; {"base": "balanced", "deadband": '
    '0.15, "weights": {"activity": 0.3}} customises one. 400 names the bad field.',
)
async def api_put_profile(_: Admin, body: Annotated[Any, Body()] = None) -> ProfileOut:
    return await _save_profile(body)


@daznode_api_router.get(
    "/profile/export", summary="Download the active profile as JSON or YAML (admins)"
)
async def api_export_profile(
    _: Admin, format: Annotated[str, Query(pattern="^(json|yaml)$")] = "json"
) -> Response:
    profile = await load_profile()
    if format == "yaml":
        body, media = profile_to_yaml(profile), "application/yaml"
    else:
        body, media = json.dumps(profile.to_dict(), indent=2) + "\n", "application/json"
    disposition = f'attachment; filename="daznode-profile-{profile.name}.{format}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


@daznode_api_router.post(
    "/profile/import",
    response_model=ProfileOut,
    summary="Upload a profile exported before, JSON or YAML (admins)",
)
async def api_import_profile(
    request: Request,
    _: Admin,
    format: Annotated[str, Query(pattern="^(json|yaml)$")] = "json",
) -> ProfileOut:
    text = (await request.body()).decode("utf-8", errors="replace")
    if format == "yaml":
        try:
            profile = profile_from_yaml(text)
        except ProfileError as exc:
            raise HTTPException(HTTPStatus.BAD_REQUEST, f"profile: {exc}") from None
        return await _save_profile(profile.to_dict())
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"profile: invalid JSON at line {exc.lineno}: {exc.msg}"
        ) from None
    return await _save_profile(data)


@daznode_api_router.get("/rules", response_model=RulesOut, summary="Fee rules (admins)")
async def api_get_rules(_: Admin) -> RulesOut:
    return RulesOut(rules=rules_to_doc(await load_rules()))


@daznode_api_router.put(
    "/rules",
    response_model=RulesOut,
    summary="Replace the fee rules (admins); they run before the engine, first match wins",
)
async def api_put_rules(_: Admin, body: Annotated[Any, Body()] = None) -> RulesOut:
    doc = body.get("rules") if isinstance(body, dict) else body
    try:
        rules = parse_rules(doc)
    except RuleError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    saved = rules_to_doc(rules)
    await save_doc("rules", saved, int(time.time()))
    return RulesOut(rules=saved)


@daznode_api_router.post(
    "/rules/import/chargelnd",
    response_model=ChargeLndImportOut,
    summary="Convert a charge-lnd config file into rules (admins)",
    description="Send the file as the request body. mode=preview (default) only converts; "
    "replace stores the result instead of the current rules; append adds it after them.",
)
async def api_import_chargelnd(
    request: Request,
    _: Admin,
    mode: Annotated[str, Query(pattern="^(preview|replace|append)$")] = "preview",
) -> ChargeLndImportOut:
    text = (await request.body()).decode("utf-8", errors="replace")
    try:
        imported = import_chargelnd(text)
        rules = parse_rules(imported.rules)
    except RuleError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"charge-lnd config: {exc}") from None
    saved = mode != "preview"
    if saved:
        current = rules_to_doc(await load_rules()) if mode == "append" else []
        added = rules_to_doc(rules)
        if current and added:  # append: every imported rule ranks below the existing ones
            shift = min(r["priority"] for r in current) - 1 - max(r["priority"] for r in added)
            added = [{**r, "priority": r["priority"] + min(0, shift)} for r in added]
        try:
            combined = parse_rules(current + added)
        except RuleError as exc:  # e.g. a section named like an existing rule
            raise HTTPException(HTTPStatus.BAD_REQUEST, f"charge-lnd config: {exc}") from None
        await save_doc("rules", rules_to_doc(combined), int(time.time()))
    return ChargeLndImportOut(
        rules=rules_to_doc(rules),
        unsupported=imported.unsupported,
        notes=imported.notes,
        saved=saved,
    )
