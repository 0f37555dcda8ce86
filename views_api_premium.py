"""HTTP API for premium items under /daznode/api/v1/premium.

Anyone with a wallet key (or logged in) buys for themselves; a purchase is visible to its buyer
only. Unpaid: 402; someone else's: 403; unknown: 404; malformed: 400. Never the content.
"""

from __future__ import annotations

import re
import time
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, Extra, Field

from . import premium
from .crud import add_audit, get_purchase, get_purchase_by_hash, user_purchases
from .engine.node_source import normalize_channel_id
from .views_api import Admin, Caller, Reader, _actor
from .views_api_graph import PUBKEY

daznode_premium_router = APIRouter(prefix="/api/v1/premium", tags=["daznode"])

HASH = re.compile(r"^[0-9a-f]{64}$")


class PurchaseIn(BaseModel):
    item: str = Field(description=" | ".join(premium.ITEMS))
    subject: str = Field(
        max_length=80, description="node_report: a node's pubkey; explanation: a channel id"
    )

    class Config:
        extra = Extra.forbid


def _subject(item: str, subject: str) -> str:
    subject = subject.strip()
    if item == "node_report":
        subject = subject.lower()
        if not PUBKEY.match(subject):
            raise HTTPException(
                HTTPStatus.BAD_REQUEST,
                "subject: a node's public key, 66 hex characters starting with 02 or 03.",
            )
        return subject
    try:
        return normalize_channel_id(subject)
    except ValueError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"subject: {exc}") from None


def _owned(purchase: dict | None, caller: Caller, what: str) -> dict:
    if purchase is None:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"No purchase {what}.")
    if purchase["user_id"] != caller.user_id:
        raise HTTPException(HTTPStatus.FORBIDDEN, "This purchase belongs to another user.")
    return purchase


def _unlocked(purchase: dict) -> dict:
    out = premium.view(purchase, int(time.time()))
    if out["status"] != "paid":
        raise HTTPException(
            HTTPStatus.PAYMENT_REQUIRED,
            f"Not paid yet ({out['status']}): pay the invoice"
            + (" or renew it." if out["status"] == "expired" else "."),
        )
    return out


@daznode_premium_router.get("/settings", summary="Receiving wallet, prices, language model")
async def api_get_premium_settings(_: Admin) -> dict:
    return (await premium.load_settings()).public()


@daznode_premium_router.put(
    "/settings",
    summary="Set the receiving wallet, prices and the language model (admins)",
    description='{"wallet_id": "...", "prices": {"node_report": 1000, "explanation": 100}, '
    '"model_base_url": "https://api.example/v1", "model_name": "...", "model_api_key": "..."}',
)
async def api_put_premium_settings(caller: Admin, body: Annotated[Any, Body()] = None) -> dict:
    if not isinstance(body, dict):
        raise HTTPException(HTTPStatus.BAD_REQUEST, "Send a JSON object of premium settings.")
    try:
        saved = await premium.save_settings(body, int(time.time()))
    except premium.PremiumError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from None
    changed = sorted(k if k != "model_api_key" else "model_api_key (set)" for k in body)
    await add_audit(int(time.time()), _actor(caller), "premium settings", "", ", ".join(changed))
    return saved.public()


@daznode_premium_router.get("/items", summary="What is on sale and for how much")
async def api_premium_items(_: Reader) -> dict:
    cfg = await premium.load_settings()
    return {
        "on_sale": bool(cfg.wallet_id),
        "items": [
            {"item": k, "title": v, "price_sat": cfg.prices[k]} for k, v in premium.ITEMS.items()
        ],
        "explainer": "language model" if cfg.model() else "built-in",
    }


@daznode_premium_router.post(
    "/purchases",
    summary="Ask for an item: an invoice to pay, or the item if you already bought it",
)
async def api_buy(body: PurchaseIn, caller: Reader) -> dict:
    if body.item not in premium.ITEMS:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"item must be one of {', '.join(premium.ITEMS)}."
        )
    subject = _subject(body.item, body.subject)
    try:
        purchase = await premium.buy(caller.user_id, body.item, subject, int(time.time()))
    except LookupError as exc:
        raise HTTPException(HTTPStatus.NOT_FOUND, str(exc).strip("'\"")) from None
    except premium.PremiumError as exc:
        raise HTTPException(HTTPStatus.CONFLICT, str(exc)) from None
    return premium.view(purchase, int(time.time()))


@daznode_premium_router.get("/purchases", summary="Your purchases, newest first")
async def api_my_purchases(caller: Reader) -> list[dict]:
    now = int(time.time())
    return [premium.view(p, now) for p in await user_purchases(caller.user_id)]


@daznode_premium_router.get(
    "/purchases/by-hash/{payment_hash}", summary="A paid item by its invoice's payment hash"
)
async def api_purchase_by_hash(payment_hash: str, caller: Reader) -> dict:
    if not HASH.match(payment_hash):
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, "A payment hash is 64 lowercase hex characters."
        )
    purchase = _owned(await get_purchase_by_hash(payment_hash), caller, "for this payment hash")
    return _unlocked(purchase)


@daznode_premium_router.get("/purchases/{purchase_id}", summary="A paid item (402 until paid)")
async def api_purchase(purchase_id: str, caller: Reader) -> dict:
    purchase = _owned(await get_purchase(purchase_id[:40]), caller, purchase_id[:40])
    return _unlocked(purchase)


@daznode_premium_router.post(
    "/purchases/{purchase_id}/renew", summary="A new invoice for an expired, unpaid purchase"
)
async def api_renew(purchase_id: str, caller: Reader) -> dict:
    purchase = _owned(await get_purchase(purchase_id[:40]), caller, purchase_id[:40])
    try:
        renewed = await premium.renew(purchase, int(time.time()))
    except premium.PremiumError as exc:
        raise HTTPException(HTTPStatus.CONFLICT, str(exc)) from None
    return premium.view(renewed, int(time.time()))
