"""Daznode's engine as a simulated policy: the same pass the product runs in auto mode.

Every hour (the product decides on every monitor cycle; within the 6 h cooldown more
frequent calls change nothing) the engine evaluates the node with the profile and the
admin's rules. Recommendations below the execution's minimum confidence are skipped, the
rest become whole policies as in the product (`proposed_policy`: the fee with htlc_max
riding along), are clipped to the bounds and one step, and go through the validator's batch
check (cooldown, gossip budget). Rebalance plans are paid within the bounds' rebalance
limits. Close recommendations are not simulated: a close changes the node for months and
the what-if horizon is weeks.
"""

from __future__ import annotations

from .changes import PolicyChange, proposed_policy
from .decide import evaluate_node
from .metrics import ChannelMetrics, NetworkContext
from .profiles import Profile
from .rules import Rule
from .sim_policy import FeeSetting, PolicyActions, PolicyFactory, RebalanceOrder
from .validate import Bounds, UpdateLog, clip_to_bounds, validate_batch

DEFAULT_MIN_CONFIDENCE = 0.5  # the execution settings' default


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

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        actions = PolicyActions()
        by_id = {c.channel_id: c for c in channels}
        changes: list[PolicyChange] = []
        for rec in evaluate_node(channels, net, self.profile, self.rules):
            ch = by_id[rec.channel_id]
            if rec.confidence < self.min_confidence or ch.local_policy is None:
                continue
            after = proposed_policy(rec, ch.local_policy)
            if after is not None:
                change = PolicyChange(f"sim-{ch.channel_id}", ch.channel_id, ch.local_policy, after)
                change = clip_to_bounds(change, self.bounds)
                if change.after != change.before:
                    changes.append(change)
            plan = rec.suggested.rebalance
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
        self.log = self.log.pruned(now, max(86400, self.bounds.cooldown_seconds))
        return actions


def daznode_factory(
    profile: Profile, bounds: Bounds | None = None, rules: list[Rule] | None = None
) -> PolicyFactory:
    return lambda: DaznodePolicy(profile, bounds, rules)
