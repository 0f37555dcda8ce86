"""The extension inside the real LNbits app: loading, migrations, auth, API, monitor."""

from __future__ import annotations

API = "/daznode/api/v1"


async def run_monitor(client, admin) -> dict:
    r = await client.post(f"{API}/monitor/run", headers=admin.key_headers(admin=True))
    assert r.status_code == 200, r.text
    return r.json()


async def test_extension_is_loaded_and_migrated(client, admin):
    r = await client.get("/api/v1/extension", headers=admin.bearer())
    assert r.status_code == 200, r.text
    ids = [e.get("code") or e.get("id") for e in r.json()]
    assert "daznode" in ids
    status = await client.get(f"{API}/status", headers=admin.key_headers())
    assert status.status_code == 200, status.text


async def test_monitor_reads_the_simulated_node(client, admin):
    status = await run_monitor(client, admin)
    assert status["backend"]["kind"] == "simulated"
    assert status["backend"]["demo"] is True
    assert status["state"] == "running"
    assert status["last_error"] is None
    assert status["stored_forwards"] > 0

    node = (await client.get(f"{API}/node", headers=admin.key_headers())).json()
    channels = (await client.get(f"{API}/channels", headers=admin.key_headers())).json()
    assert node["num_channels"] == len(channels) == 12
    assert node["capacity_sat"] == sum(c["capacity_sat"] for c in channels)
    assert node["fees_7d_msat"] == sum(c["fees_7d_msat"] for c in channels)
    for ch in channels:
        assert ch["local_msat"] + ch["remote_msat"] == ch["capacity_sat"] * 1000
        assert ch["local_policy"]["fee_rate_ppm"] >= 0
        assert "x" in ch["channel_id"]


async def test_readers_need_a_valid_key_or_session(client, alice):
    assert (await client.get(f"{API}/channels")).status_code == 401
    bad = await client.get(f"{API}/channels", headers={"X-API-KEY": "not-a-key"})
    assert bad.status_code == 401
    assert "Invalid API key" in bad.json()["detail"]
    ok = await client.get(f"{API}/channels", headers=alice.key_headers())
    assert ok.status_code == 200


async def test_only_admins_change_anything(client, alice, admin):
    for method, path in (
        ("GET", "/settings"),
        ("PUT", "/settings"),
        ("POST", "/monitor/run"),
    ):
        r = await client.request(
            method, f"{API}{path}", headers=alice.key_headers(admin=True), json={}
        )
        assert r.status_code == 403, (path, r.text)
        assert "admin" in r.json()["detail"].lower()
    # An admin's invoice key reads but does not write.
    r = await client.put(f"{API}/settings", headers=admin.key_headers(), json={})
    assert r.status_code == 403
    # A logged-in admin session may write.
    r = await client.get(f"{API}/settings", headers=admin.bearer())
    assert r.status_code == 200


async def test_settings_validation_is_explicit_and_loses_nothing(client, admin):
    headers = admin.key_headers(admin=True)
    before = (await client.get(f"{API}/settings", headers=headers)).json()
    cases = [
        ({"monitor_interval_seconds": 5}, "monitor_interval_seconds"),
        ({"monitor_interval_seconds": "often"}, "monitor_interval_seconds"),
        ({"no_such_setting": 1}, "no_such_setting"),
        ({"raw_retention_hours": 720, "hourly_retention_days": 2}, "hourly_retention_days"),
        ({"sim_graph_path": "/nonexistent/graph.json"}, "sim_graph_path"),
    ]
    for body, field in cases:
        r = await client.put(f"{API}/settings", headers=headers, json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["detail"], r.text
    r = await client.put(f"{API}/settings", headers=headers, content=b"[1, 2]")
    assert r.status_code == 400
    after = (await client.get(f"{API}/settings", headers=headers)).json()
    assert after == before

    r = await client.put(f"{API}/settings", headers=headers, json={"monitor_interval_seconds": 120})
    assert r.status_code == 200, r.text
    assert r.json()["monitor_interval_seconds"] == 120
    assert r.json()["raw_retention_hours"] == before["raw_retention_hours"]
    status = (await client.get(f"{API}/status", headers=headers)).json()
    assert status["interval_seconds"] == 120


async def test_forwards_paging_and_filters(client, admin):
    await run_monitor(client, admin)
    h = admin.key_headers()
    newest = (await client.get(f"{API}/forwards", headers=h, params={"size": 1})).json()
    # Pages up to a fixed time: a background pass storing newer forwards shifts no page.
    until = newest["data"][0]["ts"] - 1
    page = {"size": 10, "until": until}
    first = (await client.get(f"{API}/forwards", headers=h, params=page)).json()
    assert first["total"] > 10 and len(first["data"]) == 10
    second = (await client.get(f"{API}/forwards", headers=h, params={**page, "page": 2})).json()
    assert len(second["data"]) == 10 and all(f["ts"] <= until for f in second["data"])
    assert {f["index"] for f in first["data"]}.isdisjoint(f["index"] for f in second["data"])
    ts = [f["ts"] for f in first["data"] + second["data"]]
    assert ts == sorted(ts, reverse=True)

    settled = (
        await client.get(f"{API}/forwards", headers=h, params={"status": "settled", "size": 500})
    ).json()
    assert all(f["status"] == "settled" for f in settled["data"])
    cut = first["data"][5]["ts"]
    recent = (await client.get(f"{API}/forwards", headers=h, params={"since": cut})).json()
    assert all(f["ts"] >= cut for f in recent["data"])

    chan = first["data"][0]["chan_out"]
    mine = (await client.get(f"{API}/forwards", headers=h, params={"channel_id": chan})).json()
    assert mine["total"] > 0
    assert all(chan in (f["chan_in"], f["chan_out"]) for f in mine["data"])

    for params, word in (
        ({"status": "nope"}, "status"),
        ({"since": 10, "until": 5}, "since"),
        ({"channel_id": "12xab"}, "short channel id"),
        ({"size": 0}, "size"),
    ):
        r = await client.get(f"{API}/forwards", headers=h, params=params)
        assert r.status_code in (400, 422), (params, r.text)
        assert word in r.text


async def test_channel_history(client, admin):
    await run_monitor(client, admin)
    h = admin.key_headers()
    channels = (await client.get(f"{API}/channels", headers=h)).json()
    cid = channels[0]["channel_id"]
    hist = (await client.get(f"{API}/channels/{cid}/history", headers=h)).json()
    assert hist["channel_id"] == cid
    assert len(hist["points"]) >= 2
    # The newest point, or the one before when a background pass stored another since.
    assert channels[0]["local_msat"] in {p["local_msat"] for p in hist["points"][-2:]}

    assert (await client.get(f"{API}/channels/1x1x1/history", headers=h)).status_code == 404
    bad = await client.get(f"{API}/channels/garbage/history", headers=h)
    assert bad.status_code == 400 and "short channel id" in bad.json()["detail"]


async def test_dashboard_page_renders_for_a_logged_in_user(client, admin):
    r = await client.get("/daznode/", headers=admin.bearer())
    assert r.status_code == 200
    assert "daznode/static/js/index.js" in r.text
    assert "DAZNODE_IS_ADMIN = true" in r.text


async def test_recommendations_cover_every_channel_and_filter(client, admin, alice):
    await run_monitor(client, admin)
    h = alice.key_headers()  # wallet users may read recommendations
    r = await client.get(f"{API}/recommendations", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    channels = (await client.get(f"{API}/channels", headers=h)).json()
    assert {x["channel_id"] for x in body["data"]} == {c["channel_id"] for c in channels}
    assert body["graph_available"] is True  # the monitor surveyed the simulated graph
    for rec in body["data"]:
        assert rec["decision"] in {
            "NO_ACTION",
            "INCREASE_FEES",
            "DECREASE_FEES",
            "REBALANCE",
            "CLOSE_CHANNEL",
        }
        assert 0 <= rec["confidence"] <= 1 and 0 <= rec["composite"] <= 100
        assert len(rec["heuristics"]) == 8 and set(rec["scores"]) == {
            "liquidity",
            "activity",
            "competitiveness",
            "centrality",
            "reliability",
            "stability",
            "peer_quality",
            "network_position",
        }
        assert rec["reasons"], rec
    some = body["data"][0]["decision"]
    only = (
        await client.get(f"{API}/recommendations", headers=h, params={"decision": some})
    ).json()["data"]
    assert only and all(x["decision"] == some for x in only)
    sure = (
        await client.get(f"{API}/recommendations", headers=h, params={"min_confidence": 0.9})
    ).json()["data"]
    assert all(x["confidence"] >= 0.9 for x in sure)
    # A filter answers one request: the next one sees every channel again.
    again = (await client.get(f"{API}/recommendations", headers=h)).json()["data"]
    assert [x["channel_id"] for x in again] == [x["channel_id"] for x in body["data"]]
    bad = await client.get(f"{API}/recommendations", headers=h, params={"decision": "SELL"})
    assert bad.status_code == 400 and "SELL" in bad.json()["detail"]

    cid = channels[0]["channel_id"]
    one = (await client.get(f"{API}/channels/{cid}/score", headers=h)).json()
    assert (
        one["channel_id"] == cid
        and one["current_fee_ppm"] == (channels[0]["local_policy"]["fee_rate_ppm"])
    )
    assert (await client.get(f"{API}/channels/1x1x1/score", headers=h)).status_code == 404


async def test_profile_choice_customisation_and_export(client, admin, alice):
    headers = admin.key_headers(admin=True)
    assert (
        await client.get(f"{API}/profile", headers=alice.key_headers(admin=True))
    ).status_code == 403
    r = await client.put(f"{API}/profile", headers=headers, json={"name": "aggressive"})
    assert r.status_code == 200 and r.json()["active"]["name"] == "aggressive"
    recs = (await client.get(f"{API}/recommendations", headers=headers)).json()
    assert recs["profile"] == "aggressive"

    r = await client.put(
        f"{API}/profile",
        headers=headers,
        json={"base": "balanced", "name": "mine", "deadband": 0.3, "weights": {"activity": 0.5}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["active"]["deadband"] == 0.3
    assert r.json()["active"]["weights"]["activity"] == 0.5
    for body, word in (
        ({"deadband": 7}, "deadband"),
        ({"nope": 1}, "nope"),
        ({"weights": {"luck": 1}}, "luck"),
        ({"base": "wild"}, "wild"),
        ([], "mapping"),
    ):
        bad = await client.put(f"{API}/profile", headers=headers, json=body)
        assert bad.status_code == 400 and word in bad.json()["detail"], (body, bad.text)
    assert (await client.get(f"{API}/profile", headers=headers)).json()["active"]["name"] == "mine"

    yaml = await client.get(f"{API}/profile/export", headers=headers, params={"format": "yaml"})
    assert yaml.status_code == 200 and "deadband: 0.3" in yaml.text
    await client.put(f"{API}/profile", headers=headers, json={"name": "balanced"})
    back = await client.post(
        f"{API}/profile/import",
        headers=headers,
        params={"format": "yaml"},
        content=yaml.text.encode(),
    )
    assert back.status_code == 200, back.text
    assert back.json()["active"]["name"] == "mine" and back.json()["active"]["deadband"] == 0.3
    broken = await client.post(
        f"{API}/profile/import",
        headers=headers,
        params={"format": "yaml"},
        content=b"deadband 0.2\n",
    )
    assert broken.status_code == 400 and "line 1" in broken.json()["detail"]
    await client.put(f"{API}/profile", headers=headers, json={"name": "balanced"})


async def test_rules_run_before_the_engine(client, admin):
    headers = admin.key_headers(admin=True)
    channels = (await client.get(f"{API}/channels", headers=headers)).json()
    target = channels[0]
    rules = [
        {
            "name": "pin-first",
            "priority": 5,
            "when": f'peer == "{target["peer_id"]}"',
            "action": {"type": "pin", "fee_ppm": target["local_policy"]["fee_rate_ppm"] + 77},
        },
        {
            "name": "hands-off",
            "priority": 1,
            "when": "capacity >= 1",
            "action": {"type": "leave_alone"},
        },
    ]
    r = await client.put(f"{API}/rules", headers=headers, json=rules)
    assert r.status_code == 200, r.text
    recs = {
        x["channel_id"]: x
        for x in (await client.get(f"{API}/recommendations", headers=headers)).json()["data"]
    }
    pinned = recs[target["channel_id"]]
    assert pinned["rule"] == "pin-first" and pinned["decision"] == "INCREASE_FEES"
    assert pinned["suggested"]["fee_ppm"] == target["local_policy"]["fee_rate_ppm"] + 77
    others = [
        x
        for cid, x in recs.items()
        if cid != target["channel_id"] and x["peer_id"] != target["peer_id"]
    ]
    assert others and all(x["rule"] == "hands-off" and x["decision"] == "NO_ACTION" for x in others)

    bad = await client.put(
        f"{API}/rules",
        headers=headers,
        json=[{"name": "x", "when": "ratoi < 0.2", "action": {"type": "leave_alone"}}],
    )
    assert bad.status_code == 400 and "ratoi" in bad.json()["detail"]
    assert len((await client.get(f"{API}/rules", headers=headers)).json()["rules"]) == 2

    ini = (
        "[drained]\nchan.max_ratio = 0.2\nstrategy = static\nfee_ppm = 900\n"
        "min_fee_ppm_delta = 10\n"
    )
    preview = await client.post(
        f"{API}/rules/import/chargelnd", headers=headers, content=ini.encode()
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["saved"] is False and preview.json()["rules"]
    assert any("min_fee_ppm_delta" in u for u in preview.json()["unsupported"])
    broken = await client.post(
        f"{API}/rules/import/chargelnd", headers=headers, content=b"fee_ppm = 1\n"
    )
    assert broken.status_code == 400 and "line" in broken.json()["detail"]
    appended = await client.post(
        f"{API}/rules/import/chargelnd",
        headers=headers,
        params={"mode": "append"},
        content=ini.encode(),
    )
    assert appended.status_code == 200 and appended.json()["saved"] is True
    stored = (await client.get(f"{API}/rules", headers=headers)).json()["rules"]
    assert [r["name"] for r in stored] == ["pin-first", "hands-off", "drained"]
    assert stored[2]["priority"] < stored[1]["priority"]  # imported rules rank after
    cleared = await client.put(f"{API}/rules", headers=headers, json=[])
    assert cleared.status_code == 200 and cleared.json()["rules"] == []
