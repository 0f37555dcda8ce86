"""What the engine knows about a channel and its surroundings: plain, immutable data.

The shell builds these from stored history and the graph; every heuristic, rule and decision
reads only these types, so the engine stays pure and testable with hand-written cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .node_source import RoutingPolicy

WINDOWS = (1, 7, 30)  # days


@dataclass(frozen=True, slots=True)
class FlowWindow:
    """Forwards through one channel over the last `days` days."""

    days: int
    forwards_out: int = 0
    forwards_in: int = 0
    volume_out_msat: int = 0
    volume_in_msat: int = 0
    fees_msat: int = 0  # earned on forwards leaving through this channel
    failed_out: int = 0  # forwards that failed on this channel (when the backend reports them)
    assisted_fees_msat: int = 0  # earned on other channels by forwards that came in here
    refill_cost_msat: int = 0  # paid for rebalances that moved liquidity into this channel


@dataclass(frozen=True, slots=True)
class MeasuredChange:
    """Our latest fee change on a channel that has a verdict (engine/impact.py)."""

    fee_before_ppm: int
    fee_after_ppm: int
    adjusted_change: float  # earnings after vs what the untouched channels predicted, minus 1


@dataclass(frozen=True, slots=True)
class ChannelMetrics:
    channel_id: str
    peer_id: str
    peer_alias: str
    capacity_sat: int
    local_msat: int
    remote_msat: int
    active: bool
    age_days: float
    local_policy: RoutingPolicy | None
    remote_policy: RoutingPolicy | None
    windows: dict[int, FlowWindow] = field(default_factory=dict)
    uptime_ratio: float | None = None  # share of snapshots active, last 7 days
    disconnects_7d: int | None = None  # active -> inactive transitions, last 7 days
    policy_changes_30d: int = 0  # our fee changes seen in the snapshots, last 30 days
    fee_unchanged_days: float | None = None  # since our fee here last changed (None: not lately)
    balance_trend_msat_per_day: float = 0.0  # local balance drift (negative: draining)
    # What measuring our own changes taught (engine/lessons.py): a fee change of ours here
    # still waits for its verdict; raises stay below a fee a raise to which earned less
    # lately, cuts above a fee a cut to which earned less.
    measuring: bool = False
    raise_ceiling_ppm: int | None = None
    cut_floor_ppm: int | None = None
    last_measured: MeasuredChange | None = None

    def window(self, days: int) -> FlowWindow:
        return self.windows.get(days) or FlowWindow(days)

    @property
    def local_ratio(self) -> float:
        total = self.local_msat + self.remote_msat
        return self.local_msat / total if total else 0.0

    @property
    def capacity_msat(self) -> int:
        return self.capacity_sat * 1000

    @property
    def fee_ppm(self) -> int | None:
        return self.local_policy.fee_rate_ppm if self.local_policy else None


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the public graph says about a peer."""

    channels: int
    capacity_sat: int
    competitor_fee_ppm: int | None  # capacity-weighted median others charge into this peer
    competitor_count: int  # channels into the peer that were surveyed
    betweenness: float | None = None  # normalised, when graph analytics have run


@dataclass(frozen=True, slots=True)
class NetworkContext:
    """The node's surroundings. `graph_available` False: only local data is known."""

    graph_available: bool = False
    median_fee_ppm: int = 100
    median_channels: int = 2  # median node degree in the graph
    our_channels: int = 0
    our_betweenness: float | None = None
    peers: dict[str, PeerInfo] = field(default_factory=dict)
    onchain_feerate_sat_vb: int = 10  # for close/reopen cost estimates
    now: int = 0  # epoch seconds the metrics were taken at

    def peer(self, peer_id: str) -> PeerInfo | None:
        return self.peers.get(peer_id)
