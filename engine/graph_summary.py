"""What the engine needs from the public graph, in one pass over it (O(channels)).

Per node: channel count, total capacity, and the capacity-weighted median fee rate that
other nodes charge to forward into it (CLBOSS's survey of competitors); for the network:
median fee rate of enabled directions and median node degree.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from .metrics import NetworkContext, PeerInfo
from .node_source import NetworkGraph


def weighted_median(pairs: list[tuple[int, int]]) -> int | None:
    """Median of values weighted by capacity; None when there is nothing to weigh."""
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    acc = 0
    for value, weight in sorted(pairs):
        acc += weight
        if acc * 2 >= total:
            return value
    return sorted(pairs)[-1][0]


def summarize(
    graph: NetworkGraph,
    our_pubkey: str,
    *,
    onchain_feerate_sat_vb: int = 10,
    betweenness: dict[str, float] | None = None,
    now: int = 0,
) -> NetworkContext:
    degree: dict[str, int] = defaultdict(int)
    capacity: dict[str, int] = defaultdict(int)
    into: dict[str, list[tuple[int, int]]] = defaultdict(list)
    fees: list[int] = []
    for e in graph.edges:
        for node in (e.node1, e.node2):
            degree[node] += 1
            capacity[node] += e.capacity_sat
        for src, dst, pol in (
            (e.node1, e.node2, e.node1_policy),
            (e.node2, e.node1, e.node2_policy),
        ):
            if pol is None or pol.disabled:
                continue
            fees.append(pol.fee_rate_ppm)
            if src != our_pubkey:  # our own fee is not a competitor's
                into[dst].append((pol.fee_rate_ppm, e.capacity_sat))
    peers = {
        node: PeerInfo(
            channels=degree[node],
            capacity_sat=capacity[node],
            competitor_fee_ppm=weighted_median(into[node]),
            competitor_count=len(into[node]),
            betweenness=(betweenness or {}).get(node),
        )
        for node in degree
    }
    return NetworkContext(
        graph_available=bool(graph.edges),
        median_fee_ppm=int(statistics.median(fees)) if fees else 100,
        median_channels=int(statistics.median(degree.values())) if degree else 2,
        our_channels=degree.get(our_pubkey, 0),
        our_betweenness=(betweenness or {}).get(our_pubkey),
        peers=peers,
        onchain_feerate_sat_vb=onchain_feerate_sat_vb,
        now=now,
    )
