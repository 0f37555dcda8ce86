"""HTTP API for alerts under /daznode/api/v1/alerts (LNbits admins only).

Secrets are write-only: GET shows `secret_set` / `bot_token_set`, never the values.
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException

from .alerts import (
    TEST_EVENT,
    AlertConfigError,
    deliver,
    describe,
    load_alerts,
    public_view,
    save_alerts,
    validate_update,
)
from .crud import add_audit
from .views_api import Admin, _actor

daznode_alerts_router = APIRouter(prefix="/api/v1/alerts", tags=["daznode"])


@daznode_alerts_router.get("", summary="Alert destinations (admins); secrets are masked")
async def api_get_alerts(_: Admin) -> dict:
    return public_view(await load_alerts())


@daznode_alerts_router.put(
    "",
    summary="Change alert destinations (admins); fields and secrets left out keep their value",
    description='{"webhooks": [{"url": "https://...", "secret": "...", "events": []}], '
    '"telegram": {"bot_token": "...", "chat_id": "...", "events": []} | null}. '
    "Events: pending_approval, applied, rolled_back, failed, node_unreachable (empty: all). "
    "A webhook whose secret is left out keeps the secret stored for the same URL.",
)
async def api_put_alerts(caller: Admin, body: Annotated[Any, Body()] = None) -> dict:
    stored = await load_alerts()
    try:
        new = validate_update(body, stored)
    except AlertConfigError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    now = int(time.time())
    await save_alerts(new, now)
    await add_audit(now, _actor(caller), "alert settings", "", describe(new))
    return public_view(new)


@daznode_alerts_router.post(
    "/test", summary="Send a test alert to every destination (admins); results per destination"
)
async def api_test_alerts(caller: Admin) -> dict:
    doc = await load_alerts()
    if not doc["webhooks"] and not doc["telegram"]:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, "No alert destination: add a webhook or Telegram first."
        )
    results = await deliver(
        TEST_EVENT,
        "Test alert",
        {"message": "Alerts from Daznode reach this destination.", "by": _actor(caller)},
    )
    now = int(time.time())
    failed = [r for r in results if not r.ok]
    await add_audit(
        now,
        _actor(caller),
        "alert test",
        "",
        f"{len(results) - len(failed)} delivered, {len(failed)} failed",
    )
    return {
        "ok": not failed,
        "delivered": len(results) - len(failed),
        "failed": len(failed),
        "results": [r.to_dict() for r in results],
    }
