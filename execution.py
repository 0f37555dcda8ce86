"""Applying the engine's recommendations safely: the glue between the engine's validator and
executor, the database journal and LNbits (see docs/SAFETY.md).

Modes: observe (recommend only), approve (default: proposals wait for an admin), auto
(validated fee changes are applied at once). Every change is validated twice: when proposed
and again when applied, because time (cooldowns, budgets) and the node move on.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from loguru import logger

from . import crud
from .alerts import send_alert
from .engine.changes import PolicyChange
from .engine.decide import Recommendation
from .engine.execute import BatchResult, RetryPolicy, apply_batch, reconcile, rollback_changes
from .engine.impact import (
    ChannelFlow,
    ImpactConfigError,
    ImpactInput,
    ImpactSettings,
    evaluate_impact,
)
from .engine.level_trials import ChannelLevel
from .engine.node_source import NodeSource, RoutingPolicy
from .engine.sim_policy import scaled_fee
from .engine.validate import (
    Bounds,
    ChannelOverride,
    UpdateLog,
    ValidationConfigError,
    clip_to_bounds,
    proposals,
    validate_batch,
)

MODES = ("observe", "approve", "auto")
DAY = 86400


@dataclass(frozen=True)
class ExecutionSettings:
    mode: str = "approve"
    min_confidence: float = 0.5
    bounds: Bounds = field(default_factory=Bounds)
    overrides: dict[str, ChannelOverride] = field(default_factory=dict)
    auto_rollback: bool = True
    impact: ImpactSettings = field(default_factory=ImpactSettings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "min_confidence": self.min_confidence,
            "bounds": self.bounds.to_dict(),
            "overrides": [o.to_dict() for o in self.overrides.values()],
            "auto_rollback": self.auto_rollback,
            "impact": self.impact.to_dict(),
        }


def execution_settings_from_dict(data: Any) -> ExecutionSettings:
    """Validated settings; every error names its field (ValidationConfigError)."""
    if not isinstance(data, dict):
        raise ValidationConfigError("execution settings must be a JSON object")
    known = {"mode", "min_confidence", "bounds", "overrides", "auto_rollback", "impact"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationConfigError(f"unknown setting {', '.join(unknown)}")
    mode = data.get("mode", "approve")
    if mode not in MODES:
        raise ValidationConfigError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    confidence = data.get("min_confidence", 0.5)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise ValidationConfigError("min_confidence: expected a number between 0 and 1")
    if not 0 <= confidence <= 1:
        raise ValidationConfigError("min_confidence: must be between 0 and 1")
    raw_overrides = data.get("overrides", [])
    if not isinstance(raw_overrides, list):
        raise ValidationConfigError("overrides: expected a list of per-channel settings")
    overrides = {}
    for i, raw in enumerate(raw_overrides):
        try:
            o = ChannelOverride.from_dict(raw)
        except ValidationConfigError as exc:
            raise ValidationConfigError(f"overrides[{i}].{exc}") from None
        overrides[o.channel_id] = o
    try:
        bounds = Bounds.from_dict(data.get("bounds", {}))
    except ValidationConfigError as exc:
        raise ValidationConfigError(f"bounds.{exc}") from None
    auto_rollback = data.get("auto_rollback", True)
    if not isinstance(auto_rollback, bool):
        raise ValidationConfigError("auto_rollback: expected true or false")
    try:
        impact = ImpactSettings.from_dict(data.get("impact", {}))
    except ImpactConfigError as exc:
        raise ValidationConfigError(f"impact.{exc}") from None
    return ExecutionSettings(mode, float(confidence), bounds, overrides, auto_rollback, impact)


async def load_execution_settings() -> ExecutionSettings:
    doc = await crud.get_doc("execution")
    try:
        return execution_settings_from_dict(doc) if doc else ExecutionSettings()
    except ValidationConfigError as exc:
        logger.warning(f"daznode: stored execution settings unusable ({exc}); observing only")
        return ExecutionSettings(mode="observe")


ADMIN_ORIGINS = ("manual", "level")  # proposals the engine leaves alone while they wait


def pending_row(
    change: PolicyChange,
    *,
    status: str,
    reasons: list[str],
    origin: str,
    checks: list[str],
    now: int,
    confidence: float | None = None,
    level_percent: int = 100,
) -> dict:
    """A proposal as the changes table stores it; `level_percent`: the price level its
    channel was at (the engine learns from the change on its own fees)."""
    return {
        "level_percent": level_percent,
        "id": change.change_id,
        "created_at": now,
        "channel_id": change.channel_id,
        "kind": "policy",
        "status": status,
        "before_policy": crud.policy_to_json(change.before),
        "after_policy": crud.policy_to_json(change.after),
        "reasons": json.dumps(reasons),
        "confidence": confidence,
        "origin": origin,
        "validation": json.dumps(checks),
    }


def limited_reason(fee_ppm: int, wanted: int, by: str) -> str:
    return f"limited to {fee_ppm} ppm ({by}: {wanted}) by the execution bounds"


def _row(
    change: PolicyChange,
    rec: Recommendation,
    status: str,
    verdict,
    now: int,
    proposed_fee: int | None = None,
    level_percent: int = 100,
) -> dict:
    reasons = list(rec.reasons)
    if proposed_fee is not None and proposed_fee != change.after.fee_rate_ppm:
        reasons.append(limited_reason(change.after.fee_rate_ppm, proposed_fee, "engine"))
    return pending_row(
        change,
        status=status,
        reasons=reasons,
        origin="engine" if rec.rule is None else f"rule {rec.rule}",
        checks=list(verdict.reasons) or list(verdict.checks),
        now=now,
        confidence=rec.confidence,
        level_percent=level_percent,
    )


async def update_log(now: int, bounds: Bounds) -> UpdateLog:
    # As far back as the longest rule looks: the day's gossip budget or a longer cooldown.
    since = now - max(DAY, bounds.cooldown_seconds)
    return UpdateLog(tuple(await crud.recent_policy_updates(since)))


async def propose(
    recs: list[Recommendation], now: int, levels: Mapping[str, ChannelLevel] | None = None
) -> list[dict]:
    """Turn fee recommendations into validated proposals (approve mode) or apply them (auto).
    A proposal identical to the pending one for its channel is not repeated, and a channel
    with the admin's own change waiting is left to the admin (a newer engine proposal would
    supersede it). `levels`: the channels under price level trials, whose recommendations
    are own fees (level_service): each change is made on the own fee, then multiplied by
    the channel's level for the node."""
    from .level_service import level_note, to_node

    levels = levels or {}
    cfg = await load_execution_settings()
    if cfg.mode == "observe":
        return []
    channels = {r["channel_id"]: r for r in await crud.get_channels()}
    pending = {
        r["channel_id"]: r for r in await crud.get_changes("pending") if r["kind"] == "policy"
    }
    policies = {
        cid: RoutingPolicy(**row["local_policy"])
        for cid, row in channels.items()
        if row["local_policy"]
    }

    def waits_or_repeats(change: PolicyChange) -> bool:
        same = pending.get(change.channel_id)
        if not same:
            return False
        return same["origin"] in ADMIN_ORIGINS or same["after_policy"] == crud.policy_to_json(
            change.after
        )

    own = {
        cid: replace(p, fee_rate_ppm=levels[cid].own_ppm) if cid in levels else p
        for cid, p in policies.items()
    }
    candidates = []
    for change, rec, engine_fee in proposals(
        recs, own, cfg.min_confidence, cfg.bounds, cfg.overrides, lambda: uuid.uuid4().hex[:16]
    ):
        held = levels.get(change.channel_id)
        on_node = to_node(change, policies[change.channel_id], held, cfg)
        if on_node is None or waits_or_repeats(on_node):
            continue
        note = level_note(change.after.fee_rate_ppm, held, on_node.after.fee_rate_ppm)
        if note:
            rec = replace(rec, reasons=[*rec.reasons, note])
            engine_fee = scaled_fee(engine_fee, held.percent)  # what it wanted, on the node
        candidates.append((on_node, rec, engine_fee))
    verdicts = validate_batch(
        [c for c, _, _ in candidates],
        cfg.bounds,
        cfg.overrides,
        await update_log(now, cfg.bounds),
        now,
    )
    rows = []
    for (change, rec, engine_fee), verdict in zip(candidates, verdicts, strict=True):
        if verdict.later:
            continue  # not now; the next evaluation proposes it again when allowed
        status = "pending" if verdict.ok else "rejected"
        held = levels.get(change.channel_id)
        percent = held.percent if held else 100
        rows.append(_row(change, rec, status, verdict, now, engine_fee, percent))
        await crud.create_change(rows[-1])
        await crud.add_audit(
            now,
            "daznode",
            "proposed" if verdict.ok else "rejected",
            change.channel_id,
            "; ".join(verdict.reasons) or json.dumps(rows[-1]["after_policy"]),
        )
    waiting = [r for r in rows if r["status"] == "pending"]
    if waiting and cfg.mode == "approve":
        await notify(
            "pending_approval",
            f"{len(waiting)} fee change(s) wait for approval",
            {"channels": [r["channel_id"] for r in waiting]},
        )
    if cfg.mode == "auto":
        ids = [r["id"] for r in rows if r["status"] == "pending"]
        if ids:
            await apply_changes(ids, "daznode (auto)", now)
    return rows


LEVEL_STALE_SECONDS = 7 * DAY  # a level from fees older than this is not proposed or kept


def level_targets(run: dict, percent: int) -> dict[str, int] | None:
    """The fee a finished simulation run held each channel at for one price level, or None
    when the run has no such result."""
    results = (run.get("result") or {}).get("results", [])
    level = next((r for r in results if r["key"] == f"level:{percent}"), None)
    if level is None:
        return None
    return {c["channel_id"]: int(c["fee_ppm"]) for c in level["channels"]}


async def expire_stale_levels(now: int) -> int:
    """Level proposals waiting longer than LEVEL_STALE_SECONDS leave the queue: their fees
    are stale, and while they wait the engine leaves their channels alone."""
    expired = await crud.expire_pending("level", now - LEVEL_STALE_SECONDS, now)
    if expired:
        logger.info(f"daznode: {expired} price level proposals older than a week left the queue")
    return expired


class LevelRefused(Exception):
    """A price level that cannot be proposed (no channels known yet, or the trials run)."""


@dataclass(frozen=True)
class LevelProposal:
    proposed: list[str]  # change ids, in the approval queue
    skipped: list[dict]  # {"channel_id", "reason"}
    limited: int  # proposals the bounds held short of the simulated fee
    superseded: int  # proposals that left the queue for these (the last level, and any
    # other change waiting on a channel proposed now)


async def propose_level(
    targets: dict[str, int], percent: int, label: str, actor: str, now: int
) -> LevelProposal:
    """A price level from a what-if run (`label` names it) as the admin's proposals: each
    channel at the fee the run simulated for it (`targets`, so proposing twice does not
    compound), the fee moved towards it as far as the bounds allow (inbound discounts
    shrunk to fit under it) and validated as one batch, largest channels first (the gossip
    budget counts them all). When anything is proposed, the last level still waiting leaves
    the queue in the same transaction; when nothing is, it stays."""
    from .level_service import trials_running  # lazily: level_service builds on this module

    if await trials_running():
        raise LevelRefused(
            "Price level trials are running: they choose the node's level every day. Turn "
            "them off on the dashboard to propose a level from a simulation."
        )
    channels = await crud.get_channels()  # largest first: they come first within a budget
    if not channels:
        raise LevelRefused("No channels known yet: wait for the monitor's first pass.")
    cfg = await load_execution_settings()
    changes: list[PolicyChange] = []
    skipped: list[dict] = []
    for row in channels:
        cid, target = row["channel_id"], targets.get(row["channel_id"])
        why = _level_skip(row, target)
        if why:
            skipped.append({"channel_id": cid, "reason": why})
            continue
        before = RoutingPolicy(**row["local_policy"])
        change = _towards_level(cid, before, target, cfg)
        if change is None:
            skipped.append(
                {"channel_id": cid, "reason": f"the bounds allow no step to {target} ppm"}
            )
            continue
        changes.append(change)
    verdicts = validate_batch(
        changes, cfg.bounds, cfg.overrides, await update_log(now, cfg.bounds), now
    )
    rows: list[dict] = []
    limited = 0
    for change, verdict in zip(changes, verdicts, strict=True):
        if not verdict.ok:
            skipped.append({"channel_id": change.channel_id, "reason": "; ".join(verdict.reasons)})
            continue
        reasons = [f"price level {percent} % from {label}, proposed by {actor}"]
        target = targets[change.channel_id]
        if change.after.fee_rate_ppm != target:
            limited += 1
            reasons.append(limited_reason(change.after.fee_rate_ppm, target, "simulated"))
        rows.append(
            pending_row(
                change,
                status="pending",
                reasons=reasons,
                origin="level",
                checks=list(verdict.checks),
                now=now,
            )
        )
    superseded = await crud.replace_pending_origin("level", rows, now) if rows else 0
    for row in rows:
        await crud.add_audit(now, actor, "proposed", row["channel_id"], row["after_policy"])
    if superseded:
        await crud.add_audit(
            now, actor, "superseded", "", f"{superseded} by price level {percent} %"
        )
    return LevelProposal([r["id"] for r in rows], skipped, limited, superseded)


def _towards_level(
    cid: str, before: RoutingPolicy, target: int, cfg: ExecutionSettings
) -> PolicyChange | None:
    """The fee moved from `before` towards `target` as far as the bounds allow, never past
    it; an inbound discount larger than the new fee shrinks to it (the validator refuses a
    negative total). None when the bounds allow no move that way."""
    wanted = PolicyChange(
        uuid.uuid4().hex[:16], cid, before, replace(before, fee_rate_ppm=target), "level"
    )
    fee = clip_to_bounds(wanted, cfg.bounds, cfg.overrides.get(cid)).after.fee_rate_ppm
    step, goal = fee - before.fee_rate_ppm, target - before.fee_rate_ppm
    if step * goal <= 0:
        return None
    fee = before.fee_rate_ppm + (step if abs(step) <= abs(goal) else goal)  # not past it
    inbound = before.inbound_fee_rate_ppm
    if inbound is not None:
        inbound = min(0, max(-fee, inbound))
    return replace(wanted, after=replace(before, fee_rate_ppm=fee, inbound_fee_rate_ppm=inbound))


def _level_skip(row: dict, target: int | None) -> str:
    """Why a channel gets no proposal for a level, or ''."""
    if target is None:
        return "not in the simulation (opened since, or its peer was not in the graph)"
    if not row["local_policy"]:
        return "our policy is unknown"
    if row["local_policy"]["fee_rate_ppm"] == target:
        return "already at this level"
    return ""


def _change_of(row: dict) -> PolicyChange:
    reasons = json.loads(row["reasons"]) or [""]
    return PolicyChange(
        row["id"],
        row["channel_id"],
        crud.policy_from_json(row["before_policy"]),
        crud.policy_from_json(row["after_policy"]),
        reasons[-1],
    )


@dataclass
class ApplyOutcome:
    batch_id: str | None
    status: str
    detail: str
    rejected: dict[str, list[str]]  # change id -> validation reasons


def _retry() -> RetryPolicy:
    return RetryPolicy(attempts=4, base_seconds=1.0, cap_seconds=20.0, timeout_seconds=30.0)


async def apply_changes(
    ids: list[str], actor: str, now: int | None = None, *, step_limit: bool = True
) -> ApplyOutcome:
    """Approve and apply pending changes as one batch: re-validated now, then applied as a
    transaction (all or nothing) through the write-ahead journal. `step_limit` off: a price
    level's step (level_service), which moves each fee by the level's ratio at once."""
    from .services import cached_backend  # the backend the monitor built

    now = now or int(time.time())
    rows = await crud.get_changes_by_id(ids)
    missing = sorted(set(ids) - {r["id"] for r in rows})
    not_pending = [r["id"] for r in rows if r["status"] != "pending"]
    if missing or not_pending:
        raise ValueError(
            "; ".join(
                [f"unknown change {', '.join(missing)}"] * bool(missing)
                + [f"not pending: {', '.join(not_pending)}"] * bool(not_pending)
            )
        )
    backend = cached_backend()
    if backend is None:
        raise RuntimeError("the node is not connected yet; see the status")
    cfg = await load_execution_settings()
    changes = [_change_of(r) for r in rows]
    verdicts = validate_batch(
        changes,
        cfg.bounds,
        cfg.overrides,
        await update_log(now, cfg.bounds),
        now,
        step_limit=step_limit,
    )
    rejected = {
        c.change_id: list(v.reasons) for c, v in zip(changes, verdicts, strict=True) if not v.ok
    }
    if rejected:
        for cid, reasons in rejected.items():
            await crud.set_change_status([cid], "rejected", now, actor)
            await crud.add_audit(now, actor, "rejected by validation", cid, "; ".join(reasons))
    accepted = [c for c in changes if c.change_id not in rejected]
    if not accepted:
        return ApplyOutcome(None, "REJECTED", "every change failed validation", rejected)
    batch_id = uuid.uuid4().hex[:16]
    await backup_current_policies(f"before batch {batch_id}", now)
    await crud.set_change_status([c.change_id for c in accepted], "approved", now, actor, batch_id)
    await crud.add_audit(
        now, actor, "approved", batch_id, ", ".join(c.channel_id for c in accepted)
    )
    result = await apply_batch(backend.source, batch_id, accepted, crud.DbJournal(actor), _retry())
    await _settle_changes(accepted, result, actor)
    event = "applied" if result.status == "SUCCESS" else "failed"
    await notify(
        event,
        f"Batch {result.status.lower()}: {len(accepted)} change(s)",
        {
            "batch_id": batch_id,
            "detail": result.detail,
            "by": actor,
            "channels": [c.channel_id for c in accepted],
        },
    )
    return ApplyOutcome(batch_id, result.status, result.detail, rejected)


_CHANGE_STATUS = {"SUCCESS": "applied", "ROLLED_BACK": "rolled_back", "FAILED": "failed"}


async def _settle_changes(changes: list[PolicyChange], result: BatchResult, actor: str) -> None:
    now = int(time.time())
    status = _CHANGE_STATUS.get(result.status, "failed")
    await crud.set_change_status(
        [c.change_id for c in changes], status, now, actor, result.batch_id
    )
    if result.status == "SUCCESS":  # read back from the node, every one
        await crud.set_local_policies({c.channel_id: c.after for c in changes})
    await crud.add_audit(
        now, actor, f"batch {result.status.lower()}", result.batch_id, result.detail
    )


async def rollback(batch_id: str, channel_ids: list[str] | None, actor: str) -> BatchResult:
    """Undo an applied batch, or some of its channels; only where the node still has what
    the batch set (a later change is never overwritten)."""
    from .services import cached_backend

    backend = cached_backend()
    if backend is None:
        raise RuntimeError("the node is not connected yet; see the status")
    items = await crud.DbJournal(actor).batch_items(batch_id)
    if not items:
        raise LookupError(f"no batch {batch_id}")
    applied = [
        i.change
        for i in items
        if i.status == "APPLIED" and (not channel_ids or i.change.channel_id in channel_ids)
    ]
    unknown = sorted(set(channel_ids or []) - {i.change.channel_id for i in items})
    if unknown:
        raise LookupError(f"batch {batch_id} has no channel {', '.join(unknown)}")
    if not applied:
        raise ValueError(f"batch {batch_id} has nothing applied to roll back")
    result = await rollback_changes(
        backend.source, applied, crud.DbJournal(actor), batch_id, _retry()
    )
    restored = [c.change_id for c in applied if c.channel_id not in result.failed_channels]
    await crud.set_local_policies(
        {c.channel_id: c.before for c in applied if c.channel_id not in result.failed_channels}
    )
    await crud.set_change_status(restored, "rolled_back", int(time.time()), actor, batch_id)
    await notify(
        "rolled_back",
        f"Rollback {result.status.lower()}",
        {"batch_id": batch_id, "by": actor, "detail": result.detail},
    )
    await crud.add_audit(
        int(time.time()),
        actor,
        "rollback",
        batch_id,
        f"{result.status}: {', '.join(c.channel_id for c in applied)}; {result.detail}",
    )
    return result


async def reconcile_journal(source: NodeSource) -> list[str]:
    """At start: settle whatever a crash left between sending a change and recording it."""
    notes = await reconcile(source, crud.DbJournal("daznode (restart)"), _retry())
    for note in notes:
        await crud.add_audit(int(time.time()), "daznode", "reconciled", "", note)
    await _settle_interrupted_changes("daznode (restart)")
    return notes


async def _settle_interrupted_changes(actor: str) -> None:
    """Changes left 'approved' by a crash (apply_changes never got to _settle_changes) take
    the status of their batch once the batch is final; a batch still PENDING keeps them."""
    now = int(time.time())
    for row in await crud.get_changes("approved"):
        batch = await crud.get_batch(row["batch_id"]) if row["batch_id"] else None
        if batch is None or batch["status"] == "PENDING":
            continue
        status = _CHANGE_STATUS.get(batch["status"], "failed")
        await crud.set_change_status([row["id"]], status, now, actor, batch["id"])
        await crud.add_audit(now, actor, f"change {status}", row["id"], f"batch {batch['id']}")


# -- backups ------------------------------------------------------------------------------

BACKUP_FORMAT = "daznode-policy-backup-1"


async def backup_current_policies(reason: str, now: int) -> int:
    """A versioned copy of every open channel's policy as last read from the node."""
    policies = {
        r["channel_id"]: r["local_policy"] for r in await crud.get_channels() if r["local_policy"]
    }
    return await crud.create_backup(policies, reason, now)


async def maintain_backups(now: int, compress_after_days: int, keep_days: int) -> None:
    """Daily backup, then the tiers: recent as is, older compressed, oldest deleted."""
    latest = await crud.get_backups(limit=1)
    if not latest or now - latest[0]["created_at"] >= DAY:
        await backup_current_policies("daily", now)
    await crud.tier_backups(now, compress_after_days, keep_days)


def export_backup(row: dict) -> dict:
    policies = crud.backup_policies(row)  # raises ValueError when corrupt
    return {
        "format": BACKUP_FORMAT,
        "id": row["id"],
        "created_at": row["created_at"],
        "reason": row["reason"],
        "checksum": row["checksum"],
        "policies": policies,
    }


def parse_backup_export(doc: Any) -> tuple[dict[str, dict], str]:
    """Policies and reason of an exported backup; ValueError naming what is wrong."""
    if not isinstance(doc, dict) or doc.get("format") != BACKUP_FORMAT:
        raise ValueError(f"not a Daznode policy backup (format must be {BACKUP_FORMAT})")
    policies = doc.get("policies")
    if not isinstance(policies, dict):
        raise ValueError("policies: expected an object of channel id -> policy")
    for cid, policy in policies.items():
        try:
            RoutingPolicy(**policy)
        except TypeError as exc:
            raise ValueError(f"policies.{cid}: not a policy ({exc})") from None
    _text, checksum = crud.canonical_backup(policies)
    if checksum != doc.get("checksum"):
        raise ValueError("checksum: the policies do not match the backup's sha256")
    return policies, str(doc.get("reason") or "imported")


async def notify(event: str, title: str, detail: dict) -> None:
    """Alerts never stop the work they report on: failures are logged (without secrets)."""
    for problem in await send_alert(event, title, detail):
        logger.warning(f"daznode: alert not delivered: {problem}")


# -- did it work? -------------------------------------------------------------------------


def _flow(flows: dict[str, tuple[int, int, int]], channels: list[str], seconds: int) -> ChannelFlow:
    n = sum(flows.get(c, (0, 0, 0))[0] for c in channels)
    vol = sum(flows.get(c, (0, 0, 0))[1] for c in channels)
    fees = sum(flows.get(c, (0, 0, 0))[2] for c in channels)
    return ChannelFlow(forwards_out=n, volume_out_msat=vol, fees_msat=fees, seconds=seconds)


async def evaluate_applied_changes(node_pubkey: str, now: int) -> list[dict]:
    """Measure every applied change whose evaluation window has passed against the channel's
    own baseline and the untouched channels; roll back on its own what hurt (when enabled)."""
    cfg = await load_execution_settings()
    s = cfg.impact
    window = s.evaluation_hours * 3600
    baseline = s.baseline_days * DAY
    open_channels = [r["channel_id"] for r in await crud.get_channels()]
    results = []
    for item in await crud.applied_items_to_evaluate(now - window):
        applied_at = int(item["updated_at"])
        start, end = applied_at - baseline, applied_at + window
        touched = await crud.channels_updated_between(start, end)
        controls = [c for c in open_channels if c not in touched and c != item["channel_id"]]
        before = await crud.outbound_flows(node_pubkey, start, applied_at)
        after = await crud.outbound_flows(node_pubkey, applied_at, end)
        cid = item["channel_id"]
        verdict = evaluate_impact(
            ImpactInput(
                baseline=_flow(before, [cid], baseline),
                evaluation=_flow(after, [cid], window),
                fee_before_ppm=json.loads(item["before_policy"])["fee_rate_ppm"],
                fee_after_ppm=json.loads(item["after_policy"])["fee_rate_ppm"],
                control_baseline=_flow(before, controls, baseline),
                control_evaluation=_flow(after, controls, window),
            ),
            s,
        )
        rolled_back = False
        if verdict.rollback and cfg.auto_rollback:
            try:
                result = await rollback(item["batch_id"], [cid], "daznode (automatic)")
                rolled_back = result.status == "ROLLED_BACK"
            except (ValueError, LookupError, RuntimeError) as exc:
                logger.warning(f"daznode: automatic rollback of {cid} failed: {exc}")
        row = {
            "batch_id": item["batch_id"],
            "change_id": item["change_id"],
            "channel_id": cid,
            "applied_at": applied_at,
            "evaluated_at": now,
            "outcome": verdict.outcome,
            "rolled_back": int(rolled_back),
            "verdict": json.dumps(verdict.to_dict()),
        }
        await crud.record_impact(row)
        await crud.add_audit(
            now,
            "daznode",
            f"measured: {verdict.outcome}",
            cid,
            "; ".join(verdict.reasons) + ("; rolled back automatically" if rolled_back else ""),
        )
        results.append(row)
    return results
