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
"""

from __future__ import annotations

from dataclasses import dataclass

from .decide import evaluate_node
from .impact import ChannelFlow, ImpactInput, ImpactSettings, evaluate_impact, sum_flows
from .lessons import Lesson, with_lessons
from .metrics import ChannelMetrics, NetworkContext
from .node_source import RoutingPolicy
from .profiles import Profile
from .rules import Rule
from .sim_policy import FeeSetting, FlowLookup, PolicyActions, PolicyFactory, RebalanceOrder
from .validate import Bounds, UpdateLog, proposals, validate_batch

DEFAULT_MIN_CONFIDENCE = 0.5  # the execution settings' default
DAY = 86400


@dataclass(frozen=True, slots=True)
class Applied:
    channel_id: str
    at: int
    before: RoutingPolicy
    after: RoutingPolicy


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

    def attach_flows(self, lookup: FlowLookup) -> None:
        self.flows = lookup

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        actions = PolicyActions()
        for cid, before in self._measure(channels, now).items():
            actions.fees[cid] = FeeSetting(
                before.fee_rate_ppm, before.base_fee_msat, before.htlc_max_msat
            )
            self.log = self.log.with_update(cid, now)
        measuring = {a.channel_id for a in self.applied}
        channels = with_lessons(channels, measuring, self.lessons, now)
        recs = evaluate_node(channels, net, self.profile, self.rules)
        policies = {
            c.channel_id: c.local_policy
            for c in channels
            if c.local_policy is not None and c.channel_id not in actions.fees  # rolled back
        }
        changes = [
            change
            for change, _, _ in proposals(
                recs, policies, self.min_confidence, self.bounds, {}, lambda: "simulated"
            )
        ]
        by_id = {c.channel_id: c for c in channels}
        for rec in recs:
            ch = by_id[rec.channel_id]
            plan = rec.suggested.rebalance
            if rec.confidence < self.min_confidence or ch.local_policy is None:
                continue
            if plan is not None and plan.source_channel_id:
                limit = int(ch.capacity_msat * self.bounds.rebalance_max_amount_ratio)
                actions.rebalances.append(
                    RebalanceOrder(
                        target_channel_id=ch.channel_id,
                        source_channel_id=plan.source_channel_id,
                        amount_msat=min(plan.amount_sat * 1000, limit),
                        max_fee_ppm=min(plan.max_fee_ppm, self.bounds.rebalance_max_fee_ppm),
                    )
                )
        verdicts = validate_batch(changes, self.bounds, {}, self.log, now)
        for change, verdict in zip(changes, verdicts, strict=True):
            if verdict.ok:
                a = change.after
                actions.fees[change.channel_id] = FeeSetting(
                    a.fee_rate_ppm, a.base_fee_msat, a.htlc_max_msat
                )
                self.log = self.log.with_update(change.channel_id, now)
                if a.fee_rate_ppm != change.before.fee_rate_ppm:
                    self.applied.append(Applied(change.channel_id, now, change.before, a))
        # Kept as long as the validator or a measurement's control window can look back.
        measured = self.impact.baseline_days * DAY + self.impact.evaluation_hours * 3600 + DAY
        self.log = self.log.pruned(now, max(measured, self.bounds.cooldown_seconds))
        return actions

    def _measure(self, channels: list[ChannelMetrics], now: int) -> dict[str, RoutingPolicy]:
        """Judge the changes whose evaluation window has passed; the ones that hurt go back
        to their policy before (when nothing changed the channel since)."""
        if self.flows is None:
            return {}
        window, baseline = self.impact.evaluation_hours * 3600, self.impact.baseline_days * DAY
        current = {c.channel_id: c.local_policy for c in channels}
        due = [a for a in self.applied if now - a.at >= window]
        self.applied = [a for a in self.applied if now - a.at < window]
        rollbacks: dict[str, RoutingPolicy] = {}
        for a in due:
            start, end = a.at - baseline, a.at + window
            controls = [
                cid
                for cid in current
                if cid != a.channel_id
                and not any(c == cid and start <= t <= end for c, t in self.log.updates)
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
