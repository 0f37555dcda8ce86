"""The crash test of safe execution: LNbits is killed (SIGKILL) between sending a fee change
to the node and recording the node's answer. After a restart the write-ahead journal is
reconciled from the node itself and Daznode's records match the node.

A live LNbits on LndRestWallet talks to the fake LND of tests/fakes; the fake either applies
the change and then never answers (variant A) or never gets to apply it (variant B). Nothing
in the extension knows it is being tested: the process really dies with the item SENDING.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.fakes import lnd_server
from tests.fakes.lnd_server import FakeLndServer, FakePolicy
from tests.support.bootstrap import Account, create_admin
from tests.support.live import LiveLnbits, fresh_database

API = "/daznode/api/v1"
CHANNEL = "800000x1200x1"  # the scenario's "low" channel: 250 ppm, base 1000 msat
CHAN_ID = lnd_server.chan_id(800_000, 1200, 1)
OLD_PPM, NEW_PPM = 250, 300
HANG = 300.0  # seconds the fake stalls: far longer than the test, so it never answers
INTERVAL = 10  # monitor interval: the dead holder's lease expires after 3 of them (30 s)


def _run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run in a thread of its own: the session's event loop stays untouched."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


def _wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def _lnd_policy(p: FakePolicy) -> dict:
    """The fake node's policy in Daznode's terms (as GET /batches shows `before`/`after`)."""
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


def _node_policy(fake: FakeLndServer) -> dict:
    with fake.lock:
        policy = fake.channel(CHAN_ID).local_policy
        assert policy is not None
        return _lnd_policy(policy)


# -- the database, read directly while LNbits is dead -----------------------------------------


class JournalDb:
    """Daznode's journal tables, read without LNbits: SQLite's extension file, or the
    PostgreSQL database (schema daznode)."""

    def __init__(self, data_folder: Path, database_url: str | None):
        self.sqlite_path = data_folder / "ext_daznode.sqlite3"
        self.database_url = database_url

    def rows(self, sql: str, *args: Any) -> list[dict]:
        """`sql` names tables as daznode.<table> and takes positional `?` parameters."""
        if self.database_url is None:
            con = sqlite3.connect(self.sqlite_path, timeout=10)
            con.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in con.execute(sql.replace("daznode.", ""), args)]
            finally:
                con.close()
        return _run_async(self._pg_rows(sql, args))

    async def _pg_rows(self, sql: str, args: tuple) -> list[dict]:
        import asyncpg

        parts = sql.split("?")
        sql = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))
        con = await asyncpg.connect(self.database_url)
        try:
            return [dict(r) for r in await con.fetch(sql, *args)]
        finally:
            await con.close()

    def batch_items(self) -> list[dict]:
        return self.rows("SELECT * FROM daznode.batch_items ORDER BY batch_id, position")

    def batch(self, batch_id: str) -> dict:
        (row,) = self.rows("SELECT * FROM daznode.batches WHERE id = ?", batch_id)
        return row

    def change(self, change_id: str) -> dict:
        (row,) = self.rows("SELECT * FROM daznode.changes WHERE id = ?", change_id)
        return row


# -- the live server ----------------------------------------------------------------------------


class Node:
    """One LNbits process on the fake LND, as its admin."""

    def __init__(self, live: LiveLnbits):
        self.live = live
        self.admin = _run_async(self._login())
        self.client = httpx.Client(base_url=f"{live.url}{API}", timeout=60)

    async def _login(self) -> Account:
        async with httpx.AsyncClient(base_url=self.live.url, timeout=60) as client:
            return await create_admin(client)  # first install, or log in after a restart

    @property
    def headers(self) -> dict[str, str]:
        return self.admin.key_headers(admin=True)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        r = self.client.request(method, path, headers=self.headers, **kwargs)
        assert r.status_code == 200, f"{method} {path}: {r.status_code} {r.text}\n{self.log()}"
        return r.json()

    def log(self) -> str:
        return self.live.log()[-6000:]

    def close(self) -> None:
        self.client.close()


class Approval(threading.Thread):
    """POST /changes/approve in the background: the node never answers, and the process
    serving the request is killed, so this request never gets an answer either."""

    def __init__(self, node: Node, change_id: str):
        super().__init__(name="daznode-approve", daemon=True)
        self.url = f"{node.live.url}{API}/changes/approve"
        self.headers = node.headers
        self.change_id = change_id
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.response = httpx.post(
                self.url, headers=self.headers, json={"ids": [self.change_id]}, timeout=HANG
            )
        except httpx.HTTPError as exc:  # the server died under the request
            self.error = exc


class Crash:
    """Setup shared by both variants: fake LND, a live LNbits on it, a change proposed."""

    def __init__(self, name: str):
        self.fake = FakeLndServer(lnd_server.default_scenario(num_forwards=0)).start()
        self.data_folder = Path(os.environ["LNBITS_DATA_FOLDER"]) / name
        shutil.rmtree(self.data_folder, ignore_errors=True)
        self.database_url = fresh_database(f"daznode_{name.replace('-', '_')}")
        self.db = JournalDb(self.data_folder, self.database_url)
        self.live: LiveLnbits | None = None
        self.node: Node | None = None

    def start(self) -> Node:
        self.live = LiveLnbits(
            self.data_folder,
            database_url=self.database_url,
            extra_env={
                "LNBITS_ADMIN_UI": "true",
                "LNBITS_BACKEND_WALLET_CLASS": "LndRestWallet",
                "LND_REST_ENDPOINT": self.fake.url,
                "LND_REST_MACAROON": self.fake.macaroon,
                "LND_REST_CERT": "",
            },
        ).start()
        self.node = Node(self.live)
        return self.node

    def propose_and_approve_until_crash(self, wait_for_node: Callable[[], bool]) -> dict:
        """Propose NEW_PPM by hand, approve it in the background, wait until the node is where
        the variant wants it (`wait_for_node`), then SIGKILL LNbits. Returns the change."""
        node = self.node
        assert node is not None and self.live is not None
        node.call("PUT", "/settings", json={"monitor_interval_seconds": INTERVAL})
        status = node.call("POST", "/monitor/run")
        assert status["state"] == "running" and status["leader"], status
        channel = next(c for c in node.call("GET", "/channels") if c["channel_id"] == CHANNEL)
        assert channel["local_policy"] == _node_policy(self.fake)
        assert channel["local_policy"]["fee_rate_ppm"] == OLD_PPM

        change = node.call(
            "POST", "/changes", json={"channel_id": CHANNEL, "fee_rate_ppm": NEW_PPM}
        )
        assert change["status"] == "pending", change
        assert change["before"] == _node_policy(self.fake)
        assert change["after"] == {**change["before"], "fee_rate_ppm": NEW_PPM}

        approval = Approval(node, change["id"])
        approval.start()
        _wait_for(wait_for_node, timeout=20, what="the node to get the change")
        assert approval.is_alive() and approval.response is None, "the node answered"
        self.live.kill()
        approval.join(timeout=10)
        assert not approval.is_alive()
        assert approval.response is None and approval.error is not None
        node.close()
        return change

    def assert_crashed_while_sending(self, change: dict) -> str:
        """What the dead process left in the database: the write-ahead state. Returns the
        batch id."""
        (item,) = self.db.batch_items()
        assert item["change_id"] == change["id"] and item["channel_id"] == CHANNEL
        assert item["status"] == "SENDING", item
        assert item["readback"] is None and item["error"] is None
        assert json.loads(item["after_policy"]) == change["after"]
        batch = self.db.batch(item["batch_id"])
        assert batch["status"] == "PENDING", batch
        row = self.db.change(change["id"])
        assert row["status"] == "approved" and row["batch_id"] == item["batch_id"], row
        return item["batch_id"]

    def restart_and_reconcile(self, old_holder: str) -> Node:
        """Start LNbits again on the same data; once the dead holder's lease has expired the
        monitor's first pass as leader reconciles the journal."""
        node = self.start()
        status = node.call("POST", "/monitor/run")
        if status["state"] == "standby":
            # Still the dead process's lease: nothing may touch the journal meanwhile.
            assert status["lease_holder"] == old_holder, status
            assert [i["status"] for i in self.db.batch_items()] == ["SENDING"]
            status = _wait_for(
                lambda: (s := node.call("POST", "/monitor/run"))["state"] == "running" and s,
                timeout=45,
                what="the dead holder's lease to expire",
                step=1.0,
            )
        assert status["leader"] and status["lease_holder"] != old_holder, status
        assert status["last_error"] is None, status
        return node

    def stop(self) -> None:
        if self.node:
            self.node.close()
        if self.live:
            self.live.stop()
        self.fake.stop()


def _reconciled_notes(node: Node, batch_id: str) -> list[str]:
    audit = node.call("GET", "/audit", params={"size": 500})["data"]
    return [
        a["detail"]
        for a in audit
        if a["action"] == "reconciled" and a["actor"] == "daznode" and batch_id in a["detail"]
    ]


def _lease_holder(node: Node) -> str:
    status = node.call("POST", "/monitor/run")
    assert status["leader"] and status["state"] == "running", status
    return status["lease_holder"]


# -- the variants ---------------------------------------------------------------------------------


def test_crash_after_the_node_applied_the_change_is_confirmed_on_restart():
    """A: the node applied the change, the answer never came back. After the restart the
    item is APPLIED, the batch SUCCESS, the change applied, and the node keeps the change."""
    crash = Crash("crash-applied")
    try:
        crash.start()
        assert crash.node is not None
        holder = _lease_holder(crash.node)
        crash.fake.inject_apply_then_delay("/v1/chanpolicy", HANG)
        change = crash.propose_and_approve_until_crash(
            lambda: _node_policy(crash.fake)["fee_rate_ppm"] == NEW_PPM
        )
        batch_id = crash.assert_crashed_while_sending(change)
        assert _node_policy(crash.fake) == change["after"]  # the node has it, Daznode not

        crash.fake.clear_faults()
        sent = len(crash.fake.requests_to("/v1/chanpolicy"))
        node = crash.restart_and_reconcile(holder)

        (batch,) = [b for b in node.call("GET", "/batches") if b["id"] == batch_id]
        assert batch["status"] == "SUCCESS", batch
        assert "restart" in batch["detail"], batch
        (item,) = batch["items"]
        assert item["status"] == "APPLIED", item
        assert "restart" in (item["error"] or ""), item
        assert item["after"] == change["after"]
        assert item["readback"] == change["after"]
        assert _node_policy(crash.fake) == item["after"]
        # Confirmed from the node's state: nothing was sent again, nothing undone.
        assert len(crash.fake.requests_to("/v1/chanpolicy")) == sent

        (row,) = [c for c in node.call("GET", "/changes") if c["id"] == change["id"]]
        assert row["status"] == "applied" and row["batch_id"] == batch_id, row
        notes = _reconciled_notes(node, batch_id)
        assert any("APPLIED" in n and CHANNEL in n for n in notes), notes
        assert any("SUCCESS" in n for n in notes), notes
        channel = next(c for c in node.call("GET", "/channels") if c["channel_id"] == CHANNEL)
        assert channel["local_policy"] == _node_policy(crash.fake)
    finally:
        crash.stop()


def test_crash_before_the_node_applied_the_change_is_failed_on_restart():
    """B: the node never got to apply the change. After the restart the item is FAILED,
    the batch FAILED, the change failed, and the node keeps its old policy."""
    crash = Crash("crash-unsent")
    try:
        crash.start()
        assert crash.node is not None
        holder = _lease_holder(crash.node)
        old_policy = _node_policy(crash.fake)
        crash.fake.inject_delay("/v1/chanpolicy", HANG)  # stalls before touching the node
        change = crash.propose_and_approve_until_crash(
            lambda: bool(crash.fake.requests_to("/v1/chanpolicy"))
        )
        batch_id = crash.assert_crashed_while_sending(change)
        assert _node_policy(crash.fake) == old_policy == change["before"]

        crash.fake.clear_faults()
        node = crash.restart_and_reconcile(holder)

        (batch,) = [b for b in node.call("GET", "/batches") if b["id"] == batch_id]
        assert batch["status"] == "FAILED", batch
        assert "restart" in batch["detail"], batch
        (item,) = batch["items"]
        assert item["status"] == "FAILED", item
        assert "not applied before the crash" in (item["error"] or ""), item
        assert item["readback"] == old_policy
        assert _node_policy(crash.fake) == old_policy
        assert len(crash.fake.requests_to("/v1/chanpolicy")) == 1  # never re-sent

        (row,) = [c for c in node.call("GET", "/changes") if c["id"] == change["id"]]
        assert row["status"] == "failed" and row["batch_id"] == batch_id, row
        assert not node.call("GET", "/changes", params={"status": "approved"})
        notes = _reconciled_notes(node, batch_id)
        assert any("FAILED" in n and "not applied before the crash" in n for n in notes), notes
    finally:
        crash.stop()
