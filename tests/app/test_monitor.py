"""The monitor on the real app: roll-up, failing node, restarts and the lease."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

from tests.support.bootstrap import create_admin
from tests.support.live import LiveLnbits, fresh_database

API = "/daznode/api/v1"
HOUR, DAY = 3600, 86400


def extension_crud():
    # LNbits imported the extension as the top-level package `daznode` while starting.
    return sys.modules["daznode.crud"]


async def run_monitor(client, admin) -> dict:
    r = await client.post(f"{API}/monitor/run", headers=admin.key_headers(admin=True))
    assert r.status_code == 200, r.text
    return r.json()


async def test_roll_up_moves_old_snapshots_into_hourly_and_daily_buckets(client, admin):
    await run_monitor(client, admin)
    h = admin.key_headers()
    cid = (await client.get(f"{API}/channels", headers=h)).json()[0]["channel_id"]
    crud = extension_crud()
    now = int(time.time())
    hourly_day = (now - 10 * DAY) // DAY * DAY  # past raw retention (48 h): hourly
    daily_day = (now - 40 * DAY) // DAY * DAY  # past hourly retention (30 d): daily
    rows = []
    for day in (hourly_day, daily_day):
        for hour in range(24):
            for k, minute in enumerate((0, 20, 40)):
                local = 1_000_000 * (hour + 1) + 3_000 * k  # mean of the three: + 3000
                rows.append((day + hour * HOUR + minute * 60, local))
    for ts, local in rows:
        await crud.db.execute(
            "INSERT INTO daznode.snapshots (ts, channel_id, local_msat, remote_msat, active, "
            "fee_rate_ppm, base_fee_msat) VALUES (:ts, :cid, :local, :remote, 1, :ppm, 0)",
            {
                "ts": ts,
                "cid": cid,
                "local": local,
                "remote": 100_000_000 - local,
                "ppm": 100 + (ts - day) // HOUR,
            },
        )
    await run_monitor(client, admin)

    hist = (
        await client.get(
            f"{API}/channels/{cid}/history",
            headers=h,
            params={"since": daily_day - 1, "until": hourly_day + DAY},
        )
    ).json()
    points = {p["ts"]: p for p in hist["points"]}
    for hour in range(24):
        p = points[hourly_day + hour * HOUR]
        assert p["local_msat"] == 1_000_000 * (hour + 1) + 3_000
        assert p["min_local_msat"] == 1_000_000 * (hour + 1)
        assert p["max_local_msat"] == 1_000_000 * (hour + 1) + 6_000
        assert p["remote_msat"] == 100_000_000 - p["local_msat"]
        assert p["active_share"] == 1.0
    daily = points[daily_day]
    assert daily["min_local_msat"] == 1_000_000
    assert daily["max_local_msat"] == 24_000_000 + 6_000
    assert daily["local_msat"] == sum(1_000_000 * (h + 1) + 3_000 for h in range(24)) // 24
    assert daily["fee_rate_ppm"] == 100 + 23  # the last sample of the day
    assert not any(hourly_day < ts < hourly_day + HOUR for ts in points)  # no raw left

    # Running again changes nothing: buckets are not merged twice.
    await run_monitor(client, admin)
    again = (
        await client.get(
            f"{API}/channels/{cid}/history",
            headers=h,
            params={"since": daily_day - 1, "until": hourly_day + DAY},
        )
    ).json()
    assert again["points"] == hist["points"]
    old_raw = await crud.db.fetchone(
        "SELECT COUNT(*) AS n FROM daznode.snapshots WHERE ts < :t", {"t": now - 3 * DAY}
    )
    assert old_raw["n"] == 0


def _write_small_graph(path: Path, valid: bool = True) -> None:
    nodes = [{"pub_key": f"02{i:064x}", "alias": f"n{i}"} for i in range(12)]
    edges = []
    for i in range(12):
        for j in range(i + 1, 12):
            policy = {
                "time_lock_delta": 80,
                "min_htlc": "1000",
                "fee_base_msat": "1000",
                "fee_rate_milli_msat": str(50 + i + j),
                "disabled": False,
                "max_htlc_msat": "990000000",
            }
            edges.append(
                {
                    "channel_id": str(len(edges) + 1),
                    "node1_pub": nodes[i]["pub_key"],
                    "node2_pub": nodes[j]["pub_key"],
                    "capacity": "1000000",
                    "node1_policy": policy,
                    "node2_policy": policy,
                }
            )
    text = json.dumps({"nodes": nodes, "edges": edges})
    path.write_text(text if valid else text[: len(text) // 2])


async def test_failing_node_is_reported_backed_off_and_recovers(client, admin, tmp_path):
    headers = admin.key_headers(admin=True)
    graph = tmp_path / "graph.json"
    _write_small_graph(graph)
    r = await client.put(
        f"{API}/settings", headers=headers, json={"sim_graph_path": str(graph), "sim_channels": 5}
    )
    assert r.status_code == 200, r.text
    status = await run_monitor(client, admin)
    assert status["state"] == "running"
    assert "graph.json" in status["backend"]["detail"]

    # The file goes bad and the node has to be rebuilt: the monitor fails, says why, waits.
    _write_small_graph(graph, valid=False)
    r = await client.put(f"{API}/settings", headers=headers, json={"sim_channels": 6})
    assert r.status_code == 200
    status = await run_monitor(client, admin)
    assert status["state"] == "failing"
    assert "graph.json" in status["last_error"]
    assert status["consecutive_failures"] >= 1
    assert status["next_run"] > status["last_run"]
    # What is stored stays readable.
    assert (await client.get(f"{API}/channels", headers=admin.key_headers())).status_code == 200

    _write_small_graph(graph)
    status = await run_monitor(client, admin)
    assert status["state"] == "running"
    assert status["consecutive_failures"] == 0 and status["last_error"] is None
    r = await client.put(
        f"{API}/settings", headers=headers, json={"sim_graph_path": "", "sim_channels": 12}
    )
    assert r.status_code == 200
    await run_monitor(client, admin)


# -- several processes --------------------------------------------------------------------


def _database_url(name: str) -> str | None:
    return fresh_database(name)


def _call(url: str, method: str, path: str, account=None, admin=True) -> dict:
    headers = account.key_headers(admin=admin) if account else {}
    r = httpx.request(method, f"{url}{API}{path}", headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _admin_of(server: LiveLnbits):
    async def boot():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            return await create_admin(c)

    return asyncio.run(boot())


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _all_forward_indices(url: str, account) -> list[int]:
    out, page = [], 1
    while True:
        r = httpx.get(
            f"{url}{API}/forwards",
            params={"size": 500, "page": page},
            headers=account.key_headers(),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        out += [f["index"] for f in data]
        if len(data) < 500:
            return out
        page += 1


def test_crash_restart_and_lease_takeover_keep_forwards_exact():
    data = Path(os.environ["LNBITS_DATA_FOLDER"]) / "live-lease"
    db_url = _database_url("daznode_lease")
    first = LiveLnbits(data, database_url=db_url).start()
    second = None
    try:
        admin = _admin_of(first)
        httpx.put(
            f"{first.url}{API}/settings",
            json={"monitor_interval_seconds": 10},
            headers=admin.key_headers(admin=True),
            timeout=30,
        ).raise_for_status()
        status = _call(first.url, "POST", "/monitor/run", admin)
        assert status["leader"] and status["state"] == "running"
        holder = status["lease_holder"]
        first.kill()  # a crash: the lease is not released

        second = LiveLnbits(data, database_url=db_url, port=first.port).start()
        admin = _admin_of(second)
        status = _call(second.url, "POST", "/monitor/run", admin)
        assert status["state"] == "standby" and status["lease_holder"] == holder

        # The dead holder's lease expires (3 intervals, at least 30 s) and is taken over.
        status = _wait_for(
            lambda: (
                (s := _call(second.url, "POST", "/monitor/run", admin))["state"] == "running" and s
            ),
            timeout=60,
            what="the lease takeover",
        )
        assert status["leader"] and status["lease_holder"] != holder
        cursor = status["forward_cursor"]
        indices = _all_forward_indices(second.url, admin)
        # No gap, no duplicate (a background pass may have stored more since the cursor read).
        assert sorted(indices) == list(range(1, max(indices) + 1)) and max(indices) >= cursor
    finally:
        first.stop()
        if second:
            second.stop()


def test_two_processes_on_one_database_run_exactly_one_monitor():
    data = Path(os.environ["LNBITS_DATA_FOLDER"]) / "live-pair"
    db_url = _database_url("daznode_pair")
    one = LiveLnbits(data, database_url=db_url).start()
    two = None
    try:
        admin = _admin_of(one)
        two = LiveLnbits(data, database_url=db_url).start()
        states = []
        for server in (one, two, one, two):
            states.append(_call(server.url, "POST", "/monitor/run", admin))
        leaders = {s["lease_holder"] for s in states}
        assert len(leaders) == 1
        assert sorted(s["state"] for s in states[:2]) == ["running", "standby"]
        assert [s["leader"] for s in states[:2]] == [s["leader"] for s in states[2:]]
    finally:
        one.stop()
        if two:
            two.stop()


async def test_signals_count_fee_changes_and_date_the_last_one(client, admin):
    # The idle cut waits for a week at the current fee: the engine learns when the fee last
    # changed from the snapshots, raw and hourly roll-ups alike.
    crud = extension_crud()
    now = int(time.time())
    cid = "999999x9x9"
    for bucket, ppm in ((now - 10 * DAY, 50), (now - 9 * DAY, 80)):
        await crud.db.execute(
            "INSERT INTO daznode.snapshots_hourly (bucket, channel_id, samples, active_samples, "
            "sum_local_msat, min_local_msat, max_local_msat, capacity_msat, last_fee_rate_ppm, "
            "last_base_fee_msat) VALUES (:b, :cid, 3, 3, 3000, 1000, 1000, 2000, :ppm, 0)",
            {"b": bucket // HOUR * HOUR, "cid": cid, "ppm": ppm},
        )
    for ts, ppm in ((now - 40 * HOUR, 80), (now - 30 * HOUR, 90), (now - 20 * HOUR, 90)):
        await crud.db.execute(
            "INSERT INTO daznode.snapshots (ts, channel_id, local_msat, remote_msat, active, "
            "fee_rate_ppm, base_fee_msat) VALUES (:ts, :cid, 1000, 1000, 1, :ppm, 0)",
            {"ts": ts, "cid": cid, "ppm": ppm},
        )
    signals = (await crud.channel_signals(now - 7 * DAY, now - 30 * DAY))[cid]
    assert signals["fee_changes"] == 2
    assert signals["fee_changed_at"] == now - 30 * HOUR
    steady = "999999x9x8"
    await crud.db.execute(
        "INSERT INTO daznode.snapshots (ts, channel_id, local_msat, remote_msat, active, "
        "fee_rate_ppm, base_fee_msat) VALUES (:ts, :cid, 1000, 1000, 1, 70, 0)",
        {"ts": now - HOUR, "cid": steady},
    )
    signals = await crud.channel_signals(now - 7 * DAY, now - 30 * DAY)
    assert signals[steady]["fee_changes"] == 0 and "fee_changed_at" not in signals[steady]


async def test_a_page_gone_without_closing_does_not_keep_the_tick_from_the_others(client, admin):
    # LNbits drops a socket from its list only when it reads the disconnect; until then a
    # send to it raises. The pages after it must still get the monitor's tick.
    from lnbits.core.services.websockets import WebsocketConnection, websocket_manager

    class Gone:
        async def send_text(self, data: str) -> None:
            raise RuntimeError("Cannot call send once a close message has been sent")

    class Open:
        def __init__(self) -> None:
            self.received: list[str] = []

        async def send_text(self, data: str) -> None:
            self.received.append(data)

    page = Open()
    conns = [
        WebsocketConnection("daznode-monitor", Gone(), asyncio.Queue()),
        WebsocketConnection("daznode-monitor", page, asyncio.Queue()),
    ]
    websocket_manager.active_connections.extend(conns)
    try:
        status = await run_monitor(client, admin)
    finally:
        for conn in conns:
            websocket_manager.active_connections.remove(conn)
    # This pass's tick arrived (a background pass meanwhile may have sent one more).
    ticks = [json.loads(m) for m in page.received]
    assert {"event": "monitor", "ts": status["last_run"]} in ticks
    assert all(t["event"] == "monitor" for t in ticks)
