"""Measure networkx's exact betweenness on the mainnet snapshot once and store it.

`python bench/betweenness_reference.py [snapshot]` takes 15-25 minutes on one core. The result,
bench/reference/betweenness_exact.json, holds the time, the machine and the top 1,000 nodes of the
largest component (normalised betweenness), against which `make bench` checks the fast path.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import networkx as nx  # noqa: E402

from engine.graph_io import load_graph  # noqa: E402

SNAPSHOT = REPO.parent / "shared" / "data" / "ln-graph-2026-02-03"
OUT = REPO / "bench" / "reference" / "betweenness_exact.json"


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SNAPSHOT
    graph = load_graph(source)
    g = nx.Graph()
    g.add_nodes_from(n.pubkey for n in graph.nodes)
    g.add_edges_from((e.node1, e.node2) for e in graph.edges if e.node1 != e.node2)
    lcc = g.subgraph(max(nx.connected_components(g), key=len)).copy()
    start = time.perf_counter()
    scores = nx.betweenness_centrality(lcc, normalized=True)
    seconds = time.perf_counter() - start
    top = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:1000]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "what": "networkx.betweenness_centrality(normalized=True), largest component",
                "snapshot": source.name,
                "nodes": lcc.number_of_nodes(),
                "edges": lcc.number_of_edges(),
                "networkx": nx.__version__,
                "seconds": round(seconds, 1),
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                "top": [[node, value] for node, value in top],
            },
            indent=0,
        )
    )
    print(f"{lcc.number_of_nodes()} nodes, {seconds:.0f} s -> {OUT}")


if __name__ == "__main__":
    main()
