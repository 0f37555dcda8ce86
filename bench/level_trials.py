"""Price level trials in the simulator: Daznode's engine sets each channel's fee, and a
node-wide level (engine/level_trials.py), changed once a day, multiplies all of them. The
balanced profile as auto mode runs it (trials on) against the same profile with
`level_trials` off and the baselines, on the benchmark's two placements and their seeds
(docs/SIMULATION.md, "Price level trials").

    python bench/level_trials.py [--seeds 8] [--first-seed 1]   # markdown on stdout

The simulated policy is engine/sim_daznode.py's DaznodePolicy, the same as the what-if
simulator's and `make bench`'s: the benchmark's balanced and aggressive rows include the
trials because their profiles turn them on. This script isolates what the trials add.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
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
from engine.profiles import BUILTIN  # noqa: E402
from engine.sim_daznode import daznode_factory  # noqa: E402
from engine.worker_process import POOL_SHARED  # noqa: E402

BALANCED = BUILTIN["balanced"]  # level trials on, as auto mode runs them
WITHOUT_TRIALS = replace(BALANCED, level_trials=False)


def _one(key: str) -> tuple[int, int]:
    """In a pool process: one policy's net profit (sat) and fee updates on the world the
    parent shared."""
    world = POOL_SHARED["world"]
    if key == "trials":
        factory = daznode_factory(BALANCED)
    elif key == "off":
        factory = daznode_factory(WITHOUT_TRIALS)
    else:
        factory = BASELINE_FACTORIES[key]
    result = run_policy(world, key, factory).to_dict()
    return result["net_profit_sat"], result["policy_updates"]


KEYS = ("trials", "off", *BASELINES)


def profits(graph: NetworkGraph, node: str, seed: int) -> dict[str, tuple[int, int]]:
    return dict(zip(KEYS, map_on_world(graph, node, seed, _one, list(KEYS)), strict=True))


def _versus(ours: float, theirs: float) -> str:
    return f"{ours / theirs - 1:+.0%}" if theirs > 0 else "n/a"


def table(graph: NetworkGraph, seeds: tuple[int, ...]) -> list[str]:
    lines = [
        f"Net profit (sat) over {DAYS} days, mean over seeds {seeds[0]}-{seeds[-1]}, and per "
        "seed against static fees.",
        "",
        "| Placement | balanced (level trials) | balanced, trials off | best baseline "
        "| trials vs it | trials off vs it | trials - static, least | seeds below static "
        "| fee updates, trials / off |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, size in PLACEMENTS.items():
        node = pick_node(graph, size)
        runs = [profits(graph, node, seed) for seed in seeds]
        mean = {k: statistics.mean(r[k][0] for r in runs) for k in KEYS}
        updates = {k: statistics.mean(r[k][1] for r in runs) for k in KEYS}
        best = max(BASELINES, key=lambda b: mean[b])
        below = [s for s, r in zip(seeds, runs, strict=True) if r["trials"][0] < r["static"][0]]
        lines.append(
            f"| {label} | {mean['trials']:,.0f} | {mean['off']:,.0f} | {best} "
            f"{mean[best]:,.0f} | {_versus(mean['trials'], mean[best])} | "
            f"{_versus(mean['off'], mean[best])} | "
            f"{min(r['trials'][0] - r['static'][0] for r in runs):+,} | "
            f"{', '.join(map(str, below)) or 'none'} | "
            f"{updates['trials']:,.0f} / {updates['off']:,.0f} |"
        )
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--first-seed", type=int, default=1, help="e.g. 9: seeds never tuned on")
    args = parser.parse_args()
    if args.seeds < 1 or args.first_seed < 1:
        parser.error("--seeds and --first-seed: at least 1")
    seeds = tuple(range(args.first_seed, args.first_seed + args.seeds))
    print("\n".join(table(load_graph(SNAPSHOT), seeds)))
