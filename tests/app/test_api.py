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
    first = (await client.get(f"{API}/forwards", headers=h, params={"size": 10})).json()
    assert first["total"] > 10 and len(first["data"]) == 10
    second = (await client.get(f"{API}/forwards", headers=h, params={"size": 10, "page": 2})).json()
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
    assert hist["points"][-1]["local_msat"] == channels[0]["local_msat"]

    assert (await client.get(f"{API}/channels/1x1x1/history", headers=h)).status_code == 404
    bad = await client.get(f"{API}/channels/garbage/history", headers=h)
    assert bad.status_code == 400 and "short channel id" in bad.json()["detail"]


async def test_dashboard_page_renders_for_a_logged_in_user(client, admin):
    r = await client.get("/daznode/", headers=admin.bearer())
    assert r.status_code == 200
    assert "daznode/static/js/index.js" in r.text
    assert "DAZNODE_IS_ADMIN = true" in r.text
