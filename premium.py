"""Premium items paid with LNbits invoices: a deep report on any public node and plain-language
explanations. The admin picks the wallet that receives the payments and the prices; a buyer
gets an invoice, and LNbits' invoice listener unlocks the item for that buyer only.

The content is built when the payment arrives and stored with the purchase, so a paid item
stays available to its buyer (and shows what was true when it was bought).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from lnbits.core.crud import get_wallet
from lnbits.core.models import Payment
from lnbits.core.services import create_invoice, websocket_updater
from lnbits.helpers import decrypt_internal_message, encrypt_internal_message
from loguru import logger

from . import crud, graph_service
from .engine.explain import (
    Explanation,
    explain_node,
    explain_recommendation,
    node_explain_facts,
    recommendation_facts,
)
from .explainer import ModelConfig, ModelConfigError, explain_with_model

TAG = "daznode"
ITEMS = {
    "node_report": "Deep report on a public node",
    "explanation": "Plain-language explanation of a recommendation",
}
INVOICE_EXPIRY_SECONDS = 3600


class PremiumError(ValueError):
    """A request that cannot be served; the message says why."""


@dataclass
class PremiumSettings:
    wallet_id: str = ""
    prices: dict[str, int] = field(
        default_factory=lambda: {"node_report": 1000, "explanation": 100}
    )
    model_base_url: str = ""
    model_name: str = ""
    model_key_enc: str = ""  # the API key, encrypted with LNbits' own helper

    def public(self) -> dict:
        out = asdict(self)
        out.pop("model_key_enc")
        out["model_key_set"] = bool(self.model_key_enc)
        return out

    def model(self) -> ModelConfig | None:
        if not (self.model_base_url and self.model_name):
            return None
        key = decrypt_internal_message(self.model_key_enc) if self.model_key_enc else ""
        return ModelConfig(base_url=self.model_base_url, model=self.model_name, api_key=key or "")


async def load_settings() -> PremiumSettings:
    doc = await crud.get_doc("premium") or {}
    known = {k: v for k, v in doc.items() if k in PremiumSettings.__dataclass_fields__}
    return PremiumSettings(**known)


async def save_settings(update: dict[str, Any], now: int) -> PremiumSettings:
    """Validate and store; a field left out keeps its value, `model_api_key` "" clears it."""
    current = await load_settings()
    unknown = set(update) - {"wallet_id", "prices", "model_base_url", "model_name", "model_api_key"}
    if unknown:
        raise PremiumError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if "wallet_id" in update:
        wallet_id = str(update["wallet_id"] or "")
        if wallet_id and not await get_wallet(wallet_id):
            raise PremiumError(f"wallet_id: no wallet {wallet_id}")
        current.wallet_id = wallet_id
    if "prices" in update:
        current.prices = _prices(update["prices"], current.prices)
    for name in ("model_base_url", "model_name"):
        if name in update:
            setattr(current, name, str(update[name] or "").strip())
    if "model_api_key" in update:
        key = str(update["model_api_key"] or "")
        current.model_key_enc = encrypt_internal_message(key) if key else ""
    if current.model_base_url or current.model_name:
        try:
            ModelConfig(base_url=current.model_base_url, model=current.model_name, api_key="")
        except ModelConfigError as exc:  # name our fields, not the client's
            message = str(exc).replace("base_url:", "model_base_url:", 1)
            raise PremiumError(message.replace("model:", "model_name:", 1)) from None
    await crud.save_doc("premium", asdict(current), now)
    return current


def _prices(value: Any, current: dict[str, int]) -> dict[str, int]:
    if not isinstance(value, dict):
        raise PremiumError("prices: expected an object of item -> sats")
    out = dict(current)
    for item, sats in value.items():
        if item not in ITEMS:
            raise PremiumError(f"prices.{item}: unknown item (one of {', '.join(ITEMS)})")
        if isinstance(sats, bool) or not isinstance(sats, int) or not 1 <= sats <= 10_000_000:
            raise PremiumError(f"prices.{item}: a whole number of sats from 1 to 10,000,000")
        out[item] = sats
    return out


# -- buying ---------------------------------------------------------------------------------------


async def check_subject(item: str, subject: str) -> str:
    """The item must exist before anyone pays for it; returns a label for the memo."""
    if item == "node_report":
        row = (await crud.get_node_scores([subject])).get(subject)
        if row is None:
            raise LookupError(f"Node {subject} is not in the synced graph.")
        return row["alias"] or subject[:16]
    channel = await crud.get_channel(subject)
    if channel is None or channel["closed_at"]:
        raise LookupError(f"No open channel {subject}.")
    return f"channel {channel['channel_id']}"


async def buy(user_id: str, item: str, subject: str, now: int) -> dict:
    """The buyer's paid purchase if there is one, else their pending one, else a new invoice."""
    if item not in ITEMS:
        raise PremiumError(f"item must be one of {', '.join(ITEMS)}")
    label = await check_subject(item, subject)
    existing = await crud.user_purchases(user_id, item, subject)
    paid = next((p for p in existing if p["status"] == "paid"), None)
    if paid:
        return paid
    live = next((p for p in existing if p["status"] == "pending" and p["expires_at"] > now), None)
    if live:
        return live
    cfg = await load_settings()
    if not cfg.wallet_id:
        raise PremiumError("Premium items are not on sale: the admin has not chosen a wallet.")
    price = cfg.prices[item]
    payment = await _invoice(cfg, price, f"Daznode: {ITEMS[item].lower()} ({label})", item)
    row = {
        "id": uuid.uuid4().hex[:16],
        "created_at": now,
        "user_id": user_id,
        "item": item,
        "subject": subject,
        "price_sat": price,
        "payment_hash": payment.payment_hash,
        "bolt11": payment.bolt11,
        "expires_at": now + INVOICE_EXPIRY_SECONDS,
    }
    await crud.create_purchase(row)
    return await crud.get_purchase(row["id"])


async def renew(purchase: dict, now: int) -> dict:
    """A fresh invoice for an unpaid purchase whose invoice expired."""
    if purchase["status"] == "paid":
        return purchase
    if purchase["expires_at"] > now:
        raise PremiumError("The invoice has not expired yet; pay it or wait for it to expire.")
    cfg = await load_settings()
    if not cfg.wallet_id:
        raise PremiumError("Premium items are not on sale: the admin has not chosen a wallet.")
    payment = await _invoice(
        cfg, purchase["price_sat"], f"Daznode: {ITEMS[purchase['item']].lower()}", purchase["item"]
    )
    await crud.renew_purchase(
        purchase["id"], payment.payment_hash, payment.bolt11, now + INVOICE_EXPIRY_SECONDS
    )
    return await crud.get_purchase(purchase["id"])


async def _invoice(cfg: PremiumSettings, sats: int, memo: str, item: str) -> Payment:
    return await create_invoice(
        wallet_id=cfg.wallet_id,
        amount=sats,
        memo=memo,
        expiry=INVOICE_EXPIRY_SECONDS,
        extra={"tag": TAG, "item": item},
    )


def view(purchase: dict, now: int) -> dict:
    """What the buyer sees; the content only once paid."""
    status = purchase["status"]
    if status == "pending" and purchase["expires_at"] <= now:
        status = "expired"
    out = {k: purchase[k] for k in ("id", "item", "subject", "price_sat", "created_at")}
    out.update(status=status, paid_at=purchase["paid_at"], expires_at=purchase["expires_at"])
    if status == "paid":
        out["content"] = json.loads(purchase["content"]) if purchase["content"] else None
    else:
        out.update(bolt11=purchase["bolt11"], payment_hash=purchase["payment_hash"])
    return out


# -- paid ---------------------------------------------------------------------------------------


async def on_payment(payment: Payment) -> None:
    """LNbits' invoice listener: every paid incoming payment of the instance comes here."""
    if (payment.extra or {}).get("tag") != TAG:
        return
    now = int(time.time())
    purchase = await crud.mark_purchase_paid(payment.payment_hash, now)
    if purchase is None:
        return  # not ours, or already unlocked (a payment can be reported twice)
    try:
        content = await build_content(purchase["item"], purchase["subject"])
    except Exception as exc:  # the buyer paid: record what went wrong, they can rebuild it
        logger.warning(f"daznode: premium content for {purchase['id']} failed: {exc}")
        content = {"error": f"building the item failed: {exc}; open it again to retry"}
    await crud.set_purchase_content(purchase["id"], json.dumps(content))
    await websocket_updater(f"daznode-purchase-{purchase['id']}", "paid")
    logger.info(f"daznode: premium {purchase['item']} {purchase['id']} paid")


async def build_content(item: str, subject: str) -> dict:
    if item == "node_report":
        return await node_report(subject)
    return await explanation(subject)


async def _explained(subject: str, facts: dict, fallback: Explanation) -> dict:
    cfg = await load_settings()
    text = await explain_with_model(cfg.model(), subject, facts, fallback)
    return asdict(text)


async def node_report(pubkey: str) -> dict:
    """Full score breakdown, peer suggestions with reasons, fee competitiveness against the
    nodes it competes with, and what opening to the best candidates would change."""
    from .views_api_graph import score_out

    meta = await graph_service.graph_meta()
    row = (await crud.get_node_scores([pubkey])).get(pubkey)
    if row is None:
        raise LookupError(f"node {pubkey} is not in the synced graph")
    state = await graph_service.current()
    suggestions = await graph_service.peer_suggestions(pubkey, limit=10)
    fees = await graph_service.fee_competitiveness(pubkey)
    projected = await graph_service.projected_openings(pubkey, [s.pubkey for s in suggestions[:3]])
    score = graph_service.score_from_row(row)
    where = {"rank": row["rank"], "nodes": int(meta.get("nodes", 0)) or None}
    explanation = await _explained(
        f"node {row['alias'] or pubkey}",
        node_explain_facts(score, suggestions, **where),
        explain_node(score, suggestions, **where),
    )
    return {
        "kind": "node_report",
        "graph_version": state.version,
        "score": score_out(row, meta).dict(),
        "peer_suggestions": [asdict(s) for s in suggestions],
        "fee_competitiveness": fees,
        "projected_openings": projected,
        "explanation": explanation,
    }


async def explanation(channel_id: str) -> dict:
    from .services import evaluate

    recs, profile, _net = await evaluate(int(time.time()))
    rec = next((r for r in recs if r.channel_id == channel_id), None)
    if rec is None:
        raise LookupError(f"no recommendation for channel {channel_id}")
    facts = recommendation_facts(rec)
    text = await _explained(f"channel {channel_id}", facts, explain_recommendation(rec, profile))
    return {"kind": "explanation", "channel_id": channel_id, "facts": facts, "explanation": text}
