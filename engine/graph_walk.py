"""Walks on a graph's adjacency (pubkey -> neighbours, e.g. a networkx graph's `adj`): what
the API answers per request, in milliseconds."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping


def distances_within(
    adjacency: Mapping[str, Collection[str]], start: str, hops: int
) -> dict[str, int]:
    dist = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if dist[node] == hops:
            continue
        for nxt in adjacency.get(node, ()):
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
    return dist


def neighbourhood(
    adjacency: Mapping[str, Collection[str]], center: str, hops: int, max_nodes: int
) -> dict:
    """The nodes within `hops` of `center` and the channels among them. Past `max_nodes`, the
    nearest and best-connected are kept (a hub's two hops are most of the network)."""
    dist = distances_within(adjacency, center, hops)
    ordered = sorted(dist, key=lambda n: (dist[n], -len(adjacency.get(n, ())), n))
    # A hub's direct peers alone exceed any budget: keep room for the outer rings.
    inner_budget = max(1, (max_nodes * 3) // 5) if hops > 1 else max_nodes
    inner = [n for n in ordered if 0 < dist[n] <= 1][: inner_budget - 1]
    outer = [n for n in ordered if dist[n] > 1]
    kept = [center, *inner, *outer][:max_nodes]
    kept.sort(key=lambda n: (dist[n], -len(adjacency.get(n, ())), n))
    inside = set(kept)
    edges = sorted(
        {
            (a, b) if a < b else (b, a)
            for a in kept
            for b in adjacency.get(a, ())
            if b in inside and a != b
        }
    )
    return {
        "nodes": kept,
        "edges": [list(e) for e in edges],
        "distance": {n: dist[n] for n in kept},
        "truncated": len(ordered) > len(kept),
        "total_within": len(ordered),
    }


def shortest_path(adjacency: Mapping[str, Collection[str]], a: str, b: str) -> list[str] | None:
    """Fewest hops from a to b (ties broken by pubkey, so the answer is stable), or None."""
    if a == b:
        return [a]
    parent: dict[str, str | None] = {a: None}
    frontier = [a]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for n in sorted(adjacency.get(node, ())):
                if n in parent:
                    continue
                parent[n] = node
                if n == b:
                    path = [b]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])  # type: ignore[arg-type]
                    return path[::-1]
                nxt.append(n)
        frontier = nxt
    return None
