"""The one interface every node backend implements (LND REST, Core Lightning, simulated).

Everything above this layer (monitor, engine, executor) talks to a `NodeSource` and sees
the same shapes whatever the backend: channel ids are short channel ids ("BLOCKxTXxOUT"),
money is integer msat (capacities in sat), fee rates in ppm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

BLOCKS_PER_DAY = 144


class NodeSourceError(Exception):
    """A node call failed. `transient` errors (timeouts, 5xx, connection) may be retried."""

    transient: bool = False

    def __init__(self, message: str, *, transient: bool | None = None):
        super().__init__(message)
        if transient is not None:
            self.transient = transient


class NodeUnavailable(NodeSourceError):
    """The node did not answer (timeout, connection refused, 5xx): worth retrying later."""

    transient = True


class NodeRequestError(NodeSourceError):
    """The node answered and refused the request: retrying the same call will not help."""

    transient = False


class NotSupported(NodeSourceError):
    """The backend cannot do this at all (e.g. inbound fees on Core Lightning)."""

    transient = False


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """One direction of a channel: what the node at its source charges to forward."""

    base_fee_msat: int
    fee_rate_ppm: int
    cltv_delta: int
    htlc_min_msat: int
    htlc_max_msat: int
    inbound_base_fee_msat: int | None = None
    inbound_fee_rate_ppm: int | None = None
    disabled: bool = False

    def fee_msat(self, amount_msat: int) -> int:
        """Fee for forwarding `amount_msat`, rounded down like the BOLT #7 formula."""
        return self.base_fee_msat + amount_msat * self.fee_rate_ppm // 1_000_000


@dataclass(frozen=True, slots=True)
class PolicyUpdate:
    """A requested change; None keeps the current value (adapters merge for backends that
    replace the whole policy, such as LND)."""

    base_fee_msat: int | None = None
    fee_rate_ppm: int | None = None
    cltv_delta: int | None = None
    htlc_min_msat: int | None = None
    htlc_max_msat: int | None = None
    inbound_base_fee_msat: int | None = None
    inbound_fee_rate_ppm: int | None = None

    def apply_to(self, current: RoutingPolicy) -> RoutingPolicy:
        def pick(new: int | None, old: int | None) -> int | None:
            return old if new is None else new

        return RoutingPolicy(
            base_fee_msat=pick(self.base_fee_msat, current.base_fee_msat) or 0,
            fee_rate_ppm=pick(self.fee_rate_ppm, current.fee_rate_ppm) or 0,
            cltv_delta=pick(self.cltv_delta, current.cltv_delta) or 0,
            htlc_min_msat=pick(self.htlc_min_msat, current.htlc_min_msat) or 0,
            htlc_max_msat=pick(self.htlc_max_msat, current.htlc_max_msat) or 0,
            inbound_base_fee_msat=pick(self.inbound_base_fee_msat, current.inbound_base_fee_msat),
            inbound_fee_rate_ppm=pick(self.inbound_fee_rate_ppm, current.inbound_fee_rate_ppm),
            disabled=current.disabled,
        )


@dataclass(frozen=True, slots=True)
class NodeInfo:
    pubkey: str
    alias: str
    block_height: int
    num_active_channels: int
    num_peers: int
    synced_to_chain: bool
    version: str
    network: str


@dataclass(frozen=True, slots=True)
class Channel:
    channel_id: str  # short channel id "BLOCKxTXxOUT", identical on every backend
    native_id: str  # the backend's own id (LND uint64 chan_id, CLN 32-byte channel_id)
    channel_point: str  # "txid:vout"
    peer_id: str
    peer_alias: str
    capacity_sat: int
    local_balance_msat: int
    remote_balance_msat: int
    active: bool  # usable now: channel normal and peer connected
    private: bool
    local_policy: RoutingPolicy | None
    remote_policy: RoutingPolicy | None

    @property
    def funding_height(self) -> int:
        return scid_block(self.channel_id)

    def age_days(self, block_height: int) -> float:
        return max(0, block_height - self.funding_height) / BLOCKS_PER_DAY

    @property
    def local_ratio(self) -> float:
        total = self.local_balance_msat + self.remote_balance_msat
        return self.local_balance_msat / total if total else 0.0


@dataclass(frozen=True, slots=True)
class ForwardEvent:
    """A resolved forward. `index` orders events and is what cursors refer to."""

    index: int
    timestamp_ns: int
    chan_in: str
    chan_out: str
    amt_in_msat: int
    amt_out_msat: int
    fee_msat: int
    status: str = "settled"  # settled | failed | local_failed (LND reports settled only)
    fail_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ForwardPage:
    events: list[ForwardEvent]
    next_cursor: int  # pass back to forwards_since to continue without gaps or repeats
    has_more: bool


@dataclass(frozen=True, slots=True)
class GraphNode:
    pubkey: str
    alias: str = ""
    last_update: int = 0


@dataclass(frozen=True, slots=True)
class GraphEdge:
    channel_id: str
    node1: str
    node2: str
    capacity_sat: int
    node1_policy: RoutingPolicy | None  # policy of node1 forwarding towards node2
    node2_policy: RoutingPolicy | None
    last_update: int = 0


@dataclass(slots=True)
class NetworkGraph:
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RebalanceResult:
    """A circular payment: out through `out_channel`, back in through `in_channel`."""

    ok: bool
    out_channel: str
    in_channel: str
    amount_msat: int
    fee_msat: int  # what it cost (0 when it failed: a failed payment costs nothing)
    detail: str  # payment hash on success, the node's reason on failure


@dataclass(frozen=True, slots=True)
class CloseResult:
    """A cooperative close the node accepted. `closing_txid` is None while the peers still
    negotiate (the node goes on with it on its own)."""

    channel_id: str
    closing_txid: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class Capabilities:
    inbound_fees: bool
    per_channel_cltv: bool
    forward_failures: bool  # the backend reports failed forwards, not only settled ones
    rebalance: bool


@runtime_checkable
class NodeSource(Protocol):
    kind: str  # "lnd", "cln" or "simulated"
    capabilities: Capabilities

    async def get_info(self) -> NodeInfo: ...

    async def list_channels(self) -> list[Channel]: ...

    async def forwards_since(self, cursor: int, limit: int) -> ForwardPage:
        """Resolved forwards after `cursor` (0 = from the beginning), oldest first."""
        ...

    async def get_policy(self, channel_id: str) -> RoutingPolicy: ...

    async def set_policy(self, channel_id: str, update: PolicyUpdate) -> RoutingPolicy:
        """Apply `update` to our side of the channel and return the policy read back."""
        ...

    async def describe_graph(self) -> NetworkGraph: ...

    async def rebalance(
        self, out_channel: str, in_channel: str, amount_msat: int, max_fee_msat: int
    ) -> RebalanceResult:
        """Pay ourselves `amount_msat` out through `out_channel` and back through
        `in_channel`, for at most `max_fee_msat` in fees. A payment that would cost more is
        not made. Raises NotSupported where the backend cannot route to itself."""
        ...

    async def close_channel(self, channel_id: str) -> CloseResult:
        """Close our channel cooperatively; never a force close. Raises NodeRequestError when
        the node refuses (unknown or inactive channel, peer offline) so nothing is half done."""
        ...


def scid_from_int(value: int) -> str:
    """LND's uint64 chan_id -> "BLOCKxTXxOUT" (3 bytes block, 3 bytes tx index, 2 bytes out)."""
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"not a uint64 channel id: {value}")
    return f"{value >> 40}x{(value >> 16) & 0xFFFFFF}x{value & 0xFFFF}"


def scid_to_int(scid: str) -> int:
    block, tx, out = parse_scid(scid)
    return (block << 40) | (tx << 16) | out


def parse_scid(scid: str) -> tuple[int, int, int]:
    parts = scid.split("x")
    # isascii: str.isdigit() also accepts non-ASCII digits (superscript, fullwidth, ...).
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"not a short channel id (BLOCKxTXxOUT): {scid!r}")
    block, tx, out = (int(p) for p in parts)
    if block >= 1 << 24 or tx >= 1 << 24 or out >= 1 << 16:
        raise ValueError(f"short channel id out of range: {scid!r}")
    return block, tx, out


def scid_block(scid: str) -> int:
    return parse_scid(scid)[0]


def normalize_channel_id(value: str) -> str:
    """Accept a short channel id or LND's decimal chan_id and return the short channel id."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        return scid_from_int(int(value))
    block, tx, out = parse_scid(value)
    return f"{block}x{tx}x{out}"  # canonical: ids are compared as strings
