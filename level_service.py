"""Price level trials in auto mode (engine/level_trials.py): the schedule, the database and
the execution put together (docs/SAFETY.md, "Price level trials").

Once a day the monitor records what the node earned at the day's level and picks the next
level. Every pass it moves the channels not at the day's level there, each in one step (the
level's ratio; walking it within the ±50 % step lost the small node's gain in the
simulator), as many as the cooldown and the gossip budgets allow; the rest follow on the
next passes. The engine decides on its own fees; the level multiplies them on the node.

When the trials stop (the profile's switch turned off, or the mode left auto) every channel
goes back to its own fee, by the same path; in observe mode nothing is applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from loguru import logger

from . import crud
from .engine.changes import PolicyChange
from .engine.level_trials import (
    DAY,
    ChannelLevel,
    LevelStats,
    TrialDay,
    held_level,
    level_fee,
    level_stats,
    next_level,
)
from .engine.node_source import RoutingPolicy
from .engine.profiles import Profile
from .engine.validate import clip_to_bounds, effective_bounds, validate_batch
from .execution import (
    ADMIN_ORIGINS,
    ExecutionSettings,
    apply_changes,
    load_execution_settings,
    pending_row,
    update_log,
)

STATE_DOC = "level_trials"
RETRY_SECONDS = 900  # after the node refused a step
ACTOR = "daznode (level trials)"


@dataclass
class LevelState:
    percent: int = 100  # the day's level (100 when the trials do not run)
    day_start: int | None = None  # when the day's level was chosen; None: not running
    reason: str = ""
    channels: dict[str, ChannelLevel] = field(default_factory=dict)
    # When each channel's own fee last changed (None: before the trials, as the snapshots
    # say): the engine's "fee unchanged for a week" must not count the level's steps.
    own_since: dict[str, int | None] = field(default_factory=dict)
    retry_at: int = 0  # after a step the node refused: not before (no batch, alert, per pass)

    def to_doc(self) -> dict[str, Any]:
        return {
            "percent": self.percent,
            "day_start": self.day_start,
            "reason": self.reason,
            "retry_at": self.retry_at,
            "channels": {
                c: [h.own_ppm, h.percent, self.own_since.get(c)] for c, h in self.channels.items()
            },
        }

    @classmethod
    def from_doc(cls, doc: Any) -> LevelState:
        if not isinstance(doc, dict):
            return cls()
        try:
            raw = doc["channels"].items()
            channels = {c: ChannelLevel(int(v[0]), int(v[1])) for c, v in raw}
            since = {c: (int(v[2]) if len(v) > 2 and v[2] is not None else None) for c, v in raw}
            return cls(
                int(doc["percent"]),
                doc["day_start"],
                str(doc["reason"]),
                channels,
                since,
                int(doc.get("retry_at") or 0),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            logger.warning(f"daznode: stored level state unusable ({exc}); starting again")
            return cls()


async def load_state() -> LevelState:
    return LevelState.from_doc(await crud.get_doc(STATE_DOC))


def why_not_running(mode: str, profile: Profile) -> str:
    """'' when the trials run, else why not."""
    if not profile.level_trials:
        return f"off in the profile ({profile.name}): level_trials is false"
    if mode != "auto":
        return f"they run in auto mode only (the mode is {mode})"
    return ""


async def trials_running() -> bool:
    """The trials choose the node's level now (a level proposed by hand would fight them)."""
    from .services import load_profile  # lazily: services builds on this module

    return not why_not_running((await load_execution_settings()).mode, await load_profile())


def fee_range(cfg: ExecutionSettings, channel_id: str) -> tuple[int, int]:
    rng = effective_bounds(cfg.bounds, cfg.overrides.get(channel_id)).fee_rate
    return rng.lo, rng.hi


def _hands_off(cfg: ExecutionSettings, channel_id: str) -> bool:
    o = cfg.overrides.get(channel_id)
    return o is not None and (o.pinned or o.excluded)


def current_levels(
    rows: list[dict], state: LevelState, cfg: ExecutionSettings
) -> dict[str, ChannelLevel]:
    """Each open channel's own fee and level, from the stored state and its fee on the node
    now (a fee someone else set becomes the own fee at the channel's level). Pinned and
    excluded channels are not under the level: the admin fixed their fee."""
    out = {}
    for row in rows:
        cid, policy = row["channel_id"], row["local_policy"]
        if not policy or _hands_off(cfg, cid):
            continue
        lo, hi = fee_range(cfg, cid)
        today = state.percent if state.day_start is not None else 100
        out[cid] = held_level(policy["fee_rate_ppm"], state.channels.get(cid), lo, hi, today)
    return out


async def levels_now() -> dict[str, ChannelLevel]:
    """What the engine and the proposals work with between two monitor passes."""
    return current_levels(
        await crud.get_channels(), await load_state(), await load_execution_settings()
    )


def engine_signals(
    signals: dict[str, dict[str, Any]],
    state: LevelState,
    steps_30d: Mapping[str, int],
) -> dict[str, dict[str, Any]]:
    """The snapshots' signals as the engine reads them under the trials: a level step is not
    a change of the engine's fee. Fee changes over 30 days leave the steps out; the last
    change is the own fee's."""
    out = dict(signals)
    for cid in state.channels:
        if cid not in signals:
            continue
        sig = dict(signals[cid])
        sig["fee_changes"] = max(0, sig.get("fee_changes", 0) - steps_30d.get(cid, 0))
        since = state.own_since.get(cid)
        if since is not None:
            sig["fee_changed_at"] = since
        else:  # the own fee has not changed within 30 days: only steps since
            sig.pop("fee_changed_at", None)
        out[cid] = sig
    return out


def as_engine_sees(rows: list[dict], levels: Mapping[str, ChannelLevel]) -> list[dict]:
    """Channel rows with the own fee where the node's is: the engine decides on its own fees."""
    out = []
    for row in rows:
        held = levels.get(row["channel_id"])
        if held is None or held.own_ppm == row["local_policy"]["fee_rate_ppm"]:
            out.append(row)
            continue
        out.append({**row, "local_policy": {**row["local_policy"], "fee_rate_ppm": held.own_ppm}})
    return out


def to_node(
    change: PolicyChange, actual: RoutingPolicy, held: ChannelLevel | None, cfg: ExecutionSettings
) -> PolicyChange | None:
    """An engine change made on own fees, as the node's: from the node's policy now to the
    new own fee at the channel's level, within the bounds. None when the node's fee would
    not move (at the range's edge, for instance)."""
    if held is None or (held.percent == 100 and held.own_ppm == actual.fee_rate_ppm):
        return change
    lo, hi = fee_range(cfg, change.channel_id)
    fee = level_fee(change.after.fee_rate_ppm, held.percent, lo, hi)
    inbound = change.after.inbound_fee_rate_ppm
    if inbound is not None:
        inbound = min(0, max(-fee, inbound))
    after = replace(change.after, fee_rate_ppm=fee, inbound_fee_rate_ppm=inbound)
    mapped = clip_to_bounds(
        replace(change, before=actual, after=after),
        cfg.bounds,
        cfg.overrides.get(change.channel_id),
    )
    return None if mapped.after == mapped.before else mapped


def level_note(own_ppm: int, held: ChannelLevel | None, node_ppm: int) -> str:
    """The reason line that says what the level made of an own fee ('' at 100 %)."""
    if held is None or held.percent == 100:
        return ""
    return f"own fee {own_ppm} ppm at price level {held.percent} %: {node_ppm} ppm on the node"


async def step_level_trials(profile: Profile, cfg: ExecutionSettings, now: int) -> LevelState:
    """One monitor pass: the day's bookkeeping, then channels moved towards the day's level
    (or back to their own fees when the trials stopped)."""
    state = await load_state()
    stored = state.to_doc()
    rows = await crud.get_channels()
    levels = current_levels(rows, state, cfg)
    why_not = why_not_running(cfg.mode, profile)
    if not why_not and (state.day_start is None or now - state.day_start >= DAY):
        await _next_day(state, now)
    elif why_not and state.day_start is not None:
        logger.info(f"daznode: price level trials stopped: {why_not}")
        await crud.add_audit(now, ACTOR, "stopped", "", why_not)
        state.percent, state.day_start, state.reason = 100, None, f"stopped: {why_not}"
    if cfg.mode != "observe" and now >= state.retry_at:
        levels, failed = await _roll_out(rows, levels, state.percent, cfg, now)
        state.retry_at = now + RETRY_SECONDS if failed else 0
    state.own_since = await _own_since(state, levels, now)
    state.channels = levels
    if state.to_doc() != stored:  # most passes change nothing: no write, caches stay valid
        await crud.save_doc(STATE_DOC, state.to_doc(), now)
    return state


async def _own_since(
    state: LevelState, levels: dict[str, ChannelLevel], now: int
) -> dict[str, int | None]:
    """When each channel's own fee last changed: now where it changed since the last pass; for
    a channel new to the trials, the snapshots' last fee change (None: not within 30 days)."""
    new = [cid for cid in levels if cid not in state.channels]
    seen = await crud.channel_signals(now - 7 * DAY, now - 30 * DAY) if new else {}
    out: dict[str, int | None] = {}
    for cid, held in levels.items():
        if cid in new:
            out[cid] = seen.get(cid, {}).get("fee_changed_at")
        elif held.own_ppm != state.channels[cid].own_ppm:
            out[cid] = now
        else:
            out[cid] = state.own_since.get(cid)
    return out


async def _next_day(state: LevelState, now: int) -> None:
    if state.day_start is not None:  # the day that ends: what the node earned at its level
        pubkey = (await crud.get_monitor_state()).get("node_pubkey") or ""
        end = state.day_start + DAY
        fees, forwards = await crud.node_earnings(pubkey, state.day_start, end)
        await crud.add_level_day(state.day_start, end, state.percent, fees, forwards)
    choice = next_level(await trial_days())
    state.percent, state.day_start, state.reason = choice.percent, now, choice.reason
    logger.info(f"daznode: price level {choice.percent} % for the day: {choice.reason}")
    await crud.add_audit(now, ACTOR, "price level", "", choice.reason)


def _as_trial_days(rows: list[dict]) -> list[TrialDay]:
    return [TrialDay(d["percent"], int(d["fees_msat"]), int(d["forwards"])) for d in rows]


async def trial_days() -> list[TrialDay]:
    return _as_trial_days(await crud.get_level_days())


async def _roll_out(
    rows: list[dict], levels: dict[str, ChannelLevel], target: int, cfg: ExecutionSettings, now: int
) -> tuple[dict[str, ChannelLevel], bool]:
    """Channels not at `target` moved there in one step each, largest first, as many as the
    cooldown and budgets allow now (the rest on a later pass); a channel with the admin's
    own change waiting waits too. Returns what each channel holds, and whether the node
    refused the step."""
    waiting = {
        r["channel_id"]
        for r in await crud.get_changes("pending")
        if r["kind"] == "policy" and r["origin"] in ADMIN_ORIGINS
    }
    levels = dict(levels)
    changes: list[PolicyChange] = []
    for row in rows:  # largest first
        cid = row["channel_id"]
        held = levels.get(cid)
        if held is None or held.percent == target or cid in waiting:
            continue
        lo, hi = fee_range(cfg, cid)
        before = RoutingPolicy(**row["local_policy"])
        fee = level_fee(held.own_ppm, target, lo, hi)
        if fee == before.fee_rate_ppm:
            levels[cid] = ChannelLevel(held.own_ppm, target)
            continue
        inbound = before.inbound_fee_rate_ppm
        if inbound is not None:
            inbound = min(0, max(-fee, inbound))
        after = replace(before, fee_rate_ppm=fee, inbound_fee_rate_ppm=inbound)
        reason = f"price level {target} %: own fee {held.own_ppm} ppm -> {fee} ppm on the node"
        changes.append(PolicyChange(uuid.uuid4().hex[:16], cid, before, after, reason))
    if not changes:
        return levels, False
    log = await update_log(now, cfg.bounds)
    verdicts = validate_batch(changes, cfg.bounds, cfg.overrides, log, now, step_limit=False)
    ready = [(c, v) for c, v in zip(changes, verdicts, strict=True) if v.ok]
    if not ready:
        return levels, False
    for change, verdict in ready:
        await crud.create_change(
            pending_row(
                change,
                status="pending",
                reasons=[change.reason],
                origin=crud.LEVEL_TRIAL_ORIGIN,
                checks=list(verdict.checks),
                now=now,
            )
        )
    ids = [c.change_id for c, _ in ready]
    try:
        outcome = await apply_changes(ids, ACTOR, now, step_limit=False)
    except (ValueError, RuntimeError) as exc:
        logger.warning(f"daznode: price level step not applied: {exc}")
        await crud.set_change_status(ids, "failed", now, ACTOR)
        return levels, True
    if outcome.status != "SUCCESS":
        logger.warning(f"daznode: price level step {outcome.status}: {outcome.detail}")
        return levels, True
    for change, _ in ready:
        if change.change_id not in outcome.rejected:
            levels[change.channel_id] = ChannelLevel(levels[change.channel_id].own_ppm, target)
    return levels, False


@dataclass(frozen=True)
class LevelSummary:
    state: LevelState
    why_not: str
    stats: list[LevelStats]
    days: list[dict]


async def summary(profile: Profile, cfg: ExecutionSettings) -> LevelSummary:
    days = await crud.get_level_days()
    stats = level_stats(_as_trial_days(days))
    return LevelSummary(await load_state(), why_not_running(cfg.mode, profile), stats, days)
