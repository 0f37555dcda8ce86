"""A live LNbits with the simulated node for the browser tests (one per session), and a
logged-in Chromium page per test."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.support.bootstrap import Account, create_admin, sync_graph_now
from tests.support.live import LiveLnbits

CHROMIUM = os.environ.get("DAZNODE_CHROMIUM", "/usr/bin/chromium")
# Flags for a sandboxed machine without network (see the machine notes in the README).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def server():
    data = Path(os.environ["LNBITS_DATA_FOLDER"]) / "live"
    live = LiveLnbits(data).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="session")
def admin(server) -> Account:
    async def boot() -> Account:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            account = await create_admin(client)
            r = await client.post(
                "/daznode/api/v1/monitor/run", headers=account.key_headers(admin=True)
            )
            r.raise_for_status()
            await sync_graph_now(client, account)
            # The tests run the monitor when they need a pass; a background pass between a
            # test's API read and its click would change what the page shows under it.
            await quiet_monitor(client, account)
            return account

    return asyncio.run(boot())


QUIET_INTERVAL_SECONDS = 3600  # the settings' maximum


async def quiet_monitor(client: httpx.AsyncClient, account: Account) -> None:
    h = account.key_headers(admin=True)
    settings = (await client.get("/daznode/api/v1/settings", headers=h)).json()
    body = {**settings, "monitor_interval_seconds": QUIET_INTERVAL_SECONDS}
    r = await client.put("/daznode/api/v1/settings", headers=h, json=body)
    r.raise_for_status()


@pytest.fixture()
def page(server, admin):
    with sync_playwright() as pw:
        pw.selectors.set_test_id_attribute("data-test")
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.add_cookies(
            [{"name": "cookie_access_token", "value": admin.token, "url": server.url}]
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/daznode/")
        yield page
        browser.close()
        assert errors == [], f"JavaScript errors on the page: {errors}"
