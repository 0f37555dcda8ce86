"""A policy change as the executor and the validator see it: the whole policy before and
the whole policy wanted after, so a change can be verified, replayed and undone exactly."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .decide import Decision, Recommendation
from .node_source import PolicyUpdate, RoutingPolicy

# The fields a change may touch; `disabled` is the node's business, not ours.
POLICY_FIELDS = (
    "base_fee_msat",
    "fee_rate_ppm",
    "cltv_delta",
    "htlc_min_msat",
    "htlc_max_msat",
    "inbound_base_fee_msat",
    "inbound_fee_rate_ppm",
)


@dataclass(frozen=True, slots=True)
class PolicyChange:
    change_id: str
    channel_id: str
    before: RoutingPolicy
    after: RoutingPolicy
    reason: str = ""

    def update(self) -> PolicyUpdate:
        """Only what differs; adapters merge the rest from the node's current policy."""
        return PolicyUpdate(
            **{
                name: getattr(self.after, name)
                for name in POLICY_FIELDS
                if getattr(self.after, name) != getattr(self.before, name)
            }
        )

    def reverse(self, change_id: str) -> PolicyChange:
        return PolicyChange(change_id, self.channel_id, self.after, self.before, "rollback")

    def changed_fields(self) -> list[str]:
        return [n for n in POLICY_FIELDS if getattr(self.after, n) != getattr(self.before, n)]


def policy_matches(actual: RoutingPolicy, wanted: RoutingPolicy, names: list[str]) -> bool:
    """The node's policy carries the wanted values for the given fields (a backend without
    inbound fees reports None for them, which matches a wanted 0 or None)."""
    for name in names:
        got, want = getattr(actual, name), getattr(wanted, name)
        if got != want and not (got is None and not want):
            return False
    return True


FEE_DECISIONS = (Decision.INCREASE_FEES, Decision.DECREASE_FEES)


def proposed_policy(rec: Recommendation, before: RoutingPolicy) -> RoutingPolicy | None:
    """The whole policy the recommendation asks for; htlc_max and the inbound fee ride along
    with a fee change only, so they never cost a gossip update of their own."""
    s = rec.suggested
    if rec.decision not in FEE_DECISIONS or s.fee_ppm is None:
        return None
    after = replace(before, fee_rate_ppm=s.fee_ppm)
    if s.base_fee_msat is not None:
        after = replace(after, base_fee_msat=s.base_fee_msat)
    if s.inbound_fee_ppm is not None and before.inbound_fee_rate_ppm is not None:
        after = replace(after, inbound_fee_rate_ppm=s.inbound_fee_ppm)
    if s.htlc_max_msat is not None and s.htlc_max_msat >= before.htlc_min_msat:
        after = replace(after, htlc_max_msat=s.htlc_max_msat)
    return after if after != before else None
