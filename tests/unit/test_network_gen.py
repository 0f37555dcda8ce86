"""engine.network_gen: a deterministic generated graph with mainnet-like statistics."""

from __future__ import annotations

import functools
import re
import statistics
from collections import Counter

import pytest

from engine.network_gen import generate_network, pubkey_for
from engine.node_source import NetworkGraph, RoutingPolicy, parse_scid

SEEDS = (1, 2, 7, 42)


@functools.cache
def network(num_nodes: int, seed: int) -> NetworkGraph:
    return generate_network(num_nodes, seed)


def directions(graph: NetworkGraph) -> list[RoutingPolicy]:
    return [p for e in graph.edges for p in (e.node1_policy, e.node2_policy) if p is not None]


def degrees(graph: NetworkGraph) -> Counter[str]:
    return Counter(pk for e in graph.edges for pk in (e.node1, e.node2))


def test_deterministic_for_a_seed() -> None:
    a, b = generate_network(800, seed=5), generate_network(800, seed=5)
    assert a == b
    assert a is not b


def test_other_seed_other_network() -> None:
    a, b = network(800, 1), network(800, 2)
    assert {n.pubkey for n in a.nodes}.isdisjoint({n.pubkey for n in b.nodes})
    assert [e.capacity_sat for e in a.edges] != [e.capacity_sat for e in b.edges]
    assert directions(a) != directions(b)


def test_too_small() -> None:
    with pytest.raises(ValueError, match="at least 10 nodes"):
        generate_network(9)
    assert len(generate_network(10).nodes) == 10


@pytest.mark.parametrize("seed", SEEDS)
def test_well_formed(seed: int) -> None:
    graph = network(2000, seed)
    assert len(graph.nodes) == 2000
    pubkeys = {n.pubkey for n in graph.nodes}
    assert len(pubkeys) == 2000
    assert all(re.fullmatch(r"0[23][0-9a-f]{64}", pk) for pk in pubkeys)
    ids = [e.channel_id for e in graph.edges]
    assert len(set(ids)) == len(ids)
    pairs = set()
    for e in graph.edges:
        parse_scid(e.channel_id)
        assert e.node1 < e.node2  # node1 is the smaller pubkey, as in gossip
        assert e.node1 in pubkeys and e.node2 in pubkeys
        pairs.add((e.node1, e.node2))
        assert 20_000 <= e.capacity_sat <= 500_000_000
        assert e.capacity_sat % 10_000 == 0
        for p in (e.node1_policy, e.node2_policy):
            assert p is not None
            assert p.fee_rate_ppm >= 0 and p.base_fee_msat >= 0 and p.cltv_delta > 0
            assert 0 < p.htlc_min_msat <= p.htlc_max_msat <= e.capacity_sat * 1000
    assert len(pairs) == len(graph.edges)  # no parallel channels between the same pair
    assert set(degrees(graph)) == pubkeys  # every node has a channel: one component


@pytest.mark.parametrize("seed", SEEDS)
def test_heavy_tailed_degrees(seed: int) -> None:
    graph = network(2000, seed)
    deg = sorted(degrees(graph).values())
    median = statistics.median(deg)
    assert median <= 3
    assert sum(d == 1 for d in deg) >= 0.25 * len(deg)  # many single-channel nodes
    assert deg[-1] >= 25 * median  # a few hubs far above the median
    assert sum(deg[-20:]) >= 0.1 * sum(deg)  # the top 1 % hold 10 times their share


@pytest.mark.parametrize("seed", SEEDS)
def test_fee_statistics(seed: int) -> None:
    graph = network(2000, seed)
    enabled = [p for p in directions(graph) if not p.disabled]
    assert 0.9 < len(enabled) / len(directions(graph)) < 0.99  # ~4 % disabled
    assert 60 <= statistics.median(p.fee_rate_ppm for p in enabled) <= 160
    assert 0.35 <= sum(p.base_fee_msat == 0 for p in enabled) / len(enabled) <= 0.55
    assert Counter(p.cltv_delta for p in enabled).most_common(1)[0][0] == 80
    assert max(p.fee_rate_ppm for p in enabled) > 1000  # a long tail
    assert statistics.median(e.capacity_sat for e in graph.edges) > 1_000_000


def test_pubkey_for() -> None:
    assert pubkey_for("x") == pubkey_for("x")
    assert pubkey_for("x") != pubkey_for("y")
    assert re.fullmatch(r"0[23][0-9a-f]{64}", pubkey_for("x"))
