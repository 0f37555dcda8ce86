"""Graph analytics in a process of their own, so LNbits' event loop never runs them.

    python -m engine.graph_worker IN.json OUT.json [--backend auto] [--processes N]

run with the folder holding engine/ as the working directory (engine is then a top-level
package and the relative imports below resolve as usual).

IN   {"version": 1, "nodes": [[pubkey, alias], ...], "edges": [[node1, node2, capacity_sat]]}
     (write_worker_input writes it from a NetworkGraph)
OUT  Analytics.to_dict(): backend, stats, methods, seconds, and per measure (betweenness,
     closeness, degree, eigenvector) a {pubkey: value} map
     stderr: "progress 0.42 <phase>" lines while it runs; "error: <message>" and exit status 1
     when it fails.

run_analytics_worker() is what the shell awaits: it starts this module with
asyncio.create_subprocess_exec, follows the progress lines and returns OUT as a dict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from .graph_analytics import BACKENDS, AnalyticsError, analyze, graph_from_compact
from .node_source import NetworkGraph
from .worker_process import (
    NICENESS,
    OnProgress,
    ProgressLines,
    WorkerError,
    finish,
    lower_priority,
    run_worker,
    write_json,
)

INPUT_VERSION = 1
GraphWorkerError = WorkerError  # the name the shell and the tests know


# -- the files ------------------------------------------------------------------------------


def write_worker_input(graph: NetworkGraph, path: Path) -> None:
    """The compact input: what the analytics need and nothing else (no policies)."""
    doc = {
        "version": INPUT_VERSION,
        "nodes": [[n.pubkey, n.alias] for n in graph.nodes],
        "edges": [[e.node1, e.node2, e.capacity_sat] for e in graph.edges],
    }
    write_json(doc, Path(path))


def _read_input(path: Path) -> tuple[list[Any], list[Any]]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("version") != INPUT_VERSION:
        raise ValueError(f"{path}: not a graph worker input (version {INPUT_VERSION})")
    nodes, edges = doc.get("nodes"), doc.get("edges")
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise ValueError(f"{path}: 'nodes' and 'edges' lists expected")
    return nodes, edges


# -- the process ------------------------------------------------------------------------------


def default_processes() -> int:
    """Every core, at most 4: the pure-Python pass scales with them (igraph ignores it), and
    the worker runs niced, so LNbits and the node still come first."""
    return max(1, min(4, os.cpu_count() or 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.graph_worker")
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--processes", type=int, default=default_processes())
    parser.add_argument("--nice", type=int, default=NICENESS)
    args = parser.parse_args(argv)
    lower_priority(args.nice)
    report = ProgressLines()

    def work() -> dict[str, Any]:
        report(0.0, "reading")
        graph = graph_from_compact(*_read_input(args.input))
        return analyze(
            graph, backend=args.backend, processes=args.processes, progress=report
        ).to_dict()

    return finish(work, args.output, (OSError, ValueError, TypeError, IndexError, AnalyticsError))


# -- the shell's side -------------------------------------------------------------------------


async def run_analytics_worker(
    graph: NetworkGraph,
    workdir: Path,
    on_progress: OnProgress | None = None,
    *,
    backend: str = "auto",
    processes: int | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Analyse `graph` in a child process (files in `workdir`) and return its OUT document.
    `on_progress(fraction, phase)` is called for each progress line. Raises GraphWorkerError
    when the worker fails or outlives `timeout` seconds; cancelling the caller kills it."""
    workdir = Path(workdir)
    source, target = workdir / "graph-in.json", workdir / "graph-out.json"
    await asyncio.to_thread(write_worker_input, graph, source)
    options = ["--backend", backend, "--processes", str(processes or default_processes())]
    return await run_worker(
        "engine.graph_worker",
        source,
        target,
        options,
        label="graph analytics worker",
        on_progress=on_progress,
        timeout=timeout,
    )


if __name__ == "__main__":
    sys.exit(main())
