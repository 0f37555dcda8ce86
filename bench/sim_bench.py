"""Decision quality and simulator speed on the mainnet snapshot: `make bench`.

Two placements of our node, taken from the real graph with their real peers: a mid-size
router (about 50 channels) and a small node (about 8). Every channel starts at the network
median fee with a random balance (20-80 % local, drawn from the seed); each seed draws its
own payments. Every policy replays the same payments (engine/flow_sim.py). Reported per
policy: mean and spread of net profit over the seeds, volume, success rate, policy updates;
and the goal of issue 7: Daznode balanced >= 1.2 x the best baseline's mean net profit, and
never below static fees on any seed.

`run() -> list[str]` returns markdown for docs/BENCHMARKS.md (bench/run.py calls it);
`python bench/sim_bench.py [--seeds 5]` prints it.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.flow_sim import Scenario, SimChannel, prepare, run_policy  # noqa: E402
from engine.graph_io import load_graph  # noqa: E402
from engine.graph_summary import summarize  # noqa: E402
from engine.node_source import NetworkGraph  # noqa: E402
from engine.sim_policy import FixedFees  # noqa: E402
from engine.sim_worker import run_simulation  # noqa: E402
from engine.worker_process import POOL_SHARED, peak_rss_mb, pool_map  # noqa: E402

SNAPSHOT = REPO.parent / "shared" / "data" / "ln-graph-2026-02-03"
SEEDS = (1, 2, 3, 4, 5)
DAYS = 30
LONG_DAYS = 60  # a second horizon for decision quality: the engine learns from its own changes
BASELINES = ("static", "chargelnd", "lndg", "clboss")
PROFILES = ("balanced", "conservative", "aggressive")
PLACEMENTS = {"mid-size router": (45, 55), "small node": (6, 10)}
FLAT_FEES = (50, 100, 200, 400, 800, 1600)


def _specs() -> list[dict]:
    from engine.profiles import BUILTIN

    return [{"key": k} for k in BASELINES] + [
        {"key": "daznode", "profile": BUILTIN[p].to_dict()} for p in PROFILES
    ]


def pick_node(graph: NetworkGraph, channels: tuple[int, int]) -> str:
    """A node with that many channels, all enabled both ways, the one of median capacity
    among them: an ordinary node of its size, chosen the same way every time."""
    count: dict[str, int] = {}
    capacity: dict[str, int] = {}
    complete: dict[str, bool] = {}

    def usable(p) -> bool:
        return p is not None and not p.disabled and p.htlc_max_msat > 0

    for e in graph.edges:
        ok = usable(e.node1_policy) and usable(e.node2_policy)
        for node in (e.node1, e.node2):
            count[node] = count.get(node, 0) + 1
            capacity[node] = capacity.get(node, 0) + e.capacity_sat
            complete[node] = complete.get(node, True) and ok
    lo, hi = channels
    fits = sorted((capacity[n], n) for n, c in count.items() if lo <= c <= hi and complete[n])
    return fits[len(fits) // 2][1]


def placement(graph: NetworkGraph, node: str, seed: int) -> tuple[SimChannel, ...]:
    """The node's real channels and peers; our fees at the network median, balances drawn."""
    net = summarize(graph, node)
    rng = random.Random(seed)
    out = []
    for e in sorted(graph.edges, key=lambda e: e.channel_id):
        if node not in (e.node1, e.node2) or e.node1 == e.node2:
            continue
        ours, theirs = (e.node1_policy, e.node2_policy)
        peer = e.node2
        if e.node2 == node:
            ours, theirs, peer = e.node2_policy, e.node1_policy, e.node1
        if ours is None:
            continue
        ours = replace(
            ours,
            fee_rate_ppm=net.median_fee_ppm,
            base_fee_msat=0,
            disabled=False,
            htlc_max_msat=e.capacity_sat * 990,  # 99 % of the capacity, as nodes default to
        )
        local = int(e.capacity_sat * 1000 * rng.uniform(0.2, 0.8))
        out.append(SimChannel(e.channel_id, peer, e.capacity_sat, local, ours, theirs, 365.0))
    return tuple(out)


def _alias(graph: NetworkGraph, node: str) -> str:
    return next((n.alias for n in graph.nodes if n.pubkey == node), "") or node[:12]


def measure(
    graph: NetworkGraph,
    seeds: tuple[int, ...],
    processes: int = 2,
    days: int = DAYS,
    specs: list[dict] | None = None,
) -> dict:
    specs = _specs() if specs is None else specs
    out: dict = {"placements": {}, "timings": []}
    for label, size in PLACEMENTS.items():
        node = pick_node(graph, size)
        runs = []
        for seed in seeds:
            scenario = Scenario(node, placement(graph, node, seed), days=days, seed=seed)
            started = time.perf_counter()
            result = run_simulation(graph, scenario, specs, processes)
            seconds = time.perf_counter() - started
            runs.append(result)
            out["timings"].append((label, len(scenario.channels), seconds))
            print(f"{label} seed {seed}, {days} days: {seconds:.0f} s", file=sys.stderr, flush=True)
        out["placements"][label] = {
            "node": node,
            "alias": _alias(graph, node),
            "channels": len(runs[0]["results"][0]["channels"]),
            "runs": runs,
        }
    return out


def _speed(graph: NetworkGraph) -> dict:
    """One policy, on the product's two processes: 30 days, the mid-size router."""
    node = pick_node(graph, PLACEMENTS["mid-size router"])
    scenario = Scenario(node, placement(graph, node, 1), days=DAYS, seed=1)
    started = time.perf_counter()
    one = run_simulation(graph, scenario, _specs()[4:5], 2)  # as the product runs it
    single = time.perf_counter() - started
    return {"single": single, "channels": len(scenario.channels), "stats": one["stats"]}


def _table(placement: dict) -> tuple[list[str], dict[str, list[int]]]:
    runs = placement["runs"]
    keys = [r["key"] for r in runs[0]["results"]]
    names = {r["key"]: r["name"] for r in runs[0]["results"]}
    profit = {k: [] for k in keys}
    rows = []
    for k in keys:
        per_seed = [next(r for r in run["results"] if r["key"] == k) for run in runs]
        profit[k] = [p["net_profit_sat"] for p in per_seed]
        mean = statistics.mean(profit[k])
        spread = statistics.stdev(profit[k]) if len(profit[k]) > 1 else 0.0
        volume = statistics.mean(p["volume_sat"] for p in per_seed)
        rates = [p["success_rate"] for p in per_seed if p["success_rate"] is not None]
        updates = statistics.mean(p["policy_updates"] for p in per_seed)
        rebal = statistics.mean(p["rebalance_cost_sat"] for p in per_seed)
        fallback = sum(p["fallback_forwards"] for p in per_seed) / max(
            1, sum(p["forwards"] for p in per_seed)
        )
        rows.append(
            f"| {names[k]} | {mean:,.0f} | {spread:,.0f} | {min(profit[k]):,} / "
            f"{max(profit[k]):,} | {rebal:,.0f} | {volume / 1e6:,.1f} M | "
            f"{statistics.mean(rates) * 100 if rates else 0:.1f} % | {fallback:.0%} | "
            f"{updates:,.0f} |"
        )
    return rows, profit


def _policy_table(placement: dict) -> list[str]:
    """The per-policy table of one placement and the goal line under it."""
    rows, profit = _table(placement)
    return [
        "| Policy | Net profit, mean | Spread | Min / max | Rebalancing | Volume | "
        "Success | Fallback | Updates |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        _goal(profit),
        "",
    ]


def _goal(profit: dict[str, list[int]]) -> str:
    balanced = profit["daznode:balanced"]
    best_key = max(BASELINES, key=lambda k: statistics.mean(profit[k]))
    best = statistics.mean(profit[best_key])
    ratio = statistics.mean(balanced) / best if best > 0 else float("inf")
    never_below = all(b >= s for b, s in zip(balanced, profit["static"], strict=True))
    worst = min(b - s for b, s in zip(balanced, profit["static"], strict=True))
    # Every policy sees the same payments, so the per-seed differences are paired: their
    # spread says how much of the mean difference the seeds' noise could explain.
    diffs = [b - x for b, x in zip(balanced, profit[best_key], strict=True)]
    error = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return (
        f"Daznode balanced vs the best baseline ({best_key}): **{(ratio - 1) * 100:+.0f} %** "
        f"mean net profit (goal +20 %: {'met' if ratio >= 1.2 else 'NOT met'}); never below "
        f"static fees on any seed: **{'yes' if never_below else 'no'}** (smallest margin "
        f"{worst:+,} sat). Per seed, balanced minus {best_key}: "
        f"{', '.join(f'{d:+,}' for d in diffs)} sat (mean {statistics.mean(diffs):+,.0f}, "
        f"standard error {error:,.0f})."
    )


def map_on_world(graph: NetworkGraph, node: str, seed: int, fn, jobs: list) -> list:
    """One seed's world for the node (its placement, DAYS days), prepared once and shared
    with the pool processes; fn(job) for every job there, in order."""
    scenario = Scenario(node, placement(graph, node, seed), days=DAYS, seed=seed)
    world = prepare(graph, scenario, processes=2)
    return list(pool_map(fn, jobs, 2, {"world": world}))


def _flat_run(ppm: int) -> dict:
    """In a pool process: every channel at `ppm` on the world the parent shared."""
    return run_policy(POOL_SHARED["world"], f"flat-{ppm}", lambda: FixedFees(ppm)).to_dict()


def fee_sensitivity(graph: NetworkGraph, seed: int = 1) -> list[str]:
    """The simulated demand's response to our fee: every channel at one fee, several fees,
    seed 1 of each placement. It says what the decision tables reward."""
    lines = [
        "### How the simulated demand responds to our fee",
        "",
        f"Every channel at one fee for the {DAYS} days, seed {seed}; fallback = the share of "
        "forwards a sender sent us only after a cheaper route around us had failed.",
        "",
        "| Placement | Fee | Fees earned (sat) | Forwards | Volume | Fallback |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, size in PLACEMENTS.items():
        node = pick_node(graph, size)
        results = map_on_world(graph, node, seed, _flat_run, list(FLAT_FEES))
        for ppm, r in zip(FLAT_FEES, results, strict=True):
            share = r["fallback_forwards"] / r["forwards"] if r["forwards"] else 0.0
            lines.append(
                f"| {label} | {ppm} ppm | {r['fees_sat']:,} | {r['forwards']:,} | "
                f"{r['volume_sat'] / 1e6:,.1f} M | {share:.0%} |"
            )
    return [*lines, ""]


def longer_horizon(graph: NetworkGraph, seeds: tuple[int, ...], days: int) -> list[str]:
    """The baselines and the balanced profile over `days` instead of DAYS, same seeds and
    placements: the engine measures its own changes and learns from them, baselines do not,
    so the horizon is part of the result. (Not the speed target's 30 days.)"""
    specs = [s for s in _specs() if s["key"] in BASELINES or s["profile"]["name"] == "balanced"]
    data = measure(graph, seeds, days=days, specs=specs)
    lines = [
        f"### Over {days} days",
        "",
        f"The same seeds and placements over {days} simulated days, the baselines and the "
        "balanced profile only. The engine measures its own changes and its price level "
        "trials learn from every day; the baselines do not learn, so the horizon is part of "
        "the result.",
        "",
    ]
    for label, placement_data in data["placements"].items():
        lines += [
            f"#### {label}: {placement_data['alias']} ({placement_data['channels']} channels), "
            f"{days} days",
            "",
            *_policy_table(placement_data),
        ]
    return lines


def run(seeds: tuple[int, ...] = SEEDS, long_days: int = LONG_DAYS) -> list[str]:
    graph = load_graph(SNAPSHOT)
    speed = _speed(graph)
    data = measure(graph, seeds)
    sensitivity = fee_sensitivity(graph)
    lines = [
        "## What-if simulator: decision quality (mainnet snapshot 2026-02-03)",
        "",
        f"{len(seeds)} seeds x {len(PLACEMENTS)} placements, {DAYS} simulated days after a "
        "7-day warm-up, the same payments for every policy (docs/SIMULATION.md). Net profit = "
        "fees earned - rebalancing cost, in sat; spread = standard deviation over the seeds.",
        "",
        "Traffic is thin at this demand (200,000 payments a day, River's lower bound for "
        "mainnet): at the network median fee the mid-size router forwards a few payments a "
        "day over its channels, the small node fewer (the fee table below). Most channels see "
        "a forward every few days, too few for a per-channel measurement to tell a good price "
        "from a bad one within 30 days; the balanced and aggressive profiles run price level "
        "trials (one level for the whole node, tried on whole days), the conservative one "
        'does not (docs/SIMULATION.md, "Price level trials").',
        "",
    ]
    for label, placement_data in data["placements"].items():
        runs = placement_data["runs"]
        demand = runs[0]["demand"]["payments_per_day"]
        lines += [
            f"### {label}: {placement_data['alias']} ({placement_data['channels']} channels)",
            "",
            f"Node `{placement_data['node']}`; {demand:,} payments per day drawn, of which "
            f"{runs[0]['stats']['payments_kept'] / runs[0]['stats']['payments_drawn']:.0%} "
            "could reach us.",
            "",
            *_policy_table(placement_data),
        ]
    if long_days:
        lines += longer_horizon(graph, seeds, long_days)
    lines += sensitivity
    mid = [t for t in data["timings"] if t[0] == "mid-size router"]
    lines += [
        "### Simulator speed",
        "",
        "| What | Time | Target |",
        "|---|---:|---|",
        f"| 30 days, {speed['channels']} channels, full mainnet graph, one policy "
        f"(prepare + run), the product's 2 processes | {speed['single']:.0f} s | < 120 s |",
        f"| The same with all {len(_specs())} policies side by side, 2 processes | "
        f"{statistics.median(t[2] for t in mid):.0f} s (median of {len(mid)} seeds) | |",
        f"| Peak memory of the benchmark and its workers | {peak_rss_mb():,.0f} MB | |",
        "",
        "The peak memory adds the benchmark process's peak resident size to that of its "
        "largest forked worker; a worker shares the prepared world with its parent (copy on "
        "write), so the pages it did not write are counted twice.",
        "",
    ]
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=len(SEEDS))
    parser.add_argument("--long-days", type=int, default=LONG_DAYS, help="0: 30 days only")
    parser.add_argument("--only-long", action="store_true", help="just the longer horizon")
    args = parser.parse_args()
    if args.long_days < 0 or (args.only_long and args.long_days == 0):
        parser.error("--long-days: a number of days > 0 (0 without --only-long: 30 days only)")
    seeds = tuple(range(1, args.seeds + 1))
    if args.only_long:
        print("\n".join(longer_horizon(load_graph(SNAPSHOT), seeds, args.long_days)))
    else:
        print("\n".join(run(seeds, args.long_days)))
