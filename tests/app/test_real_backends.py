"""A live LNbits funded by a (fake) LND or Core Lightning node: Daznode must pick the real
node source, store what the node reports, survive the node failing and recover.

Each test starts its own `lnbits` process (fresh data folder, and a fresh PostgreSQL
database under DB=postgres) with the funding source pointed at a fake from tests/fakes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.fakes import cln_server, lnd_server
from tests.fakes.cln_server import FakeLightningd
from tests.fakes.lnd_server import FakeLndServer, FakePolicy
from tests.support.bootstrap import Account, create_admin
from tests.support.live import LiveLnbits, fresh_database

API = "/daznode/api/v1"
DAY = 86_400
# Core Lightning lists channels it can forward over (adapter rule): these states, with an scid.
CLN_USABLE_STATES = {"CHANNELD_NORMAL", "CHANNELD_AWAITING_SPLICE"}
CLN_RESOLVED = {"settled", "failed", "local_failed"}


# -- harness ---------------------------------------------------------------------------------


def _run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run in a thread of its own: the session's event loop (the in-process app of
    the other app tests) stays untouched."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


def _fresh_data_folder(name: str) -> Path:
    path = Path(os.environ["LNBITS_DATA_FOLDER"]) / name
    shutil.rmtree(path, ignore_errors=True)
    return path


def _fresh_database(name: str) -> str | None:
    return fresh_database(name)


def _live(name: str, db_name: str, funding_env: dict[str, str]) -> LiveLnbits:
    return LiveLnbits(
        _fresh_data_folder(name),
        database_url=_fresh_database(db_name),
        extra_env={"LNBITS_ADMIN_UI": "true", **funding_env},
    )


def _bootstrap(live: LiveLnbits) -> Account:
    async def boot() -> Account:
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
            return await create_admin(client)

    return _run_async(boot())


class Api:
    """The Daznode API of one live server, as one admin."""

    def __init__(self, live: LiveLnbits, admin: Account):
        self.live = live
        self.client = httpx.Client(base_url=f"{live.url}{API}", timeout=60)
        self.read_headers = admin.key_headers()
        self.admin_headers = admin.key_headers(admin=True)

    def get(self, path: str, **params: Any) -> Any:
        r = self.client.get(path, headers=self.read_headers, params=params)
        assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}\n{self.live.log()}"
        return r.json()

    def run_monitor(self) -> dict:
        r = self.client.post("/monitor/run", headers=self.admin_headers)
        assert r.status_code == 200, f"monitor/run: {r.status_code} {r.text}\n{self.live.log()}"
        return r.json()

    def close(self) -> None:
        self.client.close()


def _by_id(channels: list[dict]) -> dict[str, dict]:
    return {c["channel_id"]: c for c in channels}


def _assert_fails_then_recovers(
    api: Api,
    expected_channels: int,
    inject: Callable[[], None],
    clear: Callable[[], None],
    secret: str | None = None,
) -> None:
    inject()
    status = api.run_monitor()
    assert status["state"] == "failing", status
    assert status["consecutive_failures"] >= 1, status
    assert status["last_error"], status
    assert "internal error" not in status["last_error"], status["last_error"]
    if secret:
        assert secret not in status["last_error"]
    assert status["last_error_at"] >= status["last_success"] > 0
    # What was stored is still served while the node is down.
    assert len(api.get("/channels")) == expected_channels
    assert api.get("/status")["state"] == "failing"

    clear()
    status = api.run_monitor()
    assert status["state"] == "running", status
    assert status["consecutive_failures"] == 0, status
    assert status["last_error"] is None, status
    assert len(api.get("/channels")) == expected_channels


# -- LND ----------------------------------------------------------------------------------------


def _scid(chan_id: int) -> str:
    return f"{chan_id >> 40}x{(chan_id >> 16) & 0xFFFF}x{chan_id & 0xFFFF}"


def _lnd_policy(p: FakePolicy | None) -> dict | None:
    if p is None:
        return None
    return {
        "base_fee_msat": p.fee_base_msat,
        "fee_rate_ppm": p.fee_rate_milli_msat,
        "cltv_delta": p.time_lock_delta,
        "htlc_min_msat": p.min_htlc,
        "htlc_max_msat": p.max_htlc_msat,
        "inbound_base_fee_msat": p.inbound_fee_base_msat,
        "inbound_fee_rate_ppm": p.inbound_fee_rate_milli_msat,
        "disabled": p.disabled,
    }


def _lnd_scenario() -> lnd_server.Scenario:
    # Recent forwards: the default scenario's fixed 2025 dates would fall out of
    # Daznode's forwards retention (365 days) and be deleted by the same monitor pass.
    scenario = lnd_server.default_scenario(num_forwards=0)
    start_ns = (int(time.time()) - DAY) * 10**9
    scenario.forwards = lnd_server.make_forwards(scenario, 25, start_ns=start_ns)
    return scenario


def test_lnd_funding_source_is_monitored_and_survives_an_outage():
    fake = FakeLndServer(_lnd_scenario()).start()
    live = api = None
    try:
        live = _live(
            "live-lnd",
            "daznode_lnd",
            {
                "LNBITS_BACKEND_WALLET_CLASS": "LndRestWallet",
                "LND_REST_ENDPOINT": fake.url,
                "LND_REST_MACAROON": fake.macaroon,
                "LND_REST_CERT": "",
            },
        ).start()
        api = Api(live, _bootstrap(live))
        scenario = fake.scenario

        status = api.run_monitor()
        assert status["backend"] is not None, status  # no backend: building it failed
        assert status["backend"]["kind"] == "lnd", status
        assert status["backend"]["demo"] is False
        assert status["backend"]["funding_source"] == "LndRestWallet"
        assert status["state"] == "running", status
        assert status["last_error"] is None, status
        assert status["consecutive_failures"] == 0

        channels = _by_id(api.get("/channels"))
        assert set(channels) == {_scid(c.chan_id) for c in scenario.channels}
        assert "800000x1200x1" in channels  # chan_id (800000 << 40 | 1200 << 16 | 1)
        for c in scenario.channels:
            got = channels[_scid(c.chan_id)]
            assert got["native_id"] == str(c.chan_id)
            assert got["channel_point"] == c.channel_point
            assert got["peer_id"] == c.peer_pubkey
            assert got["peer_alias"] == c.peer_alias
            assert got["capacity_sat"] == c.capacity
            assert got["local_msat"] == c.local_balance * 1000
            assert got["remote_msat"] == c.remote_balance * 1000
            assert got["active"] is c.active
            assert got["private"] is c.private
            if c.in_graph:
                assert got["local_policy"] == _lnd_policy(c.local_policy)
                assert got["remote_policy"] == _lnd_policy(c.remote_policy)
            else:  # no graph edge yet: LND knows no policy
                assert got["local_policy"] is None
                assert got["remote_policy"] is None

        forwards = api.get("/forwards", size=500)
        assert forwards["total"] == len(scenario.forwards) == 25
        assert {f["status"] for f in forwards["data"]} == {"settled"}
        assert api.get("/status")["forward_cursor"] == 25

        node = api.get("/node")
        assert node["backend"] == "lnd"
        assert node["demo"] is False
        assert node["pubkey"] == scenario.pubkey
        assert node["alias"] == scenario.alias
        assert node["network"] == scenario.network
        assert node["block_height"] == scenario.block_height
        assert node["num_channels"] == len(scenario.channels)
        assert node["forwards_7d"] == 25
        assert node["fees_7d_msat"] == sum(
            f.amt_in_msat - f.amt_out_msat for f in scenario.forwards
        )

        # LND's REST gateway down (503 from its proxy): failing, then back to running.
        _assert_fails_then_recovers(
            api,
            len(scenario.channels),
            inject=lambda: fake.inject_unavailable("/v1/getinfo"),
            clear=fake.clear_faults,
            secret=fake.macaroon,
        )
        # A forward made during the outage is picked up, once.
        fake.add_forwards(
            lnd_server.make_forwards(scenario, 1, start_ns=(int(time.time()) - 60) * 10**9)
        )
        api.run_monitor()
        assert api.get("/forwards")["total"] == 26
        assert fake.macaroon not in live.log()
    finally:
        if api:
            api.close()
        if live:
            live.stop()
        fake.stop()


# -- Core Lightning -------------------------------------------------------------------------------


def _cln_local_policy(ch: cln_server.FakeChannel, scenario: cln_server.Scenario) -> dict:
    return {
        "base_fee_msat": ch.fee_base_msat,
        "fee_rate_ppm": ch.fee_ppm,
        "cltv_delta": scenario.cltv_delta,
        "htlc_min_msat": ch.htlc_min_msat,
        "htlc_max_msat": ch.htlc_max_msat,
        "inbound_base_fee_msat": None,
        "inbound_fee_rate_ppm": None,
        "disabled": False,
    }


def _cln_remote_policy(ch: cln_server.FakeChannel) -> dict | None:
    ru = ch.remote_update
    if ru is None:
        return None
    return {
        "base_fee_msat": ru["fee_base_msat"],
        "fee_rate_ppm": ru["fee_proportional_millionths"],
        "cltv_delta": ru["cltv_expiry_delta"],
        "htlc_min_msat": ru["htlc_minimum_msat"],
        "htlc_max_msat": ru["htlc_maximum_msat"],
        "inbound_base_fee_msat": None,
        "inbound_fee_rate_ppm": None,
        "disabled": False,
    }


def _cln_resolved_prefix(forwards: list[dict]) -> list[dict]:
    """Forwards in created order up to the first one still in flight: the adapter never
    moves its cursor past an unresolved forward."""
    out = []
    for row in sorted(forwards, key=lambda r: r["created_index"]):
        if row["status"] not in CLN_RESOLVED:
            break
        out.append(row)
    return out


def _cln_fake() -> FakeLightningd:
    fake = FakeLightningd()
    # Recent forwards, for the same retention reason as with LND.
    shift = int(time.time()) - DAY - cln_server.T0
    for row in fake.scenario.forwards:
        row["received_time"] += shift
        if "resolved_time" in row:
            row["resolved_time"] += shift
    return fake


def test_cln_funding_source_is_monitored_and_survives_an_outage():
    fake = _cln_fake().start()
    live = api = None
    try:
        live = _live(
            "live-cln",
            "daznode_cln",
            {
                "LNBITS_BACKEND_WALLET_CLASS": "CoreLightningWallet",
                "CORELIGHTNING_RPC": fake.socket_path,
            },
        ).start()
        api = Api(live, _bootstrap(live))
        scenario = fake.scenario

        status = api.run_monitor()
        assert status["backend"] is not None, status  # no backend: building it failed
        assert status["backend"]["kind"] == "cln", status
        assert status["backend"]["demo"] is False
        assert status["backend"]["funding_source"] == "CoreLightningWallet"
        assert status["state"] == "running", status
        assert status["last_error"] is None, status

        listed = [
            ch for ch in scenario.channels if ch.state in CLN_USABLE_STATES and ch.short_channel_id
        ]
        assert len(listed) == 4  # not the opening channel, not the closed one
        aliases = {n.node_id: n.alias or "" for n in scenario.nodes}
        channels = _by_id(api.get("/channels"))
        assert set(channels) == {ch.short_channel_id for ch in listed}
        for ch in listed:
            got = channels[ch.short_channel_id]
            assert got["native_id"] == ch.channel_id
            assert got["channel_point"] == f"{ch.funding_txid}:{ch.funding_outnum}"
            assert got["peer_id"] == ch.peer_id
            assert got["peer_alias"] == aliases.get(ch.peer_id, "")
            assert got["capacity_sat"] == ch.total_msat // 1000
            assert got["local_msat"] == ch.to_us_msat
            assert got["remote_msat"] == ch.total_msat - ch.to_us_msat
            assert got["active"] is ch.peer_connected
            assert got["private"] is ch.private
            assert got["local_policy"] == _cln_local_policy(ch, scenario)
            assert got["remote_policy"] == _cln_remote_policy(ch)
        assert channels["800100x2x1"]["active"] is False  # peer disconnected

        resolved = _cln_resolved_prefix(scenario.forwards)
        assert [r["created_index"] for r in resolved] == [1, 2, 3, 5, 6]
        forwards = api.get("/forwards", size=500)
        assert forwards["total"] == len(resolved)
        assert sorted(f["index"] for f in forwards["data"]) == [1, 2, 3, 5, 6]
        by_status = api.get("/forwards", status="local_failed")
        assert by_status["total"] == sum(r["status"] == "local_failed" for r in resolved)

        node = api.get("/node")
        assert node["backend"] == "cln"
        assert node["demo"] is False
        assert node["pubkey"] == scenario.node_id
        assert node["alias"] == scenario.alias
        assert node["network"] == scenario.network
        assert node["num_channels"] == len(listed)
        settled = [r for r in resolved if r["status"] == "settled"]
        assert node["forwards_7d"] == len(settled)
        assert node["fees_7d_msat"] == sum(r["in_msat"] - r["out_msat"] for r in settled)

        # lightningd hangs up on every getinfo: failing, then back to running.
        _assert_fails_then_recovers(
            api,
            len(listed),
            inject=lambda: fake.inject("getinfo", drop=True),
            clear=fake.clear_faults,
        )
        # The forward that was in flight resolves: it and everything after it arrive.
        fake.resolve_forward(7, "settled")
        api.run_monitor()
        forwards = api.get("/forwards", size=500)
        assert forwards["total"] == 8
        assert sorted(f["index"] for f in forwards["data"]) == [1, 2, 3, 5, 6, 7, 8, 9]
    finally:
        if api:
            api.close()
        if live:
            live.stop()
        fake.stop()
