"""What-if simulations and shadow mode: the shell's side of engine/flow_sim.py.

A run takes the stored graph, the node's open channels as the monitor last saw them
(balances, our policy, the peer's policy) and, when the node has forwarded enough, its own
history to calibrate the demand (forwards per day at today's fees, median amount). It runs
in a worker process (engine/sim_worker.py) so LNbits' event loop only waits; one run at a
time, its progress in `status()`, its result stored in daznode.sim_runs.

Shadow mode: once a day, while enabled, the engine's decisions with the active profile are
simulated from the node's current state next to "current fees kept", so an admin sees what
auto mode would have done (and earned) before switching to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from loguru import logger

from . import crud, graph_service
from .engine.flow_sim import DEFAULT_SENDERS, Demand, Scenario, SimChannel
from .engine.node_source import NetworkGraph, RoutingPolicy
from .engine.profiles import BUILTIN
from .engine.sim_worker import write_sim_input
from .engine.worker_process import WorkerError, run_worker
from .execution import LevelRefused, level_targets, propose_level
from .services import load_profile

DAY = 86400
SIM_TIMEOUT_SECONDS = 900
MIN_HISTORY_FORWARDS = 10  # fewer: the default demand is used, not calibrated
HISTORY_DAYS = 30
MAX_DAYS = 90
SHADOW_EVERY_SECONDS = DAY
SHADOW_START_DELAY_SECONDS = 120  # after a start, let LNbits and the monitor settle first
_process_started = time.time()

# What the page offers, in the order of the comparison table.
BASELINES = {
    "static": ("Static fees at the network median", "One fee for every channel, never changed."),
    "chargelnd": (
        "charge-lnd (proportional)",
        "Fee from the local balance share between a minimum and a maximum, applied hourly.",
    ),
    "lndg": (
        "LNDg AutoFees",
        "Steps up or down from liquidity, flow and failed HTLCs, once a day per channel.",
    ),
    "clboss": (
        "CLBOSS-style",
        "Competitors' median into the peer x size x balance x price exploration; rebalances "
        "from earnings.",
    ),
    "current": ("Current fees kept", "The node as it is today: nothing changes."),
}


class SimUnavailable(RuntimeError):
    """A simulation cannot start: no graph, no channels, or one already running."""


@dataclass
class SimJob:
    state: str = "idle"  # idle | running | failed | cancelled
    run_id: str = ""
    kind: str = ""
    phase: str = ""
    progress: float = 0.0
    started_at: int = 0
    finished_at: int = 0
    error: str | None = None


job = SimJob()
_task: asyncio.Task | None = None
_cancel_reason = "LNbits stopped"  # what a cancelled run records, unless an admin cancelled it


def status() -> dict[str, Any]:
    return asdict(job)


def busy() -> bool:
    return job.state == "running"


# -- inputs -----------------------------------------------------------------------------------


def _policy(raw: dict | None) -> RoutingPolicy | None:
    return RoutingPolicy(**raw) if raw else None


async def _graph() -> NetworkGraph:
    try:
        state = await graph_service.current()
    except graph_service.GraphUnavailable:
        raise SimUnavailable(
            "No graph yet: sync it on the Network page (or upload a snapshot) first."
        ) from None
    assert state.graph is not None
    return state.graph


async def history_summary(pubkey: str, now: int) -> dict[str, Any] | None:
    """The node's own demand over the last 30 days, when it has enough to go by."""
    h = await crud.forward_history(pubkey, now - HISTORY_DAYS * DAY)
    if h["count"] < MIN_HISTORY_FORWARDS:
        return None
    days = max(1.0, min(HISTORY_DAYS, (now - h["first_ts"]) / DAY))
    return {
        "forwards": h["count"],
        "days": round(days, 1),
        "forwards_per_day": round(h["count"] / days, 2),
        "median_amount_sat": max(1, h["median_amount_msat"] // 1000),
    }


async def node_inputs(now: int) -> tuple[str, list[SimChannel], list[str]]:
    """Our pubkey and open channels; notes on channels that cannot be simulated."""
    state = await crud.get_monitor_state()
    pubkey = state.get("node_pubkey") or ""
    if not pubkey:
        raise SimUnavailable("The node has not been read yet: wait for the monitor's first pass.")
    channels, notes = [], []
    for row in await crud.get_channels():
        policy = _policy(row["local_policy"])
        if policy is None:
            notes.append(f"{row['channel_id']}: our policy is unknown, left out")
            continue
        channels.append(
            SimChannel(
                channel_id=row["channel_id"],
                peer_id=row["peer_id"],
                peer_alias=row["peer_alias"],
                capacity_sat=int(row["capacity_sat"]),
                local_msat=int(row["local_msat"]),
                policy=policy,
                peer_policy=_policy(row["remote_policy"]),
                age_days=max(0.0, (now - int(row["first_seen"])) / DAY),
            )
        )
    if not channels:
        raise SimUnavailable("The node has no open channel with a known policy to simulate.")
    return pubkey, channels, notes


def _in_graph(
    graph: NetworkGraph, channels: list[SimChannel]
) -> tuple[list[SimChannel], list[str]]:
    known = {n.pubkey for n in graph.nodes}
    for e in graph.edges:
        known.add(e.node1)
        known.add(e.node2)
    kept = [c for c in channels if c.peer_id in known]
    notes = [
        f"{c.channel_id}: peer {c.peer_alias or c.peer_id[:12]} is not in the graph, left out"
        for c in channels
        if c.peer_id not in known
    ]
    if not kept:
        raise SimUnavailable("None of the node's peers is in the synced graph: sync it again.")
    return kept, notes


def policy_specs(
    policies: list[str], profiles: list[dict], levels: list[int] | None = None
) -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = [{"key": key} for key in policies]
    specs += [{"key": "level", "percent": p} for p in levels or []]
    specs += [{"key": "daznode", "profile": p} for p in profiles]
    return specs


async def profile_choices() -> dict[str, dict]:
    """Built-in profiles plus the active one when it is a custom profile."""
    out = {name: p.to_dict() for name, p in BUILTIN.items()}
    active = await load_profile()
    out.setdefault(active.name, active.to_dict())
    out["active"] = active.to_dict()
    return out


# -- running ----------------------------------------------------------------------------------


async def start(
    kind: str,
    policies: list[str],
    profiles: list[str],
    days: int,
    seed: int,
    calibrate: bool,
    senders: int = DEFAULT_SENDERS,
    levels: list[int] | None = None,
) -> str:
    """Check the inputs, store the run and start it; returns its id (SimUnavailable when it
    cannot start). `levels`: price levels, in % of the current fees."""
    global _task
    if busy():
        raise SimUnavailable("A simulation is already running; see its progress.")
    now = int(time.time())
    graph = await _graph()
    pubkey, channels, notes = await node_inputs(now)
    channels, more = _in_graph(graph, channels)
    notes += more
    choices = await profile_choices()
    chosen = [choices[name] for name in profiles]
    history = await history_summary(pubkey, now) if calibrate else None
    demand = Demand(senders=senders)
    if history:
        demand = replace(demand, median_amount_sat=history["median_amount_sat"])
    scenario = Scenario(
        our_pubkey=pubkey,
        channels=tuple(channels),
        demand=demand,
        days=days,
        seed=seed,
        calibrate_forwards_per_day=history["forwards_per_day"] if history else None,
    )
    run_id = uuid.uuid4().hex[:16]
    request = {
        "policies": policies,
        "profiles": profiles,
        "levels": levels or [],
        "days": days,
        "seed": seed,
        "calibrate": calibrate,
        "senders": senders,
        "history": history,
        "channels": len(channels),
        "notes": notes,
    }
    await crud.create_sim_run(run_id, kind, request, now)
    fresh = SimJob(state="running", run_id=run_id, kind=kind, phase="starting", started_at=now)
    job.__dict__.update(asdict(fresh))
    specs = policy_specs(policies, chosen, levels)
    _task = asyncio.create_task(_run(run_id, graph, scenario, specs))
    return run_id


async def _run(run_id: str, graph: NetworkGraph, scenario: Scenario, specs: list[dict]) -> None:
    def on_progress(fraction: float, phase: str) -> None:
        job.progress, job.phase = round(fraction, 3), phase or job.phase

    try:
        with tempfile.TemporaryDirectory(prefix="daznode-sim-") as workdir:
            source, target = Path(workdir) / "sim-in.json", Path(workdir) / "sim-out.json"
            await asyncio.to_thread(write_sim_input, source, graph, scenario, specs)
            result = await run_worker(
                "engine.sim_worker",
                source,
                target,
                ["--processes", str(_processes())],
                label="simulation",
                on_progress=on_progress,
                timeout=SIM_TIMEOUT_SECONDS,
            )
    except (WorkerError, OSError, ValueError) as exc:
        message = str(exc)
        logger.warning(f"daznode: simulation {run_id} failed: {message}")
        finished = int(time.time())
        try:
            await crud.finish_sim_run(run_id, finished, error=message)
        finally:
            job.state, job.error, job.finished_at = "failed", message, finished
        return
    except asyncio.CancelledError:
        finished = int(time.time())
        try:
            await crud.finish_sim_run(run_id, finished, error=f"cancelled: {_cancel_reason}")
        finally:
            _mark_cancelled(finished)
        raise
    summary = [
        {"key": r["key"], "name": r["name"], "net_profit_sat": r["net_profit_sat"]}
        for r in result["results"]
    ]
    # The run is stored before the status says it is over: a page that reads it on "done"
    # must find its result.
    finished = int(time.time())
    try:
        await crud.finish_sim_run(run_id, finished, result=result, summary=summary)
    except asyncio.CancelledError:  # stopped while storing: not done either
        _mark_cancelled(finished)
        raise
    except Exception:
        job.state, job.error, job.finished_at = "failed", "the result could not be stored", finished
        raise
    job.state, job.progress, job.phase, job.finished_at = "idle", 1.0, "done", finished
    logger.info(f"daznode: simulation {run_id} done in {result.get('seconds')} s")


def _mark_cancelled(finished: int) -> None:
    job.state, job.phase, job.finished_at = "cancelled", "cancelled", finished
    job.error = f"cancelled: {_cancel_reason}"


def _processes() -> int:
    """Two at most, whatever the number of policies: the route search and the payments are
    prepared in parallel too."""
    return max(1, min(2, os.cpu_count() or 1))


async def cancel(by: str) -> None:
    """Stop the running simulation and its worker processes; the run is kept as cancelled
    (SimUnavailable when none is running)."""
    global _cancel_reason
    if not busy() or _task is None or _task.done():
        raise SimUnavailable("No simulation is running.")
    _cancel_reason = f"by {by}"
    try:
        await stop()
    finally:
        _cancel_reason = "LNbits stopped"


async def stop() -> None:
    if _task is not None and not _task.done():
        _task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await _task


# -- shadow mode ------------------------------------------------------------------------------

SHADOW_DOC = "shadow"


async def shadow_settings() -> dict[str, Any]:
    doc = await crud.get_doc(SHADOW_DOC) or {}
    return {
        "enabled": bool(doc.get("enabled", False)),
        "days": int(doc.get("days", 7)),
        "senders": int(doc.get("senders", DEFAULT_SENDERS)),
        "propose_levels": bool(doc.get("propose_levels", False)),
    }


async def save_shadow_settings(
    enabled: bool, days: int, senders: int, now: int, propose_levels: bool = False
) -> dict[str, Any]:
    doc = {"enabled": enabled, "days": days, "senders": senders, "propose_levels": propose_levels}
    await crud.save_doc(SHADOW_DOC, doc, now)
    return await shadow_settings()


# Halved and doubled: is the node as a whole priced too high or too low? Its own forwards take
# most of a year to tell (docs/SIMULATION.md, "One price level per node"); the daily runs
# compare both with the current fees on the same payments, each day on new ones.
SHADOW_LEVELS = (50, 200)


async def start_shadow(now: int) -> str:
    cfg = await shadow_settings()
    return await start(
        "shadow",
        ["current"],
        ["active"],
        cfg["days"],
        now // DAY,
        True,
        cfg["senders"],
        list(SHADOW_LEVELS),
    )


async def maybe_shadow(now: int) -> None:
    """Called by the monitor: a shadow run once a day while shadow mode is on."""
    cfg = await shadow_settings()
    if not cfg["enabled"] or busy() or time.time() - _process_started < SHADOW_START_DELAY_SECONDS:
        return
    last = await crud.get_sim_runs("shadow", 1)
    if last and now - int(last[0]["created_at"]) < SHADOW_EVERY_SECONDS:
        return
    try:
        await start_shadow(now)
    except SimUnavailable as exc:
        logger.debug(f"daznode: shadow run not started: {exc}")


def shadow_outcome(run: dict) -> dict[str, Any] | None:
    """Current fees vs the engine, from a finished shadow run's summary."""
    by_key = {s["key"]: s for s in run.get("summary") or []}
    current = by_key.get("current")
    engine = next((s for k, s in by_key.items() if k.startswith("daznode:")), None)
    if not current or not engine:
        return None
    levels = [
        {
            "percent": int(k.split(":", 1)[1]),
            "sat": s["net_profit_sat"],
            "difference_sat": s["net_profit_sat"] - current["net_profit_sat"],
        }
        for k, s in by_key.items()
        if k.startswith("level:")
    ]
    return {
        "current_sat": current["net_profit_sat"],
        "engine_sat": engine["net_profit_sat"],
        "difference_sat": engine["net_profit_sat"] - current["net_profit_sat"],
        "profile": engine["key"].split(":", 1)[1],
        "levels": sorted(levels, key=lambda lv: lv["percent"]),
    }


def _level_differences(outcomes: list[dict]) -> dict[int, list[int]]:
    """Per price level, its net profit minus the current fees' in each outcome that ran it."""
    out: dict[int, list[int]] = {}
    for o in outcomes:
        for lv in o["levels"]:
            out.setdefault(lv["percent"], []).append(lv["difference_sat"])
    return out


def shadow_track_record(runs: list[dict]) -> dict[str, Any]:
    outcomes = [o for r in runs if r["status"] == "done" and (o := shadow_outcome(r))]
    if not outcomes:
        return {"runs": 0}
    diffs = [o["difference_sat"] for o in outcomes]
    by_level = _level_differences(outcomes)
    return {
        "runs": len(outcomes),
        "engine_ahead": sum(1 for d in diffs if d > 0),
        "median_difference_sat": int(statistics.median(diffs)),
        "levels": [
            {
                "percent": p,
                "runs": len(d),
                "ahead": sum(1 for x in d if x > 0),
                "median_difference_sat": int(statistics.median(d)),
            }
            for p, d in sorted(by_level.items())
        ],
    }


# -- the level shadow mode favours, proposed ----------------------------------------------------

LEVEL_VOTE_RUNS, LEVEL_VOTE_AHEAD = 7, 5  # ahead of the current fees in 5 of the last 7 runs
LEVEL_VOTE_MAX_AGE = 14 * DAY  # runs older than this say nothing about today's fees
LEVEL_PROPOSAL_EVERY = 7 * DAY  # at most one automatic level proposal a week


def favoured_level(runs: list[dict], now: int) -> tuple[dict, int] | None:
    """The newest run and the level that came out ahead of the current fees in at least
    LEVEL_VOTE_AHEAD of the last LEVEL_VOTE_RUNS finished shadow runs (the larger median gain
    when both did); None when none did, or too few recent runs to tell."""
    recent = [
        (r, o)
        for r in runs
        if r["status"] == "done"
        and now - int(r["created_at"]) <= LEVEL_VOTE_MAX_AGE
        and (o := shadow_outcome(r))
    ][:LEVEL_VOTE_RUNS]
    if len(recent) < LEVEL_VOTE_RUNS:
        return None
    votes = _level_differences([o for _run, o in recent])
    ahead = [
        (statistics.median(d), p)
        for p, d in votes.items()
        if sum(1 for x in d if x > 0) >= LEVEL_VOTE_AHEAD and statistics.median(d) > 0
    ]
    if not ahead:
        return None
    percent = max(ahead)[1]
    newest = next((r for r, o in recent if any(lv["percent"] == percent for lv in o["levels"])))
    return newest, percent


async def maybe_propose_level(now: int) -> list[str]:
    """Called by the monitor: with the setting on, the level shadow mode keeps favouring goes
    to the approval queue (never applied without an admin), at most once a week and not
    while a level waits. Returns the proposal ids."""
    cfg = await shadow_settings()
    if not cfg["propose_levels"]:
        return []
    last, waiting = await crud.last_change_of_origin("level")
    if waiting or (last is not None and now - last < LEVEL_PROPOSAL_EVERY):
        return []
    listed = await crud.get_sim_runs("shadow", LEVEL_VOTE_RUNS * 2)
    found = favoured_level(listed, now)
    if found is None:
        return []
    newest, percent = found
    run = await crud.get_sim_run(newest["id"])
    targets = level_targets(run, percent) if run else None
    if targets is None:
        return []
    label = f"shadow mode (ahead in {LEVEL_VOTE_AHEAD} or more of the last {LEVEL_VOTE_RUNS} runs)"
    try:
        out = await propose_level(targets, percent, label, "daznode (shadow mode)", now)
    except LevelRefused:
        return []
    if out.proposed:
        logger.info(
            f"daznode: shadow mode proposed price level {percent} % ({len(out.proposed)} changes)"
        )
    return out.proposed
