"""Price level trials in auto mode, on the real app: a day's earnings recorded, the next
level applied within the gossip budget, the engine working on its own fees, and every fee
back where it was when the trials are turned off."""

from __future__ import annotations

import contextlib
import sys
import time

from tests.support.changes import apply_fee_raise

API = "/daznode/api/v1"
DAY = 86400


async def _run(client, h) -> None:
    r = await client.post(f"{API}/monitor/run", headers=h)
    assert r.status_code == 200, r.text


async def _fees(client, h) -> dict[str, int]:
    channels = (await client.get(f"{API}/channels", headers=h)).json()
    return {c["channel_id"]: c["local_policy"]["fee_rate_ppm"] for c in channels}


async def _trials(client, h) -> dict:
    r = await client.get(f"{API}/level-trials", headers=h)
    assert r.status_code == 200, r.text
    return r.json()


@contextlib.asynccontextmanager
async def auto_mode(client, h, min_confidence: float | None = None, **bounds):
    """Auto mode with the balanced profile (trials on) and no cooldown, restored after."""
    profile = (await client.get(f"{API}/profile", headers=h)).json()["active"]
    execution = (await client.get(f"{API}/execution", headers=h)).json()
    loose = {"cooldown_seconds": 0, "max_updates_per_channel_per_day": 1000, **bounds}
    r = await client.put(f"{API}/profile", headers=h, json={"name": "balanced"})
    assert r.status_code == 200, r.text
    waiting = (await client.get(f"{API}/changes", headers=h, params={"status": "pending"})).json()
    if waiting:  # an admin's change left by another test would hold its channel back
        r = await client.post(
            f"{API}/changes/reject", headers=h, json={"ids": [c["id"] for c in waiting]}
        )
        assert r.status_code == 200, r.text
    r = await client.put(
        f"{API}/execution",
        headers=h,
        json={
            **execution,
            "mode": "auto",
            "min_confidence": execution["min_confidence"]
            if min_confidence is None
            else min_confidence,
            "bounds": {**execution["bounds"], **loose},
        },
    )
    assert r.status_code == 200, r.text
    try:
        yield execution
    finally:
        await client.put(f"{API}/profile", headers=h, json=profile)
        await client.put(f"{API}/execution", headers=h, json=execution)
        await _run(client, h)


async def _end_the_day(earned: list[int]) -> int:
    """Move the day's start back before the node's history and write what it earned there:
    the next pass ends the day. Returns the day's start."""
    crud = sys.modules["daznode.crud"]
    service = sys.modules["daznode.level_service"]
    state = await service.load_state()
    start = int(time.time()) - 60 * DAY
    state.day_start = start
    await crud.save_doc(service.STATE_DOC, state.to_doc(), int(time.time()))
    pk = (await crud.get_monitor_state())["node_pubkey"]
    for i, fee in enumerate(earned):
        ts = start + 3600 * (i + 1)
        await crud.db.execute(
            "INSERT INTO daznode.forwards (node_pubkey, idx, ts, ts_ns, chan_in, chan_out, "
            "amt_in_msat, amt_out_msat, fee_msat, status) VALUES (:pk, :idx, :ts, :ns, "
            "'1x1x1', '2x2x2', :amt_in, 100000000, :fee, 'settled')",
            {
                "pk": pk,
                "idx": 800_000_000 + start % 1000 * 10 + i,
                "ts": ts,
                "ns": ts * 10**9,
                "amt_in": 100_000_000 + fee,
                "fee": fee,
            },
        )
    ts = start + DAY + 60  # the next day's: not counted
    await crud.db.execute(
        "INSERT INTO daznode.forwards (node_pubkey, idx, ts, ts_ns, chan_in, chan_out, "
        "amt_in_msat, amt_out_msat, fee_msat, status) VALUES (:pk, :idx, :ts, :ns, "
        "'1x1x1', '2x2x2', 100009000, 100000000, 9000, 'settled')",
        {"pk": pk, "idx": 800_000_000 + start % 1000 * 10 + 9, "ts": ts, "ns": ts * 10**9},
    )
    return start


async def _updates_in_the_last_hour() -> int:
    crud = sys.modules["daznode.crud"]
    return len(await crud.recent_policy_updates(int(time.time()) - 3600))


async def test_a_day_of_trials_records_its_earnings_and_moves_to_the_next_level(client, admin):
    h = admin.key_headers(admin=True)
    async with auto_mode(client, h):
        await _run(client, h)
        first = await _trials(client, h)
        assert first["running"] and first["enabled"] and first["why_not"] == ""
        # The trials choose the level: none is proposed from a simulation meanwhile.
        crud = sys.modules["daznode.crud"]
        now, levels = int(time.time()), {"results": [{"key": "level:150", "channels": []}]}
        await crud.create_sim_run("trials-level-run", "whatif", {}, now)
        await crud.finish_sim_run("trials-level-run", now, result=levels, summary=[])
        r = await client.post(
            f"{API}/changes/level", headers=h, json={"run_id": "trials-level-run", "percent": 150}
        )
        assert r.status_code == 409 and "Price level trials are running" in r.text, r.text
        assert first["percent"] == 100 and "not tried yet" in first["reason"]
        assert first["channels"] > 0 and first["channels_at_level"] == first["channels"]

        # The day ends; two channels may move this pass (the node's hourly gossip budget).
        start = await _end_the_day([1500, 2500, 1000])
        since = int(time.time())
        before = await _fees(client, h)  # as the last pass read them
        budget = await _updates_in_the_last_hour() + 2
        execution = (await client.get(f"{API}/execution", headers=h)).json()
        execution["bounds"]["max_updates_per_node_per_hour"] = budget
        assert (await client.put(f"{API}/execution", headers=h, json=execution)).status_code == 200
        await _run(client, h)
        second = await _trials(client, h)
        assert second["percent"] == 50 and second["day_start"] > start
        assert second["days"][-1] == {
            "day_start": start,
            "day_end": start + DAY,
            "percent": 100,
            "fees_msat": 5000,
            "forwards": 3,
        }
        assert {"percent": 100, "days": 1, "fees_msat": 5000, "forwards": 3}.items() <= (
            second["levels"][0].items()
        )
        unmoved = sum((f * 50 + 50) // 100 == f for f in before.values())  # 0 or 1 ppm
        assert second["channels_at_level"] == 2 + unmoved  # the budget held the rest back
        assert second["channels_at_level"] < second["channels"]

        changes = (await client.get(f"{API}/changes", headers=h)).json()
        stepped = [c for c in changes if c["origin"] == "level-trial"]
        assert len(stepped) == 2 and all(c["status"] == "applied" for c in stepped)
        for c in stepped:  # from the fee the node had (its own fee, at 100 %) to half of it
            fee = c["before"]["fee_rate_ppm"]
            assert c["after"]["fee_rate_ppm"] == (fee * 50 + 50) // 100, c
            assert c["reasons"][0] == (
                f"price level 50 %: own fee {fee} ppm -> {c['after']['fee_rate_ppm']} ppm "
                "on the node"
            )

        # With the budget back, the next pass brings the rest to the level.
        execution["bounds"]["max_updates_per_node_per_hour"] = 1000
        assert (await client.put(f"{API}/execution", headers=h, json=execution)).status_code == 200
        await _run(client, h)
        third = await _trials(client, h)
        assert third["channels_at_level"] == third["channels"]

        # The engine decides on its own fees: the page shows them times the level.
        recs = (await client.get(f"{API}/recommendations", headers=h)).json()["data"]
        leveled = [r for r in recs if r["level_percent"] == 50]
        assert leveled, recs
        for r in leveled:
            assert r["own_fee_ppm"] is not None
            assert any("price level 50 %" in line for line in r["reasons"])
            if r["suggested_own_fee_ppm"] is not None:
                assert r["suggested"]["fee_ppm"] == (r["suggested_own_fee_ppm"] * 50 + 50) // 100

        # A fee the admin sets on a channel at 50 % becomes its own fee at that level.
        channel = next(
            c
            for c in (await client.get(f"{API}/channels", headers=h)).json()
            if c["channel_id"] == stepped[0]["channel_id"]
        )
        batch = await apply_fee_raise(client, admin, channel)
        batches = (await client.get(f"{API}/batches", headers=h)).json()
        item = next(b for b in batches if b["id"] == batch["batch_id"])["items"][0]
        wanted = item["after"]["fee_rate_ppm"]
        recs = (await client.get(f"{API}/recommendations", headers=h)).json()["data"]
        mine = next(r for r in recs if r["channel_id"] == channel["channel_id"])
        assert (mine["level_percent"], mine["own_fee_ppm"]) == (50, wanted * 2)

        # A level step is judged by the trials, not measured as an engine change.
        crud = sys.modules["daznode.crud"]
        waiting = await crud.applied_items_to_evaluate(int(time.time()) + 10 * DAY)
        assert not {c["id"] for c in stepped} & {i["change_id"] for i in waiting}

        # Off: every channel back to its own fee on the next pass; the days are kept.
        r = await client.put(f"{API}/level-trials", headers=h, json={"enabled": False})
        assert r.status_code == 200, r.text
        assert r.json()["enabled"] is False and "off in the profile" in r.json()["why_not"]
        await _run(client, h)
        off = await _trials(client, h)
        assert not off["running"] and off["percent"] == 100
        assert off["channels_at_level"] == off["channels"]
        assert off["days"][-1]["day_start"] == start
        levels = (await client.get(f"{API}/recommendations", headers=h)).json()["data"]
        assert all(r["level_percent"] == 100 for r in levels)
        changes = (await client.get(f"{API}/changes", headers=h)).json()
        engine_moved = {
            c["channel_id"]
            for c in changes
            if c["origin"] != "level-trial"
            and c["status"] == "applied"
            and c["created_at"] >= since
        }
        back = {
            c["channel_id"]: c["after"]["fee_rate_ppm"]
            for c in changes
            if c["origin"] == "level-trial" and "price level 100 %" in c["reasons"][0]
        }
        for c in stepped:  # each stepped channel back at the fee it had before the step
            if c["channel_id"] not in engine_moved:
                assert back[c["channel_id"]] == c["before"]["fee_rate_ppm"], (c, back)
        audit = [a["action"] for a in (await client.get(f"{API}/audit", headers=h)).json()["data"]]
        assert "level trials off" in audit and "price level" in audit


async def test_trials_wait_for_auto_mode_and_bad_input_is_refused(client, admin, alice):
    h = admin.key_headers(admin=True)
    execution = (await client.get(f"{API}/execution", headers=h)).json()
    r = await client.put(f"{API}/execution", headers=h, json={**execution, "mode": "approve"})
    assert r.status_code == 200
    try:
        r = await client.put(f"{API}/level-trials", headers=h, json={"enabled": True})
        assert r.status_code == 200, r.text
        await _run(client, h)
        out = await _trials(client, h)
        assert out["enabled"] and not out["running"]
        assert out["why_not"] == "they run in auto mode only (the mode is approve)"
        for body in ({"enabled": "yes"}, {"enabled": 1}, {}, {"enabled": True, "x": 1}):
            bad = await client.put(f"{API}/level-trials", headers=h, json=body)
            assert bad.status_code in (400, 422), (body, bad.text)
            assert "enabled" in bad.text or "extra" in bad.text, (body, bad.text)
        denied = await client.put(
            f"{API}/level-trials", headers=alice.key_headers(admin=True), json={"enabled": False}
        )
        assert denied.status_code == 403
        assert (
            await client.get(f"{API}/level-trials", headers=alice.key_headers())
        ).status_code == 403
    finally:
        await client.put(f"{API}/execution", headers=h, json=execution)


async def test_the_engine_does_not_count_level_steps_as_its_fee_changes():
    service = sys.modules["daznode.level_service"]
    level = sys.modules["daznode.engine.level_trials"].ChannelLevel
    state = service.LevelState(
        50, 1000, "", {"a": level(100, 50), "b": level(80, 50)}, {"a": 500, "b": None}
    )
    signals = {
        "a": {"fee_changes": 5, "fee_changed_at": 900},  # 4 of them level steps
        "b": {"fee_changes": 3, "fee_changed_at": 950},  # all steps: own fee unchanged
        "c": {"fee_changes": 2, "fee_changed_at": 10},  # not under the trials
    }
    out = service.engine_signals(signals, state, {"a": 4, "b": 3})
    assert out["a"] == {"fee_changes": 1, "fee_changed_at": 500}
    assert out["b"] == {"fee_changes": 0}  # unknown: long ago
    assert out["c"] == signals["c"] and signals["a"]["fee_changes"] == 5  # input untouched
    # The state round-trips through its document, and reads one written without own_since.
    assert service.LevelState.from_doc(state.to_doc()) == state
    old = {"percent": 50, "day_start": 1000, "reason": "", "channels": {"a": [100, 50]}}
    assert service.LevelState.from_doc(old).own_since == {"a": None}
    assert service.LevelState.from_doc({"channels": 3}) == service.LevelState()  # unusable


async def test_a_step_the_node_refused_waits_before_the_next_try(client, admin):
    h = admin.key_headers(admin=True)
    service = sys.modules["daznode.level_service"]
    services = sys.modules["daznode.services"]
    execution = sys.modules["daznode.execution"]
    async with auto_mode(client, h, max_updates_per_node_per_hour=1000):
        await _run(client, h)
        await _end_the_day([])
        profile, cfg = await services.load_profile(), await execution.load_execution_settings()
        services._cache.clear()  # the node's connection gone
        now = int(time.time())
        state = await service.step_level_trials(profile, cfg, now)
        assert state.retry_at == now + service.RETRY_SECONDS
        failed = [
            c
            for c in (await client.get(f"{API}/changes", headers=h)).json()
            if c["origin"] == "level-trial" and c["status"] == "failed"
        ]
        assert failed  # recorded, not left pending
        again = await service.step_level_trials(profile, cfg, now + 60)
        assert again.retry_at == state.retry_at  # no second try within the wait
        later = [
            c
            for c in (await client.get(f"{API}/changes", headers=h)).json()
            if c["origin"] == "level-trial" and c["status"] == "failed"
        ]
        assert len(later) == len(failed)
        await _run(client, h)  # the node back; the wait still holds
        assert (await _trials(client, h))["channels_at_level"] < (await _trials(client, h))[
            "channels"
        ]
        again.retry_at = 0
        crud = sys.modules["daznode.crud"]
        await crud.save_doc(service.STATE_DOC, again.to_doc(), int(time.time()))
        await _run(client, h)
        out = await _trials(client, h)
        assert out["channels_at_level"] == out["channels"]


async def test_the_engine_learns_from_a_change_on_its_own_fees(client, admin):
    """A change made at 50 % from 60 to 90 ppm on the node taught the engine about its own
    fees, 120 -> 180 ppm; a level step is never a change being measured."""
    crud = sys.modules["daznode.crud"]
    execution = sys.modules["daznode.execution"]
    policy = sys.modules["daznode.engine.node_source"].RoutingPolicy
    change = sys.modules["daznode.engine.changes"].PolicyChange
    now = int(time.time())
    before, after = policy(0, 60, 40, 1000, 10**9), policy(0, 90, 40, 1000, 10**9)
    for cid, origin, percent, evaluated in (
        ("9x9x1", "engine", 50, True),
        ("9x9x2", crud.LEVEL_TRIAL_ORIGIN, 50, False),
    ):
        row = execution.pending_row(
            change(f"learn-{cid}", cid, before, after, "test"),
            status="applied",
            reasons=["test"],
            origin=origin,
            checks=[],
            now=now - 3600,
            level_percent=percent,
        )
        await crud.create_change(row)
        await crud.db.execute(
            "INSERT INTO daznode.batch_items (batch_id, change_id, position, channel_id, status, "
            "before_policy, after_policy, updated_at) VALUES (:b, :c, 0, :cid, 'APPLIED', "
            ":before, :after, :t)",
            {
                "b": f"batch-{cid}",
                "c": row["id"],
                "cid": cid,
                "before": row["before_policy"],
                "after": row["after_policy"],
                "t": now - 3600,
            },
        )
        if evaluated:
            await crud.record_impact(
                {
                    "batch_id": f"batch-{cid}",
                    "change_id": row["id"],
                    "channel_id": cid,
                    "applied_at": now - 3600,
                    "evaluated_at": now - 60,
                    "outcome": "hurt",
                    "rolled_back": 0,
                    "verdict": '{"adjusted_change": -0.4}',
                }
            )
    measuring, verdicts = await crud.engine_lessons(now, 2 * 86400, 14 * 86400)
    mine = [v for v in verdicts if v["channel_id"] == "9x9x1"]
    assert [(v["fee_before_ppm"], v["fee_after_ppm"]) for v in mine] == [(120, 180)]
    assert "9x9x2" not in measuring  # a level step: not an experiment of the engine's


async def test_the_engine_changes_no_fee_just_before_the_next_level(client, admin):
    """Within the cooldown before the day's step the engine changes no fee: a change then
    would hold its channel at the old level into the next day. The passes run ten minutes
    ahead, past the cooldown of the steps and changes that earlier tests made."""
    h = admin.key_headers(admin=True)
    crud = sys.modules["daznode.crud"]
    service = sys.modules["daznode.level_service"]
    tasks = sys.modules["daznode.tasks"]
    cooldown = 120
    ahead = int(time.time()) + 600

    async def engine_changes_in_a_pass(to_the_step: int) -> list[dict]:
        state = await service.load_state()
        state.day_start = ahead - DAY + to_the_step
        await crud.save_doc(service.STATE_DOC, state.to_doc(), ahead)
        await tasks._propose(ahead)
        changes = (await client.get(f"{API}/changes", headers=h)).json()
        return [
            c
            for c in changes
            if c["origin"] == "engine" and c["kind"] == "policy" and c["created_at"] >= ahead
        ]

    # Every recommendation applies, and earlier tests spent the node's hourly gossip budget.
    loose = {"min_confidence": 0.0, "max_updates_per_node_per_hour": 100_000}
    async with auto_mode(client, h, cooldown_seconds=cooldown, **loose) as execution:
        await _run(client, h)
        # A fee the engine must change whatever it is measuring (earlier tests leave channels
        # being measured, which hold otherwise): the profile's maximum a fifth below the
        # highest own fee (the node's over the level) of a channel the bounds leave room to
        # move on the node.
        recs = (await client.get(f"{API}/recommendations", headers=h)).json()["data"]
        room = execution["bounds"]["max_fee_ppm"] // 2
        own = {
            r["channel_id"]: r["current_fee_ppm"] * 100 // r["level_percent"]
            for r in recs
            if r["current_fee_ppm"] and r["current_fee_ppm"] <= room
        }
        target = max(own, key=own.get)
        assert own[target] >= 50, recs
        profile = (await client.get(f"{API}/profile", headers=h)).json()["active"]
        capped = {**profile, "name": "balanced-capped", "max_fee_ppm": own[target] * 4 // 5}
        r = await client.put(f"{API}/profile", headers=h, json=capped)
        assert r.status_code == 200, r.text
        assert await engine_changes_in_a_pass(cooldown - 60) == []  # in the pause
        trials = await _trials(client, h)
        assert trials["engine_quiet_from"] == trials["next_day_at"] - cooldown
        assert trials["engine_quiet_from"] <= ahead < trials["next_day_at"]
        made = await engine_changes_in_a_pass(cooldown + 60)  # the same pass, before it
        assert target in {c["channel_id"] for c in made if c["status"] == "applied"}, made
        assert all(c["status"] != "pending" for c in made), made  # auto mode applies
