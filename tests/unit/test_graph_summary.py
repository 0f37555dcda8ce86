"""engine.graph_summary on a small hand-made graph and on the real 2026-02-03 snapshot.

The snapshot lives outside the repository (../shared/data). Its absence is a failure, not a
skip, as in test_graph_io.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

from engine.graph_io import load_graph
from engine.graph_summary import summarize, weighted_median
from engine.node_source import GraphEdge, GraphNode, NetworkGraph, RoutingPolicy

US, A, B, C, D, E = ("02" + c * 64 for c in "0abcde")


def pol(fee_ppm: int, disabled: bool = False) -> RoutingPolicy:
    return RoutingPolicy(1000, fee_ppm, 80, 1000, 10**10, disabled=disabled)


def edge(
    n: int, src: str, dst: str, cap: int, fwd: RoutingPolicy | None, back: RoutingPolicy | None
) -> GraphEdge:
    """An edge given as src -> dst: `fwd` is src's policy, `back` dst's."""
    return GraphEdge(f"700000x{n}x0", src, dst, cap, fwd, back)


# US -- A: our own channel; A is the peer whose competitors we survey.
GRAPH = NetworkGraph(
    nodes=[GraphNode(x) for x in (US, A, B, C, D, E)],
    edges=[
        edge(1, US, A, 1_000_000, pol(500), pol(10)),  # our 500 ppm into A: not a competitor
        edge(2, B, A, 2_000_000, pol(100), pol(20)),
        edge(3, C, A, 500_000, pol(300), pol(9_999, disabled=True)),
        edge(4, D, A, 3_000_000, pol(1, disabled=True), None),  # disabled: ignored
        edge(5, B, C, 1_000_000, pol(50), pol(70)),
        edge(6, C, D, 4_000_000, None, pol(200)),
        edge(7, E, A, 600_000, pol(1_000), pol(40)),
    ],
)


@pytest.fixture(scope="module")
def small():
    return summarize(
        GRAPH, US, onchain_feerate_sat_vb=7, betweenness={A: 0.1, US: 0.01}, now=1_700_000_000
    )


def test_degrees_and_capacities(small):
    got = {n: (small.peers[n].channels, small.peers[n].capacity_sat) for n in small.peers}
    assert got == {
        US: (1, 1_000_000),
        A: (5, 1_000_000 + 2_000_000 + 500_000 + 3_000_000 + 600_000),  # 7.1M
        B: (2, 3_000_000),
        C: (3, 5_500_000),
        D: (2, 7_000_000),
        E: (1, 600_000),
    }
    assert small.our_channels == 1
    assert small.graph_available is True


def test_competitor_fee_into_a_peer_is_capacity_weighted_and_excludes_ours(small):
    a = small.peers[A]
    # into A, enabled, not ours: (100 ppm, 2M), (300 ppm, 0.5M), (1000 ppm, 0.6M);
    # total 3.1M, half 1.55M: 100 ppm already carries 2M -> 100. (The plain median would be
    # 300; with our own 500 ppm x 1M counted the weighted median would be 300 too.)
    assert a.competitor_fee_ppm == 100
    assert a.competitor_count == 3
    assert (
        weighted_median([(100, 2_000_000), (300, 500_000), (1_000, 600_000), (500, 1_000_000)])
        == 300
    )


def test_disabled_and_missing_policies_are_ignored(small):
    # into C: A's 9999 ppm is disabled; (50, 1M) and (200, 4M): half of 5M -> 200
    assert (small.peers[C].competitor_fee_ppm, small.peers[C].competitor_count) == (200, 2)
    # into D: C has no policy, A's direction towards D has none either
    assert (small.peers[D].competitor_fee_ppm, small.peers[D].competitor_count) == (None, 0)
    # into B: (20, 2M) and (70, 1M) -> 20; into us: A's 10 ppm
    assert small.peers[B].competitor_fee_ppm == 20
    assert small.peers[US].competitor_fee_ppm == 10
    assert small.peers[E].competitor_fee_ppm == 40


def test_network_medians(small):
    # enabled directions: 500 10 100 20 300 50 70 200 1000 40
    # sorted 10 20 40 50 70 | 100 200 300 500 1000 -> (70 + 100) / 2 = 85
    assert small.median_fee_ppm == 85
    # degrees 1 5 2 3 2 1 -> sorted 1 1 2 2 3 5 -> 2
    assert small.median_channels == 2


def test_passthrough_values(small):
    assert small.peers[A].betweenness == 0.1
    assert small.peers[B].betweenness is None
    assert small.our_betweenness == 0.01
    assert small.onchain_feerate_sat_vb == 7
    assert small.now == 1_700_000_000


def test_empty_graph_falls_back_to_defaults():
    s = summarize(NetworkGraph(), US)
    assert s.graph_available is False
    assert (s.median_fee_ppm, s.median_channels, s.our_channels) == (100, 2, 0)
    assert s.peers == {}
    assert s.peer(A) is None


def test_weighted_median_edge_cases():
    assert weighted_median([]) is None
    assert weighted_median([(5, 0), (7, 0)]) is None
    assert weighted_median([(42, 1)]) == 42
    # an exact half: the lower value
    assert weighted_median([(5, 1), (1, 1)]) == 1
    assert weighted_median([(1, 1), (9, 3)]) == 9


# -- the real snapshot ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT.parent / "shared" / "data" / "ln-graph-2026-02-03"
ACINQ = "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f"


@pytest.fixture(scope="module")
def mainnet():
    if not (SNAPSHOT / "describegraph.json.gz").is_file():
        pytest.fail(f"graph snapshot missing: {SNAPSHOT} (expected next to the repository)")
    graph = load_graph(SNAPSHOT)
    return graph, summarize(graph, "")


def _csv_num_channels(pubkey: str) -> int:
    with gzip.open(SNAPSHOT / "nodes.csv.gz", "rb") as fh:
        for row in csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")):
            if row["pubkey"] == pubkey:
                return int(row["num_channels"])
    raise AssertionError(f"{pubkey} not in nodes.csv")


def test_mainnet_median_fee(mainnet):
    _, s = mainnet
    assert s.median_fee_ppm == 100  # the README's figure over the 65,810 enabled directions
    # 9,391 of the nodes have a single channel: more than half of those with any
    assert s.median_channels == 1
    assert s.graph_available


def test_mainnet_acinq_channels(mainnet):
    graph, s = mainnet
    acinq_edges = [e for e in graph.edges if ACINQ in (e.node1, e.node2)]
    distinct = {e.channel_id for e in acinq_edges}
    counterparties = {e.node2 if e.node1 == ACINQ else e.node1 for e in acinq_edges}
    # The summary counts channels (graph edges), not peers. In this snapshot the edge count
    # equals nodes.csv's num_channels (1989); parallel channels make the peers fewer (1788).
    assert len(distinct) == len(acinq_edges) == 1989
    assert s.peers[ACINQ].channels == 1989 == _csv_num_channels(ACINQ)
    assert len(counterparties) == 1788
    assert s.peers[ACINQ].capacity_sat == sum(e.capacity_sat for e in acinq_edges)
    enabled_in = [
        p
        for e in acinq_edges
        for p in ([e.node1_policy] if e.node2 == ACINQ else [e.node2_policy])
        if p is not None and not p.disabled
    ]
    assert s.peers[ACINQ].competitor_count == len(enabled_in)
    # from ACINQ's own point of view they are its channels
    assert summarize(graph, ACINQ).our_channels == 1989


def test_mainnet_degrees_add_up(mainnet):
    graph, s = mainnet
    assert sum(p.channels for p in s.peers.values()) == 2 * len(graph.edges)
    assert sum(p.capacity_sat for p in s.peers.values()) == 2 * sum(
        e.capacity_sat for e in graph.edges
    )
