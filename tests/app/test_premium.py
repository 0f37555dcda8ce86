"""Premium items paid with LNbits invoices on FakeWallet: the real invoice, a real internal
payment from another user's wallet, LNbits' invoice listener unlocking the item."""

from __future__ import annotations

import asyncio
import secrets

from lnbits.db import Database

from tests.support.bootstrap import create_user

API = "/daznode/api/v1/premium"
ACINQ = "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f"


async def _wallet_id(client, account) -> str:
    r = await client.get("/api/v1/wallet", headers=account.key_headers(admin=True))
    r.raise_for_status()
    return r.json()["id"]


async def _fund(client, admin, account, sats: int) -> None:
    wallet = await _wallet_id(client, account)
    r = await client.put(
        "/users/api/v1/balance", headers=admin.bearer(), json={"id": wallet, "amount": sats}
    )
    assert r.status_code == 200, r.text


async def _pay(client, account, bolt11: str) -> None:
    r = await client.post(
        "/api/v1/payments",
        headers=account.key_headers(admin=True),
        json={"out": True, "bolt11": bolt11},
    )
    assert r.status_code in (200, 201), r.text


async def _wait_paid(client, account, purchase_id: str, timeout: float = 60) -> dict:
    for _ in range(int(timeout / 0.25)):
        r = await client.get(f"{API}/purchases/{purchase_id}", headers=account.key_headers())
        if r.status_code == 200 and r.json()["content"] is not None:
            return r.json()
        await asyncio.sleep(0.25)
    raise AssertionError(f"purchase {purchase_id} not unlocked: {r.status_code} {r.text}")


async def test_settings_only_for_admins_and_validated(client, admin, alice):
    h = admin.key_headers(admin=True)
    r = await client.put(f"{API}/settings", headers=alice.key_headers(admin=True), json={})
    assert r.status_code == 403
    for bad, word in (
        ({"prices": {"node_report": 0}}, "prices.node_report"),
        ({"prices": {"other": 5}}, "unknown item"),
        ({"wallet_id": "nope"}, "no wallet"),
        ({"model_base_url": "ftp://x", "model_name": "m"}, "base_url"),
        ({"colour": "red"}, "unknown field"),
    ):
        r = await client.put(f"{API}/settings", headers=h, json=bad)
        assert r.status_code == 400 and word in r.json()["detail"], (bad, r.text)
    r = await client.put(
        f"{API}/settings",
        headers=h,
        json={
            "model_base_url": "https://llm.example/v1",
            "model_name": "m",
            "model_api_key": "sk-1",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["model_key_set"] is True and "sk-1" not in r.text
    assert "sk-1" not in (await client.get(f"{API}/settings", headers=h)).text
    r = await client.put(
        f"{API}/settings",
        headers=h,
        json={"model_base_url": "", "model_name": "", "model_api_key": ""},
    )
    assert r.status_code == 200 and r.json()["model_key_set"] is False


async def test_buy_pay_unlock_and_every_bypass_fails(client, admin, alice, db_kind):
    h = admin.key_headers(admin=True)
    # Not on sale until the admin picks the receiving wallet.
    r = await client.post(
        f"{API}/purchases",
        headers=alice.key_headers(),
        json={"item": "node_report", "subject": ACINQ},
    )
    assert r.status_code == 409 and "wallet" in r.json()["detail"]
    receiving = await _wallet_id(client, admin)
    r = await client.put(
        f"{API}/settings", headers=h, json={"wallet_id": receiving, "prices": {"node_report": 21}}
    )
    assert r.status_code == 200, r.text

    for bad in ({"item": "gold", "subject": ACINQ}, {"item": "node_report", "subject": "xyz"}):
        r = await client.post(f"{API}/purchases", headers=alice.key_headers(), json=bad)
        assert r.status_code == 400, bad
    unknown = {"item": "node_report", "subject": "02" + "cd" * 32}
    assert (
        await client.post(f"{API}/purchases", headers=alice.key_headers(), json=unknown)
    ).status_code == 404

    r = await client.post(
        f"{API}/purchases",
        headers=alice.key_headers(),
        json={"item": "node_report", "subject": ACINQ},
    )
    assert r.status_code == 200, r.text
    offer = r.json()
    assert offer["status"] == "pending" and offer["price_sat"] == 21
    assert offer["bolt11"].startswith("lnbc") and "content" not in offer
    again = await client.post(
        f"{API}/purchases",
        headers=alice.key_headers(),
        json={"item": "node_report", "subject": ACINQ},
    )
    assert again.json()["id"] == offer["id"]  # the same invoice, not a second one

    bob = await create_user(client, f"bob-{db_kind}")
    unpaid = await client.get(f"{API}/purchases/{offer['id']}", headers=alice.key_headers())
    assert unpaid.status_code == 402 and "content" not in unpaid.text
    other = await client.get(f"{API}/purchases/{offer['id']}", headers=bob.key_headers())
    assert other.status_code == 403
    by_hash = await client.get(
        f"{API}/purchases/by-hash/{offer['payment_hash']}", headers=bob.key_headers()
    )
    assert by_hash.status_code == 403
    forged = await client.get(
        f"{API}/purchases/by-hash/{secrets.token_hex(32)}", headers=alice.key_headers()
    )
    assert forged.status_code == 404
    for bad in ("zz" * 32, "abc", offer["payment_hash"].upper()):
        r = await client.get(f"{API}/purchases/by-hash/{bad}", headers=alice.key_headers())
        assert r.status_code == 400, bad
    assert (
        await client.get(f"{API}/purchases/nope", headers=alice.key_headers())
    ).status_code == 404
    renew = await client.post(f"{API}/purchases/{offer['id']}/renew", headers=alice.key_headers())
    assert renew.status_code == 409 and "not expired" in renew.json()["detail"]

    # Alice pays from her own funded wallet; the listener unlocks the item for her.
    await _fund(client, admin, alice, 1000)
    await _pay(client, alice, offer["bolt11"])
    item = await _wait_paid(client, alice, offer["id"])
    content = item["content"]
    assert content["score"]["pubkey"] == ACINQ and content["peer_suggestions"]
    assert content["fee_competitiveness"]["channels"] and content["projected_openings"]
    assert content["explanation"]["paragraphs"] and content["explanation"]["source"] == "built-in"
    assert (
        await client.get(
            f"{API}/purchases/by-hash/{offer['payment_hash']}", headers=alice.key_headers()
        )
    ).status_code == 200
    # Still nobody else's, and a second request for it costs nothing more.
    assert (
        await client.get(f"{API}/purchases/{offer['id']}", headers=bob.key_headers())
    ).status_code == 403
    again = await client.post(
        f"{API}/purchases",
        headers=alice.key_headers(),
        json={"item": "node_report", "subject": ACINQ},
    )
    assert again.json()["status"] == "paid" and again.json()["id"] == offer["id"]
    # Bob asking for the same item gets his own invoice, not Alice's content.
    r = await client.post(
        f"{API}/purchases",
        headers=bob.key_headers(),
        json={"item": "node_report", "subject": ACINQ},
    )
    assert r.json()["status"] == "pending" and "content" not in r.json()
    mine = (await client.get(f"{API}/purchases", headers=alice.key_headers())).json()
    assert [p["id"] for p in mine] == [offer["id"]]


async def test_an_expired_invoice_can_be_renewed(client, admin, alice):
    receiving = await _wallet_id(client, admin)
    await client.put(
        f"{API}/settings", headers=admin.key_headers(admin=True), json={"wallet_id": receiving}
    )
    channel = (await client.get("/daznode/api/v1/channels", headers=admin.key_headers())).json()[0]
    r = await client.post(
        f"{API}/purchases",
        headers=alice.key_headers(),
        json={"item": "explanation", "subject": channel["channel_id"]},
    )
    assert r.status_code == 200, r.text
    offer = r.json()
    db = Database("ext_daznode")  # the invoice's hour passes
    await db.execute(
        "UPDATE daznode.purchases SET expires_at = 1 WHERE id = :id", {"id": offer["id"]}
    )
    r = await client.get(f"{API}/purchases/{offer['id']}", headers=alice.key_headers())
    assert r.status_code == 402 and "renew" in r.json()["detail"]
    renewed = (
        await client.post(f"{API}/purchases/{offer['id']}/renew", headers=alice.key_headers())
    ).json()
    assert renewed["status"] == "pending" and renewed["payment_hash"] != offer["payment_hash"]
    await _fund(client, admin, alice, 1000)
    await _pay(client, alice, renewed["bolt11"])
    item = await _wait_paid(client, alice, offer["id"])
    assert item["content"]["channel_id"] == channel["channel_id"]
    assert item["content"]["explanation"]["paragraphs"]
