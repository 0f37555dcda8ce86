"""A score for any public node, from the graph alone: how central it is, how well connected,
how much capacity it commits, how its fees sit against the network, how reliable its gossip
looks. Each component is 0-100; the composite is their weighted mean.

Position components compare a node with all nodes of the graph: half its percentile (a node
with no shortest path through it scores 0, not the median of the many such nodes), half its
share of the best node's value (log share for the heavy-tailed betweenness, channel count and
capacity). Percentiles alone crowd the top: on mainnet the 171 best-connected nodes all fell
between 99 and 100, a 179-channel node 0.3 below ACINQ's 1,989. Scores compare nodes of one
graph and move only when the network around a node moves.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

from .node_source import NetworkGraph

WEIGHTS: dict[str, float] = {
    "centrality": 0.30,
    "closeness": 0.15,
    "connectivity": 0.15,
    "capacity": 0.20,
    "fees": 0.10,
    "reliability": 0.10,
}
COMPONENTS = tuple(WEIGHTS)
FEE_TOLERANCE = math.log(20)  # 20x away from the network median scores 0
STALE_SECONDS = 14 * 86400  # a channel_update older than two weeks looks abandoned


@dataclass(slots=True)
class NodeFacts:
    """What the gossip says about one node."""

    pubkey: str
    alias: str = ""
    channels: int = 0
    capacity_sat: int = 0
    fee_ppms: list[int] = field(default_factory=list)  # its outbound fee rates, enabled only
    directions: int = 0  # its outbound directions with a policy
    enabled: int = 0
    last_update: int = 0

    @property
    def median_fee_ppm(self) -> int | None:
        return int(statistics.median(self.fee_ppms)) if self.fee_ppms else None


@dataclass(frozen=True, slots=True)
class NodeScore:
    pubkey: str
    alias: str
    channels: int
    capacity_sat: int
    median_fee_ppm: int | None
    betweenness: float
    closeness: float
    eigenvector: float
    components: dict[str, float]
    composite: float
    reasons: tuple[str, ...]


def node_facts(graph: NetworkGraph) -> dict[str, NodeFacts]:
    facts = {n.pubkey: NodeFacts(n.pubkey, n.alias, last_update=n.last_update) for n in graph.nodes}
    for e in graph.edges:
        for side, policy in ((e.node1, e.node1_policy), (e.node2, e.node2_policy)):
            f = facts.setdefault(side, NodeFacts(side))
            f.channels += 1
            f.capacity_sat += e.capacity_sat
            if policy is None:
                continue
            f.directions += 1
            f.last_update = max(f.last_update, e.last_update)
            if not policy.disabled:
                f.enabled += 1
                f.fee_ppms.append(policy.fee_rate_ppm)
    return facts


class Percentile:
    """Share of the population strictly below a value, 0-100; zero and below score 0."""

    def __init__(self, values: list[float]):
        self._sorted = sorted(values)

    def __call__(self, value: float) -> float:
        if value <= 0 or not self._sorted:
            return 0.0
        return 100.0 * bisect.bisect_left(self._sorted, value) / len(self._sorted)


class PositionScale:
    """0-100 for one position measure: the mean of its percentile and its share of the best
    value. The share is log(v / smallest positive) / log(best / smallest positive) when
    `log` (heavy tails: 1 channel, 40, 2,000), v / best otherwise. Zero and below score 0;
    it rises with the value; the best node's share is 100."""

    def __init__(self, values: list[float], log: bool):
        self.percentile = Percentile(values)
        positive = [v for v in values if v > 0]
        self._lo = min(positive, default=0.0)
        self._hi = max(positive, default=0.0)
        self._log = log

    def share(self, value: float) -> float:
        if value <= 0 or self._hi <= 0:
            return 0.0
        if not self._log:
            return 100.0 * min(1.0, value / self._hi)
        if self._hi <= self._lo:
            return 100.0
        span = math.log(self._hi / self._lo)
        return 100.0 * max(0.0, min(1.0, math.log(value / self._lo) / span))

    def __call__(self, value: float) -> float:
        if value <= 0:
            return 0.0
        return (self.percentile(value) + self.share(value)) / 2


def fee_component(median_fee: int | None, network_median: int) -> float:
    """100 at the network median, falling with the log distance from it (both ways: fees far
    below it do not pay for the liquidity, far above it route nothing)."""
    if median_fee is None:
        return 0.0
    distance = abs(math.log((median_fee + 1) / (network_median + 1)))
    return round(100.0 * max(0.0, 1.0 - distance / FEE_TOLERANCE), 2)


def reliability_component(f: NodeFacts, now: int) -> float:
    if not f.directions:
        return 0.0
    score = 100.0 * f.enabled / f.directions
    if f.last_update and now - f.last_update > STALE_SECONDS:
        score *= 0.5
    return round(score, 2)


def score_nodes(
    graph: NetworkGraph,
    betweenness: Mapping[str, float],
    closeness: Mapping[str, float],
    eigenvector: Mapping[str, float],
    now: int = 0,
) -> list[NodeScore]:
    """Every node of the graph, best composite first (ties by pubkey, so ranks are stable)."""
    facts = node_facts(graph)
    fees = [p for f in facts.values() for p in f.fee_ppms]
    network_fee = int(statistics.median(fees)) if fees else 0
    scales = {
        "centrality": PositionScale([betweenness.get(k, 0.0) for k in facts], log=True),
        "closeness": PositionScale([closeness.get(k, 0.0) for k in facts], log=False),
        "connectivity": PositionScale([float(f.channels) for f in facts.values()], log=True),
        "capacity": PositionScale([float(f.capacity_sat) for f in facts.values()], log=True),
    }
    out = [
        _score_one(f, betweenness, closeness, eigenvector, scales, network_fee, now)
        for f in facts.values()
    ]
    out.sort(key=lambda s: (-s.composite, s.pubkey))
    return out


def _score_one(f, betweenness, closeness, eigenvector, scales, network_fee, now) -> NodeScore:
    b, c = betweenness.get(f.pubkey, 0.0), closeness.get(f.pubkey, 0.0)
    comps = {
        "centrality": round(scales["centrality"](b), 2),
        "closeness": round(scales["closeness"](c), 2),
        "connectivity": round(scales["connectivity"](f.channels), 2),
        "capacity": round(scales["capacity"](f.capacity_sat), 2),
        "fees": fee_component(f.median_fee_ppm, network_fee),
        "reliability": reliability_component(f, now),
    }
    composite = round(sum(WEIGHTS[k] * v for k, v in comps.items()), 2)
    return NodeScore(
        pubkey=f.pubkey,
        alias=f.alias,
        channels=f.channels,
        capacity_sat=f.capacity_sat,
        median_fee_ppm=f.median_fee_ppm,
        betweenness=b,
        closeness=c,
        eigenvector=eigenvector.get(f.pubkey, 0.0),
        components=comps,
        composite=composite,
        reasons=_reasons(f, b, scales, network_fee),
    )


def _reasons(
    f: NodeFacts, betweenness: float, scales: dict[str, PositionScale], network_fee: int
) -> tuple[str, ...]:
    channels = scales["connectivity"].percentile(f.channels)
    capacity = scales["capacity"].percentile(f.capacity_sat)
    paths = scales["centrality"].percentile(betweenness)
    out = [
        f"{f.channels:,} channels, {f.capacity_sat:,} sat: more than "
        f"{percent_text(channels)} / {percent_text(capacity)} of nodes",
        f"more shortest paths through it than {percent_text(paths)} of nodes",
    ]
    if f.median_fee_ppm is None:
        out.append("no enabled outbound policy: its fees are unknown")
    else:
        out.append(f"median outbound fee {f.median_fee_ppm} ppm (network {network_fee} ppm)")
    if f.directions:
        out.append(f"{f.enabled} of {f.directions} outbound directions enabled")
    return tuple(out)


def percent_text(value: float) -> str:
    """A percentile in words: whole numbers, one decimal near the top (never "100 %")."""
    return f"{value:.0f} %" if value < 99 else f"{min(value, 99.99):.2f} %"
