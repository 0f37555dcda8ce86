"""HTTP API for what-if simulations and shadow mode under /daznode/api/v1/sim (admins)."""

from __future__ import annotations

import time
from http import HTTPStatus

from fastapi import APIRouter, HTTPException

from . import crud, graph_service, sim_service
from .engine.profiles import BUILTIN
from .engine.sim_policy import LEVEL_MAX_PERCENT, LEVEL_MIN_PERCENT
from .models import SIM_SENDERS_DEFAULT, SIM_SENDERS_MAX, SIM_SENDERS_MIN, ShadowIn, SimRunIn
from .views_api import Admin, _actor

daznode_sim_router = APIRouter(prefix="/api/v1/sim", tags=["daznode"])

MAX_POLICIES = 8
MAX_RUNS_LISTED = 200


def _unavailable(exc: sim_service.SimUnavailable) -> HTTPException:
    return HTTPException(HTTPStatus.CONFLICT, str(exc))


def _checked_levels(levels: list[int]) -> list[int]:
    out = sorted(set(levels))
    for p in out:
        if not LEVEL_MIN_PERCENT <= p <= LEVEL_MAX_PERCENT:
            raise HTTPException(
                HTTPStatus.BAD_REQUEST,
                f"Price level {p} %: choose {LEVEL_MIN_PERCENT} to {LEVEL_MAX_PERCENT} "
                "(% of the current fees).",
            )
    return out


async def _checked(body: SimRunIn) -> tuple[list[str], list[str], list[int]]:
    levels = _checked_levels(body.levels)
    policies = list(dict.fromkeys(body.policies))
    for key in policies:
        if key not in sim_service.BASELINES:
            choices = ", ".join(sim_service.BASELINES)
            raise HTTPException(
                HTTPStatus.BAD_REQUEST, f"Unknown policy {key!r}: one of {choices}."
            )
    choices = await sim_service.profile_choices()
    profiles: list[str] = []
    names: set[str] = set()
    for name in dict.fromkeys(body.profiles):
        if name not in choices:
            raise HTTPException(
                HTTPStatus.BAD_REQUEST, f"Unknown profile {name!r}: one of {', '.join(choices)}."
            )
        if choices[name]["name"] not in names:  # "active" may be one of the others
            names.add(choices[name]["name"])
            profiles.append(name)
    if not policies and not profiles and not levels:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, "Choose at least one policy, profile or price level."
        )
    if len(policies) + len(profiles) + len(levels) > MAX_POLICIES:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST,
            f"At most {MAX_POLICIES} policies, profiles and price levels in one run.",
        )
    return policies, profiles, levels


@daznode_sim_router.get("/options", summary="What can be simulated, and with which demand")
async def api_sim_options(_: Admin) -> dict:
    now = int(time.time())
    state = await crud.get_monitor_state()
    history = await sim_service.history_summary(state.get("node_pubkey") or "", now)
    meta = await graph_service.graph_meta()
    active = (await sim_service.profile_choices())["active"]
    return {
        "policies": [
            {"key": k, "name": name, "description": text}
            for k, (name, text) in sim_service.BASELINES.items()
        ],
        "profiles": [*BUILTIN, *([] if active["name"] in BUILTIN else ["active"])],
        "active_profile": active["name"],
        "max_days": sim_service.MAX_DAYS,
        "senders": {"min": SIM_SENDERS_MIN, "default": SIM_SENDERS_DEFAULT, "max": SIM_SENDERS_MAX},
        "max_policies": MAX_POLICIES,
        "levels": {"min": LEVEL_MIN_PERCENT, "max": LEVEL_MAX_PERCENT},
        "history": history,
        "graph": {"nodes": int(meta.get("nodes", 0)), "channels": int(meta.get("channels", 0))},
        "shadow": await sim_service.shadow_settings(),
        "job": sim_service.status(),
    }


@daznode_sim_router.post("/runs", status_code=HTTPStatus.ACCEPTED, summary="Start a simulation")
async def api_sim_start(body: SimRunIn, caller: Admin) -> dict:
    policies, profiles, levels = await _checked(body)
    try:
        run_id = await sim_service.start(
            "whatif",
            policies,
            profiles,
            body.days,
            body.seed,
            body.calibrate,
            body.senders,
            levels,
        )
    except sim_service.SimUnavailable as exc:
        raise _unavailable(exc) from None
    await crud.add_audit(int(time.time()), _actor(caller), "simulation", run_id)
    return {"id": run_id, "job": sim_service.status()}


@daznode_sim_router.post("/cancel", summary="Cancel the running simulation")
async def api_sim_cancel(caller: Admin) -> dict:
    run_id = sim_service.job.run_id
    try:
        await sim_service.cancel(_actor(caller))
    except sim_service.SimUnavailable as exc:
        raise _unavailable(exc) from None
    await crud.add_audit(int(time.time()), _actor(caller), "simulation cancelled", run_id)
    return sim_service.status()


@daznode_sim_router.get("/status", summary="The running simulation's progress")
async def api_sim_status(_: Admin) -> dict:
    return sim_service.status()


@daznode_sim_router.get("/runs", summary="Simulations, newest first")
async def api_sim_runs(_: Admin, kind: str | None = None, limit: str = "50") -> list[dict]:
    if kind not in (None, "whatif", "shadow"):
        raise HTTPException(HTTPStatus.BAD_REQUEST, "kind: whatif or shadow")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_RUNS_LISTED:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"limit: a whole number from 1 to {MAX_RUNS_LISTED}"
        )
    return await crud.get_sim_runs(kind, int(limit))


@daznode_sim_router.get("/runs/{run_id}", summary="One simulation with its results")
async def api_sim_run(run_id: str, _: Admin) -> dict:
    run = await crud.get_sim_run(run_id)
    if run is None:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"No simulation {run_id}.")
    return run


@daznode_sim_router.get("/shadow", summary="Shadow mode: settings and track record")
async def api_shadow(_: Admin) -> dict:
    runs = await crud.get_sim_runs("shadow", 30)
    return {
        **await sim_service.shadow_settings(),
        "runs": [{**r, "outcome": sim_service.shadow_outcome(r)} for r in runs],
        "track_record": sim_service.shadow_track_record(runs),
    }


@daznode_sim_router.put("/shadow", summary="Turn shadow mode on or off")
async def api_shadow_set(body: ShadowIn, caller: Admin) -> dict:
    now = int(time.time())
    cfg = await sim_service.save_shadow_settings(
        body.enabled, body.days, body.senders, now, body.propose_levels
    )
    await crud.add_audit(now, _actor(caller), "shadow mode", "on" if body.enabled else "off")
    return cfg


@daznode_sim_router.post(
    "/shadow/run", status_code=HTTPStatus.ACCEPTED, summary="Run the shadow simulation now"
)
async def api_shadow_run(caller: Admin) -> dict:
    try:
        run_id = await sim_service.start_shadow(int(time.time()))
    except sim_service.SimUnavailable as exc:
        raise _unavailable(exc) from None
    await crud.add_audit(int(time.time()), _actor(caller), "shadow run", run_id)
    return {"id": run_id, "job": sim_service.status()}
