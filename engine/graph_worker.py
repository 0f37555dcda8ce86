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
import contextlib
import inspect
import json
import os
import resource
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .graph_analytics import BACKENDS, AnalyticsError, analyze, graph_from_compact
from .node_source import NetworkGraph

EXTENSION_ROOT = Path(__file__).resolve().parents[1]  # the folder holding engine/
INPUT_VERSION = 1
PROGRESS = "progress"
ERROR_TAIL_LINES = 12
NICENESS = 10  # below LNbits' priority: the node's own work comes first


class GraphWorkerError(RuntimeError):
    """The worker failed; the message ends with its last lines of stderr."""


# -- the files ------------------------------------------------------------------------------


def write_worker_input(graph: NetworkGraph, path: Path) -> None:
    """The compact input: what the analytics need and nothing else (no policies)."""
    doc = {
        "version": INPUT_VERSION,
        "nodes": [[n.pubkey, n.alias] for n in graph.nodes],
        "edges": [[e.node1, e.node2, e.capacity_sat] for e in graph.edges],
    }
    Path(path).write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")


def _read_input(path: Path) -> tuple[list[Any], list[Any]]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("version") != INPUT_VERSION:
        raise ValueError(f"{path}: not a graph worker input (version {INPUT_VERSION})")
    nodes, edges = doc.get("nodes"), doc.get("edges")
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise ValueError(f"{path}: 'nodes' and 'edges' lists expected")
    return nodes, edges


def _write_output(result: dict[str, Any], path: Path) -> None:
    partial = path.with_name(path.name + ".partial")  # a reader never sees half a file
    partial.write_text(json.dumps(result, separators=(",", ":")), encoding="utf-8")
    os.replace(partial, path)


def _read_output(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


# -- the process ------------------------------------------------------------------------------


def default_processes() -> int:
    """Every core, at most 4: the pure-Python pass scales with them (igraph ignores it), and
    the worker runs niced, so LNbits and the node still come first."""
    return max(1, min(4, os.cpu_count() or 1))


class _ProgressLines:
    """Writes "progress <fraction> <phase>" to stderr, at most once per percent or phase."""

    def __init__(self) -> None:
        self.last = (-1.0, "")

    def __call__(self, fraction: float, phase: str) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if phase == self.last[1] and fraction - self.last[0] < 0.01 and fraction < 1.0:
            return
        self.last = (fraction, phase)
        print(f"{PROGRESS} {fraction:.3f} {phase}", file=sys.stderr, flush=True)


def _lower_priority(niceness: int) -> None:
    # not on this platform, or not allowed: run at the normal priority
    with contextlib.suppress(AttributeError, OSError):
        os.nice(niceness)


def _peak_rss_mb() -> float:
    """The worker's own peak plus its helper processes' (ru_maxrss is in KiB on Linux)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round((own + children) / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.graph_worker")
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--processes", type=int, default=default_processes())
    parser.add_argument("--nice", type=int, default=NICENESS)
    args = parser.parse_args(argv)
    _lower_priority(args.nice)
    report = _ProgressLines()
    try:
        report(0.0, "reading")
        nodes, edges = _read_input(args.input)
        graph = graph_from_compact(nodes, edges)
        result = analyze(graph, backend=args.backend, processes=args.processes, progress=report)
        out = result.to_dict()
        out["peak_rss_mb"] = _peak_rss_mb()
        _write_output(out, args.output)
    except (OSError, ValueError, TypeError, IndexError, AnalyticsError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


# -- the shell's side -------------------------------------------------------------------------

OnProgress = Callable[[float, str], Any]  # may return an awaitable


def _progress_line(line: str) -> tuple[float, str] | None:
    parts = line.split(" ", 2)
    if len(parts) < 2 or parts[0] != PROGRESS:
        return None
    try:
        return float(parts[1]), parts[2] if len(parts) > 2 else ""
    except ValueError:
        return None


async def _follow(
    stream: asyncio.StreamReader, tail: deque[str], on_progress: OnProgress | None
) -> None:
    while raw := await stream.readline():
        line = raw.decode("utf-8", "replace").rstrip()
        progress = _progress_line(line)
        if progress is None:
            tail.append(line)
        elif on_progress is not None:
            outcome = on_progress(*progress)
            if inspect.isawaitable(outcome):
                await outcome


def _failure(code: int, tail: deque[str]) -> GraphWorkerError:
    how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    said = " | ".join(line for line in tail if line) or "no output"
    return GraphWorkerError(f"graph analytics worker failed ({how}): {said}")


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
    command = [sys.executable, "-m", "engine.graph_worker", str(source), str(target)]
    command += ["--backend", backend, "--processes", str(processes or default_processes())]
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=EXTENSION_ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        limit=1 << 20,  # a long traceback line must not break the reader
    )
    tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
    try:
        assert proc.stderr is not None
        await asyncio.wait_for(_follow(proc.stderr, tail, on_progress), timeout)
        code = await proc.wait()
    except asyncio.TimeoutError:
        message = f"graph analytics worker gave no result within {timeout} s"
        raise GraphWorkerError(message) from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: do not leave it running
            proc.kill()
            await proc.wait()
    if code != 0:
        raise _failure(code, tail)
    try:
        return await asyncio.to_thread(_read_output, target)
    except (OSError, ValueError) as exc:
        raise GraphWorkerError(f"graph analytics worker left no readable result: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
