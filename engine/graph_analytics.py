"""Graph analytics on the whole Lightning graph: statistics, centralities, paths.

Meant to run in a worker process (engine/graph_worker.py), never on LNbits' event loop: the
mainnet graph keeps a core busy for seconds (igraph) to a minute or two (pure Python).

Two backends give the same numbers, with networkx's definitions and normalisations:

- "igraph": python-igraph's C routines, when the package is installed;
- "networkx+pruning": networkx for the eigenvector, and our own exact Brandes on the graph with
  its degree-1 nodes folded into their neighbour (about half of mainnet's nodes have a single
  peer). The same pass yields exact closeness, diameter and average shortest path.

Betweenness is normalised as networkx.betweenness_centrality(normalized=True) on the largest
connected component, i.e. the unordered pairs whose shortest paths cross the node, times
2 / ((n - 1)(n - 2)) with n the size of that component. Nodes outside it get the same count
within their own component divided by the same factor: one scale for everyone, and a small
island's hub stays near 0 instead of reaching 1.0. Closeness is networkx's (Wasserman-Faust,
over the whole graph); eigenvector is computed on the largest component (unit length, as
networkx) and is 0 elsewhere; degree is networkx's degree centrality (distinct peers / (n - 1)).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .node_source import NetworkGraph
from .worker_process import POOL_SHARED, pool_map

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is running)

IGRAPH = "igraph"
PURE = "networkx+pruning"
BACKENDS = ("auto", "igraph", "networkx")

# All-pairs BFS below this much work (core nodes x adjacency entries) takes ~2 s in Python.
EXACT_PATH_WORK = 40_000_000
PATH_SAMPLES = 200
CLOSENESS_PIVOTS = 64
DIAMETER_MAX_BFS = 200
# networkx's default (1e-6 per node) leaves errors of ~4e-5 on mainnet; 1e-9 agrees with
# igraph's ARPACK to ~3e-8 for 0.3 s more.
EIGENVECTOR_TOL = 1e-9


class AnalyticsError(RuntimeError):
    """The analytics cannot run as asked (e.g. igraph requested but not installed)."""


class UnknownNode(LookupError):
    """A pubkey that is not in the graph."""


def _quiet(_fraction: float, _phase: str) -> None:
    return None


# -- the graph ---------------------------------------------------------------------------


@dataclass(slots=True)
class SimpleGraph:
    """The channel graph as an undirected simple graph on integer ids: parallel channels
    merged (capacity summed, count kept), self-loops dropped. Component 0 is the largest."""

    pubkeys: list[str]
    aliases: list[str]
    index: dict[str, int]
    adjacency: list[tuple[int, ...]]  # sorted neighbour ids
    pair_capacity_sat: dict[tuple[int, int], int]  # key (i, j) with i < j
    pair_channels: dict[tuple[int, int], int]
    node_capacity_sat: list[int]
    channels: int
    total_capacity_sat: int
    component: list[int]
    component_sizes: list[int]  # by component id, largest first

    @property
    def largest(self) -> list[int]:
        return [v for v, c in enumerate(self.component) if c == 0]

    def node_id(self, pubkey: str) -> int:
        try:
            return self.index[pubkey]
        except KeyError:
            raise UnknownNode(f"node {pubkey} is not in the graph") from None


def build_graph(graph: NetworkGraph) -> SimpleGraph:
    """The simple graph of a NetworkGraph."""
    return _assemble(
        ((n.pubkey, n.alias) for n in graph.nodes),
        ((e.node1, e.node2, e.capacity_sat) for e in graph.edges),
    )


def graph_from_compact(
    nodes: Iterable[Sequence[Any]], edges: Iterable[Sequence[Any]]
) -> SimpleGraph:
    """The worker's input: nodes [[pubkey, alias]], edges [[node1, node2, capacity_sat]]."""
    return _assemble(
        ((str(n[0]), str(n[1]) if len(n) > 1 else "") for n in nodes),
        ((str(e[0]), str(e[1]), int(e[2])) for e in edges),
    )


def _assemble(
    nodes: Iterable[tuple[str, str]],
    channels: Iterable[tuple[str, str, int]],
) -> SimpleGraph:
    index: dict[str, int] = {}
    pubkeys: list[str] = []
    aliases: list[str] = []

    def node_id(pubkey: str, alias: str = "") -> int:
        i = index.get(pubkey)
        if i is None:
            i = index[pubkey] = len(pubkeys)
            pubkeys.append(pubkey)
            aliases.append(alias)
        elif alias and not aliases[i]:
            aliases[i] = alias
        return i

    for pubkey, alias in nodes:
        node_id(pubkey, alias)
    capacity: dict[tuple[int, int], int] = {}
    count: dict[tuple[int, int], int] = {}
    total_channels = total_capacity = 0
    for a, b, cap in channels:
        if a == b:
            continue  # a channel to itself routes nothing
        i, j = node_id(a), node_id(b)
        key = (i, j) if i < j else (j, i)
        capacity[key] = capacity.get(key, 0) + cap
        count[key] = count.get(key, 0) + 1
        total_channels += 1
        total_capacity += cap
    neighbours: list[list[int]] = [[] for _ in pubkeys]
    node_capacity = [0] * len(pubkeys)
    for (i, j), cap in capacity.items():
        neighbours[i].append(j)
        neighbours[j].append(i)
        node_capacity[i] += cap
        node_capacity[j] += cap
    adjacency = [tuple(sorted(ns)) for ns in neighbours]
    component, sizes = _components(adjacency)
    return SimpleGraph(
        pubkeys=pubkeys,
        aliases=aliases,
        index=index,
        adjacency=adjacency,
        pair_capacity_sat=capacity,
        pair_channels=count,
        node_capacity_sat=node_capacity,
        channels=total_channels,
        total_capacity_sat=total_capacity,
        component=component,
        component_sizes=sizes,
    )


def _components(adjacency: list[tuple[int, ...]]) -> tuple[list[int], list[int]]:
    """Component ids ordered by size (largest first, ties by lowest node id)."""
    label = [-1] * len(adjacency)
    members: list[list[int]] = []
    for start in range(len(adjacency)):
        if label[start] >= 0:
            continue
        label[start] = len(members)
        found = [start]
        for v in found:  # the list grows while we walk it: a BFS without a deque
            for w in adjacency[v]:
                if label[w] < 0:
                    label[w] = label[start]
                    found.append(w)
        members.append(found)
    order = sorted(range(len(members)), key=lambda c: (-len(members[c]), min(members[c])))
    rank = {old: new for new, old in enumerate(order)}
    return [rank[c] for c in label], [len(members[c]) for c in order]


def to_networkx(g: SimpleGraph) -> nx.Graph:
    """The same simple graph in networkx (alias, capacity_sat and channels as attributes)."""
    out = nx.Graph()
    out.add_nodes_from(
        (pk, {"alias": alias}) for pk, alias in zip(g.pubkeys, g.aliases, strict=True)
    )
    out.add_edges_from(
        (g.pubkeys[i], g.pubkeys[j], {"capacity_sat": cap, "channels": g.pair_channels[(i, j)]})
        for (i, j), cap in g.pair_capacity_sat.items()
    )
    return out


# -- backends ------------------------------------------------------------------------------


def _igraph() -> Any | None:
    try:
        import igraph  # optional accelerator, imported only when asked for
    except ImportError:
        return None
    return igraph


def available_backend() -> str:
    return IGRAPH if _igraph() is not None else PURE


def resolve_backend(backend: str = "auto") -> str:
    """ "auto" picks igraph when installed; "networkx" forces the pure-Python path."""
    if backend not in BACKENDS:
        raise AnalyticsError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == "networkx":
        return PURE
    if backend == "igraph" and _igraph() is None:
        raise AnalyticsError("backend 'igraph' asked for, but python-igraph is not installed")
    return available_backend()


def _to_igraph(g: SimpleGraph, nodes: list[int] | None = None) -> Any:
    """The whole graph, or the subgraph induced by `nodes` (renumbered in that order)."""
    ig = _igraph()
    if nodes is None:
        return ig.Graph(n=len(g.pubkeys), edges=list(g.pair_capacity_sat))
    position = {v: k for k, v in enumerate(nodes)}
    pairs = [
        (position[i], position[j])
        for (i, j) in g.pair_capacity_sat
        if i in position and j in position
    ]
    return ig.Graph(n=len(nodes), edges=pairs)


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scores:
    values: dict[str, float]
    backend: str
    method: str  # "exact", or how it was estimated ("estimated, k=64")


@dataclass(frozen=True, slots=True)
class GraphStats:
    nodes: int
    channels: int
    node_pairs: int  # distinct peer pairs (parallel channels merged)
    total_capacity_sat: int
    average_degree: float  # distinct peers per node
    components: int
    largest_component_nodes: int
    largest_component_pairs: int
    diameter: int  # of the largest component
    diameter_method: str  # "exact" or "lower bound, N BFS"
    average_shortest_path: float  # of the largest component, over ordered pairs
    path_method: str  # "exact" or "sampled, k=200"

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Analytics:
    backend: str
    stats: GraphStats
    betweenness: Scores
    closeness: Scores
    degree: Scores
    eigenvector: Scores
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per measure a {pubkey: value} map, plus stats, methods and timings."""
        measures = ("betweenness", "closeness", "degree", "eigenvector")
        out: dict[str, Any] = {
            "backend": self.backend,
            "stats": self.stats.to_dict(),
            "methods": {m: getattr(self, m).method for m in measures},
            "seconds": self.seconds,
        }
        out.update({m: getattr(self, m).values for m in measures})
        return out


# -- degree-1 folding ------------------------------------------------------------------------


@dataclass(slots=True)
class _Core:
    """The graph without its leaves (degree-1 nodes whose neighbour has more peers). Each
    core node stands for itself and its leaves: `weight` = 1 + number of leaves."""

    nodes: list[int]  # graph id of each core node
    adjacency: list[tuple[int, ...]]  # core ids
    weight: list[int]
    leaves: list[list[int]]  # graph ids of each core node's leaves


def _fold_leaves(g: SimpleGraph) -> _Core:
    degree = [len(ns) for ns in g.adjacency]
    # In a two-node component both ends have degree 1: neither is folded into the other.
    is_leaf = [d == 1 and degree[ns[0]] >= 2 for d, ns in zip(degree, g.adjacency, strict=True)]
    nodes = [v for v in range(len(degree)) if not is_leaf[v]]
    position = [-1] * len(degree)
    for k, v in enumerate(nodes):
        position[v] = k
    adjacency = [tuple(position[w] for w in g.adjacency[v] if not is_leaf[w]) for v in nodes]
    leaves = [[w for w in g.adjacency[v] if is_leaf[w]] for v in nodes]
    return _Core(nodes, adjacency, [1 + len(ls) for ls in leaves], leaves)


# -- the exact pass: weighted Brandes on the core ----------------------------------------------


@dataclass(slots=True)
class _PassPart:
    """What BFS from some core sources found: ordered-pair dependencies (weighted by the
    source's and targets' leaves), and per source its weighted distance sum and eccentricity
    towards the represented nodes."""

    dependency: list[float] | None
    distance_sums: list[tuple[int, int]] = field(default_factory=list)
    eccentricities: list[tuple[int, int]] = field(default_factory=list)


def _pass_over(
    adjacency: list[tuple[int, ...]],
    weight: list[int],
    sources: Iterable[int],
    with_betweenness: bool,
) -> _PassPart:
    n = len(adjacency)
    dependency = [0.0] * n if with_betweenness else None
    part = _PassPart(dependency)
    weight_of = weight.__getitem__
    for s in sources:
        levels, sigma = _bfs_levels(adjacency, s, with_betweenness)
        part.distance_sums.append(
            (s, sum(d * sum(map(weight_of, level)) for d, level in enumerate(levels)))
        )
        far = len(levels) - 1  # a node on the last level with leaves adds one hop
        reach = far + any(weight[v] > 1 for v in levels[far]) if far else 0
        part.eccentricities.append((s, reach))
        if dependency is not None:
            _accumulate(adjacency, weight, levels, sigma, dependency, weight[s])
    return part


def _bfs_levels(
    adjacency: list[tuple[int, ...]], s: int, count_paths: bool
) -> tuple[list[list[int]], list[float]]:
    """BFS levels from s and, when asked, the number of shortest paths to every node."""
    dist = [-1] * len(adjacency)
    sigma = [0.0] * len(adjacency) if count_paths else []
    dist[s] = 0
    if count_paths:
        sigma[s] = 1.0
    levels = [[s]]
    d = 0
    while True:
        d += 1
        nxt: list[int] = []
        add = nxt.append
        for v in levels[-1]:
            if count_paths:
                sv = sigma[v]
                for w in adjacency[v]:
                    dw = dist[w]
                    if dw < 0:
                        dist[w] = d
                        sigma[w] = sv
                        add(w)
                    elif dw == d:
                        sigma[w] += sv
            else:
                for w in adjacency[v]:
                    if dist[w] < 0:
                        dist[w] = d
                        add(w)
        if not nxt:
            return levels, sigma
        levels.append(nxt)


def _accumulate(
    adjacency: list[tuple[int, ...]],
    weight: list[int],
    levels: list[list[int]],
    sigma: list[float],
    dependency: list[float],
    source_weight: int,
) -> None:
    """Brandes' back-propagation with target weights, level by level from the farthest.

    With c[w] = (weight[w] + delta[w]) / sigma[w], delta[v] = sigma[v] * (sum of c over v's
    successors). A BFS neighbour of a node on level L is on L-1, L or L+1, so keeping c in two
    arrays by level parity, the array L reads holds level L+1 and only levels not adjacent to
    L or still zero (L-1): summing it over all neighbours needs no distance test, and map()
    does that sum at C speed.
    """
    by_parity = ([0.0] * len(adjacency), [0.0] * len(adjacency))
    farthest = len(levels) - 1
    for v in levels[farthest]:
        by_parity[farthest % 2][v] = weight[v] / sigma[v]
    for depth in range(farthest - 1, 0, -1):
        read = by_parity[(depth + 1) % 2].__getitem__
        write = by_parity[depth % 2]
        for v in levels[depth]:
            successors = sum(map(read, adjacency[v]))
            sv = sigma[v]
            dependency[v] += source_weight * sv * successors
            write[v] = weight[v] / sv + successors


def _pass_chunk(sources: range) -> _PassPart:
    """In a pool process: one chunk of sources over the core the parent shared."""
    adjacency, weight, betweenness = POOL_SHARED["core"]
    return _pass_over(adjacency, weight, sources, betweenness)


@dataclass(slots=True)
class _PassTotals:
    dependency: list[float]
    distance_sum: list[int]
    eccentricity: list[int]

    def add(self, part: _PassPart) -> None:
        if part.dependency is not None:
            self.dependency = [a + b for a, b in zip(self.dependency, part.dependency, strict=True)]
        for s, total in part.distance_sums:
            self.distance_sum[s] = total
        for s, ecc in part.eccentricities:
            self.eccentricity[s] = ecc


def _run_pass(
    core: _Core, with_betweenness: bool, processes: int, progress: Progress, phase: str
) -> _PassTotals:
    """BFS (and Brandes) from every core node, in chunks, optionally in several processes."""
    n = len(core.nodes)
    totals = _PassTotals([0.0] * n, [0] * n, [0] * n)
    step = max(16, n // 200)
    chunks = [range(i, min(i + step, n)) for i in range(0, n, step)]
    shared = {"core": (core.adjacency, core.weight, with_betweenness)}
    # in the chunks' order, whatever the scheduling, so the float sums are always the same
    for k, part in enumerate(pool_map(_pass_chunk, chunks, processes, shared), start=1):
        totals.add(part)
        progress(k / len(chunks), phase)
    return totals


@dataclass(slots=True)
class _ExactPaths:
    """Everything the exact pass gives, per graph node."""

    pair_counts: list[float]  # unordered pairs through each node (networkx unnormalised)
    distance_sum: list[int]  # sum of distances to the nodes of its component
    diameter: int  # of the largest component


def _exact_paths(
    g: SimpleGraph, with_betweenness: bool, processes: int, progress: Progress, phase: str
) -> _ExactPaths:
    core = _fold_leaves(g)
    totals = _run_pass(core, with_betweenness, processes, progress, phase)
    size = g.component_sizes
    leaves_in = [0] * len(size)
    for v, leaves in zip(core.nodes, core.leaves, strict=True):
        leaves_in[g.component[v]] += len(leaves)
    pairs = [0.0] * len(g.pubkeys)
    distance = [0] * len(g.pubkeys)
    diameter = 0
    for k, v in enumerate(core.nodes):
        comp, n_leaves = g.component[v], len(core.leaves[k])
        n = size[comp]
        # Brandes summed ordered pairs; the leaves' own pairs all cross their attachment:
        # one leaf and a node outside the star, or two leaves of the same node.
        pairs[v] = totals.dependency[k] / 2 + n_leaves * (n - 1 - n_leaves)
        pairs[v] += n_leaves * (n_leaves - 1) / 2
        # a leaf is one hop farther than its attachment from everything but itself
        distance[v] = totals.distance_sum[k] + leaves_in[comp]
        for leaf in core.leaves[k]:
            distance[leaf] = distance[v] + n - 2
        if comp == 0:
            reach = totals.eccentricity[k] + (n_leaves > 0)
            diameter = max(diameter, reach, 2 if n_leaves >= 2 else 0)
    return _ExactPaths(pairs, distance, diameter)


# -- betweenness -------------------------------------------------------------------------------


def _betweenness_scale(g: SimpleGraph) -> float:
    """networkx's normalisation on the largest component (none below 3 nodes: all zero)."""
    n = g.component_sizes[0] if g.component_sizes else 0
    return 2 / ((n - 1) * (n - 2)) if n > 2 else 1.0


def _keyed(g: SimpleGraph, values: Sequence[float]) -> dict[str, float]:
    return dict(zip(g.pubkeys, values, strict=True))


def betweenness_centrality(
    g: SimpleGraph,
    *,
    backend: str = "auto",
    processes: int = 1,
    progress: Progress | None = None,
) -> Scores:
    """Exact betweenness, normalised as networkx on the largest component (see the module
    docstring for the nodes outside it)."""
    chosen = resolve_backend(backend)
    report = progress or _quiet
    scale = _betweenness_scale(g)
    if chosen == IGRAPH:
        report(0.0, "betweenness")
        raw = _to_igraph(g).betweenness(directed=False) if g.pubkeys else []
        report(1.0, "betweenness")
    else:
        raw = _exact_paths(g, True, processes, report, "betweenness").pair_counts
    return Scores(_keyed(g, [x * scale for x in raw]), chosen, "exact")


# -- closeness ----------------------------------------------------------------------------


def _closeness_value(reach: int, distance_sum: float, n: int) -> float:
    """networkx's closeness with wf_improved: (r-1)/S scaled by (r-1)/(n-1)."""
    if distance_sum <= 0 or n <= 1:
        return 0.0
    return (reach - 1) / distance_sum * (reach - 1) / (n - 1)


def _closeness_from_sums(g: SimpleGraph, distance_sum: Sequence[float]) -> list[float]:
    n = len(g.pubkeys)
    return [
        _closeness_value(g.component_sizes[g.component[v]], distance_sum[v], n) for v in range(n)
    ]


def _igraph_distance_sums(g: SimpleGraph) -> list[float]:
    """igraph's normalised closeness is (r-1)/S over the reachable nodes: recover S."""
    values = _to_igraph(g).closeness(normalized=True) if g.pubkeys else []
    sums = []
    for v, value in enumerate(values):
        reach = g.component_sizes[g.component[v]]
        ok = reach > 1 and value == value and value > 0  # NaN for isolated nodes
        sums.append((reach - 1) / value if ok else 0.0)
    return sums


def node_closeness(g: SimpleGraph, pubkey: str) -> float:
    """Exact networkx closeness of one node: one BFS, cheap enough to run on demand."""
    v = g.node_id(pubkey)
    levels, _ = _bfs_levels(g.adjacency, v, False)
    total = sum(d * len(level) for d, level in enumerate(levels))
    return _closeness_value(sum(map(len, levels)), total, len(g.pubkeys))


def _exact_affordable(g: SimpleGraph) -> bool:
    core = _fold_leaves(g)
    return len(core.nodes) * sum(map(len, core.adjacency)) <= EXACT_PATH_WORK


def closeness_centrality(
    g: SimpleGraph,
    *,
    backend: str = "auto",
    pivots: int = CLOSENESS_PIVOTS,
    seed: int = 0,
    progress: Progress | None = None,
) -> Scores:
    """networkx's closeness for every node: exact with igraph or on a graph small enough,
    otherwise estimated (BFS from `pivots` seeded nodes of the largest component, Eppstein and
    Wang's estimator; smaller components exact). node_closeness() is exact for one node."""
    chosen = resolve_backend(backend)
    report = progress or _quiet
    if chosen == IGRAPH:
        return Scores(_keyed(g, _closeness_from_sums(g, _igraph_distance_sums(g))), chosen, "exact")
    if _exact_affordable(g):
        paths = _exact_paths(g, False, 1, report, "closeness")
        return Scores(_keyed(g, _closeness_from_sums(g, paths.distance_sum)), chosen, "exact")
    sums, k = _estimated_distance_sums(g, pivots, seed, report)
    return Scores(_keyed(g, _closeness_from_sums(g, sums)), chosen, f"estimated, k={k}")


def _estimated_distance_sums(
    g: SimpleGraph, pivots: int, seed: int, report: Progress
) -> tuple[list[float], int]:
    largest = g.largest
    chosen = random.Random(seed).sample(largest, min(pivots, len(largest)))
    totals = [0.0] * len(g.pubkeys)
    for k, p in enumerate(chosen, start=1):
        levels, _ = _bfs_levels(g.adjacency, p, False)
        for d, level in enumerate(levels):
            for v in level:
                totals[v] += d
        report(k / (len(chosen) + 1), "closeness")
    n = len(largest)
    sums = [0.0] * len(g.pubkeys)
    for v in largest:  # each pivot's distance is a sample of v's mean distance
        sums[v] = totals[v] * n / len(chosen)
    small = [v for v in range(len(g.pubkeys)) if g.component[v] != 0]
    for v in small:  # islands are cheap: exact
        levels, _ = _bfs_levels(g.adjacency, v, False)
        sums[v] = sum(d * len(level) for d, level in enumerate(levels))
    report(1.0, "closeness")
    return sums, len(chosen)


# -- eigenvector and degree -----------------------------------------------------------------


def eigenvector_centrality(g: SimpleGraph, *, backend: str = "auto") -> Scores:
    """networkx.eigenvector_centrality on the largest component (unit length); 0 elsewhere."""
    chosen = resolve_backend(backend)
    values = [0.0] * len(g.pubkeys)
    largest = g.largest
    if len(largest) == 1:
        values[largest[0]] = 1.0
    elif largest and chosen == IGRAPH:
        raw = _to_igraph(g, largest).eigenvector_centrality(scale=True)
        norm = math.sqrt(sum(x * x for x in raw))
        for v, x in zip(largest, raw, strict=True):
            values[v] = abs(x) / norm
    elif largest:
        sub = nx.Graph()
        sub.add_nodes_from(largest)
        sub.add_edges_from(p for p in g.pair_capacity_sat if g.component[p[0]] == 0)
        found = nx.eigenvector_centrality(sub, max_iter=10_000, tol=EIGENVECTOR_TOL)
        for v, x in found.items():
            values[v] = x
    return Scores(_keyed(g, values), chosen, "exact")


def degree_centrality(g: SimpleGraph) -> Scores:
    """networkx.degree_centrality: distinct peers / (n - 1)."""
    n = len(g.pubkeys)
    if n <= 1:
        return Scores(dict.fromkeys(g.pubkeys, 1.0), PURE, "exact")
    return Scores(_keyed(g, [len(ns) / (n - 1) for ns in g.adjacency]), PURE, "exact")


# -- statistics ---------------------------------------------------------------------------


def _base_stats(g: SimpleGraph) -> dict[str, Any]:
    n = len(g.pubkeys)
    largest = g.component_sizes[0] if g.component_sizes else 0
    return {
        "nodes": n,
        "channels": g.channels,
        "node_pairs": len(g.pair_capacity_sat),
        "total_capacity_sat": g.total_capacity_sat,
        "average_degree": 2 * len(g.pair_capacity_sat) / n if n else 0.0,
        "components": len(g.component_sizes),
        "largest_component_nodes": largest,
        "largest_component_pairs": sum(1 for i, _ in g.pair_capacity_sat if g.component[i] == 0),
    }


def _average_path(g: SimpleGraph, distance_sum: Sequence[float]) -> float:
    n = g.component_sizes[0] if g.component_sizes else 0
    if n < 2:
        return 0.0
    return sum(distance_sum[v] for v in g.largest) / (n * (n - 1))


def graph_stats(
    g: SimpleGraph,
    *,
    backend: str = "auto",
    samples: int = PATH_SAMPLES,
    seed: int = 0,
    progress: Progress | None = None,
) -> GraphStats:
    """Counts, components, and the largest component's diameter and average shortest path:
    exact with igraph or when the graph is small, otherwise the average from BFS of `samples`
    seeded nodes ("sampled, k=200") and the diameter by bounding eccentricities (exact unless
    it needs more than DIAMETER_MAX_BFS searches)."""
    chosen = resolve_backend(backend)
    report = progress or _quiet
    if chosen == PURE and _exact_affordable(g):
        paths = _exact_paths(g, False, 1, report, "paths")
        return GraphStats(
            **_base_stats(g),
            diameter=paths.diameter,
            diameter_method="exact",
            average_shortest_path=_average_path(g, paths.distance_sum),
            path_method="exact",
        )
    report(0.0, "diameter")
    diameter, diameter_method = largest_component_diameter(g)
    report(0.3, "average path")
    if chosen == IGRAPH:
        average, method = _igraph_average_path(g), "exact"
    else:
        average, k = _sampled_average_path(g, samples, seed)
        method = f"sampled, k={k}"
    report(1.0, "average path")
    return GraphStats(
        **_base_stats(g),
        diameter=diameter,
        diameter_method=diameter_method,
        average_shortest_path=average,
        path_method=method,
    )


def _igraph_average_path(g: SimpleGraph) -> float:
    largest = g.largest
    if len(largest) < 2:
        return 0.0
    return float(_to_igraph(g, largest).average_path_length(directed=False))


def _sampled_average_path(g: SimpleGraph, samples: int, seed: int) -> tuple[float, int]:
    largest = g.largest
    if len(largest) < 2:
        return 0.0, 0
    chosen = random.Random(seed).sample(largest, min(samples, len(largest)))
    total = 0
    for s in chosen:
        levels, _ = _bfs_levels(g.adjacency, s, False)
        total += sum(d * len(level) for d, level in enumerate(levels))
    return total / (len(chosen) * (len(largest) - 1)), len(chosen)


def largest_component_diameter(g: SimpleGraph, max_bfs: int = DIAMETER_MAX_BFS) -> tuple[int, str]:
    """Exact diameter of the largest component by bounding eccentricities (Takes and
    Kosters): every BFS from v bounds each w's eccentricity between max(d, ecc(v) - d) and
    ecc(v) + d; only nodes whose upper bound exceeds the best eccentricity found can still
    matter. Real networks need a few dozen BFS instead of one per node."""
    largest = g.largest
    if len(largest) < 2:
        return 0, "exact"
    lower = dict.fromkeys(largest, 0)
    upper = dict.fromkeys(largest, len(largest))
    candidates = set(largest)
    best = 0
    searches = 0
    pick_high = True
    while candidates:
        if searches == max_bfs:
            return best, f"lower bound, {searches} BFS"
        if pick_high:  # likely a periphery node: may raise the best eccentricity
            v = max(candidates, key=lambda w: (upper[w], len(g.adjacency[w]), -w))
        else:  # likely a central node: its BFS tightens everyone's upper bound
            v = min(candidates, key=lambda w: (lower[w], -len(g.adjacency[w]), w))
        pick_high = not pick_high
        searches += 1
        levels, _ = _bfs_levels(g.adjacency, v, False)
        ecc = len(levels) - 1
        best = max(best, ecc)
        for d, level in enumerate(levels):
            for w in level:
                if w in candidates:
                    lower[w] = max(lower[w], d, ecc - d)
                    upper[w] = min(upper[w], ecc + d)
        candidates = {w for w in candidates if upper[w] > best}
    return best, "exact"


# -- everything at once -------------------------------------------------------------------


def analyze(
    g: SimpleGraph,
    *,
    backend: str = "auto",
    processes: int = 1,
    progress: Progress | None = None,
) -> Analytics:
    """Stats and all four centralities, each exact. Without igraph one weighted Brandes pass
    gives betweenness, closeness, diameter and average path together."""
    chosen = resolve_backend(backend)
    report = progress or _quiet
    clock = _Clock()

    def within(lo: float, hi: float) -> Progress:
        return lambda fraction, phase: report(lo + (hi - lo) * fraction, phase)

    if chosen == IGRAPH:
        betweenness = betweenness_centrality(g, backend="igraph", progress=within(0.0, 0.55))
        clock.lap("betweenness")
        report(0.55, "closeness")
        sums = _igraph_distance_sums(g)
        closeness = Scores(_keyed(g, _closeness_from_sums(g, sums)), chosen, "exact")
        clock.lap("closeness")
        report(0.8, "diameter")
        diameter, diameter_method = largest_component_diameter(g)
        clock.lap("diameter")
    else:
        paths = _exact_paths(g, True, processes, within(0.0, 0.9), "betweenness and closeness")
        scale = _betweenness_scale(g)
        betweenness = Scores(_keyed(g, [x * scale for x in paths.pair_counts]), chosen, "exact")
        sums = paths.distance_sum
        closeness = Scores(_keyed(g, _closeness_from_sums(g, sums)), chosen, "exact")
        diameter, diameter_method = paths.diameter, "exact"
        clock.lap("betweenness_closeness_paths")
    report(0.9, "eigenvector")
    eigenvector = eigenvector_centrality(g, backend="igraph" if chosen == IGRAPH else "networkx")
    clock.lap("eigenvector")
    stats = GraphStats(
        **_base_stats(g),
        diameter=diameter,
        diameter_method=diameter_method,
        average_shortest_path=_average_path(g, sums),
        path_method="exact",
    )
    degree = Scores(degree_centrality(g).values, chosen, "exact")
    clock.seconds["total"] = round(time.perf_counter() - clock.started, 3)
    report(1.0, "done")
    return Analytics(chosen, stats, betweenness, closeness, degree, eigenvector, clock.seconds)


class _Clock:
    def __init__(self) -> None:
        self.started = self.mark = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.mark, 3)
        self.mark = now
