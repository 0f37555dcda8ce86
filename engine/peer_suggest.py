"""Peers worth opening a channel to, for any public node.

A candidate is worth what the new channel adds: the nodes it brings within three hops that the
node does not reach in three hops today (senders rarely route over more), how central the
candidate is (payments already flow through it), its capacity, whether its fees sit near the
network's, and how reliable its gossip looks. Existing peers are never suggested.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from .node_score import NodeScore, Percentile, percent_text

WEIGHTS = {"reach": 0.40, "centrality": 0.25, "capacity": 0.15, "fees": 0.10, "reliability": 0.10}
HOPS = 3  # payments rarely take longer routes; fees and failure odds grow with each hop
MIN_CANDIDATE_CHANNELS = 2


@dataclass(frozen=True, slots=True)
class PeerSuggestion:
    pubkey: str
    alias: str
    score: float  # 0-100
    confidence: float  # 0-1
    reach_gain: int  # nodes newly within HOPS hops
    components: dict[str, float]
    reasons: tuple[str, ...]


def within_hops(adjacency: Mapping[str, Collection[str]], start: str, hops: int) -> set[str]:
    seen = {start}
    frontier = {start}
    for _ in range(hops):
        nxt: set[str] = set()
        for n in frontier:
            nxt.update(adjacency.get(n, ()))
        frontier = nxt - seen
        if not frontier:
            break
        seen |= frontier
    return seen


class ReachSets:
    """Node sets as bitmasks over one graph's nodes, and each candidate's (HOPS-1)-hop set,
    memoised: a node's gain from a candidate is then one AND and a bit count, where a set
    difference cost a lookup per node (the 200 candidates of a mainnet lookup reach about
    3,800 nodes each). Depends on the graph only: the service keeps one per graph version."""

    def __init__(self, adjacency: Mapping[str, Collection[str]]) -> None:
        # Fixed at creation, so that threads may share it (the service's lookups run in them).
        self.adjacency = adjacency
        nodes = dict.fromkeys(adjacency)
        for peers in adjacency.values():
            nodes.update(dict.fromkeys(peers))
        self._bit = {n: i for i, n in enumerate(nodes)}
        self._size = len(self._bit) // 8 + 1
        self._nearby: dict[str, int] = {}

    def mask(self, nodes: Collection[str]) -> int:
        bits = bytearray(self._size)
        for n in nodes:
            i = self._bit[n]
            bits[i >> 3] |= 1 << (i & 7)
        return int.from_bytes(bits, "little")

    def nearby(self, node: str) -> int:
        """The nodes within HOPS-1 hops of `node`: after opening node-c, everything within
        HOPS-1 hops of c is within HOPS hops of node."""
        found = self._nearby.get(node)
        if found is None:
            found = self._nearby[node] = self.mask(within_hops(self.adjacency, node, HOPS - 1))
        return found

    def __len__(self) -> int:
        return len(self._nearby)


def suggest_peers(
    node: str,
    adjacency: Mapping[str, Collection[str]],
    scores: Mapping[str, NodeScore],
    ranked: list[str],
    limit: int = 10,
    pool: int = 200,
    nearby: ReachSets | None = None,
    central: Percentile | None = None,
) -> list[PeerSuggestion]:
    """`ranked`: pubkeys best composite first; the `pool` best non-peers are examined (the
    rest are unlikely to beat them and cost a 2-hop expansion each). `nearby` memoises those
    expansions and `central` is the betweenness percentile over `scores` (built here when
    omitted): both depend on the graph only, so the service keeps them per graph version."""
    peers = set(adjacency.get(node, ()))
    reached = within_hops(adjacency, node, HOPS)
    candidates = [
        p
        for p in ranked
        if p != node
        and p not in peers
        and p in scores
        and scores[p].channels >= MIN_CANDIDATE_CHANNELS
    ][:pool]
    sets = ReachSets(adjacency) if nearby is None else nearby
    outside = ~sets.mask(reached)
    gains = {c: (sets.nearby(c) & outside).bit_count() for c in candidates}
    best_gain = max(gains.values(), default=0) or 1
    # The reasons quote the plain percentile; the centrality component blends it (node_score).
    central = central or betweenness_percentile(scores)
    out = [
        _suggestion(scores[c], gains[c], best_gain, len(reached), central(scores[c].betweenness))
        for c in candidates
    ]
    out.sort(key=lambda s: (-s.score, s.pubkey))
    return out[:limit]


def betweenness_percentile(scores: Mapping[str, NodeScore]) -> Percentile:
    return Percentile([s.betweenness for s in scores.values()])


def _suggestion(
    s: NodeScore, gain: int, best_gain: int, reached: int, central_pct: float
) -> PeerSuggestion:
    comps = {
        "reach": round(100.0 * gain / best_gain, 2),
        "centrality": s.components["centrality"],
        "capacity": s.components["capacity"],
        "fees": s.components["fees"],
        "reliability": s.components["reliability"],
    }
    score = round(sum(WEIGHTS[k] * v for k, v in comps.items()), 2)
    # Sure of the gain when the candidate's gossip is complete and it is more than a leaf.
    confidence = round(s.components["reliability"] / 100 * min(1.0, s.channels / 5), 2)
    reasons = [
        f"brings {gain:,} more nodes within {HOPS} hops (reached today: {reached:,})",
        f"more central than {percent_text(central_pct)} of nodes",
        f"{s.channels} channels, {s.capacity_sat:,} sat",
    ]
    if s.median_fee_ppm is not None:
        reasons.append(f"median outbound fee {s.median_fee_ppm} ppm")
    return PeerSuggestion(s.pubkey, s.alias, score, confidence, gain, comps, tuple(reasons))
