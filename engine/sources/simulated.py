"""A deterministic routing node inside a real (or generated) network: the demo and test backend.

The node opens channels to well-connected peers of the given graph. Payments that want to
cross it arrive as a Poisson process; each picks an outgoing peer by demand, and takes our
route with a probability that falls as our fee rises above what the peer's other channels
charge (the competitor median, as CLBOSS surveys it). A forward fails when the outgoing
channel lacks local balance; otherwise balances move and we earn the fee. So fees change
traffic, traffic drains or fills channels, and an autopilot has something real to steer.

Determinism: time is processed in whole minutes, each drawn from its own seeded RNG, so the
result depends only on the seed, the graph and the policy changes made, never on how often
the node is polled. State (balances, policies, forward log) can persist in a JSON file, like a
real node's database, so restarts neither lose nor repeat forwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..network_gen import pubkey_for
from ..node_source import (
    Capabilities,
    Channel,
    CloseResult,
    ForwardEvent,
    ForwardPage,
    GraphEdge,
    GraphNode,
    NetworkGraph,
    NodeInfo,
    NodeRequestError,
    PolicyUpdate,
    RebalanceResult,
    RoutingPolicy,
    normalize_channel_id,
)

STATE_VERSION = 1
MAX_LOGGED_FORWARDS = 20_000
MAX_CATCH_UP_MINUTES = 30 * 1440
REBALANCE_HOP_PPM = 100  # one intermediate hop of a circular route, at the network median
# Block height is derived from the clock: height 870,000 at this epoch, one block per 600 s.
_HEIGHT_EPOCH = (1_731_000_000, 870_000)


def block_height_at(ts: float) -> int:
    epoch, height = _HEIGHT_EPOCH
    return height + int((ts - epoch) // 600)


@dataclass
class SimConfig:
    seed: int = 42
    num_channels: int = 12
    history_days: int = 14
    forwards_per_day: float = 120.0  # attempts that reach us before the price test
    alias: str = "daznode-demo"


@dataclass
class _SimChannel:
    scid: str
    peer_id: str
    peer_alias: str
    capacity_sat: int
    local_msat: int
    policy: RoutingPolicy
    peer_policy: RoutingPolicy
    competitor_ppm: int  # capacity-weighted median fee others charge into this peer
    out_demand: float  # how much traffic wants to leave through this peer
    in_supply: float  # how much traffic arrives from this peer
    uptime: float  # share of hours the peer is online
    channel_point: str
    policy_updates: int = 0

    @property
    def remote_msat(self) -> int:
        return self.capacity_sat * 1000 - self.local_msat


@dataclass
class _ClosedChannel:
    """A channel closed cooperatively: what went back on chain, and when."""

    scid: str
    peer_id: str
    channel_point: str
    closing_txid: str
    local_msat: int  # our balance at the close, paid to our wallet
    closed_minute: int


@dataclass
class _SimState:
    pubkey: str
    config: SimConfig
    channels: dict[str, _SimChannel]
    processed_minute: int  # every minute before this one has been simulated
    next_index: int = 1
    forwards: list[ForwardEvent] = field(default_factory=list)
    closed: list[_ClosedChannel] = field(default_factory=list)


def _weighted_median(pairs: list[tuple[int, int]]) -> int:
    """Median of values weighted by capacity, as CLBOSS's fee survey does."""
    if not pairs:
        return 0
    pairs.sort()
    half = sum(w for _, w in pairs) / 2
    acc = 0
    for value, weight in pairs:
        acc += weight
        if acc >= half:
            return value
    return pairs[-1][0]


def _survey(network: NetworkGraph) -> tuple[dict[str, int], dict[str, list], dict]:
    """Per node: degree, the (fee, capacity) of channels forwarding into it, its own policies."""
    degree: dict[str, int] = defaultdict(int)
    into: dict[str, list[tuple[int, int]]] = defaultdict(list)
    own: dict[str, list[RoutingPolicy]] = defaultdict(list)
    for e in network.edges:
        degree[e.node1] += 1
        degree[e.node2] += 1
        for src, dst, pol in (
            (e.node1, e.node2, e.node1_policy),
            (e.node2, e.node1, e.node2_policy),
        ):
            if pol is not None and not pol.disabled:
                into[dst].append((pol.fee_rate_ppm, e.capacity_sat))
                own[src].append(pol)
    return degree, into, own


def _median_policy(policies: list[RoutingPolicy], capacity_sat: int) -> RoutingPolicy:
    if not policies:
        return RoutingPolicy(1000, 100, 80, 1000, capacity_sat * 990)
    return RoutingPolicy(
        base_fee_msat=int(statistics.median(p.base_fee_msat for p in policies)),
        fee_rate_ppm=int(statistics.median(p.fee_rate_ppm for p in policies)),
        cltv_delta=int(statistics.median(p.cltv_delta for p in policies)),
        htlc_min_msat=int(statistics.median(p.htlc_min_msat for p in policies)),
        htlc_max_msat=capacity_sat * 990,
    )


def _open_channels(
    network: NetworkGraph, config: SimConfig, now: float, graph_label: str
) -> _SimState:
    rng = random.Random(f"daznode-sim-open:{config.seed}")
    degree, into, own = _survey(network)
    aliases = {n.pubkey: n.alias for n in network.nodes}
    candidates = sorted(pk for pk, d in degree.items() if d >= 5)
    if len(candidates) < config.num_channels:
        candidates = sorted(degree, key=lambda pk: -degree[pk])[: config.num_channels * 2]
    if not candidates:
        raise ValueError("the graph has no nodes to open channels to")
    weights = [math.sqrt(degree[pk]) for pk in candidates]
    peers: list[str] = []
    while len(peers) < min(config.num_channels, len(candidates)):
        pk = rng.choices(candidates, weights)[0]
        if pk not in peers:
            peers.append(pk)
    height = block_height_at(now)
    channels: dict[str, _SimChannel] = {}
    for n, peer in enumerate(peers):
        capacity = rng.choice((1, 2, 2, 3, 5, 5, 8, 10, 16)) * 1_000_000
        competitor = _weighted_median(list(into[peer])) or 100
        our_ppm = max(1, round(competitor * math.exp(rng.gauss(0, 0.6))))
        age_days = rng.randint(config.history_days + 5, 720)
        scid = f"{height - age_days * 144}x{rng.randrange(1, 4000)}x{rng.randrange(2)}"
        txid = pubkey_for(f"funding-{config.seed}-{n}")[2:]
        channels[scid] = _SimChannel(
            scid=scid,
            peer_id=peer,
            peer_alias=aliases.get(peer, ""),
            capacity_sat=capacity,
            local_msat=int(capacity * 1000 * rng.uniform(0.1, 0.9)),
            policy=RoutingPolicy(
                base_fee_msat=rng.choice((0, 1000)),
                fee_rate_ppm=our_ppm,
                cltv_delta=80,
                htlc_min_msat=1000,
                htlc_max_msat=capacity * 990,
                inbound_base_fee_msat=0,
                inbound_fee_rate_ppm=0,
            ),
            peer_policy=_median_policy(own[peer], capacity),
            competitor_ppm=competitor,
            out_demand=math.sqrt(degree[peer]) * math.exp(rng.gauss(0, 0.8)),
            in_supply=math.sqrt(degree[peer]) * math.exp(rng.gauss(0, 0.8)),
            uptime=rng.choice((0.95, 0.99, 0.995, 1.0, 1.0, 1.0)),
            channel_point=f"{txid}:{rng.randrange(2)}",
        )
    start_minute = int(now // 60) - config.history_days * 1440
    return _SimState(
        # A different seed, size or graph is a different node, with its own forward log.
        pubkey=pubkey_for(f"daznode-sim-{config.seed}-{config.num_channels}-{graph_label}"),
        config=config,
        channels=channels,
        processed_minute=start_minute,
    )


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _diurnal(minute: int) -> float:
    """Payments follow the day: ~40 % busier at the peak (UTC afternoon) than on average."""
    hour = (minute // 60) % 24
    return 1.0 + 0.4 * math.sin((hour - 9) / 24 * 2 * math.pi)


def _amount_msat(rng: random.Random) -> int:
    """Log-normal payment size, median 40k sat, within 1k .. 2M sat."""
    sat = math.exp(rng.gauss(math.log(40_000), 1.3))
    return int(min(2_000_000, max(1_000, sat))) * 1000


def _take_probability(our_fee_msat: int, reference_fee_msat: int) -> float:
    """Share of senders that route through us rather than a competitor: 1/2 at the
    competitors' fee, falling off quadratically as we get dearer (cheaper wins more)."""
    ratio = our_fee_msat / max(1, reference_fee_msat)
    return 1.0 / (1.0 + ratio * ratio)


class SimulatedNode:
    """NodeSource for a simulated node. Not thread-safe: call it from one event loop."""

    kind = "simulated"
    capabilities = Capabilities(
        inbound_fees=True, per_channel_cltv=True, forward_failures=True, rebalance=True
    )

    def __init__(
        self,
        network: NetworkGraph,
        config: SimConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        state_path: Path | None = None,
        graph_label: str = "generated network",
    ):
        self.network = network
        self.graph_label = graph_label
        self._clock = clock
        self._state_path = state_path
        loaded = self._load(state_path) if state_path else None
        self._state = loaded or _open_channels(network, config or SimConfig(), clock(), graph_label)
        self._dirty = loaded is None
        self._lock = asyncio.Lock()
        self._active_hour = -1
        self._active: list[_SimChannel] = []
        self._advance()

    # -- NodeSource -------------------------------------------------------------------

    async def get_info(self) -> NodeInfo:
        await self._catch_up()
        st = self._state
        active = sum(1 for ch in st.channels.values() if self._is_active(ch, self._now_minute()))
        return NodeInfo(
            pubkey=st.pubkey,
            alias=st.config.alias,
            block_height=block_height_at(self._clock()),
            num_active_channels=active,
            num_peers=active,
            synced_to_chain=True,
            version="daznode-simulated-1",
            network="simulated",
        )

    async def list_channels(self) -> list[Channel]:
        await self._catch_up()
        minute = self._now_minute()
        return [self._channel_view(ch, minute) for ch in self._state.channels.values()]

    async def forwards_since(self, cursor: int, limit: int) -> ForwardPage:
        if limit <= 0:
            raise ValueError("limit must be positive")
        await self._catch_up()
        log = self._state.forwards
        first = log[0].index if log else self._state.next_index
        start = max(0, cursor + 1 - first)
        events = log[start : start + limit]
        next_cursor = events[-1].index if events else max(cursor, first - 1)
        return ForwardPage(events, next_cursor, has_more=start + limit < len(log))

    async def get_policy(self, channel_id: str) -> RoutingPolicy:
        return self._channel(channel_id).policy

    async def set_policy(self, channel_id: str, update: PolicyUpdate) -> RoutingPolicy:
        await self._catch_up()
        ch = self._channel(channel_id)
        new = update.apply_to(ch.policy)
        if new.fee_rate_ppm < 0 or new.base_fee_msat < 0 or new.cltv_delta <= 0:
            raise NodeRequestError("fee rate and base fee must be >= 0, cltv delta > 0")
        if new.htlc_max_msat > ch.capacity_sat * 1000 or new.htlc_min_msat > new.htlc_max_msat:
            raise NodeRequestError("htlc maximum must lie between the minimum and the capacity")
        if new != ch.policy:
            ch.policy = new
            ch.policy_updates += 1
            self._dirty = True
            self._save()
        return ch.policy

    async def rebalance(
        self, out_channel: str, in_channel: str, amount_msat: int, max_fee_msat: int
    ) -> RebalanceResult:
        """A circular payment through the simulated network: it costs the peer's fee on the
        last hop plus one hop at the network's typical rate (the model the engine uses to
        estimate refill costs), and needs liquidity on both ends."""
        await self._catch_up()
        out, inc = self._channel(out_channel), self._channel(in_channel)
        if out is inc or amount_msat <= 0:
            raise NodeRequestError("a rebalance needs two different channels and an amount")

        def failed(why: str) -> RebalanceResult:
            return RebalanceResult(False, out_channel, in_channel, amount_msat, 0, why)

        minute = self._now_minute()
        if not (self._is_active(out, minute) and self._is_active(inc, minute)):
            return failed("a channel of the route is inactive")
        fee = inc.peer_policy.fee_msat(amount_msat) + amount_msat * REBALANCE_HOP_PPM // 1_000_000
        if fee > max_fee_msat:
            return failed(f"route too expensive: {fee} msat > limit {max_fee_msat} msat")
        if out.local_msat < amount_msat + fee:
            return failed(f"not enough local balance on {out_channel}")
        if inc.remote_msat < amount_msat:
            return failed(f"the peer of {in_channel} lacks the balance to send it back")
        out.local_msat -= amount_msat + fee
        inc.local_msat += amount_msat
        self._dirty = True
        self._save()
        return RebalanceResult(True, out_channel, in_channel, amount_msat, fee, "settled")

    async def close_channel(self, channel_id: str) -> CloseResult:
        """A cooperative close settled at once: the channel leaves the node (its forwards
        stay in the log), our balance goes back on chain. Needs the peer online, like a
        real close; the closing txid is a hash of the channel and its final balance."""
        await self._catch_up()
        try:
            scid = normalize_channel_id(channel_id)
        except ValueError as exc:
            raise NodeRequestError(str(exc)) from exc
        st = self._state
        ch = st.channels.get(scid)
        if ch is None:
            done = next((c for c in st.closed if c.scid == scid), None)
            if done is not None:
                raise NodeRequestError(f"channel {scid} is already closed ({done.closing_txid})")
            raise NodeRequestError(f"unknown channel {scid}")
        minute = self._now_minute()
        if not self._is_active(ch, minute):
            raise NodeRequestError(
                f"the peer of channel {scid} is offline: a cooperative close needs it online"
            )
        closing_txid = hashlib.sha256(
            f"daznode-sim-close:{st.pubkey}:{scid}:{ch.channel_point}:{ch.local_msat}:"
            f"{minute}".encode()
        ).hexdigest()
        del st.channels[scid]
        st.closed.append(
            _ClosedChannel(scid, ch.peer_id, ch.channel_point, closing_txid, ch.local_msat, minute)
        )
        self._active_hour = -1  # the availability cache still holds the channel
        self._dirty = True
        self._save()
        return CloseResult(
            channel_id=scid,
            closing_txid=closing_txid,
            detail=f"simulated cooperative close: {ch.local_msat // 1000} sat back on chain",
        )

    async def describe_graph(self) -> NetworkGraph:
        await self._catch_up()
        st = self._state
        nodes = [*self.network.nodes, GraphNode(st.pubkey, st.config.alias)]
        ours = [
            GraphEdge(
                channel_id=ch.scid,
                node1=min(st.pubkey, ch.peer_id),
                node2=max(st.pubkey, ch.peer_id),
                capacity_sat=ch.capacity_sat,
                node1_policy=ch.policy if st.pubkey < ch.peer_id else ch.peer_policy,
                node2_policy=ch.peer_policy if st.pubkey < ch.peer_id else ch.policy,
            )
            for ch in st.channels.values()
        ]
        return NetworkGraph(nodes=nodes, edges=[*self.network.edges, *ours])

    # -- simulation -------------------------------------------------------------------

    async def _catch_up(self) -> None:
        """Simulate up to now off the event loop (after downtime that can be days of
        minutes); the lock keeps concurrent callers from simulating the same minutes."""
        async with self._lock:
            if self._state.processed_minute < self._now_minute():
                await asyncio.to_thread(self._advance)

    def _now_minute(self) -> int:
        return int(self._clock() // 60)

    def _advance(self) -> None:
        st = self._state
        now = self._now_minute()
        if now - st.processed_minute > MAX_CATCH_UP_MINUTES:
            st.processed_minute = now - MAX_CATCH_UP_MINUTES  # the node was off meanwhile
        if st.processed_minute >= now:
            return
        for minute in range(st.processed_minute, now):
            self._simulate_minute(minute)
        st.processed_minute = now
        if len(st.forwards) > MAX_LOGGED_FORWARDS:
            del st.forwards[: len(st.forwards) - MAX_LOGGED_FORWARDS]
        self._dirty = True
        self._save()

    def _simulate_minute(self, minute: int) -> None:
        st = self._state
        rng = random.Random(f"{st.config.seed}:{minute}")
        attempts = _poisson(rng, st.config.forwards_per_day / 1440 * _diurnal(minute))
        if not attempts:
            return
        channels = self._active_channels(minute // 60)
        if len(channels) < 2:
            return
        offsets = sorted(rng.randrange(60_000_000_000) for _ in range(attempts))
        for offset in offsets:
            self._attempt(rng, channels, minute * 60_000_000_000 + offset)

    def _attempt(self, rng: random.Random, channels: list[_SimChannel], t_ns: int) -> None:
        out = rng.choices(channels, [ch.out_demand for ch in channels])[0]
        amount = _amount_msat(rng)
        if not out.policy.htlc_min_msat <= amount <= out.policy.htlc_max_msat:
            return  # senders see the bounds in gossip and do not try
        fee = out.policy.fee_msat(amount)
        reference = out.competitor_ppm * amount // 1_000_000 + 500
        if rng.random() >= _take_probability(fee, reference):
            return  # the sender found a cheaper route around us
        sources = [ch for ch in channels if ch is not out and ch.remote_msat >= amount + fee]
        if not sources:
            return
        inc = rng.choices(sources, [ch.in_supply * ch.remote_msat for ch in sources])[0]
        st = self._state
        if out.local_msat < amount:
            event = ForwardEvent(
                st.next_index,
                t_ns,
                inc.scid,
                out.scid,
                amount + fee,
                amount,
                0,
                "local_failed",
                "WIRE_TEMPORARY_CHANNEL_FAILURE",
            )
        else:
            out.local_msat -= amount
            inc.local_msat += amount + fee
            event = ForwardEvent(st.next_index, t_ns, inc.scid, out.scid, amount + fee, amount, fee)
        st.forwards.append(event)
        st.next_index += 1

    def _active_channels(self, hour: int) -> list[_SimChannel]:
        # Availability changes hourly; cache it so a minute costs no per-channel RNG setup.
        if self._active_hour != hour:
            self._active_hour = hour
            self._active = [
                ch for ch in self._state.channels.values() if self._is_active(ch, hour * 60)
            ]
        return self._active

    def _is_active(self, ch: _SimChannel, minute: int) -> bool:
        if ch.uptime >= 1.0:
            return True
        hour = minute // 60
        return random.Random(f"{self._state.config.seed}:{ch.scid}:{hour}").random() < ch.uptime

    def _channel(self, channel_id: str) -> _SimChannel:
        ch = self._state.channels.get(channel_id)
        if ch is None:
            raise NodeRequestError(f"unknown channel {channel_id}")
        return ch

    def _channel_view(self, ch: _SimChannel, minute: int) -> Channel:
        return Channel(
            channel_id=ch.scid,
            native_id=ch.scid,
            channel_point=ch.channel_point,
            peer_id=ch.peer_id,
            peer_alias=ch.peer_alias,
            capacity_sat=ch.capacity_sat,
            local_balance_msat=ch.local_msat,
            remote_balance_msat=ch.remote_msat,
            active=self._is_active(ch, minute),
            private=False,
            local_policy=ch.policy,
            remote_policy=ch.peer_policy,
        )

    # -- persistence ------------------------------------------------------------------

    def _save(self) -> None:
        if not self._state_path or not self._dirty:
            return
        st = self._state
        doc = {
            "version": STATE_VERSION,
            "pubkey": st.pubkey,
            "config": asdict(st.config),
            "processed_minute": st.processed_minute,
            "next_index": st.next_index,
            "channels": [asdict(ch) for ch in st.channels.values()],
            "forwards": [list(asdict(ev).values()) for ev in st.forwards],
            "closed": [asdict(c) for c in st.closed],
        }
        tmp = self._state_path.with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc, separators=(",", ":")))
        os.replace(tmp, self._state_path)  # atomic: a crash never leaves half a file
        self._dirty = False

    @staticmethod
    def _load(path: Path) -> _SimState | None:
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ValueError(f"simulated node state {path} is unreadable: {exc}") from exc
        if not isinstance(doc, dict):
            raise ValueError(f"simulated node state {path} is unreadable: not a JSON object")
        if doc.get("version") != STATE_VERSION:
            return None
        try:
            channels = {}
            for raw in doc["channels"]:
                raw["policy"] = RoutingPolicy(**raw["policy"])
                raw["peer_policy"] = RoutingPolicy(**raw["peer_policy"])
                channels[raw["scid"]] = _SimChannel(**raw)
            return _SimState(
                pubkey=doc["pubkey"],
                config=SimConfig(**doc["config"]),
                channels=channels,
                processed_minute=doc["processed_minute"],
                next_index=doc["next_index"],
                forwards=[ForwardEvent(*row) for row in doc["forwards"]],
                # absent in files written before closes existed: nothing closed then
                closed=[_ClosedChannel(**raw) for raw in doc.get("closed", [])],
            )
        except (KeyError, TypeError, AttributeError) as exc:
            # A structurally broken file is as unreadable as a truncated one.
            raise ValueError(
                f"simulated node state {path} is unreadable: {type(exc).__name__}: {exc}"
            ) from exc
