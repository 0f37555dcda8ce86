"""Node scores, peer suggestions and graph walks: hand-computed cases and networkx checks."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from engine.graph_walk import distances_within, neighbourhood, shortest_path
from engine.node_score import (
    WEIGHTS,
    NodeFacts,
    Percentile,
    PositionScale,
    fee_component,
    node_facts,
    percent_text,
    reliability_component,
    score_nodes,
)
from engine.node_source import GraphEdge, GraphNode, NetworkGraph, RoutingPolicy
from engine.peer_suggest import ReachSets, suggest_peers, within_hops


def key(i: int) -> str:
    return "02" + f"{i:064x}"


def policy(ppm: int, disabled: bool = False) -> RoutingPolicy:
    return RoutingPolicy(
        base_fee_msat=0,
        fee_rate_ppm=ppm,
        cltv_delta=40,
        htlc_min_msat=1,
        htlc_max_msat=10**9,
        disabled=disabled,
    )


def graph_of(edges: list[tuple[int, int]], ppm: int = 100, capacity: int = 1_000_000):
    nodes = sorted({n for e in edges for n in e})
    return NetworkGraph(
        nodes=[GraphNode(key(n), f"n{n}") for n in nodes],
        edges=[
            GraphEdge(f"{i}x0x0", key(a), key(b), capacity, policy(ppm), policy(ppm))
            for i, (a, b) in enumerate(edges, start=1)
        ],
    )


def adjacency(edges: list[tuple[int, int]]) -> dict[str, frozenset[str]]:
    g = nx.Graph()
    g.add_edges_from((key(a), key(b)) for a, b in edges)
    return {n: frozenset(g[n]) for n in g}


# -- node facts and components -------------------------------------------------------------


def test_facts_count_each_side_and_only_enabled_fees():
    g = graph_of([(1, 2), (1, 3)])
    g.edges[1] = GraphEdge("9x0x0", key(1), key(3), 500, policy(900, disabled=True), None)
    facts = node_facts(g)
    one = facts[key(1)]
    assert (one.channels, one.capacity_sat) == (2, 1_000_500)
    assert one.fee_ppms == [100] and (one.directions, one.enabled) == (2, 1)
    three = facts[key(3)]
    assert three.directions == 0 and three.median_fee_ppm is None


def test_percentile_is_share_strictly_below_and_zero_for_nothing():
    p = Percentile([0, 0, 1, 2, 3])
    assert p(0) == 0.0
    assert p(1) == 40.0  # two of five below
    assert p(3) == 80.0
    assert p(10) == 100.0


def test_position_scale_keeps_the_top_apart_and_rises_with_the_value():
    # mainnet-like channel counts: most nodes with one or two, a few hubs
    counts = [1] * 9000 + [2] * 4000 + [7] * 2000 + [40] * 300 + [83, 179, 1771, 1989]
    scale = PositionScale([float(c) for c in counts], log=True)
    assert scale.percentile(179) > 99.9 and scale.percentile(1989) > 99.9  # crowded
    assert scale(1989) == pytest.approx(100.0, abs=0.01)  # share 100, percentile (n-1)/n
    assert scale(1989) - scale(179) > 10  # kept apart
    assert scale(0) == 0 and scale(-1) == 0
    values = [scale(c) for c in sorted(set(counts))]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert PositionScale([0.1, 0.2, 0.4], log=False).share(0.2) == pytest.approx(50.0)
    assert PositionScale([0.0, 5.0], log=True)(5.0) == pytest.approx(75.0)  # one positive value


def test_fee_component_peaks_at_the_median_both_ways():
    assert fee_component(100, 100) == 100.0
    assert fee_component(None, 100) == 0.0
    assert fee_component(999, 99) == fee_component(9, 99)  # symmetric in log space (x10)
    assert fee_component(1999, 99) == 0.0  # 20x away scores 0
    assert 0 < fee_component(300, 100) < 100


def test_reliability_halves_for_stale_gossip():
    f = NodeFacts("x", directions=4, enabled=3, last_update=1000)
    assert reliability_component(f, now=1000) == 75.0
    assert reliability_component(f, now=1000 + 15 * 86400) == 37.5
    assert reliability_component(NodeFacts("y"), now=0) == 0.0


def test_star_centre_ranks_first_with_every_component_explained():
    edges = [(0, i) for i in range(1, 6)] + [(5, 6)]
    g = graph_of(edges)
    between = nx.betweenness_centrality(nx.Graph([(key(a), key(b)) for a, b in edges]))
    closeness = {k: 0.5 for k in between}
    scores = score_nodes(g, between, closeness, {}, now=0)
    assert scores[0].pubkey == key(0)
    top = scores[0]
    # 6 of 7 nodes strictly less central, and it is the most central: (6/7 + 1) / 2
    assert top.components["centrality"] == pytest.approx(50 * (6 / 7 + 1), abs=0.01)
    assert top.composite == round(sum(WEIGHTS[k] * v for k, v in top.components.items()), 2)
    assert top.channels == 5 and any("5 channels" in r for r in top.reasons)
    leaves = [s for s in scores if s.channels == 1]
    assert all(s.components["centrality"] == 0 for s in leaves)
    assert [s.composite for s in scores] == sorted((s.composite for s in scores), reverse=True)


# -- walks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_walks_match_networkx(seed):
    g = nx.gnm_random_graph(60, 90, seed=seed)
    adj = {key(n): frozenset(key(m) for m in g[n]) for n in g}
    rng = random.Random(seed)
    for _ in range(10):
        a, b = rng.randrange(60), rng.randrange(60)
        path = shortest_path(adj, key(a), key(b))
        if nx.has_path(g, a, b):
            assert path is not None and len(path) - 1 == nx.shortest_path_length(g, a, b)
            assert all(path[i + 1] in adj[path[i]] for i in range(len(path) - 1))
        else:
            assert path is None
        expected = nx.single_source_shortest_path_length(g, a, cutoff=2)
        assert distances_within(adj, key(a), 2) == {key(n): d for n, d in expected.items()}


def test_neighbourhood_keeps_nearest_and_best_connected_first():
    edges = [(0, 1), (0, 2), (1, 3), (1, 4), (1, 5), (2, 6), (6, 7)]
    adj = adjacency(edges)
    hood = neighbourhood(adj, key(0), 2, max_nodes=4)
    assert hood["nodes"][0] == key(0)
    # 3/5 of the budget for the inner ring (node 1 has more channels than node 2), the rest
    # for the outer ring, best connected first (node 6, then the smallest key)
    assert hood["nodes"][1:] == [key(1), key(6), key(3)]
    assert hood["distance"] == {key(0): 0, key(1): 1, key(6): 2, key(3): 2}
    assert hood["truncated"] and hood["total_within"] == 7
    assert all(a in hood["nodes"] and b in hood["nodes"] for a, b in hood["edges"])
    full = neighbourhood(adj, key(0), 2, max_nodes=100)
    assert key(7) not in full["nodes"] and not full["truncated"]


# -- peer suggestions ----------------------------------------------------------------------


def test_suggestions_exclude_peers_and_prefer_new_reach():
    # Node 0 sits in cluster A (0-1-2); cluster B hangs off hub 10; 20 is a weaker hub of B.
    edges = [(0, 1), (1, 2), (2, 0), (2, 30), (30, 31), (31, 32), (32, 10)]
    edges += [(10, i) for i in range(11, 19)] + [(20, 11), (20, 12)]
    edges += [(i, i + 100) for i in range(11, 19)]  # B's members have leaves
    g = graph_of(edges)
    adj = adjacency(edges)
    between = nx.betweenness_centrality(nx.Graph(list(adj_edges(adj))))
    scores = score_nodes(g, between, {}, {}, now=0)
    ranked = [s.pubkey for s in scores]
    got = suggest_peers(key(0), adj, {s.pubkey: s for s in scores}, ranked, limit=5)
    assert got and all(s.pubkey not in adj[key(0)] and s.pubkey != key(0) for s in got)
    assert got[0].pubkey == key(10)
    reached = within_hops(adj, key(0), 3)
    assert got[0].reach_gain == len(within_hops(adj, key(10), 2) - reached)
    assert got[0].components["reach"] == 100.0
    assert all(0 <= s.confidence <= 1 and s.reasons for s in got)
    # The reason quotes the plain share of nodes less central, not the blended component.
    below = sum(v < between[key(10)] for v in between.values()) / len(between)
    assert f"more central than {percent_text(100 * below)} of nodes" in got[0].reasons
    assert got[0].components["centrality"] > 100 * below
    # The 2-hop sets kept between calls (per graph version) give the same answers, for any node.
    nearby = ReachSets(adj)
    by_key = {s.pubkey: s for s in scores}
    for node in (key(0), key(20), key(0)):
        fresh = suggest_peers(node, adj, by_key, ranked, limit=5)
        assert suggest_peers(node, adj, by_key, ranked, limit=5, nearby=nearby) == fresh
        for s in fresh:  # the bitmask count is the set difference's size
            assert s.reach_gain == len(within_hops(adj, s.pubkey, 2) - within_hops(adj, node, 3))
    assert len(nearby) > 5


def adj_edges(adj):
    for a, ns in adj.items():
        for b in ns:
            if a < b:
                yield a, b
