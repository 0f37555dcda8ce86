"""Bring a fresh LNbits to a usable state over HTTP: admin account, a plain user, keys."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "daznode-test-pw"


@dataclass
class Account:
    user_id: str
    adminkey: str
    inkey: str
    token: str = ""  # bearer token of a logged-in session, empty for key-only users

    def key_headers(self, admin: bool = False) -> dict[str, str]:
        return {"X-API-KEY": self.adminkey if admin else self.inkey}

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _first_wallet(user: dict) -> tuple[str, str]:
    wallet = user["wallets"][0]
    return wallet["adminkey"], wallet["inkey"]


async def create_admin(client) -> Account:
    """First install makes the super user an admin with a password and returns a token."""
    r = await client.put(
        "/api/v1/auth/first_install",
        json={
            "username": ADMIN_USERNAME,
            "password": ADMIN_PASSWORD,
            "password_repeat": ADMIN_PASSWORD,
        },
    )
    if r.status_code == 403:  # already installed (a restarted instance): log in instead
        r = await client.post(
            "/api/v1/auth", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
        )
    r.raise_for_status()
    token = r.json()["access_token"]
    me = await client.get("/api/v1/auth", headers={"Authorization": f"Bearer {token}"})
    me.raise_for_status()
    adminkey, inkey = _first_wallet(me.json())
    # The super user existed before LNBITS_USER_DEFAULT_EXTENSIONS applied: enable it.
    r = await client.put(
        "/api/v1/extension/daznode/enable", headers={"Authorization": f"Bearer {token}"}
    )
    r.raise_for_status()
    return Account(me.json()["id"], adminkey, inkey, token)


async def create_user(client, name: str) -> Account:
    """A wallet user with keys and no login, not an LNbits admin."""
    r = await client.post("/api/v1/account", json={"name": name})
    r.raise_for_status()
    wallet = r.json()
    return Account(wallet["user"], wallet["adminkey"], wallet["inkey"])


async def sync_graph_now(client, admin: Account) -> dict:
    """Start a graph sync from the node (the scheduled one waits after a start) and wait."""
    for _ in range(240):  # 503 until the monitor has connected the node
        r = await client.post("/daznode/api/v1/graph/sync", headers=admin.key_headers(admin=True))
        if r.status_code in (202, 409):  # 409: one is running already
            return await wait_for_graph(client, admin)
        if r.status_code != 503:
            break
        await asyncio.sleep(0.25)
    raise AssertionError(f"graph sync refused: {r.status_code} {r.text}")


async def wait_for_graph(client, account: Account, version: int = 1, timeout: float = 300) -> dict:
    """The engine's view of the network (and so its recommendations) settles once the graph's
    scores are in: tests that need it start from that state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = await client.get("/daznode/api/v1/graph/status", headers=account.key_headers())
        status = r.json()
        if (
            r.status_code == 200
            and status["scored_version"] >= version
            and status["job"]["state"] in ("idle", "failed")
        ):
            return status
        if r.status_code == 200 and status["job"]["state"] == "failed":
            raise AssertionError(f"graph job failed: {status['job']['error']}")
        await asyncio.sleep(0.5)
    raise AssertionError(f"no graph version {version} within {timeout:.0f} s: {status}")
