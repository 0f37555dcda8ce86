"""engine.graph_analytics against networkx's own exact results, on both backends.

The pure-Python backend (networkx + degree-1 folding) must give networkx's numbers to the
last few ulps; igraph (installed from requirements-dev) likewise once converted to networkx's
normalisations. "igraph missing" is simulated by hiding the module.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.graph_analytics as ga
from engine.graph_analytics import (
    IGRAPH,
    PURE,
    AnalyticsError,
    SimpleGraph,
    analyze,
    available_backend,
    betweenness_centrality,
    build_graph,
    closeness_centrality,
    degree_centrality,
    eigenvector_centrality,
    graph_stats,
    largest_component_diameter,
    node_closeness,
    resolve_backend,
    to_networkx,
)
from engine.graph_io import load_graph
from engine.graph_worker import (
    GraphWorkerError,
    main,
    run_analytics_worker,
    write_worker_input,
)
from engine.node_source import GraphEdge, GraphNode, NetworkGraph, RoutingPolicy

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT.parent / "shared" / "data" / "ln-graph-2026-02-03"
BACKENDS = ("networkx", "igraph")


def pk(i: int) -> str:
    return "02" + f"{i:064x}"


def policy(fee_ppm: int, base: int = 0, *, disabled: bool = False) -> RoutingPolicy:
    return RoutingPolicy(base, fee_ppm, 40, 1_000, 10**12, disabled=disabled)


def network(
    pairs: list[tuple[int, int]], nodes: int = 0, capacity: int = 1_000_000
) -> NetworkGraph:
    """Channels between numbered nodes (repeats are parallel channels, (i, i) a self-loop)."""
    ids = sorted({i for p in pairs for i in p} | set(range(nodes)))
    return NetworkGraph(
        nodes=[GraphNode(pk(i), f"node{i}") for i in ids],
        edges=[
            GraphEdge(f"{k + 1}x0x0", pk(a), pk(b), capacity, policy(100), policy(100))
            for k, (a, b) in enumerate(pairs)
        ],
    )


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def reference_betweenness(g: SimpleGraph) -> dict[str, float]:
    """networkx on the largest component; elsewhere networkx's pair counts on the same scale."""
    graph = to_networkx(g)
    if not len(graph):
        return {}
    largest = graph.subgraph(g.pubkeys[v] for v in g.largest)
    on_largest = nx.betweenness_centrality(largest, normalized=True)
    n = len(largest)
    scale = 2 / ((n - 1) * (n - 2)) if n > 2 else 1.0
    counts = nx.betweenness_centrality(graph, normalized=False)
    return {v: on_largest.get(v, counts[v] * scale) for v in graph}


def reference_eigenvector(g: SimpleGraph) -> dict[str, float]:
    graph = to_networkx(g)
    largest = graph.subgraph(g.pubkeys[v] for v in g.largest)
    values = dict.fromkeys(graph, 0.0)
    if len(largest) == 1:
        values.update(dict.fromkeys(largest, 1.0))
    elif len(largest) > 1:
        values.update(nx.eigenvector_centrality(largest, max_iter=10_000, tol=1e-12))
    return values


def assert_matches_networkx(g: SimpleGraph, backend: str, processes: int = 1) -> None:
    graph = to_networkx(g)
    result = analyze(g, backend=backend, processes=processes)
    expected = reference_betweenness(g)
    closeness = nx.closeness_centrality(graph)
    for node in graph:
        assert close(result.betweenness.values[node], expected[node]), node
        assert close(result.closeness.values[node], closeness[node]), node
    assert result.degree.values == pytest.approx(nx.degree_centrality(graph))
    eigen = reference_eigenvector(g)
    for node in graph:
        assert result.eigenvector.values[node] == pytest.approx(eigen[node], abs=1e-6), node
    largest = graph.subgraph(g.pubkeys[v] for v in g.largest)
    if len(largest) > 1:
        assert result.stats.diameter == nx.diameter(largest)
        average = nx.average_shortest_path_length(largest)
        assert result.stats.average_shortest_path == pytest.approx(average, rel=1e-12)
    assert result.stats.components == nx.number_connected_components(graph)


# -- random graphs with many leaves, parallel channels, self-loops, several components ----


@st.composite
def leafy_graphs(draw: st.DrawFn) -> NetworkGraph:
    n = draw(st.integers(1, 24))
    node = st.integers(0, n - 1)
    pairs = draw(st.lists(st.tuples(node, node), max_size=3 * n))
    leaves = draw(st.lists(node, max_size=2 * n))  # each entry hangs a new leaf on a node
    pairs += [(n + k, attach) for k, attach in enumerate(leaves)]
    return network(pairs, nodes=n)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=leafy_graphs())
def test_random_graphs_match_networkx(backend: str, graph: NetworkGraph) -> None:
    assert_matches_networkx(build_graph(graph), backend)


def test_pool_of_processes_gives_the_same() -> None:
    pairs = [(i, (i * 7 + 3) % 60) for i in range(60)] + [(60 + k, k % 9) for k in range(80)]
    pairs += [(200, 201), (201, 202), (202, 203), (300, 301)]  # two more components
    g = build_graph(network(pairs))
    assert_matches_networkx(g, "networkx", processes=2)


def test_leaf_pairs_at_the_attachment_node() -> None:
    # a star with 4 leaves hung on a triangle: x = node 0 has L = 4 leaves in n = 7 nodes
    g = build_graph(network([(0, 1), (1, 2), (2, 0), (0, 3), (0, 4), (0, 5), (0, 6)]))
    raw = betweenness_centrality(g, backend="networkx").values[pk(0)] * (6 * 5) / 2
    assert raw == pytest.approx(4 * (7 - 1 - 4) + 4 * 3 / 2)  # 8 + 6 pairs through x


def test_parallel_channels_and_self_loops() -> None:
    g = build_graph(network([(0, 1), (1, 0), (0, 1), (1, 2), (2, 2)], capacity=5))
    assert g.channels == 4  # the self-loop is dropped
    assert g.total_capacity_sat == 20
    assert len(g.pair_capacity_sat) == 2
    assert g.pair_capacity_sat[(0, 1)] == 15
    assert g.pair_channels[(0, 1)] == 3
    assert g.aliases == ["node0", "node1", "node2"]
    assert_matches_networkx(g, "networkx")


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_graph(backend: str) -> None:
    g = build_graph(NetworkGraph())
    result = analyze(g, backend=backend)
    assert result.betweenness.values == {} == result.closeness.values
    assert result.stats.nodes == 0 and result.stats.components == 0
    assert result.stats.diameter == 0 and result.stats.average_shortest_path == 0.0
    assert graph_stats(g, backend=backend).largest_component_nodes == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_node(backend: str) -> None:
    g = build_graph(NetworkGraph(nodes=[GraphNode(pk(1), "alone")]))
    result = analyze(g, backend=backend)
    assert result.betweenness.values == {pk(1): 0.0}
    assert result.closeness.values == {pk(1): 0.0}
    assert result.degree.values == nx.degree_centrality(to_networkx(g)) == {pk(1): 1.0}
    assert result.eigenvector.values == {pk(1): 1.0}
    assert result.stats.nodes == 1 and result.stats.diameter == 0
    assert node_closeness(g, pk(1)) == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_disconnected(backend: str) -> None:
    # a path of 5 (largest), a star of 4 (a small island's hub), a pair, 20 isolated nodes
    pairs = [(0, 1), (1, 2), (2, 3), (3, 4), (10, 11), (10, 12), (10, 13), (20, 21)]
    g = build_graph(network(pairs, nodes=31))
    result = analyze(g, backend=backend)
    assert result.stats.components == 3 + 20  # nodes 5..9, 14..19, 22..30 are isolated
    assert result.stats.largest_component_nodes == 5
    assert result.stats.diameter == 4
    # the island's hub: 3 pairs through it, on the largest component's scale (not 1.0)
    assert result.betweenness.values[pk(10)] == pytest.approx(3 * 2 / (4 * 3))
    assert result.eigenvector.values[pk(10)] == 0.0
    assert_matches_networkx(g, backend)


def test_known_values_on_a_path() -> None:
    g = build_graph(network([(0, 1), (1, 2), (2, 3), (3, 4)]))
    for backend in BACKENDS:
        values = betweenness_centrality(g, backend=backend).values
        assert [values[pk(i)] for i in range(5)] == pytest.approx([0, 0.5, 2 / 3, 0.5, 0])
    assert closeness_centrality(g).values[pk(2)] == pytest.approx(4 / 6)
    assert node_closeness(g, pk(0)) == pytest.approx(4 / 10)


# -- statistics, estimated and sampled paths --------------------------------------------------


def ring_pairs(n: int = 40) -> list[tuple[int, int]]:
    """A ring of n with a leaf on every third node (54 nodes for n = 40)."""
    return [(i, (i + 1) % n) for i in range(n)] + [(n + i, i) for i in range(0, n, 3)]


def ring_with_leaves() -> NetworkGraph:
    return network(ring_pairs())


def test_stats_exact_on_small_graphs() -> None:
    g = build_graph(ring_with_leaves())
    stats = graph_stats(g, backend="networkx")
    largest = to_networkx(g)
    assert (stats.nodes, stats.channels, stats.node_pairs) == (54, 54, 54)
    assert stats.average_degree == pytest.approx(2.0)
    assert stats.total_capacity_sat == 54 * 1_000_000
    assert stats.diameter == nx.diameter(largest)
    assert stats.average_shortest_path == pytest.approx(nx.average_shortest_path_length(largest))
    assert (stats.path_method, stats.diameter_method) == ("exact", "exact")
    assert graph_stats(g, backend="igraph") == stats


def test_stats_sampled_when_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ga, "EXACT_PATH_WORK", 0)  # as if the graph were mainnet-sized
    g = build_graph(ring_with_leaves())
    expected = nx.average_shortest_path_length(to_networkx(g))
    sampled = graph_stats(g, backend="networkx", samples=20, seed=3)
    assert sampled.path_method == "sampled, k=20"
    assert sampled.average_shortest_path == pytest.approx(expected, rel=0.2)
    assert sampled.diameter == nx.diameter(to_networkx(g))
    assert sampled.diameter_method == "exact"
    everyone = graph_stats(g, backend="networkx", samples=1000)
    assert everyone.path_method == "sampled, k=54"
    assert everyone.average_shortest_path == pytest.approx(expected)


def test_closeness_estimated_when_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ga, "EXACT_PATH_WORK", 0)
    g = build_graph(network([*ring_pairs(), (100, 101)]))
    exact = nx.closeness_centrality(to_networkx(g))
    estimate = closeness_centrality(g, backend="networkx", pivots=10, seed=1)
    assert estimate.method == "estimated, k=10"
    assert estimate.values[pk(100)] == pytest.approx(exact[pk(100)])  # islands: exact
    for node in (pk(0), pk(7), pk(43)):
        assert estimate.values[node] == pytest.approx(exact[node], rel=0.25)
        assert node_closeness(g, node) == pytest.approx(exact[node])
    full = closeness_centrality(g, backend="networkx", pivots=10_000)
    assert full.values == pytest.approx(exact)
    assert closeness_centrality(g, backend="igraph").method == "exact"


def test_diameter_by_bounding() -> None:
    for seed in range(8):
        graph = nx.gnm_random_graph(60, 75, seed=seed)
        g = build_graph(network(list(graph.edges), nodes=60))
        largest = to_networkx(g).subgraph(g.pubkeys[v] for v in g.largest)
        assert largest_component_diameter(g) == (nx.diameter(largest), "exact")
    cycle = build_graph(network([(i, (i + 1) % 30) for i in range(30)]))
    assert largest_component_diameter(cycle) == (15, "exact")
    bound, method = largest_component_diameter(cycle, max_bfs=3)
    assert method == "lower bound, 3 BFS" and bound <= 15


# -- paths and neighbourhoods ---------------------------------------------------------------


def test_backend_names() -> None:
    assert available_backend() == IGRAPH  # requirements-dev installs it
    assert resolve_backend("auto") == IGRAPH
    assert resolve_backend("networkx") == PURE
    with pytest.raises(AnalyticsError, match="unknown backend"):
        resolve_backend("rustworkx")


def test_without_igraph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "igraph", None)  # import igraph now raises ImportError
    assert available_backend() == PURE
    with pytest.raises(AnalyticsError, match="not installed"):
        resolve_backend("igraph")
    g = build_graph(ring_with_leaves())
    result = analyze(g)
    assert result.backend == PURE == result.betweenness.backend == result.eigenvector.backend
    assert {result.closeness.method, result.stats.path_method} == {"exact"}
    assert graph_stats(g).path_method == "exact"
    assert_matches_networkx(g, "auto")


def test_progress_is_reported() -> None:
    g = build_graph(network([(i, (i * 5 + 1) % 300) for i in range(300)]))
    for backend in BACKENDS:
        seen: list[tuple[float, str]] = []
        analyze(g, backend=backend, progress=lambda f, p, seen=seen: seen.append((f, p)))
        fractions = [f for f, _ in seen]
        assert fractions == sorted(fractions)
        assert fractions[0] >= 0.0 and fractions[-1] == 1.0 and len(seen) >= 4
        assert {"eigenvector", "done"} <= {p for _, p in seen}


def test_result_document() -> None:
    g = build_graph(ring_with_leaves())
    doc = json.loads(json.dumps(analyze(g, backend="networkx").to_dict()))
    assert doc["backend"] == PURE
    assert set(doc["betweenness"]) == set(g.pubkeys)
    assert doc["methods"] == dict.fromkeys(
        ("betweenness", "closeness", "degree", "eigenvector"), "exact"
    )
    assert doc["stats"]["nodes"] == 54 and "betweenness_closeness_paths" in doc["seconds"]


def test_degree_and_eigenvector_alone() -> None:
    g = build_graph(ring_with_leaves())
    assert degree_centrality(g).values == pytest.approx(nx.degree_centrality(to_networkx(g)))
    for backend in BACKENDS:
        values = eigenvector_centrality(g, backend=backend).values
        assert values == pytest.approx(reference_eigenvector(g), abs=1e-6)


# -- the mainnet snapshot (cheap parts only; bench/graph_bench.py times the rest) -------------


def test_mainnet_graph_and_stats() -> None:
    if not (SNAPSHOT / "describegraph.json.gz").is_file():
        pytest.fail(f"graph snapshot missing: {SNAPSHOT}")
    g = build_graph(load_graph(SNAPSHOT))
    assert (len(g.pubkeys), g.channels, len(g.pair_capacity_sat)) == (17_324, 50_808, 47_868)
    assert len(g.component_sizes) == 721
    stats = graph_stats(g, backend="networkx")  # too big for the exact pass: sampled
    assert stats.largest_component_nodes == 15_542
    assert stats.largest_component_pairs == 46_803
    assert (stats.diameter, stats.diameter_method) == (14, "exact")
    assert stats.path_method == "sampled, k=200"
    assert stats.average_shortest_path == pytest.approx(4.166, rel=0.03)


# -- the worker -----------------------------------------------------------------------------


def small_network() -> NetworkGraph:
    return network([(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 5), (5, 3), (0, 6), (9, 10)])


def test_worker_as_a_subprocess(tmp_path: Path) -> None:
    graph = small_network()
    write_worker_input(graph, tmp_path / "in.json")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.graph_worker",
            str(tmp_path / "in.json"),
            str(tmp_path / "out.json"),
            "--backend=networkx",
            "--processes=1",
        ],
        cwd=ROOT,  # engine/ is then a top-level package
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith("progress ") for line in lines)
    assert lines[-1] == "progress 1.000 done"
    out = json.loads((tmp_path / "out.json").read_text())
    expected = analyze(build_graph(graph), backend="networkx").to_dict()
    for measure in ("betweenness", "closeness", "degree", "eigenvector"):
        assert out[measure] == pytest.approx(expected[measure])
    assert out["stats"] == expected["stats"]
    assert out["backend"] == PURE


def test_worker_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.json").write_text('{"version": 1, "nodes": [], "edges": [["a"]]}')
    assert main([str(tmp_path / "in.json"), str(tmp_path / "out.json"), "--nice", "0"]) == 1
    assert "error: " in capsys.readouterr().err
    (tmp_path / "in.json").write_text("[]")
    assert main([str(tmp_path / "in.json"), str(tmp_path / "out.json"), "--nice", "0"]) == 1
    assert "not a graph worker input" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


async def test_run_analytics_worker(tmp_path: Path) -> None:
    seen: list[tuple[float, str]] = []

    async def on_progress(fraction: float, phase: str) -> None:
        seen.append((fraction, phase))

    result = await run_analytics_worker(small_network(), tmp_path, on_progress, processes=1)
    assert result["backend"] == IGRAPH
    assert result["stats"]["components"] == 2
    assert seen[0] == (0.0, "reading") and seen[-1] == (1.0, "done")
    expected = reference_betweenness(build_graph(small_network()))
    assert result["betweenness"] == pytest.approx(expected)


async def test_run_analytics_worker_failures(tmp_path: Path) -> None:
    with pytest.raises(GraphWorkerError, match=r"exit status 2\): .*invalid choice: 'bogus'"):
        await run_analytics_worker(small_network(), tmp_path, backend="bogus")
    with pytest.raises(GraphWorkerError, match=r"no result within 0\.001 s"):
        await run_analytics_worker(small_network(), tmp_path, timeout=0.001)


async def test_cancelling_kills_the_worker(tmp_path: Path) -> None:
    busy = asyncio.Event()
    pairs = [(i, (i * k + 1) % 3000) for i in range(3000) for k in (7, 11, 13)]
    task = asyncio.create_task(
        run_analytics_worker(
            network(pairs),
            tmp_path,
            lambda fraction, phase: busy.set() if phase.startswith("betweenness") else None,
            backend="networkx",
            processes=1,
        )
    )
    await asyncio.wait_for(busy.wait(), 60)
    assert worker_pids(tmp_path), "the worker should be running"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert worker_pids(tmp_path) == []
    assert not (tmp_path / "graph-out.json").exists()


def worker_pids(workdir: Path) -> list[int]:
    """Processes whose command line names this test's work folder (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and str(workdir).encode() in cmdline:
            pids.append(int(entry.name))
    return pids
