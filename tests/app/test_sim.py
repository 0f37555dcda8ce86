"""What-if simulations and shadow mode on the real app: the demo node in the mainnet graph,
its own forwarding history calibrating the demand, the worker process doing the work."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

API = "/daznode/api/v1"
RUN_TIMEOUT = 420
SENDERS = 30  # paying nodes sampled: a quick run (each is a route search on the 17k graph)


async def wait_for_run(client, headers: dict, run_id: str) -> dict:
    progress: list[float] = []
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        job = (await client.get(f"{API}/sim/status", headers=headers)).json()
        if job["run_id"] == run_id:
            progress.append(job["progress"])
            if job["state"] != "running":
                break
        await asyncio.sleep(0.5)
    run = (await client.get(f"{API}/sim/runs/{run_id}", headers=headers)).json()
    assert run["status"] == "done", run
    assert progress == sorted(progress), progress  # the bar only moves forward
    return run


async def test_options_name_the_policies_and_the_node_history(client, admin, alice):
    h = admin.key_headers(admin=True)
    r = await client.get(f"{API}/sim/options", headers=h)
    assert r.status_code == 200, r.text
    options = r.json()
    keys = [p["key"] for p in options["policies"]]
    assert keys == ["static", "chargelnd", "lndg", "clboss", "current"]
    assert {"balanced", "conservative", "aggressive"} <= set(options["profiles"])
    assert options["graph"]["nodes"] >= 17_324
    assert options["senders"] == {"min": 20, "default": 150, "max": 500}
    history = options["history"]  # the demo node has weeks of forwards
    assert history["forwards_per_day"] > 0 and history["median_amount_sat"] > 0
    # Simulations use the node's data: admins only.
    assert (await client.get(f"{API}/sim/options", headers=alice.key_headers())).status_code in (
        401,
        403,
    )


async def test_bad_requests_are_refused_with_a_message(client, admin):
    h = admin.key_headers(admin=True)
    cases = [
        ({"policies": ["bogus"]}, "Unknown policy 'bogus'"),
        ({"policies": [], "profiles": ["nosuch"]}, "Unknown profile 'nosuch'"),
        ({"policies": [], "profiles": []}, "at least one"),
        ({"days": 0}, "days"),
        ({"days": 91}, "days"),
        ({"seed": -1}, "seed"),
        ({"senders": 19}, "senders"),
        ({"senders": 501}, "senders"),
        ({"colour": "red"}, "colour"),
        ({"levels": [9]}, "Price level 9 %: choose 10 to 1000"),
        ({"levels": [150, 1001]}, "Price level 1001 %"),
        ({"levels": ["150"]}, "levels"),
        ({"levels": [1.5]}, "levels"),
        ({"levels": list(range(10, 31))}, "levels"),
        (
            {"policies": ["static", "chargelnd", "lndg", "clboss", "current"], "levels": [1, 2]},
            "Price level 1",
        ),
        (
            {
                "policies": ["static", "chargelnd", "lndg", "clboss", "current"],
                "profiles": ["balanced", "aggressive"],
                "levels": [50, 200],
            },
            "At most 8 policies, profiles and price levels",
        ),
    ]
    for body, message in cases:
        r = await client.post(f"{API}/sim/runs", headers=h, json=body)
        assert r.status_code == 400, (body, r.text)
        assert message.lower() in r.text.lower(), (body, r.text)
    assert (await client.get(f"{API}/sim/runs/nosuchrun", headers=h)).status_code == 404
    assert (await client.get(f"{API}/sim/runs?kind=other", headers=h)).status_code == 400
    for limit in ("0", "201", "abc", "-1"):
        r = await client.get(f"{API}/sim/runs?limit={limit}", headers=h)
        assert r.status_code == 400 and "limit: a whole number from 1 to 200" in r.text, r.text
    nothing = await client.post(f"{API}/sim/cancel", headers=h)
    assert nothing.status_code == 409 and "No simulation is running" in nothing.text


async def test_a_what_if_run_compares_the_policies_on_the_node(client, admin):
    h = admin.key_headers(admin=True)
    body = {
        "policies": ["static", "chargelnd", "lndg", "clboss"],
        "profiles": ["balanced"],
        "levels": [150, 50, 150],  # sorted, once each
        "days": 5,
        "seed": 3,
        "senders": SENDERS,
    }
    fees = {
        c["channel_id"]: c["local_policy"]["fee_rate_ppm"]
        for c in (await client.get(f"{API}/channels", headers=h)).json()
    }
    r = await client.post(f"{API}/sim/runs", headers=h, json=body)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    again = await client.post(f"{API}/sim/runs", headers=h, json=body)
    assert again.status_code == 409 and "already running" in again.text
    run = await wait_for_run(client, h, run_id)

    request, result = run["request"], run["result"]
    assert request["history"]["forwards_per_day"] > 0  # calibrated on the node's history
    stats = result["stats"]
    assert request["senders"] == stats["senders"] == SENDERS
    assert stats["calibration_target_per_day"] == request["history"]["forwards_per_day"]
    assert stats["calibrated_payments_per_day"] == result["demand"]["payments_per_day"]
    keys = [r["key"] for r in result["results"]]
    assert keys == [
        "static",
        "chargelnd",
        "lndg",
        "clboss",
        "level:50",
        "level:150",
        "daznode:balanced",
    ]
    assert request["levels"] == [50, 150]
    for level in result["results"][4:6]:  # each channel at its own fee x the level, held
        percent = int(level["key"].split(":")[1])
        assert level["name"] == f"current fees at {percent} %"
        assert {c["channel_id"]: c["fee_ppm"] for c in level["channels"]} == {
            c["channel_id"]: (fees[c["channel_id"]] * percent + 50) // 100
            for c in level["channels"]
        }
        assert level["policy_updates"] <= request["channels"]
    for policy in result["results"]:
        assert len(policy["daily"]) == 5
        assert policy["net_profit_msat"] == policy["fees_msat"] - policy["rebalance_cost_msat"]
        assert policy["net_profit_sat"] == policy["net_profit_msat"] // 1000
        assert sum(d["forwarded"] for d in policy["daily"]) == policy["forwards"]
        assert policy["offered"] >= policy["forwards"]
        assert len(policy["channels"]) == request["channels"]
    static = result["results"][0]
    assert static["rebalances"] == 0 and static["policy_updates"] <= request["channels"]
    assert any(p["forwards"] > 0 for p in result["results"])
    listed = (await client.get(f"{API}/sim/runs?kind=whatif", headers=h)).json()
    assert listed[0]["id"] == run_id and "result" not in listed[0]
    assert [s["key"] for s in listed[0]["summary"]] == keys
    await propose_the_levels(client, h, run_id, result["results"][4:6])


async def propose_the_levels(client, h: dict, run_id: str, levels: list[dict]) -> None:
    """With the cooldown and gossip budgets of a quiet node: earlier tests' updates (a day
    of price level trials moves every channel) must not hold the levels back here."""
    execution = (await client.get(f"{API}/execution", headers=h)).json()
    quiet = {
        **execution["bounds"],
        "cooldown_seconds": 0,
        "max_updates_per_channel_per_day": 1000,
        "max_updates_per_node_per_hour": 1000,
    }
    r = await client.put(f"{API}/execution", headers=h, json={**execution, "bounds": quiet})
    assert r.status_code == 200, r.text
    try:
        await _propose_the_levels(client, h, run_id, levels)
    finally:
        await client.put(f"{API}/execution", headers=h, json=execution)


async def _propose_the_levels(client, h: dict, run_id: str, levels: list[dict]) -> None:
    """Each channel at the fee the run simulated for it (not the current fee scaled again),
    as far as the bounds allow; a second level replaces the first one still waiting."""
    crud = sys.modules["daznode.crud"]
    old, week = int(time.time()) - 8 * 86400, {"results": [{"key": "level:150", "channels": []}]}
    await crud.create_sim_run("old-level-run", "whatif", {}, old)
    await crud.finish_sim_run("old-level-run", old, result=week, summary=[])
    for body, status, word in (
        ({"run_id": "old-level-run", "percent": 150}, 400, "8 days old"),
        ({"run_id": "nosuchrun", "percent": 150}, 404, "No such simulation run"),
        ({"run_id": run_id, "percent": 120}, 400, "no finished price level 120 %"),
        ({"run_id": run_id, "percent": 9}, 400, "percent"),
        ({"run_id": run_id, "percent": "150"}, 400, "percent"),
        ({"percent": 150}, 400, "run_id"),
        ({"run_id": run_id, "percent": 150, "extra": 1}, 400, "extra"),
    ):
        r = await client.post(f"{API}/changes/level", headers=h, json=body)
        assert r.status_code == status and word in r.text, (body, r.text)
    channels = {c["channel_id"]: c for c in (await client.get(f"{API}/channels", headers=h)).json()}
    first = None
    for level in levels:
        percent = int(level["key"].split(":")[1])
        body = {"run_id": run_id, "percent": percent}
        r = await client.post(f"{API}/changes/level", headers=h, json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        simulated = {c["channel_id"]: c["fee_ppm"] for c in level["channels"]}
        proposed = {c["channel_id"]: c for c in out["proposed"]}
        skipped = {s["channel_id"]: s["reason"] for s in out["skipped"]}
        assert proposed and set(proposed) | set(skipped) == set(channels)
        assert not set(proposed) & set(skipped) and all(skipped.values())
        limited = 0
        for cid, change in proposed.items():
            before = channels[cid]["local_policy"]["fee_rate_ppm"]
            after, target = change["after"]["fee_rate_ppm"], simulated[cid]
            assert change["status"] == "pending" and change["origin"] == "level"
            assert change["before"]["fee_rate_ppm"] == before
            assert f"price level {percent} % from the what-if run of " in change["reasons"][0]
            assert (after - before) * (target - before) > 0  # towards the simulated fee
            assert abs(after - before) <= abs(target - before)
            if after != target:  # held short by the bounds, and it says so
                limited += 1
                assert f"(simulated: {target}) by the execution bounds" in change["reasons"][1]
            # only the fee moves
            assert {k: v for k, v in change["after"].items() if k != "fee_rate_ppm"} == {
                k: v for k, v in change["before"].items() if k != "fee_rate_ppm"
            }
        assert out["limited"] == limited
        if first is None:
            first = out
        else:  # the first level's proposals all left the queue for the second's
            assert out["superseded"] >= len(first["proposed"])
    # The second level replaced the first one still waiting.
    changes = {c["id"]: c for c in (await client.get(f"{API}/changes", headers=h)).json()}
    assert all(changes[c["id"]]["status"] == "superseded" for c in first["proposed"])
    pending = [
        c["id"] for c in changes.values() if c["status"] == "pending" and c["origin"] == "level"
    ]
    assert set(pending) == {c["id"] for c in out["proposed"]}
    r = await client.post(
        f"{API}/changes/reject", headers=h, json={"ids": pending, "reason": "test"}
    )
    assert r.status_code == 200, r.text


async def test_a_level_moves_only_the_fee_towards_its_target_within_the_bounds(client):
    execution = sys.modules["daznode.execution"]
    policy = sys.modules["daznode.engine.node_source"].RoutingPolicy
    cfg = execution.ExecutionSettings()  # default bounds: 0-5000 ppm, one step = half the fee

    def towards(fee: int, target: int, inbound: int | None = None):
        before = policy(0, fee, 40, 1000, 10**9, inbound_fee_rate_ppm=inbound)
        change = execution._towards_level("1x1x1", before, target, cfg)
        return None if change is None else change.after

    assert towards(100, 150).fee_rate_ppm == 150  # within one step: the target itself
    assert towards(100, 400).fee_rate_ppm == 150  # one step, towards it
    assert towards(100, 50).fee_rate_ppm == 50
    assert towards(6000, 5500).fee_rate_ppm == 5500  # into the range, never past the target
    assert towards(5000, 7500) is None  # at the maximum: no step up
    after = towards(150, 50, inbound=-80)  # the discount shrinks under the new fee
    assert (after.fee_rate_ppm, after.inbound_fee_rate_ppm) == (75, -75)
    assert towards(150, 100, inbound=-20).inbound_fee_rate_ppm == -20
    assert (after.base_fee_msat, after.cltv_delta) == (0, 40)  # nothing else moves


async def test_a_running_simulation_can_be_cancelled_and_is_kept_as_cancelled(client, admin):
    h = admin.key_headers(admin=True)
    body = {
        "policies": ["static", "chargelnd"],
        "profiles": ["balanced"],
        "days": 30,
        "seed": 4,
        "senders": SENDERS,
    }
    r = await client.post(f"{API}/sim/runs", headers=h, json=body)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    cancelled = await client.post(f"{API}/sim/cancel", headers=h)
    assert cancelled.status_code == 200, cancelled.text
    job = cancelled.json()
    assert job["state"] == "cancelled" and job["run_id"] == run_id
    assert job["error"].startswith("cancelled: by ")
    run = (await client.get(f"{API}/sim/runs/{run_id}", headers=h)).json()
    assert run["status"] == "failed" and run["error"] == job["error"] and run["result"] is None
    again = await client.post(f"{API}/sim/cancel", headers=h)
    assert again.status_code == 409 and "No simulation is running" in again.text
    # Nothing is left running: the next run starts, and the list honours its limit.
    r = await client.post(f"{API}/sim/runs", headers=h, json={**body, "days": 2})
    assert r.status_code == 202, r.text
    await wait_for_run(client, h, r.json()["id"])
    listed = (await client.get(f"{API}/sim/runs?limit=1", headers=h)).json()
    assert [x["id"] for x in listed] == [r.json()["id"]]


async def test_shadow_mode_runs_the_engine_next_to_the_current_fees(client, admin):
    h = admin.key_headers(admin=True)
    on = {"enabled": True, "days": 2, "senders": SENDERS}
    r = await client.put(f"{API}/sim/shadow", headers=h, json=on)
    assert r.status_code == 200 and r.json() == {**on, "propose_levels": False}
    for bad in ({"days": 99}, {"senders": 10}):
        r = await client.put(f"{API}/sim/shadow", headers=h, json={**on, **bad})
        assert r.status_code == 400 and next(iter(bad)) in r.text, r.text
    r = await client.post(f"{API}/sim/shadow/run", headers=h)
    assert r.status_code == 202, r.text
    await wait_for_run(client, h, r.json()["id"])
    shadow = (await client.get(f"{API}/sim/shadow", headers=h)).json()
    assert shadow["enabled"] and shadow["track_record"]["runs"] >= 1
    assert shadow["runs"][0]["request"]["senders"] == SENDERS
    outcome = shadow["runs"][0]["outcome"]
    assert outcome["difference_sat"] == outcome["engine_sat"] - outcome["current_sat"]
    # The current fees halved and doubled run next to them, on the same payments.
    assert shadow["runs"][0]["request"]["levels"] == [50, 200]
    assert [lv["percent"] for lv in outcome["levels"]] == [50, 200]
    for lv in outcome["levels"]:
        assert lv["difference_sat"] == lv["sat"] - outcome["current_sat"]
    diffs = {50: [], 200: []}
    for run in shadow["runs"]:
        for lv in (run["outcome"] or {}).get("levels", []):
            diffs[lv["percent"]].append(lv["difference_sat"])
    assert shadow["track_record"]["levels"] == [
        {
            "percent": p,
            "runs": len(d),
            "ahead": sum(1 for x in d if x > 0),
            "median_difference_sat": int(statistics.median(d)),
        }
        for p, d in diffs.items()
    ]
    await client.put(f"{API}/sim/shadow", headers=h, json={"enabled": False, "days": 2})


async def test_runs_started_in_the_same_second_list_newest_first(client):
    # A cancelled run and the next one often share their start second.
    crud = sys.modules["daznode.crud"]
    now = int(time.time())
    await crud.create_sim_run("order-first", "order-test", {}, now)
    await crud.finish_sim_run("order-first", now, error="cancelled: by test")
    await crud.create_sim_run("order-second", "order-test", {}, now)
    listed = await crud.get_sim_runs("order-test")
    assert [r["id"] for r in listed] == ["order-second", "order-first"]
    await crud.finish_sim_run("order-second", now + 5, result={}, summary=[])
    listed = await crud.get_sim_runs("order-test")
    assert [r["id"] for r in listed] == ["order-second", "order-first"]


async def test_the_level_shadow_mode_keeps_favouring_is_proposed_once_for_approval(client, admin):
    """Seven finished shadow runs, the current fees halved ahead of them in five: with the
    setting on, the monitor's call puts that level in the approval queue, once."""
    crud, sim = sys.modules["daznode.crud"], sys.modules["daznode.sim_service"]
    h = admin.key_headers(admin=True)
    channels = (await client.get(f"{API}/channels", headers=h)).json()
    halved = [
        {
            "channel_id": c["channel_id"],
            "fee_ppm": (c["local_policy"]["fee_rate_ppm"] * 50 + 50) // 100,
        }
        for c in channels
    ]
    now = int(time.time())
    for i, gain in enumerate((30, -5, 12, 8, -1, 40, 3)):  # ahead in 5 of 7, median +8
        run_id, at = f"vote-{now}-{i}", now - i  # newer than any real shadow run
        summary = [
            {"key": "current", "name": "current", "net_profit_sat": 100},
            {"key": "level:50", "name": "halved", "net_profit_sat": 100 + gain},
            {"key": "level:200", "name": "doubled", "net_profit_sat": 60},
            {"key": "daznode:balanced", "name": "engine", "net_profit_sat": 90},
        ]
        result = {"results": [{"key": "level:50", "channels": halved}]}
        await crud.create_sim_run(run_id, "shadow", {"levels": [50, 200]}, at)
        await crud.finish_sim_run(run_id, at, result=result, summary=summary)
    runs = await crud.get_sim_runs("shadow", 14)
    newest, percent = sim.favoured_level(runs, now)
    assert percent == 50 and newest["id"] == f"vote-{now}-0"
    assert sim.favoured_level(runs[:6], now) is None  # six recent runs are too few to tell

    def run(gain: int, age: int = 0) -> dict:
        keys = (("current", 100), ("level:50", 100 + gain), ("daznode:balanced", 90))
        summary = [{"key": k, "name": k, "net_profit_sat": v} for k, v in keys]
        return {"id": "x", "status": "done", "created_at": now - age, "summary": summary}

    assert sim.favoured_level([run(g) for g in (5, 5, 5, 5, 5, -1, -1)], now)[1] == 50
    assert sim.favoured_level([run(g) for g in (5, 5, 5, 5, -1, -1, -1)], now) is None  # 4 of 7
    assert sim.favoured_level([run(g) for g in (9, 9, 9, 9, 9, -90, -90)], now)[1] == 50
    assert sim.favoured_level([run(1, age=15 * 86400) for _ in range(7)], now) is None  # old

    # The monitor's clock a week on: earlier tests' level proposals are past the weekly limit.
    t0 = now + 8 * 86400
    assert await sim.maybe_propose_level(t0) == []  # the setting is off by default
    on = {"enabled": False, "days": 2, "senders": SENDERS, "propose_levels": True}
    r = await client.put(f"{API}/sim/shadow", headers=h, json=on)
    assert r.status_code == 200 and r.json() == on
    ids = await sim.maybe_propose_level(t0)
    pending = {c["id"]: c for c in (await client.get(f"{API}/changes", headers=h)).json()}
    if not ids:  # a background monitor pass may have proposed it first
        ids = [i for i, c in pending.items() if c["status"] == "pending" and c["origin"] == "level"]
    assert ids, "the favoured level is proposed"
    for change_id in ids:
        change = pending[change_id]
        assert change["status"] == "pending" and change["origin"] == "level"
        assert "price level 50 % from shadow mode" in change["reasons"][0]
        assert "daznode (shadow mode)" in change["reasons"][0]
    assert await sim.maybe_propose_level(t0 + 60) == []  # not while it waits
    r = await client.post(f"{API}/changes/reject", headers=h, json={"ids": ids, "reason": "test"})
    assert r.status_code == 200
    assert await sim.maybe_propose_level(t0 + 86400) == []  # nor again within the week
    # A level left waiting for over a week leaves the queue (its fees are stale by then).
    stale = await sim.propose_level(
        {c["channel_id"]: c["fee_ppm"] for c in halved}, 50, "t", "t", t0
    )
    assert stale.proposed
    expired = await sys.modules["daznode.execution"].expire_stale_levels(t0 + 8 * 86400)
    assert expired >= len(stale.proposed)  # what the monitor runs on every pass
    changes = {c["id"]: c for c in (await client.get(f"{API}/changes", headers=h)).json()}
    assert all(changes[i]["status"] == "superseded" for i in stale.proposed)
    left = [i for i, c in changes.items() if c["status"] == "pending" and c["origin"] == "level"]
    if left:  # proposed again from the runs, now that a week has passed: leave none behind
        await client.post(f"{API}/changes/reject", headers=h, json={"ids": left})
    off = {**on, "propose_levels": False}
    assert (await client.put(f"{API}/sim/shadow", headers=h, json=off)).status_code == 200
