"""The real LNbits app (ASGI, with lifespan) with Daznode loaded, on the database the
Makefile chose (DAZNODE_TEST_DB). The environment is set before pytest starts."""

from __future__ import annotations

import os

import httpx
import pytest
from asgi_lifespan import LifespanManager

from tests.support.bootstrap import Account, create_admin, create_user, sync_graph_now

if "LNBITS_EXTENSIONS_PATH" not in os.environ:
    raise RuntimeError("run the app tests through `make test-app` (it sets LNbits' env)")


@pytest.fixture(scope="session")
async def app():
    from lnbits.app import create_app

    app = create_app()
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=30) as manager:
        yield manager.app


@pytest.fixture(scope="session")
async def client(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://lnbits.test", timeout=60
    ) as c:
        yield c


@pytest.fixture(scope="session")
async def admin(client) -> Account:
    account = await create_admin(client)
    await sync_graph_now(client, account)
    return account


@pytest.fixture(scope="session")
async def alice(client, admin) -> Account:
    return await create_user(client, "alice")


@pytest.fixture(scope="session")
def db_kind() -> str:
    return os.environ.get("DAZNODE_TEST_DB", "sqlite")
