"""Rebalances and channel closes: the engine proposes them into the same approval queue as fee
changes, they are validated when proposed and again when executed, and each runs on its own
(a payment or a close cannot be undone, so they never join a batch that restores on failure).

A close always waits for an admin, in every mode; in auto mode a validated rebalance runs at
once. A proposal the admin rejected is not proposed again for a week.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from . import crud
from .engine.decide import Decision, Recommendation
from .engine.level_trials import ChannelLevel, rebalance_fee_cap
from .engine.node_source import NodeSourceError, NodeUnavailable
from .engine.validate import Verdict, validate_close, validate_rebalance
from .execution import ExecutionSettings, load_execution_settings, notify

ACTION_KINDS = ("rebalance", "close")
QUIET_AFTER_REJECTION = 7 * 86400


class ActionRefused(ValueError):
    """Validation said no; the message lists every reason."""


@dataclass(frozen=True)
class ActionResult:
    change_id: str
    kind: str
    channel_id: str
    ok: bool
    detail: str


# -- proposing ------------------------------------------------------------------------------


def action_of(rec: Recommendation) -> tuple[str, dict] | None:
    """What the recommendation asks the node to do, as stored in the queue."""
    s = rec.suggested
    # A plan rides along with a fee raise too (a draining channel gets both), so the plan,
    # not the headline decision, says whether a refill pays.
    plan_ok = s.rebalance is not None and s.rebalance.source_channel_id is not None
    if plan_ok and rec.decision is not Decision.CLOSE_CHANNEL:
        plan = s.rebalance
        return "rebalance", {
            "out_channel": plan.source_channel_id,
            "amount_sat": plan.amount_sat,
            "max_fee_ppm": plan.max_fee_ppm,
            "expected_earnings_sat": plan.expected_earnings_sat,
        }
    if rec.decision is Decision.CLOSE_CHANNEL and s.close:
        return "close", {
            "reason": s.close.reason,
            "expected_gain_sat": s.close.expected_gain_sat,
            "close_and_reopen_cost_sat": s.close.close_and_reopen_cost_sat,
        }
    return None


def check_action(kind: str, channel_id: str, action: dict, channels: dict, cfg) -> Verdict:
    """Validate against the node as the monitor last saw it and the admin's current limits."""
    row = channels.get(channel_id)
    if row is None:
        return Verdict(False, (f"{channel_id}: no such open channel",))
    if kind == "close":
        return validate_close(channel_id, bool(row["active"]), cfg.overrides)
    out_channel = action["out_channel"]
    if out_channel not in channels:
        return Verdict(False, (f"{out_channel}: no such open channel",))
    return validate_rebalance(
        action["amount_sat"],
        action["max_fee_ppm"],
        row["capacity_sat"],
        action["expected_earnings_sat"],
        cfg.bounds,
        [channel_id, out_channel],
        cfg.overrides,
    )


def refill_fee_limit(plan_ppm: int, level: ChannelLevel | None, bounds) -> int:
    """The fee limit a proposed refill carries: the engine's budget, shrunk with the
    channel's price level, never above the admin's rebalance_max_fee_ppm. A refill that is
    worth 2,200 ppm is worth doing at 1,000 too; proposing it at 2,200 only to reject it
    against the admin's limit would leave a channel the engine wants filled empty."""
    return min(rebalance_fee_cap(plan_ppm, level), bounds.rebalance_max_fee_ppm)


async def propose_actions(
    recs: list[Recommendation],
    cfg: ExecutionSettings,
    now: int,
    levels: Mapping[str, ChannelLevel] | None = None,
) -> list[dict]:
    """Rebalances and closes the recommendations ask for, as proposals for the admin. A
    refill's fee limit is refill_fee_limit's."""
    if cfg.mode == "observe":
        return []
    channels = {r["channel_id"]: r for r in await crud.get_channels()}
    pending = {(r["channel_id"], r["kind"]) for r in await crud.get_changes("pending")}
    rows: list[dict] = []
    for rec in recs:
        wanted = action_of(rec)
        if wanted is None or rec.confidence < cfg.min_confidence:
            continue
        kind, action = wanted
        if kind == "rebalance":
            action["max_fee_ppm"] = refill_fee_limit(
                action["max_fee_ppm"], (levels or {}).get(rec.channel_id), cfg.bounds
            )
        if (rec.channel_id, kind) in pending or rec.channel_id not in channels:
            continue
        rejected_at = await crud.last_decided(kind, rec.channel_id, "rejected")
        if rejected_at and now - rejected_at < QUIET_AFTER_REJECTION:
            continue
        verdict = check_action(kind, rec.channel_id, action, channels, cfg)
        policy = json.dumps(channels[rec.channel_id]["local_policy"] or {})
        row = {
            "id": uuid.uuid4().hex[:16],
            "created_at": now,
            "channel_id": rec.channel_id,
            "kind": kind,
            "status": "pending" if verdict.ok else "rejected",
            "before_policy": policy,
            "after_policy": policy,
            "reasons": json.dumps(list(rec.reasons)),
            "confidence": rec.confidence,
            "origin": "engine" if rec.rule is None else f"rule {rec.rule}",
            "validation": json.dumps(list(verdict.reasons) or list(verdict.checks)),
            "action": json.dumps(action),
        }
        await crud.create_change(row)
        if not verdict.ok:  # recorded once, then quiet for a week like a rejection by hand
            await crud.set_change_status([row["id"]], "rejected", now, "daznode")
        await crud.add_audit(
            now,
            "daznode",
            f"proposed {kind}" if verdict.ok else f"{kind} rejected",
            rec.channel_id,
            "; ".join(verdict.reasons) or row["action"],
        )
        rows.append(row)
    waiting = [r for r in rows if r["status"] == "pending"]
    closes = [r for r in waiting if r["kind"] == "close"]
    if closes or (waiting and cfg.mode == "approve"):
        await notify(
            "pending_approval",
            f"{len(waiting)} action(s) wait for approval"
            + (f", {len(closes)} channel close(s)" if closes else ""),
            {"channels": [r["channel_id"] for r in waiting], "kinds": [r["kind"] for r in waiting]},
        )
    if cfg.mode == "auto":
        for row in waiting:
            if row["kind"] == "rebalance":
                await execute_action(row, "daznode (auto)", now)
    return rows


# -- executing --------------------------------------------------------------------------------


async def execute_action(row: dict, actor: str, now: int | None = None) -> ActionResult:
    """Run one approved rebalance or close; the outcome is stored on the queue entry."""
    now = now or int(time.time())
    kind, channel_id, action = row["kind"], row["channel_id"], json.loads(row["action"])
    cfg = await load_execution_settings()
    channels = {r["channel_id"]: r for r in await crud.get_channels()}
    verdict = check_action(kind, channel_id, action, channels, cfg)
    if not verdict.ok:
        detail = "; ".join(verdict.reasons)
        await crud.set_change_status([row["id"]], "rejected", now, actor)
        await crud.set_change_outcome(row["id"], "rejected", detail, now)
        await crud.add_audit(now, actor, f"{kind} rejected by validation", channel_id, detail)
        return ActionResult(row["id"], kind, channel_id, False, detail)
    await crud.set_change_status([row["id"]], "approved", now, actor)
    await crud.add_audit(now, actor, f"approved {kind}", channel_id, row["action"])
    try:
        if kind == "close":
            ok, detail = await _close(channel_id, action, actor, now)
        else:
            ok, detail = await _rebalance(channel_id, action, actor, now)
    except NodeUnavailable as exc:  # sent, but no answer: the next monitor pass tells
        ok, detail = False, f"outcome unknown, the node did not answer: {exc}"
        await crud.add_audit(now, actor, f"{kind} unknown", channel_id, detail)
        await notify(
            "failed", f"{kind.capitalize()} on {channel_id}: no answer", {"detail": detail}
        )
    except (NodeSourceError, RuntimeError) as exc:
        ok, detail = False, f"the node refused: {exc}"
        await crud.add_audit(now, actor, f"{kind} failed", channel_id, detail)
        await notify("failed", f"{kind.capitalize()} failed on {channel_id}", {"detail": detail})
    await crud.set_change_outcome(row["id"], "applied" if ok else "failed", detail, now)
    return ActionResult(row["id"], kind, channel_id, ok, detail)


def _backend():
    from .services import cached_backend  # the backend the monitor built

    backend = cached_backend()
    if backend is None:
        raise RuntimeError("the node is not connected yet; see the status")
    return backend


async def _close(channel_id: str, action: dict, actor: str, now: int) -> tuple[bool, str]:
    result = await _backend().source.close_channel(channel_id)
    txid = result.closing_txid or "not yet (negotiating)"
    detail = f"cooperative close, closing tx {txid}; {result.detail}".strip("; ")
    await crud.add_audit(
        now, actor, "channel close", channel_id, f"{detail}; reason: {action.get('reason', '')}"
    )
    await notify(
        "applied",
        f"Channel {channel_id} closing",
        {
            "channel_id": channel_id,
            "closing_txid": result.closing_txid,
            "reason": action.get("reason"),
        },
    )
    return True, detail


async def _rebalance(channel_id: str, action: dict, actor: str, now: int) -> tuple[bool, str]:
    row = await rebalance_now(
        channel_id, action["out_channel"], action["amount_sat"], action["max_fee_ppm"], actor, now
    )
    fee_sat = row["fee_msat"] // 1000
    if row["ok"]:
        return True, f"moved {action['amount_sat']} sat for {fee_sat} sat: {row['detail']}"
    return False, row["detail"]


async def rebalance_now(
    in_channel: str, out_channel: str, amount_sat: int, max_fee_ppm: int, actor: str, now: int
) -> dict:
    """Pay ourselves through the two channels, record it in the rebalance log and the audit."""
    amount_msat = amount_sat * 1000
    max_fee_msat = amount_msat * max_fee_ppm // 1_000_000
    result = await _backend().source.rebalance(out_channel, in_channel, amount_msat, max_fee_msat)
    row = {
        "ts": now,
        "actor": actor,
        "out_channel": out_channel,
        "in_channel": in_channel,
        "amount_msat": amount_msat,
        "max_fee_msat": max_fee_msat,
        "fee_msat": result.fee_msat,
        "ok": int(result.ok),
        "detail": result.detail[:500],
    }
    await crud.record_rebalance(row)
    outcome = "done" if result.ok else "failed"
    await crud.add_audit(
        now,
        actor,
        f"rebalance {outcome}",
        in_channel,
        f"{amount_sat} sat from {out_channel}, fee {result.fee_msat} msat "
        f"(limit {max_fee_msat}); {result.detail}",
    )
    await notify(
        "applied" if result.ok else "failed",
        f"Rebalance {outcome}: {amount_sat} sat",
        {
            "in_channel": in_channel,
            "out_channel": out_channel,
            "fee_msat": result.fee_msat,
            "detail": result.detail,
        },
    )
    return row


async def run_rebalance(
    in_channel: str, out_channel: str, amount_sat: int, max_fee_ppm: int, actor: str
) -> dict:
    """A rebalance an admin asks for by hand, within the budget the engine's plan justifies:
    the worst-case cost must stay below what the refilled liquidity is expected to earn."""
    from .services import evaluate

    _backend()
    channels = {r["channel_id"]: r for r in await crud.get_channels()}
    missing = [c for c in (in_channel, out_channel) if c not in channels]
    if missing:
        raise LookupError(f"no open channel {', '.join(missing)}")
    now = int(time.time())
    recs, _profile, _net = await evaluate(now)
    plan = next((r.suggested.rebalance for r in recs if r.channel_id == in_channel), None)
    cfg = await load_execution_settings()
    verdict = validate_rebalance(
        amount_sat,
        max_fee_ppm,
        channels[in_channel]["capacity_sat"],
        plan.expected_earnings_sat if plan else 0,
        cfg.bounds,
        [in_channel, out_channel],
        cfg.overrides,
    )
    if not verdict.ok:
        reasons = list(verdict.reasons)
        if plan is None:
            reasons.append("the engine sees no demand on this channel that would pay for it")
        raise ActionRefused("; ".join(reasons))
    return await rebalance_now(in_channel, out_channel, amount_sat, max_fee_ppm, actor, now)
