"""Price level trials in the simulator: Daznode's engine sets each channel's fee, and a
node-wide level (engine/level_trials.py), changed once a day, multiplies all of them. On the
benchmark's two placements and their seeds, next to the engine alone and the baselines
(docs/SIMULATION.md, "Price level trials").

    python bench/level_trials.py [--seeds 8] [--first-seed 1]   # markdown on stdout

Not part of `make bench` and not one of its Daznode rows: the product does not run level
trials yet (the benchmark's Daznode rows are what auto mode does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from functools import partial
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
from engine.level_trials import TrialDay, next_level  # noqa: E402
from engine.metrics import ChannelMetrics, NetworkContext  # noqa: E402
from engine.node_source import NetworkGraph  # noqa: E402
from engine.profiles import BUILTIN, Profile  # noqa: E402
from engine.sim_daznode import DaznodePolicy, daznode_factory  # noqa: E402
from engine.sim_policy import FeeSetting, PolicyActions, scaled_fee  # noqa: E402
from engine.worker_process import POOL_SHARED  # noqa: E402

DAY = 86400


class LevelTrialsPolicy(DaznodePolicy):
    """The engine decides on its own fees (the level taken out of what it sees); every day
    the node's earnings of the day go to the trials and the next level multiplies the
    engine's fees on every channel, within the profile's fee range."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)
        self.name = f"Daznode {profile.name} + level trials"
        self.days: list[TrialDay] = []
        self.percent = 100
        self.day_started: int | None = None
        self.own: dict[str, int] = {}  # the engine's fee per channel, before the level
        self.own_changed: dict[str, int] = {}

    def decide(
        self, channels: list[ChannelMetrics], net: NetworkContext, now: int
    ) -> PolicyActions:
        for c in channels:
            if c.fee_ppm is not None and c.channel_id not in self.own:
                self.own[c.channel_id] = c.fee_ppm
        percent = self.percent
        if self.day_started is None or now - self.day_started >= DAY:
            if self.day_started is not None and self.flows is not None:
                flows = [self.flows(c.channel_id, self.day_started, now) for c in channels]
                self.days.append(
                    TrialDay(
                        self.percent,
                        sum(f.fees_msat for f in flows),
                        sum(f.forwards_out for f in flows),
                    )
                )
            self.day_started = now
            percent = next_level(self.days).percent
        actions = super().decide([self._as_engine_sees(c, now) for c in channels], net, now)
        # The engine budgets a refill by its own fee; below 100 % the channel sells for less.
        out = PolicyActions(
            rebalances=[
                replace(r, max_fee_ppm=min(r.max_fee_ppm, scaled_fee(r.max_fee_ppm, percent)))
                for r in actions.rebalances
            ]
        )
        for c in channels:
            if c.local_policy is None:
                continue
            wanted = actions.fees.get(c.channel_id)
            if wanted is not None and wanted.fee_ppm != self.own[c.channel_id]:
                self.own[c.channel_id] = wanted.fee_ppm
                self.own_changed[c.channel_id] = now
            fee = max(
                self.profile.min_fee_ppm,
                min(self.profile.max_fee_ppm, scaled_fee(self.own[c.channel_id], percent)),
            )
            if wanted is not None or fee != c.fee_ppm:
                out.fees[c.channel_id] = FeeSetting(
                    fee,
                    wanted.base_fee_msat if wanted else None,
                    wanted.htlc_max_msat if wanted else None,
                )
        self.percent = percent
        return out

    def _as_engine_sees(self, c: ChannelMetrics, now: int) -> ChannelMetrics:
        """The channel at the engine's own fee; its fee unchanged since the engine changed it
        (the level's daily changes are not the engine's)."""
        if c.local_policy is None:
            return c
        changed = self.own_changed.get(c.channel_id)
        return replace(
            c,
            local_policy=replace(c.local_policy, fee_rate_ppm=self.own[c.channel_id]),
            fee_unchanged_days=(now - changed) / DAY if changed is not None else None,
        )


def _one(key: str) -> tuple[int, int]:
    """In a pool process: one policy's net profit (sat) and fee updates on the world the
    parent shared."""
    world = POOL_SHARED["world"]
    if key == "trials":
        factory = partial(LevelTrialsPolicy, BUILTIN["balanced"])
    elif key == "balanced":
        factory = daznode_factory(BUILTIN["balanced"])
    else:
        factory = BASELINE_FACTORIES[key]
    result = run_policy(world, key, factory).to_dict()
    return result["net_profit_sat"], result["policy_updates"]


KEYS = ("trials", "balanced", *BASELINES)


def profits(graph: NetworkGraph, node: str, seed: int) -> dict[str, tuple[int, int]]:
    return dict(zip(KEYS, map_on_world(graph, node, seed, _one, list(KEYS)), strict=True))


def _versus(ours: float, theirs: float) -> str:
    return f"{ours / theirs - 1:+.0%}" if theirs > 0 else "n/a"


def table(graph: NetworkGraph, seeds: tuple[int, ...]) -> list[str]:
    lines = [
        f"Net profit (sat) over {DAYS} days, mean over seeds {seeds[0]}-{seeds[-1]}, and per "
        "seed against static fees.",
        "",
        "| Placement | balanced + level trials | balanced | best baseline | trials vs it "
        "| balanced vs it | trials - static, least | seeds below static | fee updates, "
        "trials / balanced |",
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
            f"| {label} | {mean['trials']:,.0f} | {mean['balanced']:,.0f} | {best} "
            f"{mean[best]:,.0f} | {_versus(mean['trials'], mean[best])} | "
            f"{_versus(mean['balanced'], mean[best])} | "
            f"{min(r['trials'][0] - r['static'][0] for r in runs):+,} | "
            f"{', '.join(map(str, below)) or 'none'} | "
            f"{updates['trials']:,.0f} / {updates['balanced']:,.0f} |"
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
