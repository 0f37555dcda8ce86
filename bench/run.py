"""Benchmarks: `make bench`. Results and the machine go to docs/BENCHMARKS.md.

Measured here (foundation): reading the mainnet snapshot, building the simulated node with its
14 days of history, and paging its forward log, as the monitor does.
"""

from __future__ import annotations

import asyncio
import platform
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.graph_io import load_graph  # noqa: E402
from engine.network_gen import generate_network  # noqa: E402
from engine.sources.simulated import SimConfig, SimulatedNode  # noqa: E402

SNAPSHOT = REPO.parent / "shared" / "data" / "ln-graph-2026-02-03"


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


async def page_all(node: SimulatedNode) -> int:
    cursor, n = 0, 0
    while True:
        page = await node.forwards_since(cursor, 1000)
        n += len(page.events)
        cursor = page.next_cursor
        if not page.has_more:
            return n


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(__import__("os").sched_getaffinity(0))
    return f"{cpu}, {cores} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    if not SNAPSHOT.is_dir():
        sys.exit(f"snapshot missing: {SNAPSHOT}")
    rows = []
    t, graph = timed(lambda: load_graph(SNAPSHOT))
    rows.append(("Load mainnet describegraph JSON (17,324 nodes, 50,808 channels)", t, ""))
    t, gen = timed(lambda: generate_network(2000, seed=1))
    rows.append(("Generate a 2,000-node mainnet-like network", t, f"{len(gen.edges)} channels"))
    for channels, days, rate in ((12, 14, 120.0), (200, 30, 3000.0)):
        config = SimConfig(seed=7, num_channels=channels, history_days=days, forwards_per_day=rate)
        t, node = timed(lambda c=config: SimulatedNode(graph, c, graph_label="bench"), repeat=1)
        n = asyncio.run(page_all(node))
        rows.append(
            (
                f"Simulated node, {channels} channels, {days} days of history",
                t,
                f"{n} forwards logged",
            )
        )
        t, _ = timed(lambda nd=node: asyncio.run(page_all(nd)))
        rows.append((f"Page the whole forward log ({n} events, pages of 1,000)", t, ""))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "# Benchmarks",
        "",
        f"Run by `make bench` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}.",
        "",
        "| What | Median time | Notes |",
        "|---|---:|---|",
        *(f"| {what} | {t * 1000:,.1f} ms | {note} |" for what, t, note in rows),
        "",
        f"Peak memory of the benchmark process: {peak_mb:,.0f} MB.",
        "",
    ]
    out = REPO / "docs" / "BENCHMARKS.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
