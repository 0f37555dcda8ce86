"""A generated channel graph whose statistics resemble mainnet, for when no snapshot is at hand.

Shape taken from the 2026-02-03 mainnet snapshot (see ../shared/data): heavy-tailed degrees
(most nodes have one or two channels, a few hubs have thousands), log-normal capacities,
a fee-rate median around 100 ppm with a long tail, base fee 0 on about 45 % of directions,
CLTV delta 80 most often. Deterministic for a seed.
"""

from __future__ import annotations

import hashlib
import math
import random

from .node_source import GraphEdge, GraphNode, NetworkGraph, RoutingPolicy

_ALIAS_WORDS = (
    "amber",
    "bolt",
    "cedar",
    "delta",
    "ember",
    "falcon",
    "granite",
    "harbor",
    "iris",
    "juniper",
    "kestrel",
    "lumen",
    "maple",
    "nova",
    "onyx",
    "pine",
    "quartz",
    "raven",
    "sierra",
    "tidal",
    "umbra",
    "vortex",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
)


def pubkey_for(seed: str) -> str:
    """A well-formed compressed-pubkey-looking id (not a real key: never signs anything)."""
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return ("02" if int(digest[-1], 16) % 2 == 0 else "03") + digest


def random_policy(rng: random.Random, capacity_sat: int) -> RoutingPolicy:
    # Fee rate: log-normal with median ~100 ppm; a share of nodes charge (almost) nothing.
    if rng.random() < 0.12:
        fee_rate = rng.choice((0, 1, 1, 2, 5))
    else:
        fee_rate = int(min(5000, math.exp(rng.gauss(math.log(125), 1.25))))
    base = 0 if rng.random() < 0.45 else rng.choice((1, 100, 1000, 1000, 1000))
    cltv = rng.choices((40, 80, 144, 34), weights=(15, 55, 25, 5))[0]
    return RoutingPolicy(
        base_fee_msat=base,
        fee_rate_ppm=fee_rate,
        cltv_delta=cltv,
        htlc_min_msat=rng.choice((1, 1000, 1000)),
        htlc_max_msat=capacity_sat * 1000 * 99 // 100,
        disabled=rng.random() < 0.04,
    )


def random_capacity(rng: random.Random) -> int:
    """Log-normal around 2.5 M sat, clipped to [20k, 500M] sat, rounded to 10k sat."""
    sat = math.exp(rng.gauss(math.log(2_500_000), 1.3))
    return max(20_000, min(500_000_000, int(sat) // 10_000 * 10_000))


def generate_network(num_nodes: int = 2000, seed: int = 1) -> NetworkGraph:
    """Preferential attachment: each newcomer opens a heavy-tailed number of channels to
    existing nodes chosen with probability proportional to their current degree."""
    if num_nodes < 10:
        raise ValueError("a generated network needs at least 10 nodes")
    rng = random.Random(seed)
    pubkeys = [pubkey_for(f"daznode-generated-{seed}-{i}") for i in range(num_nodes)]
    nodes = [
        GraphNode(pubkey=pk, alias=f"{rng.choice(_ALIAS_WORDS)}-{i}")
        for i, pk in enumerate(pubkeys)
    ]
    endpoints: list[int] = [0, 1, 2, 0, 1, 2]  # node index repeated once per channel end
    pairs = [(0, 1), (1, 2), (0, 2)]
    for new in range(3, num_nodes):
        # Pareto-distributed channel count: median 1-2, a long tail of well-connected nodes.
        wanted = min(new, max(1, int(rng.paretovariate(1.6))))
        peers: set[int] = set()
        while len(peers) < wanted:
            peers.add(rng.choice(endpoints))
        for peer in peers:
            pairs.append((new, peer))
            endpoints.extend((new, peer))
    edges = []
    for idx, (a, b) in enumerate(pairs):
        capacity = random_capacity(rng)
        n1, n2 = sorted((pubkeys[a], pubkeys[b]))
        scid = f"{700_000 + idx // 500}x{idx % 500}x{rng.randrange(2)}"  # unique per idx
        edges.append(
            GraphEdge(
                channel_id=scid,
                node1=n1,
                node2=n2,
                capacity_sat=capacity,
                node1_policy=random_policy(rng, capacity),
                node2_policy=random_policy(rng, capacity),
            )
        )
    return NetworkGraph(nodes=nodes, edges=edges)
