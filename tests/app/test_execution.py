"""Safe execution on the real app: dry run, approval, batch apply, rollback, audit."""

from __future__ import annotations

import sys
import time

from tests.support.changes import apply_fee_raise

API = "/daznode/api/v1"


async def _monitor(client, admin) -> None:
    r = await client.post(f"{API}/monitor/run", headers=admin.key_headers(admin=True))
    assert r.status_code == 200, r.text


async def _channel(client, admin, index: int = 0) -> dict:
    channels = (await client.get(f"{API}/channels", headers=admin.key_headers())).json()
    return sorted(channels, key=lambda c: c["channel_id"])[index]


async def test_preview_approve_apply_and_roll_back(client, admin, alice):
    h = admin.key_headers(admin=True)
    await _monitor(client, admin)
    ch = await _channel(client, admin, 0)
    fee = ch["local_policy"]["fee_rate_ppm"]
    wanted = fee + max(10, fee // 5)

    preview = await client.post(
        f"{API}/changes/preview",
        headers=h,
        json={"channel_id": ch["channel_id"], "fee_rate_ppm": wanted},
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["ok"] and body["diff"] == [
        {"field": "fee_rate_ppm", "before": fee, "after": wanted}
    ]
    assert body["after"]["cltv_delta"] == ch["local_policy"]["cltv_delta"]  # rest unchanged

    created = await client.post(
        f"{API}/changes", headers=h, json={"channel_id": ch["channel_id"], "fee_rate_ppm": wanted}
    )
    assert created.status_code == 200, created.text
    change = created.json()
    assert change["status"] == "pending" and change["origin"] == "manual"
    pending = (await client.get(f"{API}/changes", headers=h, params={"status": "pending"})).json()
    assert change["id"] in {c["id"] for c in pending}

    denied = await client.post(
        f"{API}/changes/approve",
        headers=alice.key_headers(admin=True),
        json={"ids": [change["id"]]},
    )
    assert denied.status_code == 403

    applied = await client.post(f"{API}/changes/approve", headers=h, json={"ids": [change["id"]]})
    assert applied.status_code == 200, applied.text
    assert applied.json()["status"] == "SUCCESS", applied.json()
    batch_id = applied.json()["batch_id"]
    await _monitor(client, admin)
    now = next(
        c
        for c in (await client.get(f"{API}/channels", headers=h)).json()
        if c["channel_id"] == ch["channel_id"]
    )
    assert now["local_policy"]["fee_rate_ppm"] == wanted  # read back from the node

    again = await client.post(f"{API}/changes/approve", headers=h, json={"ids": [change["id"]]})
    assert again.status_code == 400 and "not pending" in again.json()["detail"]

    batches = (await client.get(f"{API}/batches", headers=h)).json()
    batch = next(b for b in batches if b["id"] == batch_id)
    assert batch["status"] == "SUCCESS" and batch["items"][0]["status"] == "APPLIED"
    assert batch["items"][0]["readback"]["fee_rate_ppm"] == wanted

    rolled = await client.post(f"{API}/batches/{batch_id}/rollback", headers=h, json={})
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["status"] == "ROLLED_BACK"
    assert rolled.json()["items"][0]["status"] == "RESTORED"
    await _monitor(client, admin)
    back = next(
        c
        for c in (await client.get(f"{API}/channels", headers=h)).json()
        if c["channel_id"] == ch["channel_id"]
    )
    assert back["local_policy"]["fee_rate_ppm"] == fee

    audit = (await client.get(f"{API}/audit", headers=h)).json()["data"]
    actions = [a["action"] for a in audit]
    assert "approved" in actions and "rollback" in actions and "proposed" in actions
    missing = await client.post(f"{API}/batches/nope/rollback", headers=h, json={})
    assert missing.status_code == 404


async def test_validation_rejects_with_reasons_and_pins_hold(client, admin):
    h = admin.key_headers(admin=True)
    ch = await _channel(client, admin, 1)
    fee = ch["local_policy"]["fee_rate_ppm"]
    too_big = await client.post(
        f"{API}/changes",
        headers=h,
        json={"channel_id": ch["channel_id"], "fee_rate_ppm": fee * 3 + 100},
    )
    assert too_big.status_code == 400 and ch["channel_id"] in too_big.json()["detail"]
    too_high = await client.post(
        f"{API}/changes/preview",
        headers=h,
        json={"channel_id": ch["channel_id"], "fee_rate_ppm": 99_000},
    )
    assert too_high.status_code == 200 and not too_high.json()["ok"]
    assert any("maximum" in r for r in too_high.json()["reasons"])

    r = await client.put(
        f"{API}/execution",
        headers=h,
        json={"overrides": [{"channel_id": ch["channel_id"], "pinned": True}]},
    )
    assert r.status_code == 200, r.text
    pinned = await client.post(
        f"{API}/changes", headers=h, json={"channel_id": ch["channel_id"], "fee_rate_ppm": fee + 10}
    )
    assert pinned.status_code == 400 and "pinned" in pinned.json()["detail"]

    for body, word in (
        ({"mode": "yolo"}, "mode"),
        ({"min_confidence": 2}, "min_confidence"),
        ({"bounds": {"max_fee_ppm": -1}}, "max_fee_ppm"),
        ({"nope": 1}, "nope"),
        ({"overrides": [{"pinned": True}]}, "channel_id"),
    ):
        bad = await client.put(f"{API}/execution", headers=h, json=body)
        assert bad.status_code == 400 and word in bad.json()["detail"], (body, bad.text)
    settings = (await client.get(f"{API}/execution", headers=h)).json()
    assert settings["mode"] == "approve" and settings["overrides"][0]["pinned"] is True
    r = await client.put(f"{API}/execution", headers=h, json={"overrides": []})
    assert r.status_code == 200

    for body, word in (
        ({"channel_id": "garbage", "fee_rate_ppm": 5}, "short channel id"),
        ({"channel_id": ch["channel_id"]}, "Say what"),
        ({"channel_id": ch["channel_id"], "fee_rate_ppm": -5}, "fee_rate_ppm"),
        ({"channel_id": ch["channel_id"], "colour": 1}, "colour"),
    ):
        bad = await client.post(f"{API}/changes/preview", headers=h, json=body)
        assert bad.status_code in (400, 422) and word in bad.text, (body, bad.text)


async def test_engine_proposals_wait_in_the_queue(client, admin):
    h = admin.key_headers(admin=True)
    await client.put(f"{API}/execution", headers=h, json={"mode": "approve"})
    await _monitor(client, admin)
    changes = (await client.get(f"{API}/changes", headers=h)).json()
    # Earlier tests applied some in auto mode; the approve-mode proposals are the rest.
    engine = [
        c
        for c in changes
        if c["origin"] == "engine" and c["kind"] == "policy" and not c["decided_by"]
    ]
    assert engine, "the monitor proposes the engine's fee changes in approve mode"
    for c in engine:
        assert c["status"] in {"pending", "rejected", "superseded"}
        assert c["diff"] and c["reasons"]
    r = await client.put(f"{API}/execution", headers=h, json={"mode": "observe"})
    assert r.status_code == 200
    ids = [c["id"] for c in engine if c["status"] == "pending"][:2]
    if ids:
        rejected = await client.post(
            f"{API}/changes/reject", headers=h, json={"ids": ids, "reason": "not now"}
        )
        assert rejected.status_code == 200
        assert all(c["status"] == "rejected" for c in rejected.json())
    await client.put(f"{API}/execution", headers=h, json={"mode": "approve"})


async def test_the_engine_leaves_an_admins_pending_change_alone(client, admin):
    h = admin.key_headers(admin=True)
    await client.put(f"{API}/execution", headers=h, json={"mode": "approve"})
    await _monitor(client, admin)
    pending = (await client.get(f"{API}/changes", headers=h, params={"status": "pending"})).json()
    wanted = next(
        c
        for c in pending
        if c["origin"] == "engine"
        and c["kind"] == "policy"
        and abs(c["after"]["fee_rate_ppm"] - c["before"]["fee_rate_ppm"]) >= 4
    )
    cid = wanted["channel_id"]
    # Half way to the engine's fee: within the bounds, and not what the engine wants.
    mid = (wanted["after"]["fee_rate_ppm"] + wanted["before"]["fee_rate_ppm"]) // 2
    mine = await client.post(
        f"{API}/changes", headers=h, json={"channel_id": cid, "fee_rate_ppm": mid}
    )
    assert mine.status_code == 200, mine.text

    await _monitor(client, admin)
    recs = (await client.get(f"{API}/recommendations", headers=h)).json()["data"]
    rec = next(r for r in recs if r["channel_id"] == cid)  # the engine still wants a change
    assert rec["decision"] in ("INCREASE_FEES", "DECREASE_FEES"), rec
    # ... and the dashboard says why nothing is proposed for it.
    assert [r["channel_id"] for r in recs if r["admin_change_waiting"]] == [cid]
    score = (await client.get(f"{API}/channels/{cid}/score", headers=h)).json()
    assert score["admin_change_waiting"] is True
    changes = (await client.get(f"{API}/changes", headers=h)).json()
    assert next(c for c in changes if c["id"] == mine.json()["id"])["status"] == "pending"
    assert not [
        c
        for c in changes
        if c["channel_id"] == cid and c["status"] == "pending" and c["origin"] != "manual"
    ]
    await client.post(f"{API}/changes/reject", headers=h, json={"ids": [mine.json()["id"]]})


async def test_backups_are_versioned_checked_exported_and_imported(client, admin):
    h = admin.key_headers(admin=True)
    await _monitor(client, admin)  # takes the daily backup
    # an applied batch takes one before it (on its own channel: no other test's cooldown)
    await apply_fee_raise(client, admin, await _channel(client, admin, 4))
    backups = (await client.get(f"{API}/backups", headers=h)).json()
    assert backups and backups[-1]["reason"] == "daily"
    assert any(b["reason"].startswith("before batch") for b in backups)  # taken before applying
    assert all(len(b["checksum"]) == 64 for b in backups)

    exported = await client.get(f"{API}/backups/{backups[0]['id']}/export", headers=h)
    assert exported.status_code == 200
    doc = exported.json()
    channels = (await client.get(f"{API}/channels", headers=h)).json()
    assert set(doc["policies"]) <= {c["channel_id"] for c in channels}

    imported = await client.post(f"{API}/backups/import", headers=h, json=doc)
    assert imported.status_code == 200, imported.text
    assert imported.json()["checksum"] == doc["checksum"]
    tampered = {**doc, "policies": {**doc["policies"]}}
    first = next(iter(tampered["policies"]))
    tampered["policies"][first] = {**tampered["policies"][first], "fee_rate_ppm": 99_999}
    bad = await client.post(f"{API}/backups/import", headers=h, json=tampered)
    assert bad.status_code == 400 and "checksum" in bad.json()["detail"]
    for body, word in (
        ({"format": "x"}, "format"),
        ([1], "format"),
        ({**doc, "policies": {first: {"fee": 1}}}, first),
    ):
        r = await client.post(f"{API}/backups/import", headers=h, json=body)
        assert r.status_code == 400 and word in r.json()["detail"], (body, r.text)

    check = (await client.get(f"{API}/backups/check", headers=h)).json()
    assert check["corrupt"] == [] and check["checked"] == len(backups) + 1

    # Tiers: old backups are compressed (still verifiable), the oldest deleted.
    crud = sys.modules["daznode.crud"]
    now = int(time.time())
    old_id = await crud.create_backup(doc["policies"], "old", now - 20 * 86400)
    ancient_id = await crud.create_backup(doc["policies"], "ancient", now - 400 * 86400)
    compressed, deleted = await crud.tier_backups(now, 7, 90)
    assert compressed >= 1 and deleted == 1
    old = await crud.get_backup(old_id)
    assert old["compressed"] == 1 and crud.backup_policies(old) == doc["policies"]
    assert await crud.get_backup(ancient_id) is None
    await crud.db.execute(
        "UPDATE daznode.backups SET checksum = :c WHERE id = :id", {"c": "0" * 64, "id": old_id}
    )
    check = (await client.get(f"{API}/backups/check", headers=h)).json()
    assert check["corrupt"] == [old_id]
    r = await client.get(f"{API}/backups/{old_id}/export", headers=h)
    assert r.status_code == 409 and "checksum" in r.json()["detail"]
    assert (await client.get(f"{API}/backups/424242/export", headers=h)).status_code == 404


async def test_a_change_that_hurt_is_measured_and_rolled_back_on_its_own(client, admin):
    """An applied raise, then the channel's traffic stops while the others carry on: the
    monitor measures it after the evaluation window and restores the old fee by itself."""
    h = admin.key_headers(admin=True)
    await _monitor(client, admin)
    ch = await _channel(client, admin, 3)
    fee = ch["local_policy"]["fee_rate_ppm"]
    batch_id = (await apply_fee_raise(client, admin, ch))["batch_id"]

    # Move the change 40 days back, before the simulated node's own history, and write the
    # traffic around it: 40 forwards a week before, none after; the other channels steady.
    crud = sys.modules["daznode.crud"]
    state = await crud.get_monitor_state()
    pk, day = state["node_pubkey"], 86400
    applied_at = int(time.time()) - 40 * day
    await crud.db.execute(
        "UPDATE daznode.batch_items SET updated_at = :t WHERE batch_id = :b",
        {"t": applied_at, "b": batch_id},
    )
    others = [
        c["channel_id"]
        for c in (await client.get(f"{API}/channels", headers=h)).json()
        if c["channel_id"] != ch["channel_id"]
    ]
    rows, idx = [], 900_000_000
    for i in range(40):  # the changed channel: a week before the change
        rows.append((applied_at - 7 * day + i * 15000, ch["channel_id"]))
    for i in range(80):  # controls: the same pace before and after
        rows.append((applied_at - 7 * day + i * 7500, others[i % len(others)]))
    for i in range(24):
        rows.append((applied_at + i * 7000, others[i % len(others)]))
    for ts, out in rows:
        idx += 1
        await crud.db.execute(
            "INSERT INTO daznode.forwards (node_pubkey, idx, ts, ts_ns, chan_in, chan_out, "
            "amt_in_msat, amt_out_msat, fee_msat, status) VALUES (:pk, :idx, :ts, :ns, "
            "'1x1x1', :out, 100100000, 100000000, 100000, 'settled')",
            {"pk": pk, "idx": idx, "ts": ts, "ns": ts * 10**9, "out": out},
        )

    await _monitor(client, admin)
    impact = (await client.get(f"{API}/impact", headers=h)).json()
    mine = next(m for m in impact if m["batch_id"] == batch_id)
    assert mine["outcome"] == "hurt" and mine["rolled_back"] is True, mine
    assert mine["verdict"]["confidence"] >= 0.8 and mine["verdict"]["reasons"]
    # the node as a whole lost what the channel lost, the controls held steady
    assert -1 < mine["verdict"]["node_change"] < 0
    assert any("node as a whole" in r for r in mine["verdict"]["reasons"])
    await _monitor(client, admin)
    back = next(
        c
        for c in (await client.get(f"{API}/channels", headers=h)).json()
        if c["channel_id"] == ch["channel_id"]
    )
    assert back["local_policy"]["fee_rate_ppm"] == fee
    audit = [a["action"] for a in (await client.get(f"{API}/audit", headers=h)).json()["data"]]
    assert "measured: hurt" in audit and "rollback" in audit


async def test_rebalance_only_where_the_engine_sees_it_pay(client, admin):
    h = admin.key_headers(admin=True)
    await _monitor(client, admin)
    channels = {c["channel_id"]: c for c in (await client.get(f"{API}/channels", headers=h)).json()}
    recs = (await client.get(f"{API}/recommendations", headers=h)).json()["data"]
    full = max(channels.values(), key=lambda c: c["local_ratio"])
    # The fullest channel never needs refilling: Daznode refuses to pay for it, and says why.
    others = [c for c in channels.values() if c["channel_id"] != full["channel_id"]]
    paid_before = len((await client.get(f"{API}/rebalances", headers=h)).json())
    r = await client.post(
        f"{API}/rebalances",
        headers=h,
        json={
            "in_channel": full["channel_id"],
            "out_channel": others[0]["channel_id"],
            "amount_sat": 10_000,
            "max_fee_ppm": 500,
        },
    )
    assert r.status_code == 400, r.text
    assert "no demand" in r.json()["detail"] and "earn" in r.json()["detail"]
    assert len((await client.get(f"{API}/rebalances", headers=h)).json()) == paid_before

    # Where the engine proposes one, it runs within its budget and the admin's fee limit on
    # the simulated node (a plan may be worth more than the limit: the limit wins).
    limit = (await client.get(f"{API}/execution", headers=h)).json()["bounds"][
        "rebalance_max_fee_ppm"
    ]
    for rec in recs:
        plan = rec["suggested"]["rebalance"]
        if plan is None:
            continue
        source = plan["source_channel_id"] or full["channel_id"]
        r = await client.post(
            f"{API}/rebalances",
            headers=h,
            json={
                "in_channel": rec["channel_id"],
                "out_channel": source,
                "amount_sat": plan["amount_sat"],
                "max_fee_ppm": min(plan["max_fee_ppm"], limit),
            },
        )
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["fee_msat"] <= done["max_fee_msat"]
        assert (await client.get(f"{API}/rebalances", headers=h)).json()[0]["ok"] == done["ok"]
        break


async def test_rebalance_bad_input(client, admin, alice):
    h = admin.key_headers(admin=True)
    ch = await _channel(client, admin, 0)
    other = await _channel(client, admin, 1)
    base = {
        "in_channel": ch["channel_id"],
        "out_channel": other["channel_id"],
        "amount_sat": 1000,
        "max_fee_ppm": 100,
    }
    for body, code, word in (
        ({**base, "out_channel": ch["channel_id"]}, 400, "differ"),
        ({**base, "in_channel": "1x1x1"}, 404, "1x1x1"),
        ({**base, "in_channel": "nope"}, 400, "short channel id"),
        ({**base, "amount_sat": 0}, 400, "amount_sat"),  # LNbits answers 400 for 422
        ({**base, "amount_sat": ch["capacity_sat"]}, 400, "maximum"),
        ({**base, "max_fee_ppm": 5000}, 400, "fee limit"),
    ):
        r = await client.post(f"{API}/rebalances", headers=h, json=body)
        assert r.status_code == code and word in r.text, (body, r.text)
    denied = await client.post(
        f"{API}/rebalances", headers=alice.key_headers(admin=True), json=base
    )
    assert denied.status_code == 403
