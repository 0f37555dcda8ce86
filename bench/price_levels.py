"""One price level per node: every channel at one fee for 30 days, on the benchmark's two
placements and their seeds, next to the best baseline (docs/SIMULATION.md, "One price level
per node"). A reference in hindsight, not a policy: it shows how far the node's price level
alone moves the result, which the node's own forwards cannot tell within the horizon.

    python bench/price_levels.py [--seeds 8]      # markdown on stdout; about 25 min on 2 cores

Not part of `make bench` (the decision tables there already take most of an hour).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.sim_bench import (  # noqa: E402
    BASELINES,
    DAYS,
    PLACEMENTS,
    SNAPSHOT,
    map_on_world,
    pick_node,
)
from engine.baselines import BASELINES as BASELINE_FACTORIES  # noqa: E402
from engine.flow_sim import run_policy  # noqa: E402
from engine.graph_io import load_graph  # noqa: E402
from engine.node_source import NetworkGraph  # noqa: E402
from engine.sim_policy import FixedFees  # noqa: E402
from engine.worker_process import POOL_SHARED  # noqa: E402

LEVELS = (50, 100, 150, 200, 300, 400)


def _one(job: tuple[str, int]) -> int:
    """In a pool process: one policy's net profit (sat) on the world the parent shared."""
    kind, ppm = job
    world = POOL_SHARED["world"]
    if kind == "flat":
        return run_policy(world, f"flat-{ppm}", lambda: FixedFees(ppm)).to_dict()["net_profit_sat"]
    return run_policy(world, kind, BASELINE_FACTORIES[kind]).to_dict()["net_profit_sat"]


def profits(graph: NetworkGraph, node: str, seed: int) -> dict[str, int]:
    """Net profit per flat level ("50", ...) and per baseline, one seed of one placement."""
    jobs = [("flat", p) for p in LEVELS] + [(b, 0) for b in BASELINES]
    got = map_on_world(graph, node, seed, _one, jobs)
    return {str(p) if kind == "flat" else kind: v for (kind, p), v in zip(jobs, got, strict=True)}


def table(graph: NetworkGraph, seeds: tuple[int, ...]) -> list[str]:
    header = " | ".join(str(p) for p in LEVELS)
    lines = [
        f"Every channel at one fee for {DAYS} days, mean net profit (sat) over seeds "
        f"{seeds[0]}-{seeds[-1]}; the best baseline by mean; the least margin over static "
        "fees on any seed for the best level.",
        "",
        f"| Placement | {header} | best baseline | best level vs it | least vs static |",
        "|---|" + "---:|" * (len(LEVELS) + 3),
    ]
    for label, size in PLACEMENTS.items():
        node = pick_node(graph, size)
        runs = [profits(graph, node, seed) for seed in seeds]
        mean = {k: statistics.mean(r[k] for r in runs) for k in runs[0]}
        best_base = max(BASELINES, key=lambda b: mean[b])
        best_level = max((str(p) for p in LEVELS), key=lambda p: mean[p])
        vs = mean[best_level] / mean[best_base] - 1 if mean[best_base] > 0 else float("nan")
        least = min(r[best_level] - r["static"] for r in runs)
        cells = " | ".join(
            f"**{mean[str(p)]:,.0f}**" if str(p) == best_level else f"{mean[str(p)]:,.0f}"
            for p in LEVELS
        )
        lines.append(
            f"| {label} | {cells} | {best_base} {mean[best_base]:,.0f} | "
            f"{best_level} ppm {vs:+.0%} | {least:+,} |"
        )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=8)
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error("--seeds: at least 1")
    print("\n".join(table(load_graph(SNAPSHOT), tuple(range(1, args.seeds + 1)))))
