"""How senders see the network: route costs from a few origins to every node.

The simulator needs, for many payments, the cheapest route that avoids our node and the
cheapest ways to reach our peers and to go on from them. Running a search per payment on
the mainnet graph is too slow in Python, so we search once per origin and size class:
from every sampled sender (routes around us, and to our peers) and from every peer of ours
(routes onward after our hop), over the graph without our node. The simulator composes a
route through us from two such searches and our own hop.

A hop's cost is what the sender weighs (docs/SIMULATION.md): the fee its forwarder charges
plus a risk penalty after LDK's ProbabilisticScorer defaults: 500 msat per hop, 8,192 msat
per 2^30 of the amount, and the liquidity penalty (30,000 msat + 192 msat per 2^20 of the
amount) x -log10 of the success probability. Without any history the success probability of
a hop is that of a balance spread uniformly over the capacity, (capacity - amount) /
capacity (Pickhardt and Richter); the same model decides whether a remote hop really
succeeds. A sender pays no fee on its own first channel and knows its own balance.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass

from .node_source import GraphEdge, RoutingPolicy

# Payment size classes: routes are searched at each class's representative amount.
CLASS_AMOUNTS_MSAT = (10_000_000, 150_000_000, 1_500_000_000)
CLASS_UPPER_MSAT = (50_000_000, 500_000_000)  # an amount below the first bound is class 0, ...

BASE_PENALTY_MSAT = 500
BASE_PENALTY_AMOUNT_MULTIPLIER = 8_192  # msat per 2^30 msat of the amount
LIQUIDITY_PENALTY_MSAT = 30_000
LIQUIDITY_PENALTY_AMOUNT_MULTIPLIER = 192  # msat per 2^20 msat of the amount
UNREACHABLE = math.inf


def amount_class(amount_msat: int) -> int:
    for i, upper in enumerate(CLASS_UPPER_MSAT):
        if amount_msat < upper:
            return i
    return len(CLASS_UPPER_MSAT)


def success_probability(amount_msat: int, capacity_msat: int) -> float:
    """A uniformly distributed balance covers the amount with this probability."""
    if capacity_msat <= amount_msat:
        return 0.0
    return (capacity_msat - amount_msat) / capacity_msat


def hop_penalty_msat(amount_msat: int, probability: float) -> float:
    """What a sender would pay to avoid one hop of this success probability."""
    base = BASE_PENALTY_MSAT + BASE_PENALTY_AMOUNT_MULTIPLIER * amount_msat / 2**30
    if probability >= 1.0:
        return base
    if probability <= 0.0:
        return UNREACHABLE
    multiplier = LIQUIDITY_PENALTY_MSAT + LIQUIDITY_PENALTY_AMOUNT_MULTIPLIER * amount_msat / 2**20
    return base + multiplier * -math.log10(probability)


def usable(policy: RoutingPolicy | None, capacity_msat: int, amount_msat: int) -> bool:
    return (
        policy is not None
        and not policy.disabled
        and policy.htlc_min_msat <= amount_msat <= policy.htlc_max_msat
        and amount_msat < capacity_msat
    )


Hop = tuple[int, float, float, float]  # (next node, cost, fee msat, success probability)


@dataclass(slots=True)
class ClassGraph:
    """The directed graph usable for one payment size, without our node."""

    amount_msat: int
    out: list[tuple[Hop, ...]]  # u -> the hops leaving u
    into: list[tuple[Hop, ...]]  # v -> the hops arriving at v, with u as "next node"


def build_class_graph(
    n: int, edges: Iterable[tuple[int, int, GraphEdge]], amount_msat: int, skip: int
) -> ClassGraph:
    """`edges`: (index of node1, index of node2, edge). Parallel channels between the same
    two nodes keep the cheapest usable one per direction (what a sender would pick)."""
    best: list[dict[int, Hop]] = [{} for _ in range(n)]
    for a, b, edge in edges:
        if skip in (a, b) or a == b:
            continue
        capacity = edge.capacity_sat * 1000
        for u, v, policy in ((a, b, edge.node1_policy), (b, a, edge.node2_policy)):
            if not usable(policy, capacity, amount_msat):
                continue
            assert policy is not None
            p = success_probability(amount_msat, capacity)
            fee = policy.fee_msat(amount_msat)
            cost = fee + hop_penalty_msat(amount_msat, p)
            old = best[u].get(v)
            if old is None or cost < old[1]:
                best[u][v] = (v, cost, float(fee), p)
    out = [tuple(hops.values()) for hops in best]
    into_lists: list[list[Hop]] = [[] for _ in range(n)]
    for u, hops in enumerate(out):
        for v, cost, fee, p in hops:
            into_lists[v].append((u, cost, fee, p))
    return ClassGraph(amount_msat, out, [tuple(x) for x in into_lists])


@dataclass(slots=True)
class RouteTree:
    """Cheapest routes from one origin to every node (UNREACHABLE when there is none):
    the sender's cost, the fees paid and the probability that every hop succeeds. With
    `ranks` > 1, the next cheapest routes too: rank r of node v at index v * (ranks - 1) +
    r - 1 of the `more_*` arrays (a sender's fallbacks after a failure)."""

    origin: int
    cost: array  # float32: precise enough for msat costs, half the memory of float64
    fee: array
    prob: array
    ranks: int = 1
    more_cost: array | None = None
    more_fee: array | None = None
    more_prob: array | None = None

    def reach(self, node: int) -> tuple[float, float, float]:
        return self.cost[node], self.fee[node], self.prob[node]


def route_tree(g: ClassGraph, origin: int, origin_is_sender: bool, ranks: int = 1) -> RouteTree:
    """Dijkstra from `origin`, keeping the `ranks` cheapest routes to every node (a node is
    settled once per rank; a route never turns straight back to the node it came from). A
    sender pays no fee on its first hop and knows its balance (only the base penalty
    counts); a forwarding origin (one of our peers, forwarding what we handed it) charges
    its fee like any hop."""
    n = len(g.out)
    cost = [UNREACHABLE] * (n * ranks)
    fee = [0.0] * (n * ranks)
    prob = [0.0] * (n * ranks)
    settled = bytearray(n)
    settled[origin] = ranks  # no route back to the origin is worth keeping
    cost[origin * ranks], prob[origin * ranks] = 0.0, 1.0
    own_hop = BASE_PENALTY_MSAT + BASE_PENALTY_AMOUNT_MULTIPLIER * g.amount_msat / 2**30
    pop, push = heapq.heappop, heapq.heappush
    heap: list[tuple[float, int, float, float, int]] = []
    for v, hop_cost, _fee, _p in g.out[origin]:
        if origin_is_sender:
            push(heap, (own_hop, v, 0.0, 1.0, origin))
        else:
            push(heap, (hop_cost, v, _fee, _p, origin))
    # The `ranks` cheapest costs pushed per node so far, and the dearest of them once there
    # are `ranks` (-1 once the node is settled `ranks` times): a label at or above it cannot
    # become one of the node's kept routes, and one comparison tells.
    pushed: list[list[float]] = [[] for _ in range(n)]
    bar = [UNREACHABLE] * n
    bar[origin] = -1.0
    while heap:
        c, u, fu, pu, came_from = pop(heap)
        r = settled[u]
        if r >= ranks:
            continue
        settled[u] = r + 1
        if r + 1 == ranks:
            bar[u] = -1.0
        slot = u * ranks + r
        cost[slot], fee[slot], prob[slot] = c, fu, pu
        for v, hop_cost, hop_fee, p in g.out[u]:
            nc = c + hop_cost
            if nc >= bar[v] or v == came_from:
                continue
            best = pushed[v]
            insort(best, nc)
            if len(best) > ranks:
                best.pop()
            if len(best) == ranks and bar[v] > 0:
                bar[v] = best[-1]
            push(heap, (nc, v, fu + hop_fee, pu * p, u))
    if ranks == 1:
        return RouteTree(origin, array("f", cost), array("f", fee), array("f", prob))
    return RouteTree(
        origin,
        array("f", cost[::ranks]),
        array("f", fee[::ranks]),
        array("f", prob[::ranks]),
        ranks,
        _next_ranks(cost, ranks),
        _next_ranks(fee, ranks),
        _next_ranks(prob, ranks),
    )


def _next_ranks(values: list[float], ranks: int) -> array:
    """Ranks 2.. of every node, node by node: slot v * (ranks - 1) + r - 1 holds rank r + 1."""
    out = array("f", bytes(4 * (len(values) // ranks) * (ranks - 1)))
    for r in range(1, ranks):
        out[r - 1 :: ranks - 1] = array("f", values[r::ranks])
    return out


def alternatives(tree: RouteTree, target: int) -> list[tuple[float, float, float]]:
    """The routes the tree kept from its origin to `target`, cheapest first: (cost, fee,
    probability). The first is the tree's own route, the others its next ranks."""
    if tree.cost[target] == UNREACHABLE:
        return []
    found = [tree.reach(target)]
    if tree.more_cost is not None:
        k = tree.ranks - 1
        for slot in range(target * k, target * k + k):
            if tree.more_cost[slot] == UNREACHABLE:
                break
            found.append((tree.more_cost[slot], tree.more_fee[slot], tree.more_prob[slot]))
    return found
