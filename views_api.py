"""HTTP API under /daznode/api/v1.

Reading needs a wallet key (invoice or admin, header X-API-KEY) or a logged-in LNbits user
with the extension enabled; changing anything needs an LNbits admin.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass, replace
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

from . import graph_service
from .actions import ACTION_KINDS, ActionRefused, execute_action, run_rebalance
from .crud import (
    add_audit,
    all_backups,
    audit_page,
    backup_policies,
    channel_history,
    count_rows,
    create_backup,
    create_change,
    doc_versions,
    forward_stats_by_channel,
    forwards_page,
    get_backup,
    get_backups,
    get_batch,
    get_batch_items,
    get_batches,
    get_changes,
    get_changes_by_id,
    get_channel,
    get_channels,
    get_forward_cursor,
    get_impacts,
    get_lease,
    get_monitor_state,
    get_rebalances,
    get_settings,
    get_sim_run,
    policy_updates_version,
    save_doc,
    save_settings,
    set_change_status,
)
from .engine.changes import POLICY_FIELDS, PolicyChange
from .engine.chargelnd import import_chargelnd
from .engine.decide import Decision, Recommendation
from .engine.graph_io import GraphFormatError, load_graph
from .engine.level_trials import DAY as LEVEL_DAY
from .engine.level_trials import WINDOW_DAYS, ChannelLevel, engine_quiet_from, level_fee
from .engine.node_source import (
    BLOCKS_PER_DAY,
    NodeSourceError,
    NotSupported,
    RoutingPolicy,
    normalize_channel_id,
)
from .engine.profiles import (
    BUILTIN,
    ProfileError,
    profile_from_dict,
    profile_from_yaml,
    profile_to_yaml,
)
from .engine.rules import RuleError, parse_rules, rules_to_doc
from .engine.validate import ValidationConfigError, validate_policy_change
from .execution import (
    ADMIN_ORIGINS,
    LEVEL_STALE_SECONDS,
    ExecutionSettings,
    LevelRefused,
    apply_changes,
    execution_settings_from_dict,
    export_backup,
    level_targets,
    load_execution_settings,
    parse_backup_export,
    pending_row,
    propose_level,
    rollback,
    update_log,
)
from .level_service import STATE_DOC, current_levels, fee_range, levels_now
from .level_service import summary as level_summary
from .models import (
    ActionOut,
    ApplyOut,
    AuditOut,
    AuditPage,
    BackupCheck,
    BackupOut,
    BatchItemOut,
    BatchOut,
    ChangeIds,
    ChangeOut,
    ChannelHistory,
    ChannelOut,
    ChargeLndImportOut,
    DaznodeSettings,
    ForwardsPage,
    LevelIn,
    LevelOut,
    LevelTrialDay,
    LevelTrialLevel,
    LevelTrialsIn,
    LevelTrialsOut,
    ManualChange,
    NodeOut,
    Policy,
    PreviewOut,
    ProfileOut,
    RebalanceIn,
    RecommendationOut,
    RecommendationsOut,
    RulesOut,
    SkippedChannel,
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


def _recommendation_out(
    rec: Recommendation,
    current: dict[str, int | None],
    levels: dict[str, ChannelLevel],
    cfg: ExecutionSettings,
) -> RecommendationOut:
    data = asdict(rec)
    data["decision"] = rec.decision.value
    data["heuristics"] = [
        {"name": h.name, "score": h.score, "facts": dict(h.facts)} for h in rec.heuristics
    ]
    data["current_fee_ppm"] = current.get(rec.channel_id)
    held = levels.get(rec.channel_id)
    if held is not None and held.percent != 100:  # the engine's own fees, shown as the node's
        lo, hi = fee_range(cfg, rec.channel_id)
        suggested = data["suggested"]
        data["level_percent"], data["own_fee_ppm"] = held.percent, held.own_ppm
        data["suggested_own_fee_ppm"] = suggested["fee_ppm"]
        for key in ("fee_ppm", "target_fee_ppm"):
            if suggested[key] is not None:
                suggested[key] = level_fee(suggested[key], held.percent, lo, hi)
        data["reasons"] = [
            *rec.reasons,
            f"price level {held.percent} % today: the engine's own fees times "
            f"{held.percent / 100:g} on the node",
        ]
    return RecommendationOut.parse_obj(data)


# The engine's inputs change with a monitor pass, a profile, rules or execution change, an
# applied change, or a new graph: until one of those, every request gets the same
# evaluation (it costs a few DB queries and the engine, ~100 ms; pages and API clients poll).
_EVALUATION_DOCS = ("profile", "rules", "execution", "global", STATE_DOC)
_evaluation_cache: dict[str, Any] = {"key": None, "value": None}


async def _evaluation() -> tuple[RecommendationsOut, dict[str, RecommendationOut]]:
    state = await get_monitor_state()
    if not state.get("last_success"):
        raise HTTPException(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "The monitor has not read the node yet; see /daznode/api/v1/status.",
        )
    key = (
        state.get("last_run"),
        await doc_versions(_EVALUATION_DOCS),
        graph_service.context_version(),
        await policy_updates_version(),  # an approval moved a fee (the engine starts there)
    )
    if _evaluation_cache["key"] != key:
        _evaluation_cache["value"] = await _evaluate_now()
        _evaluation_cache["key"] = key
    return _evaluation_cache["value"]


async def _evaluate_now() -> tuple[RecommendationsOut, dict[str, RecommendationOut]]:
    now = int(time.time())
    recs, profile, net = await evaluate(now)
    current = {
        row["channel_id"]: (row["local_policy"] or {}).get("fee_rate_ppm")
        for row in await get_channels()
    }
    levels, cfg = await levels_now(), await load_execution_settings()
    out = [_recommendation_out(r, current, levels, cfg) for r in recs]
    result = RecommendationsOut(
        profile=profile.name, graph_available=net.graph_available, evaluated_at=now, data=out
    )
    return result, {r.channel_id: r for r in out}


async def _admin_changes_waiting() -> set[str]:
    """Channels with an admin's own proposal in the queue (the engine leaves them alone)."""
    return {
        c["channel_id"]
        for c in await get_changes("pending")
        if c["kind"] == "policy" and c["origin"] in ADMIN_ORIGINS
    }


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
    waiting = await _admin_changes_waiting()
    data = [
        r.copy(update={"admin_change_waiting": r.channel_id in waiting})
        for r in result.data
        if r.confidence >= min_confidence and (not wanted or r.decision in wanted)
    ]
    return result.copy(update={"data": data})


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
    waiting = row["channel_id"] in await _admin_changes_waiting()
    return by_id[row["channel_id"]].copy(update={"admin_change_waiting": waiting})


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


# -- execution: settings, approvals, batches, audit -------------------------------------------


def _actor(caller: Caller) -> str:
    return f"admin {caller.user_id[:8]}"


@daznode_api_router.get("/execution", summary="Execution mode, bounds and pins (admins)")
async def api_get_execution(_: Admin) -> dict:
    return (await load_execution_settings()).to_dict()


@daznode_api_router.put(
    "/execution",
    summary="Change the execution mode, bounds and per-channel pins (admins)",
    description='{"mode": "observe|approve|auto", "min_confidence": 0.5, "bounds": {...}, '
    '"overrides": [{"channel_id": "...", "pinned": true}]}; fields left out keep their value.',
)
async def api_put_execution(caller: Admin, body: Annotated[Any, Body()] = None) -> dict:
    if not isinstance(body, dict):
        raise HTTPException(HTTPStatus.BAD_REQUEST, "Send a JSON object of execution settings.")
    current = (await load_execution_settings()).to_dict()
    merged = {**current, **body}
    if isinstance(body.get("bounds"), dict):
        merged["bounds"] = {**current["bounds"], **body["bounds"]}
    try:
        new = execution_settings_from_dict(merged)
    except ValidationConfigError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    now = int(time.time())
    await save_doc("execution", new.to_dict(), now)
    await add_audit(now, _actor(caller), "execution settings", "", json.dumps(body)[:2000])
    return new.to_dict()


def _diff(before: dict, after: dict) -> list[dict]:
    return [
        {"field": k, "before": before.get(k), "after": after.get(k)}
        for k in POLICY_FIELDS
        if before.get(k) != after.get(k)
    ]


def _change_out(row: dict) -> ChangeOut:
    before, after = json.loads(row["before_policy"]), json.loads(row["after_policy"])
    return ChangeOut(
        id=row["id"],
        created_at=row["created_at"],
        channel_id=row["channel_id"],
        kind=row["kind"],
        status=row["status"],
        before=before,
        after=after,
        diff=_diff(before, after),
        reasons=json.loads(row["reasons"]),
        confidence=row["confidence"],
        origin=row["origin"],
        validation=json.loads(row["validation"]),
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        batch_id=row["batch_id"],
        action=json.loads(row.get("action") or "{}"),
        outcome=row.get("outcome") or "",
    )


CHANGE_STATUSES = (
    "pending",
    "approved",
    "applied",
    "failed",
    "rolled_back",
    "rejected",
    "superseded",
)


async def _level_trials_out() -> LevelTrialsOut:
    profile, cfg = await load_profile(), await load_execution_settings()
    info = await level_summary(profile, cfg)
    state, rows = info.state, await get_channels()
    levels = current_levels(rows, state, cfg)
    return LevelTrialsOut(
        enabled=profile.level_trials,
        mode=cfg.mode,
        running=not info.why_not and state.day_start is not None,
        why_not=info.why_not,
        percent=state.percent,
        reason=state.reason,
        day_start=state.day_start,
        next_day_at=state.day_start + LEVEL_DAY if state.day_start is not None else None,
        engine_quiet_from=(
            engine_quiet_from(state.day_start, cfg.bounds.cooldown_seconds)
            if state.day_start is not None
            else None
        ),
        channels=len(levels),
        channels_at_level=sum(h.percent == state.percent for h in levels.values()),
        levels=[
            LevelTrialLevel(
                percent=s.percent,
                days=s.days,
                fees_msat=s.fees_msat,
                forwards=s.forwards,
                mean_fees_msat=s.mean_fees_msat,
            )
            for s in info.stats
        ],
        days=[LevelTrialDay(**d) for d in info.days[-WINDOW_DAYS:]],
    )


@daznode_api_router.get(
    "/level-trials",
    response_model=LevelTrialsOut,
    summary="Price level trials: today's level, why, and what each level earned (admins)",
)
async def api_level_trials(_: Admin) -> LevelTrialsOut:
    return await _level_trials_out()


@daznode_api_router.put(
    "/level-trials",
    response_model=LevelTrialsOut,
    summary="Turn price level trials on or off (the profile's level_trials switch; admins)",
    description="They run in auto mode only. Turned off, every channel goes back to the "
    "engine's own fee on the monitor's next pass.",
)
async def api_put_level_trials(caller: Admin, body: LevelTrialsIn) -> LevelTrialsOut:
    profile = replace(await load_profile(), level_trials=body.enabled)
    now = int(time.time())
    await save_doc("profile", profile.to_dict(), now)
    await add_audit(
        now, _actor(caller), "level trials " + ("on" if body.enabled else "off"), "", profile.name
    )
    wake_monitor()
    return await _level_trials_out()


@daznode_api_router.get(
    "/changes", response_model=list[ChangeOut], summary="Proposed changes, newest first (admins)"
)
async def api_changes(
    _: Admin, status: Annotated[str | None, Query(description=" | ".join(CHANGE_STATUSES))] = None
) -> list[ChangeOut]:
    if status is not None and status not in CHANGE_STATUSES:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"status must be one of {', '.join(CHANGE_STATUSES)}."
        )
    return [_change_out(r) for r in await get_changes(status)]


async def _manual_change(body: ManualChange) -> tuple[PolicyChange, Any]:
    row = await _known_channel(body.channel_id)
    if not row["local_policy"]:
        raise HTTPException(HTTPStatus.BAD_REQUEST, "Our policy on this channel is unknown.")
    before = RoutingPolicy(**row["local_policy"])
    wanted = body.dict(exclude_none=True, exclude={"channel_id"})
    if not wanted:
        raise HTTPException(HTTPStatus.BAD_REQUEST, "Say what to change (e.g. fee_rate_ppm).")
    after = replace(before, **wanted)
    change = PolicyChange(uuid.uuid4().hex[:16], row["channel_id"], before, after, "manual")
    cfg = await load_execution_settings()
    now = int(time.time())
    verdict = validate_policy_change(
        change,
        cfg.bounds,
        cfg.overrides.get(change.channel_id),
        await update_log(now, cfg.bounds),
        now,
    )
    return change, verdict


@daznode_api_router.post(
    "/changes/preview",
    response_model=PreviewOut,
    summary="Dry run: the exact before/after policy and what validation says (admins)",
)
async def api_preview_change(_: Admin, body: ManualChange) -> PreviewOut:
    change, verdict = await _manual_change(body)
    before, after = asdict(change.before), asdict(change.after)
    return PreviewOut(
        channel_id=change.channel_id,
        before=before,
        after=after,
        diff=_diff(before, after),
        ok=verdict.ok,
        reasons=list(verdict.reasons),
        checks=list(verdict.checks),
    )


@daznode_api_router.post(
    "/changes", response_model=ChangeOut, summary="Propose a change by hand (admins)"
)
async def api_create_change(caller: Admin, body: ManualChange) -> ChangeOut:
    change, verdict = await _manual_change(body)
    if not verdict.ok:
        raise HTTPException(HTTPStatus.BAD_REQUEST, "; ".join(verdict.reasons))
    now = int(time.time())
    held = (await levels_now()).get(change.channel_id)
    row = pending_row(
        change,
        status="pending",
        reasons=[f"proposed by hand by {_actor(caller)}"],
        origin="manual",
        checks=list(verdict.checks),
        now=now,
        level_percent=held.percent if held else 100,
    )
    await create_change(row)
    await add_audit(now, _actor(caller), "proposed", change.channel_id, row["after_policy"])
    return _change_out((await get_changes_by_id([change.change_id]))[0])


@daznode_api_router.post(
    "/changes/level",
    response_model=LevelOut,
    summary="Propose a what-if run's price level: each channel at the fee it simulated (admins)",
)
async def api_propose_level(caller: Admin, body: LevelIn) -> LevelOut:
    run = await get_sim_run(body.run_id)
    if run is None:
        raise HTTPException(HTTPStatus.NOT_FOUND, "No such simulation run.")
    targets = level_targets(run, body.percent)
    if run["status"] != "done" or targets is None:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"This run has no finished price level {body.percent} %."
        )
    now = int(time.time())
    age = now - int(run["created_at"])
    if age > LEVEL_STALE_SECONDS:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST,
            f"This run is {age / 86400:.0f} days old and the node's fees have moved since: "
            "run the simulation again and propose from the new run.",
        )
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(run["created_at"])))
    try:
        out = await propose_level(
            targets, body.percent, f"the what-if run of {started}", _actor(caller), now
        )
    except LevelRefused as exc:
        raise HTTPException(HTTPStatus.CONFLICT, str(exc)) from None
    return LevelOut(
        proposed=[_change_out(r) for r in await get_changes_by_id(out.proposed)],
        skipped=[SkippedChannel(**s) for s in out.skipped],
        limited=out.limited,
        superseded=out.superseded,
    )


@daznode_api_router.post(
    "/changes/approve",
    response_model=ApplyOut,
    summary="Approve pending changes and apply them as one batch (admins)",
)
async def api_approve(caller: Admin, body: ChangeIds) -> ApplyOut:
    """Fee changes go as one batch (all or nothing); rebalances and closes then run one by one."""
    rows = await get_changes_by_id(body.ids)
    actions = [r for r in rows if r["kind"] in ACTION_KINDS]
    policy_ids = [i for i in body.ids if i not in {r["id"] for r in actions}]
    if any(r["status"] != "pending" for r in actions):
        bad = [r["id"] for r in actions if r["status"] != "pending"]
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"not pending: {', '.join(bad)}")
    outcome = ApplyOut(batch_id=None, status="DONE", detail="", rejected={})
    try:
        if policy_ids:
            outcome = ApplyOut(**asdict(await apply_changes(policy_ids, _actor(caller))))
        if actions and cached_backend() is None:
            raise RuntimeError("the node is not connected yet; see the status")
    except ValueError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    except RuntimeError as exc:
        raise HTTPException(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None
    for row in actions:
        outcome.actions.append(ActionOut(**asdict(await execute_action(row, _actor(caller)))))
    if not policy_ids and not all(a.ok for a in outcome.actions):
        outcome.status = "FAILED"
        failed = [a for a in outcome.actions if not a.ok]
        outcome.detail = "; ".join(f"{a.channel_id}: {a.detail}" for a in failed)
    return outcome


@daznode_api_router.post(
    "/changes/reject", response_model=list[ChangeOut], summary="Reject pending changes (admins)"
)
async def api_reject(caller: Admin, body: ChangeIds) -> list[ChangeOut]:
    rows = await get_changes_by_id(body.ids)
    bad = sorted(set(body.ids) - {r["id"] for r in rows if r["status"] == "pending"})
    if bad:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"not pending or unknown: {', '.join(bad)}")
    now = int(time.time())
    await set_change_status(body.ids, "rejected", now, _actor(caller))
    for r in rows:
        await add_audit(now, _actor(caller), "rejected", r["channel_id"], body.reason)
    return [_change_out(r) for r in await get_changes_by_id(body.ids)]


def _batch_out(row: dict, items: list[dict]) -> BatchOut:
    return BatchOut(
        **row,
        items=[
            BatchItemOut(
                change_id=i["change_id"],
                channel_id=i["channel_id"],
                status=i["status"],
                before=json.loads(i["before_policy"]),
                after=json.loads(i["after_policy"]),
                readback=json.loads(i["readback"]) if i["readback"] else None,
                error=i["error"],
                updated_at=i["updated_at"],
            )
            for i in items
        ],
    )


@daznode_api_router.get(
    "/batches", response_model=list[BatchOut], summary="Applied batches, newest first (admins)"
)
async def api_batches(_: Admin) -> list[BatchOut]:
    return [_batch_out(b, await get_batch_items(b["id"])) for b in await get_batches()]


@daznode_api_router.post(
    "/batches/{batch_id}/rollback",
    response_model=BatchOut,
    summary="Roll back a batch, or some of its channels (admins)",
)
async def api_rollback(
    batch_id: str, caller: Admin, body: Annotated[Any, Body()] = None
) -> BatchOut:
    channel_ids = (body or {}).get("channel_ids") if isinstance(body, dict) else None
    if channel_ids is not None and not (
        isinstance(channel_ids, list) and all(isinstance(c, str) for c in channel_ids)
    ):
        raise HTTPException(HTTPStatus.BAD_REQUEST, "channel_ids: expected a list of ids")
    try:
        result = await rollback(batch_id, channel_ids, _actor(caller))
    except LookupError as exc:
        raise HTTPException(HTTPStatus.NOT_FOUND, str(exc).strip("'\"")) from None
    except ValueError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    except RuntimeError as exc:
        raise HTTPException(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None
    row = await get_batch(result.batch_id)
    return _batch_out(row, await get_batch_items(result.batch_id))


@daznode_api_router.get("/audit", response_model=AuditPage, summary="Audit log (admins)")
async def api_audit(
    _: Admin,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    rows, total = await audit_page(page, size)
    return AuditPage(
        data=[AuditOut(**{k: r[k] for k in AuditOut.__fields__}) for r in rows],
        total=total,
        page=page,
        size=size,
    )


# -- backups ------------------------------------------------------------------------------


@daznode_api_router.get(
    "/backups", response_model=list[BackupOut], summary="Policy backups, newest first (admins)"
)
async def api_backups(_: Admin) -> list[BackupOut]:
    return [BackupOut(**{**r, "compressed": bool(r["compressed"])}) for r in await get_backups()]


@daznode_api_router.get(
    "/backups/check", response_model=BackupCheck, summary="Verify every backup's sha256 (admins)"
)
async def api_check_backups(_: Admin) -> BackupCheck:
    rows = await all_backups()
    corrupt = []
    for row in rows:
        try:
            backup_policies(row)
        except ValueError:
            corrupt.append(row["id"])
    return BackupCheck(checked=len(rows), corrupt=corrupt)


@daznode_api_router.get("/backups/{backup_id}/export", summary="Download a backup as JSON (admins)")
async def api_export_backup(backup_id: int, _: Admin) -> Response:
    row = await get_backup(backup_id)
    if row is None:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"No backup {backup_id}.")
    try:
        doc = export_backup(row)
    except ValueError as exc:
        raise HTTPException(HTTPStatus.CONFLICT, str(exc)) from None
    disposition = f'attachment; filename="daznode-backup-{backup_id}.json"'
    return Response(
        json.dumps(doc, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": disposition},
    )


@daznode_api_router.post(
    "/backups/import", response_model=BackupOut, summary="Upload an exported backup (admins)"
)
async def api_import_backup(caller: Admin, body: Annotated[Any, Body()] = None) -> BackupOut:
    try:
        policies, reason = parse_backup_export(body)
    except ValueError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    now = int(time.time())
    backup_id = await create_backup(policies, f"imported: {reason}"[:200], now)
    await add_audit(now, _actor(caller), "backup imported", str(backup_id), reason)
    row = await get_backup(backup_id)
    return BackupOut(
        **{k: row[k] for k in BackupOut.__fields__ if k != "compressed"},
        compressed=bool(row["compressed"]),
    )


@daznode_api_router.get(
    "/impact",
    summary="Measured effect of applied changes, newest first (admins)",
    description="Each applied change is measured once its evaluation window has passed: "
    "earnings per day against its own baseline, adjusted by the untouched channels. "
    "outcome: improved | neutral | hurt | inconclusive; rolled_back: undone automatically.",
)
async def api_impact(_: Admin) -> list[dict]:
    return [
        {
            **{
                k: r[k]
                for k in (
                    "batch_id",
                    "change_id",
                    "channel_id",
                    "applied_at",
                    "evaluated_at",
                    "outcome",
                )
            },
            "rolled_back": bool(r["rolled_back"]),
            "verdict": json.loads(r["verdict"]),
        }
        for r in await get_impacts()
    ]


# -- rebalances ---------------------------------------------------------------------------


@daznode_api_router.post(
    "/rebalances",
    summary="Run a rebalance now (admins); refused when it would cost more than it earns",
)
async def api_rebalance(caller: Admin, body: RebalanceIn) -> dict:
    try:
        ids = [normalize_channel_id(body.in_channel), normalize_channel_id(body.out_channel)]
    except ValueError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    if ids[0] == ids[1]:
        raise HTTPException(HTTPStatus.BAD_REQUEST, "in_channel and out_channel must differ.")
    try:
        row = await run_rebalance(ids[0], ids[1], body.amount_sat, body.max_fee_ppm, _actor(caller))
    except ActionRefused as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(HTTPStatus.NOT_FOUND, str(exc).strip("'\"")) from None
    except NotSupported as exc:
        raise HTTPException(HTTPStatus.CONFLICT, f"This node cannot rebalance: {exc}") from None
    except NodeSourceError as exc:
        raise HTTPException(HTTPStatus.BAD_GATEWAY, f"The node refused: {exc}") from None
    except RuntimeError as exc:
        raise HTTPException(HTTPStatus.SERVICE_UNAVAILABLE, str(exc)) from None
    return {**row, "ok": bool(row["ok"])}


@daznode_api_router.get("/rebalances", summary="Rebalances run, newest first (admins)")
async def api_rebalances(_: Admin) -> list[dict]:
    return [{**r, "ok": bool(r["ok"])} for r in await get_rebalances()]
