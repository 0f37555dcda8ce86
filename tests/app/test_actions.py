"""Rebalances and channel closes in the approval queue, on the real app and the simulated node.

Each test finds a demo node (seed) whose channels show what it needs, under a profile that
wants idle capital back; it fails, rather than passing on nothing, if none does.
"""

from __future__ import annotations

import contextlib

API = "/daznode/api/v1"
SEEDS = (17, 38, 3, 4, 8, 9, 24, 27, 30, 32, 19, 16, 13, 7, 10)
# A profile that wants idle capital back: 20 %/year elsewhere, closes after a day of age.
CLOSE_KEEN = {"name": "close-keen", "capital_return_pct": 20.0, "close_min_age_days": 1}


@contextlib.asynccontextmanager
async def demo_node_with(client, h, kind: str, count: int = 1):
    """Switch the demo node through seeds until the queue holds `count` pending entries of
    `kind` for its channels (traffic is simulated over real time, so which channel qualifies
    moves); settings, profile and execution mode are restored afterwards."""
    settings = (await client.get(f"{API}/settings", headers=h)).json()
    profile = (await client.get(f"{API}/profile", headers=h)).json()["active"]
    execution = (await client.get(f"{API}/execution", headers=h)).json()
    r = await client.put(f"{API}/profile", headers=h, json={**profile, **CLOSE_KEEN})
    assert r.status_code == 200, r.text
    await client.put(f"{API}/execution", headers=h, json={"min_confidence": 0.3})
    try:
        for seed in SEEDS:
            r = await client.put(f"{API}/settings", headers=h, json={**settings, "sim_seed": seed})
            assert r.status_code == 200, r.text
            await _run(client, h)
            found = await _queue(client, h, kind)
            if len(found) >= count:
                break
        else:
            raise AssertionError(f"no demo seed gave {count} pending {kind} proposal(s)")
        yield found
    finally:
        await client.put(f"{API}/settings", headers=h, json=settings)
        await client.put(f"{API}/profile", headers=h, json=profile)
        await client.put(f"{API}/execution", headers=h, json=execution)
        await _run(client, h)


async def _run(client, h) -> None:
    r = await client.post(f"{API}/monitor/run", headers=h)
    assert r.status_code == 200, r.text


async def _queue(client, h, kind: str, status: str = "pending") -> list[dict]:
    changes = (await client.get(f"{API}/changes", headers=h, params={"status": status})).json()
    return [c for c in changes if c["kind"] == kind]


async def test_rebalance_proposals_run_when_approved(client, admin):
    h = admin.key_headers(admin=True)
    async with demo_node_with(client, h, "rebalance") as plans:
        plan = plans[0]
        action = plan["action"]
        assert action["out_channel"] != plan["channel_id"]
        assert action["amount_sat"] * action["max_fee_ppm"] / 1e6 < action["expected_earnings_sat"]
        r = await client.post(f"{API}/changes/approve", headers=h, json={"ids": [plan["id"]]})
        assert r.status_code == 200, r.text
        [result] = r.json()["actions"]
        log = (await client.get(f"{API}/rebalances", headers=h)).json()
        assert log and log[0]["in_channel"] == plan["channel_id"]
        assert log[0]["out_channel"] == action["out_channel"]
        assert log[0]["ok"] is result["ok"]
        assert log[0]["fee_msat"] <= log[0]["max_fee_msat"]
        [row] = [
            c
            for c in (await client.get(f"{API}/changes", headers=h)).json()
            if c["id"] == plan["id"]
        ]
        assert row["status"] == ("applied" if result["ok"] else "failed")
        assert row["outcome"] == result["detail"]


async def test_a_refill_is_proposed_within_the_admins_fee_limit(client, admin):
    """A plan worth more than the admin's rebalance fee limit is proposed at the limit, not
    proposed above it and rejected."""
    h = admin.key_headers(admin=True)
    execution = (await client.get(f"{API}/execution", headers=h)).json()
    tight = {**execution["bounds"], "rebalance_max_fee_ppm": 1}
    r = await client.put(f"{API}/execution", headers=h, json={"bounds": tight})
    assert r.status_code == 200, r.text
    try:
        async with demo_node_with(client, h, "rebalance") as plans:
            assert all(p["action"]["max_fee_ppm"] == 1 for p in plans), plans
        assert not [
            p
            for p in await _queue(client, h, "rebalance", "rejected")
            if "fee limit" in str(p["validation"])
        ]
    finally:
        r = await client.put(f"{API}/execution", headers=h, json={"bounds": execution["bounds"]})
        assert r.status_code == 200, r.text


async def test_close_waits_for_an_admin_even_in_auto_mode(client, admin, alice):
    h = admin.key_headers(admin=True)
    async with demo_node_with(client, h, "close") as closes:
        close = closes[0]
        assert close["action"]["reason"] and close["action"]["close_and_reopen_cost_sat"] > 0
        assert close["diff"] == [] and close["before"] == close["after"]

        # Auto mode applies fee changes and rebalances, never a close.
        r = await client.put(f"{API}/execution", headers=h, json={"mode": "auto"})
        assert r.status_code == 200
        await _run(client, h)
        assert close["id"] in [c["id"] for c in await _queue(client, h, "close")]

        # Only an LNbits admin approves it.
        denied = await client.post(
            f"{API}/changes/approve",
            headers=alice.key_headers(admin=True),
            json={"ids": [close["id"]]},
        )
        assert denied.status_code == 403

        r = await client.post(f"{API}/changes/approve", headers=h, json={"ids": [close["id"]]})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["batch_id"] is None and out["status"] == "DONE"
        [done] = out["actions"]
        assert done["ok"] and done["kind"] == "close" and "cooperative close" in done["detail"]

        [row] = [
            c
            for c in (await client.get(f"{API}/changes", headers=h)).json()
            if c["id"] == close["id"]
        ]
        assert row["status"] == "applied" and "closing tx" in row["outcome"]
        audit = (await client.get(f"{API}/audit", headers=h)).json()["data"]
        recorded = [a for a in audit if a["action"] == "channel close"]
        assert recorded and close["action"]["reason"] in recorded[0]["detail"]

        await _run(client, h)
        open_ids = {
            c["channel_id"] for c in (await client.get(f"{API}/channels", headers=h)).json()
        }
        assert close["channel_id"] not in open_ids

        # Approving it again does nothing: it is no longer pending.
        again = await client.post(f"{API}/changes/approve", headers=h, json={"ids": [close["id"]]})
        assert again.status_code == 400 and "not pending" in again.json()["detail"]


async def test_rejected_or_pinned_actions_are_not_run(client, admin):
    h = admin.key_headers(admin=True)
    async with demo_node_with(client, h, "close", count=2) as pending:
        # Pin the channel of the first one after it was proposed: approval re-checks and refuses.
        first, rest = pending[0], pending[1:]
        execution = (await client.get(f"{API}/execution", headers=h)).json()
        overrides = [
            *execution.get("overrides", []),
            {"channel_id": first["channel_id"], "pinned": True},
        ]
        r = await client.put(f"{API}/execution", headers=h, json={"overrides": overrides})
        assert r.status_code == 200, r.text
        r = await client.post(f"{API}/changes/approve", headers=h, json={"ids": [first["id"]]})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["status"] == "FAILED" and not out["actions"][0]["ok"]
        assert "pinned" in out["actions"][0]["detail"]
        await client.put(
            f"{API}/execution", headers=h, json={"overrides": execution.get("overrides", [])}
        )

        # A rejection by hand keeps the proposal away for a week.
        r = await client.post(
            f"{API}/changes/reject", headers=h, json={"ids": [rest[0]["id"]], "reason": "no"}
        )
        assert r.status_code == 200
        await _run(client, h)
        for gone in [first, *rest[:1]]:
            again = [
                c
                for c in await _queue(client, h, gone["kind"])
                if c["channel_id"] == gone["channel_id"]
            ]
            assert again == [], f"{gone['kind']} on {gone['channel_id']} proposed again"
