"""The what-if simulation in a process of its own (see engine/worker_process.py).

    python -m engine.sim_worker IN.json OUT.json [--processes N]

IN   {"version": 1,
      "graph": {"nodes": [[pubkey, alias]], "edges": [[channel_id, node1, node2, capacity_sat,
                policy1, policy2]]}   policy: [base_msat, ppm, cltv, htlc_min, htlc_max,
                disabled] or null
      "scenario": {"our_pubkey", "channels": [{channel_id, peer_id, peer_alias, capacity_sat,
                   local_msat, policy, peer_policy, age_days}], "demand": {Demand fields},
                   "days", "warmup_days", "seed", "calibrate_forwards_per_day"},
      "policies": [{"key": "static" | "chargelnd" | "lndg" | "clboss" | "current"
                    | "daznode" | "level", "profile": {...} (daznode),
                    "percent": 10-1000 (level: every fee at percent % of the current one)}]}
OUT  {"results": [PolicyResult.to_dict()], "stats", "demand", "seconds", "peak_rss_mb"}

Policies run side by side on the same prepared world; with more than one process they are
spread over forked children (the world is shared copy-on-write, results do not depend on
the number of processes).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from .flow_sim import Demand, Scenario, SimChannel, SimulationError, prepare, run_policy
from .node_source import GraphEdge, GraphNode, NetworkGraph, RoutingPolicy
from .profiles import ProfileError, profile_from_dict
from .sim_daznode import daznode_factory
from .sim_policy import LEVEL_MAX_PERCENT, LEVEL_MIN_PERCENT, KeepFees, PolicyFactory, ScaledFees
from .worker_process import (
    NICENESS,
    POOL_SHARED,
    ProgressLines,
    finish,
    lower_priority,
    pool_map,
    read_json,
    write_json,
)

INPUT_VERSION = 1


class SimInputError(ValueError):
    pass


# -- policies ---------------------------------------------------------------------------------


def baseline_factories() -> dict[str, PolicyFactory]:
    from .baselines import BASELINES  # the established tools' algorithms

    return dict(BASELINES)


def policy_factory(spec: dict[str, Any]) -> tuple[str, PolicyFactory]:
    key = spec.get("key")
    if key == "current":
        return "current", KeepFees
    if key == "level":
        percent = spec.get("percent")
        if (
            not isinstance(percent, int)
            or isinstance(percent, bool)
            or not LEVEL_MIN_PERCENT <= percent <= LEVEL_MAX_PERCENT
        ):
            raise SimInputError(
                f"level: percent must be a whole number from {LEVEL_MIN_PERCENT} to "
                f"{LEVEL_MAX_PERCENT}, not {percent!r}"
            )
        return f"level:{percent}", lambda: ScaledFees(percent)
    if key == "daznode":
        try:
            profile = profile_from_dict(spec.get("profile") or {})
        except ProfileError as exc:
            raise SimInputError(f"daznode profile: {exc}") from None
        return f"daznode:{profile.name}", daznode_factory(profile)
    baselines = baseline_factories()
    if key in baselines:
        return str(key), baselines[key]
    raise SimInputError(f"unknown policy {key!r}")


# -- the input --------------------------------------------------------------------------------


def policy_to_list(p: RoutingPolicy | None) -> list[int | bool] | None:
    if p is None:
        return None
    return [
        p.base_fee_msat,
        p.fee_rate_ppm,
        p.cltv_delta,
        p.htlc_min_msat,
        p.htlc_max_msat,
        p.disabled,
    ]


def policy_from_list(raw: Any) -> RoutingPolicy | None:
    if raw is None:
        return None
    base, ppm, cltv, low, high, disabled = raw
    return RoutingPolicy(
        int(base), int(ppm), int(cltv), int(low), int(high), disabled=bool(disabled)
    )


def graph_to_doc(graph: NetworkGraph) -> dict[str, Any]:
    return {
        "nodes": [[n.pubkey, n.alias] for n in graph.nodes],
        "edges": [
            [
                e.channel_id,
                e.node1,
                e.node2,
                e.capacity_sat,
                policy_to_list(e.node1_policy),
                policy_to_list(e.node2_policy),
            ]
            for e in graph.edges
        ],
    }


def graph_from_doc(doc: dict[str, Any]) -> NetworkGraph:
    return NetworkGraph(
        nodes=[GraphNode(str(pk), str(alias)) for pk, alias in doc["nodes"]],
        edges=[
            GraphEdge(
                str(cid), str(a), str(b), int(cap), policy_from_list(p1), policy_from_list(p2)
            )
            for cid, a, b, cap, p1, p2 in doc["edges"]
        ],
    )


def scenario_to_doc(s: Scenario) -> dict[str, Any]:
    return {
        "our_pubkey": s.our_pubkey,
        "channels": [
            {
                **{f.name: getattr(ch, f.name) for f in fields(SimChannel)},
                "policy": policy_to_list(ch.policy),
                "peer_policy": policy_to_list(ch.peer_policy),
            }
            for ch in s.channels
        ],
        "demand": asdict(s.demand),
        "days": s.days,
        "warmup_days": s.warmup_days,
        "seed": s.seed,
        "calibrate_forwards_per_day": s.calibrate_forwards_per_day,
    }


def scenario_from_doc(doc: dict[str, Any]) -> Scenario:
    channels = []
    for raw in doc["channels"]:
        policy = policy_from_list(raw["policy"])
        if policy is None:
            raise SimInputError(f"channel {raw.get('channel_id')}: our policy is unknown")
        channels.append(
            SimChannel(
                channel_id=str(raw["channel_id"]),
                peer_id=str(raw["peer_id"]),
                capacity_sat=int(raw["capacity_sat"]),
                local_msat=int(raw["local_msat"]),
                policy=policy,
                peer_policy=policy_from_list(raw.get("peer_policy")),
                age_days=float(raw.get("age_days", 365.0)),
                peer_alias=str(raw.get("peer_alias", "")),
            )
        )
    return Scenario(
        our_pubkey=str(doc["our_pubkey"]),
        channels=tuple(channels),
        demand=Demand(**doc.get("demand", {})),
        days=int(doc.get("days", 30)),
        warmup_days=int(doc.get("warmup_days", 7)),
        seed=int(doc.get("seed", 1)),
        calibrate_forwards_per_day=doc.get("calibrate_forwards_per_day"),
    )


def write_sim_input(
    path: Path, graph: NetworkGraph, scenario: Scenario, policies: list[dict[str, Any]]
) -> None:
    write_json(
        {
            "version": INPUT_VERSION,
            "graph": graph_to_doc(graph),
            "scenario": scenario_to_doc(scenario),
            "policies": policies,
        },
        path,
    )


# -- running ----------------------------------------------------------------------------------


def _run_one(job: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """In a pool process: one policy on the prepared world the parent shared."""
    index, spec = job
    key, factory = policy_factory(spec)
    return index, run_policy(POOL_SHARED["world"], key, factory).to_dict()


def run_simulation(
    graph: NetworkGraph,
    scenario: Scenario,
    specs: list[dict[str, Any]],
    processes: int = 1,
    progress=lambda _f, _p: None,
) -> dict[str, Any]:
    """Prepare once, run every policy; the OUT document without the timing fields."""
    if not specs:
        raise SimInputError("no policy to simulate")
    for spec in specs:
        policy_factory(spec)  # a bad spec fails before the long part
    world = prepare(graph, scenario, lambda f, p: progress(0.4 * f, p), processes)
    results: list[dict[str, Any] | None] = [None] * len(specs)
    jobs = list(enumerate(specs))
    if processes > 1 and len(specs) > 1:
        running = pool_map(_run_one, jobs, processes, {"world": world}, ordered=False)
        for done, (i, result) in enumerate(running, 1):
            results[i] = result
            progress(0.4 + 0.6 * done / len(specs), result["name"])
    else:
        for i, spec in jobs:
            key, factory = policy_factory(spec)
            name = getattr(factory(), "name", key)  # the phase names the policy, as above

            def step(f: float, _p: str, i: int = i, name: str = name) -> None:
                progress(0.4 + 0.6 * (i + f) / len(specs), name)

            results[i] = run_policy(world, key, factory, step).to_dict()
    return {
        "results": results,
        "stats": world.stats,
        "demand": asdict(world.scenario.demand),
        "days": scenario.days,
        "seed": scenario.seed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.sim_worker")
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--nice", type=int, default=NICENESS)
    args = parser.parse_args(argv)
    lower_priority(args.nice)
    report = ProgressLines()

    def work() -> dict[str, Any]:
        started = time.perf_counter()
        report(0.0, "reading")
        doc = read_json(args.input)
        if not isinstance(doc, dict) or doc.get("version") != INPUT_VERSION:
            raise SimInputError(f"{args.input}: not a simulation input (version {INPUT_VERSION})")
        graph = graph_from_doc(doc["graph"])
        scenario = scenario_from_doc(doc["scenario"])
        out = run_simulation(graph, scenario, doc["policies"], args.processes, report)
        out["seconds"] = round(time.perf_counter() - started, 1)
        return out

    return finish(work, args.output, (OSError, ValueError, TypeError, KeyError, SimulationError))


if __name__ == "__main__":
    sys.exit(main())
