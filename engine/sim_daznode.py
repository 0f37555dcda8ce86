"""Daznode's engine as a simulated policy: the same pass the product runs in auto mode.

Every hour (the product decides on every monitor cycle; within the 6 h cooldown more
frequent calls change nothing) the engine evaluates the node with the profile and the
admin's rules. Recommendations below the execution's minimum confidence are skipped, the
rest become whole policies as in the product (`proposed_policy`: the fee with htlc_max
riding along), are clipped to the bounds and one step, and go through the validator's batch
check (cooldown, gossip budget). Rebalance plans are paid within the bounds' rebalance
limits. Close recommendations are not simulated: a close changes the node for months and
the what-if horizon is weeks.

Like auto mode, the policy measures each fee change it applied once its evaluation window
has passed (engine/impact.py: the channel's earnings against its week before, adjusted by
the untouched channels) and rolls back on its own what hurt. The engine then learns from the
verdicts (engine/lessons.py): one experiment at a time per channel, and no step again in a
direction that earned less.

With the profile's `level_trials` on, the pass runs price level trials as auto mode does
(`LevelTrials`, engine/level_trials.py): each channel holds the engine's own fee and the
level its node fee was set at; once a day the day's earnings go to the trials and the next
level is rolled out first, as one batch without the step limit (largest channels first,
within the cooldown and gossip budgets, the rest in later passes); the engine then decides
on its own fees and each change it makes goes to the node at the channel's level.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace

from .changes import PolicyChange
from .decide import evaluate_node
from .impact import ChannelFlow, ImpactInput, ImpactSettings, evaluate_impact, sum_flows
from .lessons import Lesson, with_lessons
from .level_trials import (
    ChannelLevel,
    TrialDay,
    engine_waits,
    held_level,
    level_fee,
    next_level,
)
from .metrics import ChannelMetrics, NetworkContext
from .node_source import RoutingPolicy
from .profiles import Profile
from .rules import Rule
from .sim_policy import (
    FeeSetting,
    FlowLookup,
    PolicyActions,
    PolicyFactory,
    RebalanceOrder,
    scaled_fee,
)
from .validate import Bounds, UpdateLog, proposals, validate_batch

DEFAULT_MIN_CONFIDENCE = 0.5  # the execution settings' default
DAY = 86400
MONTH = 30 * DAY


@dataclass(frozen=True, slots=True)
class Applied:
    channel_id: str
    at: int
    before: RoutingPolicy
    after: RoutingPolicy


def _with_fee(policy: RoutingPolicy, fee_ppm: int) -> RoutingPolicy:
    """The policy at another fee; an inbound discount stays within [-fee, 0]."""
    inbound = policy.inbound_fee_rate_ppm
    if inbound is not None:
        inbound = min(0, max(-fee_ppm, inbound))
    return replace(policy, fee_rate_ppm=fee_ppm, inbound_fee_rate_ppm=inbound)


def _setting(policy: RoutingPolicy) -> FeeSetting:
    return FeeSetting(policy.fee_rate_ppm, policy.base_fee_msat, policy.htlc_max_msat)


@dataclass(slots=True)
class LevelTrials:
    """Price level trials' state in auto mode: the days so far, today's level and what each
    channel holds (the engine's own fee, and the level its node fee was set at). Fees stay
    within the execution bounds' range [lo, hi]."""

    lo: int
    hi: int
    days: list[TrialDay] = field(default_factory=list)
    percent: int = 100  # today's level
    day_started: int | None = None
    held: dict[str, ChannelLevel] = field(default_factory=dict)
    # The own fee's history, as the engine must read it (a level step is not its change):
    # when it last changed (None: not known to) and when the steps were.
    own_since: dict[str, int | None] = field(default_factory=dict)
    steps: dict[str, list[int]] = field(default_factory=dict)

    def observe(self, channels: list[ChannelMetrics], now: int) -> None:
        """What each channel holds, given its fee on the node now (a fee set by someone else
        becomes the own fee at the level it was set at)."""
        for c in channels:
            if c.local_policy is not None:
                cid = c.channel_id
                fee = c.local_policy.fee_rate_ppm
                before = self.held.get(cid)
                self.held[cid] = held_level(fee, before, self.lo, self.hi)
                if before is None:
                    unchanged = c.fee_unchanged_days
                    self.own_since[cid] = (
                        now - round(unchanged * DAY) if unchanged is not None else None
                    )
                elif self.held[cid].own_ppm != before.own_ppm:
                    self.own_since[cid] = now

    def start_day(self, now: int, channel_ids: list[str], flows: FlowLookup | None) -> None:
        """Once a day: the day that ended goes to the trials with what the node earned in it
        (with a forward log), and the next level becomes today's."""
        if self.day_started is not None and now - self.day_started < DAY:
            return
        if self.day_started is not None and flows is not None:
            start = self.day_started
            day = [flows(cid, start, start + DAY) for cid in channel_ids]
            self.days.append(
                TrialDay(
                    self.percent,
                    sum(f.fees_msat for f in day),
                    sum(f.forwards_out for f in day),
                )
            )
        self.percent = next_level(self.days).percent
        self.day_started = now

    def rollout(self, channels: list[ChannelMetrics], skip: Collection[str]) -> list[PolicyChange]:
        """The changes that bring each channel not yet at today's level to it, largest
        capacity first. A channel whose node fee the level leaves as it is takes the level
        on at once, without an update."""
        out = []
        for c in sorted(channels, key=lambda ch: -ch.capacity_sat):
            held = self.held.get(c.channel_id)
            if c.local_policy is None or held is None or c.channel_id in skip:
                continue
            if held.percent == self.percent:
                continue
            fee = level_fee(held.own_ppm, self.percent, self.lo, self.hi)
            if fee == c.local_policy.fee_rate_ppm:
                self.held[c.channel_id] = ChannelLevel(held.own_ppm, self.percent)
            else:
                after = _with_fee(c.local_policy, fee)
                out.append(
                    PolicyChange(
                        "level",
                        c.channel_id,
                        c.local_policy,
                        after,
                        f"price level {self.percent} %",
                    )
                )
        return out

    def rolled_out(self, channel_id: str, now: int) -> None:
        self.held[channel_id] = ChannelLevel(self.held[channel_id].own_ppm, self.percent)
        recent = [t for t in self.steps.get(channel_id, []) if now - t < MONTH]
        self.steps[channel_id] = [*recent, now]

    def as_engine_sees(self, c: ChannelMetrics, now: int) -> ChannelMetrics:
        """The channel at its own fee, with its own fee's history: the engine decides
        without the level (a daily step read as a fee change would block every idle cut,
        which waits for a week at the same fee)."""
        held = self.held.get(c.channel_id)
        if c.local_policy is None or held is None:
            return c
        steps = sum(1 for t in self.steps.get(c.channel_id, []) if now - t < MONTH)
        since = self.own_since.get(c.channel_id)
        return replace(
            c,
            local_policy=replace(c.local_policy, fee_rate_ppm=held.own_ppm),
            policy_changes_30d=max(0, c.policy_changes_30d - steps),
            fee_unchanged_days=(now - since) / DAY if since is not None else None,
        )

    def on_node(self, change: PolicyChange, node: RoutingPolicy) -> PolicyChange | None:
        """The engine's change of a channel's own fee as a change of the node's policy, at
        the level the channel holds; None when the node's fee would stay as it is."""
        held = self.held[change.channel_id]
        fee = level_fee(change.after.fee_rate_ppm, held.percent, self.lo, self.hi)
        if fee == node.fee_rate_ppm:
            return None
        return replace(change, before=node, after=_with_fee(change.after, fee))

    def own_changed(self, channel_id: str, own_ppm: int, now: int) -> None:
        self.held[channel_id] = ChannelLevel(own_ppm, self.held[channel_id].percent)
        self.own_since[channel_id] = now


class DaznodePolicy:
    interval_seconds = 3600

    def __init__(
        self,
        profile: Profile,
        bounds: Bounds | None = None,
        rules: list[Rule] | None = None,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    ) -> None:
        self.profile = profile
        self.bounds = bounds or Bounds()
        self.rules = rules or []
        self.min_confidence = min_confidence
        self.name = f"Daznode {profile.name}"
        self.log = UpdateLog(())
        self.impact = ImpactSettings()
        self.flows: FlowLookup | None = None
        self.applied: list[Applied] = []  # waiting for their verdict
        self.lessons: list[Lesson] = []
        self.rollbacks = 0
        self.trials = (
            LevelTrials(self.bounds.min_fee_ppm, self.bounds.max_fee_ppm)
            if profile.level_trials
            else None
        )
        self.level_updates: set[tuple[str, int]] = set()  # in the log, not the engine's

    @property
    def days(self) -> list[TrialDay]:
        return self.trials.days if self.trials else []

    @property
    def percent(self) -> int:
        return self.trials.percent if self.trials else 100

    def attach_flows(self, lookup: FlowLookup) -> None:
        self.flows = lookup

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        actions = PolicyActions()
        for cid, before in self._measure(channels, now).items():
            actions.fees[cid] = _setting(before)
            self.log = self.log.with_update(cid, now)
        trials = self.trials
        seen = channels
        if trials is not None:
            trials.observe(channels, now)
            trials.start_day(now, [c.channel_id for c in channels], self.flows)
            self._roll_out(trials, channels, actions, now)
            seen = [trials.as_engine_sees(c, now) for c in channels]
        measuring = {a.channel_id for a in self.applied}
        seen = with_lessons(seen, measuring, self.lessons, now)
        recs = evaluate_node(seen, net, self.profile, self.rules)
        policies = {
            c.channel_id: c.local_policy
            for c in seen
            if c.local_policy is not None and c.channel_id not in actions.fees  # rolled back
        }
        changes = [
            change
            for change, _, _ in proposals(
                recs, policies, self.min_confidence, self.bounds, {}, lambda: "simulated"
            )
        ]
        own: dict[str, int] = {}
        if trials is not None:  # own fees -> the node's, at each channel's level
            if engine_waits(trials.day_started, now, self.bounds.cooldown_seconds):
                changes = []  # the next day's step must find every channel free to take it
            node = {c.channel_id: c.local_policy for c in channels if c.local_policy is not None}
            own = {c.channel_id: c.after.fee_rate_ppm for c in changes}
            changes = [
                on_node
                for c in changes
                if (on_node := trials.on_node(c, node[c.channel_id])) is not None
            ]
        by_id = {c.channel_id: c for c in seen}
        for rec in recs:
            ch = by_id[rec.channel_id]
            plan = rec.suggested.rebalance
            if rec.confidence < self.min_confidence or ch.local_policy is None:
                continue
            if plan is not None and plan.source_channel_id:
                limit = int(ch.capacity_msat * self.bounds.rebalance_max_amount_ratio)
                max_fee = min(plan.max_fee_ppm, self.bounds.rebalance_max_fee_ppm)
                if self.percent < 100:  # the channel sells for less than its own fee
                    max_fee = scaled_fee(max_fee, self.percent)
                actions.rebalances.append(
                    RebalanceOrder(
                        target_channel_id=ch.channel_id,
                        source_channel_id=plan.source_channel_id,
                        amount_msat=min(plan.amount_sat * 1000, limit),
                        max_fee_ppm=max_fee,
                    )
                )
        verdicts = validate_batch(changes, self.bounds, {}, self.log, now)
        for change, verdict in zip(changes, verdicts, strict=True):
            if verdict.ok:
                a = change.after
                actions.fees[change.channel_id] = _setting(a)
                self.log = self.log.with_update(change.channel_id, now)
                if a.fee_rate_ppm != change.before.fee_rate_ppm:
                    self.applied.append(Applied(change.channel_id, now, change.before, a))
                if trials is not None:
                    trials.own_changed(change.channel_id, own[change.channel_id], now)
        # Kept as long as the validator or a measurement's control window can look back.
        measured = self.impact.baseline_days * DAY + self.impact.evaluation_hours * 3600 + DAY
        keep = max(measured, self.bounds.cooldown_seconds)
        self.log = self.log.pruned(now, keep)
        self.level_updates = {u for u in self.level_updates if now - u[1] < keep}
        return actions

    def _roll_out(
        self, trials: LevelTrials, channels: list[ChannelMetrics], actions: PolicyActions, now: int
    ) -> None:
        """Today's level on every channel not at it yet, as one batch without the step limit
        (cooldown and gossip budgets still hold: what they refuse waits for a later pass)."""
        changes = trials.rollout(channels, actions.fees)
        verdicts = validate_batch(changes, self.bounds, {}, self.log, now, step_limit=False)
        for change, verdict in zip(changes, verdicts, strict=True):
            if verdict.ok:
                actions.fees[change.channel_id] = _setting(change.after)
                self.log = self.log.with_update(change.channel_id, now)
                self.level_updates.add((change.channel_id, now))
                trials.rolled_out(change.channel_id, now)

    def _measure(self, channels: list[ChannelMetrics], now: int) -> dict[str, RoutingPolicy]:
        """Judge the changes whose evaluation window has passed; the ones that hurt go back
        to their policy before (when nothing changed the channel since). A price level's
        updates do not count as touching a channel: its controls move with the level too."""
        if self.flows is None:
            return {}
        window, baseline = self.impact.evaluation_hours * 3600, self.impact.baseline_days * DAY
        current = {c.channel_id: c.local_policy for c in channels}
        due = [a for a in self.applied if now - a.at >= window]
        self.applied = [a for a in self.applied if now - a.at < window]
        touched = [u for u in self.log.updates if u not in self.level_updates]
        rollbacks: dict[str, RoutingPolicy] = {}
        for a in due:
            start, end = a.at - baseline, a.at + window
            controls = [
                cid
                for cid in current
                if cid != a.channel_id
                and not any(c == cid and start <= t <= end for c, t in touched)
            ]
            verdict = evaluate_impact(
                ImpactInput(
                    baseline=self.flows(a.channel_id, start, a.at),
                    evaluation=self.flows(a.channel_id, a.at, end),
                    fee_before_ppm=a.before.fee_rate_ppm,
                    fee_after_ppm=a.after.fee_rate_ppm,
                    control_baseline=self._sum(controls, start, a.at),
                    control_evaluation=self._sum(controls, a.at, end),
                ),
                self.impact,
            )
            self.lessons.append(
                Lesson(
                    a.channel_id,
                    a.before.fee_rate_ppm,
                    a.after.fee_rate_ppm,
                    verdict.adjusted_change,
                    verdict.outcome,
                    now,
                )
            )
            if verdict.rollback and current.get(a.channel_id) == a.after:  # still in place
                rollbacks[a.channel_id] = a.before
                self.rollbacks += 1
        return rollbacks

    def _sum(self, channel_ids: list[str], start: int, end: int) -> ChannelFlow:
        assert self.flows is not None
        flows = [self.flows(cid, start, end) for cid in channel_ids]
        return sum_flows(flows) if flows else ChannelFlow(seconds=end - start)


def daznode_factory(
    profile: Profile, bounds: Bounds | None = None, rules: list[Rule] | None = None
) -> PolicyFactory:
    return lambda: DaznodePolicy(profile, bounds, rules)
