"""Benchmarks: `make bench`. Results and the machine go to docs/BENCHMARKS.md.

Measured here (foundation): reading the mainnet snapshot, building the simulated node with its
14 days of history, and paging its forward log, as the monitor does; then the engine's speed,
the graph analytics (bench/graph_bench.py), the service on a live LNbits with API latency
under load (bench/service_bench.py), and the what-if simulator's decision quality and speed
(bench/sim_bench.py).
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

from engine.decide import evaluate_node  # noqa: E402
from engine.graph_io import load_graph  # noqa: E402
from engine.graph_summary import summarize  # noqa: E402
from engine.metrics import ChannelMetrics, FlowWindow  # noqa: E402
from engine.network_gen import generate_network  # noqa: E402
from engine.node_source import RoutingPolicy  # noqa: E402
from engine.profiles import BUILTIN  # noqa: E402
from engine.rules import parse_rules  # noqa: E402
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


def engine_inputs(graph, channels: int = 1000, days: int = 30, per_day: int = 20_000):
    """A 1,000-channel node with 30 days of forwards (600k events) against mainnet peers."""
    import random

    rng = random.Random(5)
    peers = [n.pubkey for n in graph.nodes[: channels * 2]]
    now_ns = int(time.time() * 1e9)
    log = []
    for _ in range(days * per_day):
        a, b = rng.sample(range(channels), 2)
        amount = rng.randint(1_000, 500_000) * 1000
        log.append((now_ns - rng.randrange(days * 86400 * 10**9), a, b, amount, amount // 5000))
    return rng, peers, log


def build_windows(channels: int, log, now_ns: int) -> list[dict[int, FlowWindow]]:
    """One pass over the log into 1/7/30-day windows: the aggregation the shell does in SQL."""
    acc = [{d: [0, 0, 0, 0, 0] for d in (1, 7, 30)} for _ in range(channels)]
    for ts, a, b, amount, fee in log:
        age_days = (now_ns - ts) / 86400e9
        for d in (1, 7, 30):
            if age_days <= d:
                out, inc = acc[b][d], acc[a][d]
                out[0] += 1
                out[2] += amount
                out[4] += fee
                inc[1] += 1
                inc[3] += amount
    return [{d: FlowWindow(d, w[0], w[1], w[2], w[3], w[4]) for d, w in ch.items()} for ch in acc]


def engine_metrics(rng, peers, windows) -> list[ChannelMetrics]:
    out = []
    for i, win in enumerate(windows):
        cap = rng.choice((1, 2, 5, 10)) * 1_000_000
        local = int(cap * 1000 * rng.random())
        policy = RoutingPolicy(rng.choice((0, 1000)), rng.randint(1, 2000), 80, 1000, cap * 990)
        out.append(
            ChannelMetrics(
                f"{800_000 + i}x1x0",
                peers[i % len(peers)],
                f"peer{i}",
                cap,
                local,
                cap * 1000 - local,
                True,
                rng.uniform(1, 700),
                policy,
                policy,
                win,
                uptime_ratio=rng.uniform(0.9, 1),
                disconnects_7d=rng.randint(0, 3),
                policy_changes_30d=rng.randint(0, 5),
            )
        )
    return out


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
    rng, peers, log = engine_inputs(graph)
    now_ns = int(time.time() * 1e9)
    t_win, windows = timed(lambda: build_windows(1000, log, now_ns), repeat=1)
    metrics = engine_metrics(rng, peers, windows)
    net = summarize(graph, "")
    rules = parse_rules(
        [
            {
                "name": "tiny",
                "when": "capacity < 1_500_000 and ratio < 0.05",
                "action": {"type": "leave_alone"},
            }
        ]
    )
    t_eval, recs = timed(lambda: evaluate_node(metrics, net, BUILTIN["balanced"], rules))
    rows.append(
        (f"Aggregate 30 days of forwards ({len(log):,}) into 1/7/30-day windows", t_win, "")
    )
    rows.append(
        (
            "Engine: evaluate a 1,000-channel node (8 heuristics, rules, decisions)",
            t_eval,
            f"target < 1,000 ms; {len(recs)} recommendations",
        )
    )
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
    from bench.graph_bench import run as graph_bench
    from bench.service_bench import run as service_bench
    from bench.sim_bench import run as sim_bench

    lines += [*graph_bench(), "", *service_bench(), "", *sim_bench()]
    out = REPO / "docs" / "BENCHMARKS.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
