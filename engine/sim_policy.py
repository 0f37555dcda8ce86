"""What a fee policy sees and does inside the what-if simulation.

A policy is data plus a pure function: every `interval_seconds` of simulated time the
simulator hands it the node's channels as the engine's own `ChannelMetrics` (balances, our
and the peer's policy, forwards over the last 1, 7 and 30 days measured to the second) and
the `NetworkContext` of the graph; the policy answers with the fee settings it wants and the
rebalances it orders. Stateful policies (cooldowns, price exploration) keep their state on
their own instance; the simulator builds a fresh instance per run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .impact import ChannelFlow
from .metrics import ChannelMetrics, NetworkContext


@dataclass(frozen=True, slots=True)
class FeeSetting:
    """The outbound policy a channel should announce. None leaves a field as it is."""

    fee_ppm: int
    base_fee_msat: int | None = None
    htlc_max_msat: int | None = None


@dataclass(frozen=True, slots=True)
class RebalanceOrder:
    """A circular payment: out through `source_channel_id`, back in through
    `target_channel_id`, paying at most `max_fee_ppm` of `amount_msat` in routing fees."""

    target_channel_id: str
    source_channel_id: str
    amount_msat: int
    max_fee_ppm: int


@dataclass(slots=True)
class PolicyActions:
    fees: dict[str, FeeSetting] = field(default_factory=dict)  # channel id -> new setting
    rebalances: list[RebalanceOrder] = field(default_factory=list)


class SimPolicy(Protocol):
    name: str  # shown in the results, e.g. "charge-lnd proportional"
    interval_seconds: int  # how often the simulator calls decide()

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions: ...


PolicyFactory = Callable[[], SimPolicy]  # a fresh, independent instance per simulation run

# A policy that measures its own changes may define `attach_flows(lookup)`: the simulator then
# hands it lookup(channel_id, start, end) -> ChannelFlow, the channel's outbound forwards
# between two epoch times (hour resolution), as the shell reads them from the forward log.
FlowLookup = Callable[[str, int, int], ChannelFlow]


class KeepFees:
    """The node as it is: its current fees, no rebalancing (what shadow mode compares to)."""

    name = "Current fees kept"
    interval_seconds = 86400

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        return PolicyActions()


class FixedFees:
    """Every channel at one fee from the first hourly call on, no rebalancing: a point of
    the demand curve (the benchmark's fee-sensitivity table, the simulator's tests)."""

    interval_seconds = 3600

    def __init__(self, ppm: int) -> None:
        self.name, self.ppm = f"{ppm} ppm everywhere", ppm

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        return PolicyActions(
            fees={c.channel_id: FeeSetting(self.ppm) for c in channels if c.fee_ppm != self.ppm}
        )


LEVEL_MIN_PERCENT, LEVEL_MAX_PERCENT = 10, 1000  # a price level: x0.1 to x10 the current fees


def scaled_fee(fee_ppm: int, percent: int) -> int:
    """A fee at `percent` % of itself, rounded half up, in whole ppm."""
    return (fee_ppm * percent + 50) // 100


class ScaledFees:
    """Every channel at its current fee times percent / 100, set at the first call and then
    held, no rebalancing: one point of the node's own demand curve, at its own fee shape
    (a price level the admin can then propose from the what-if page)."""

    interval_seconds = 86400

    def __init__(self, percent: int) -> None:
        if not LEVEL_MIN_PERCENT <= percent <= LEVEL_MAX_PERCENT:
            raise ValueError(
                f"a price level is {LEVEL_MIN_PERCENT}-{LEVEL_MAX_PERCENT} % of the current fees"
            )
        self.name, self.percent = f"current fees at {percent} %", percent
        self._targets: dict[str, int] = {}

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        fees: dict[str, FeeSetting] = {}
        for c in channels:
            if c.fee_ppm is None:
                continue
            target = self._targets.setdefault(c.channel_id, scaled_fee(c.fee_ppm, self.percent))
            if c.fee_ppm != target:
                fees[c.channel_id] = FeeSetting(target)
        return PolicyActions(fees=fees)
