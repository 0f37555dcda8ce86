"""Apply a change through the extension's own API, as an admin does from the queue."""

from __future__ import annotations

API = "/daznode/api/v1"


async def apply_fee_raise(client, admin, channel: dict) -> dict:
    """Queue a raise of about 20 % (at least 10 ppm) on `channel`, approve it, and return
    the batch the approval applied (checked to have succeeded)."""
    h = admin.key_headers(admin=True)
    fee = channel["local_policy"]["fee_rate_ppm"]
    created = await client.post(
        f"{API}/changes",
        headers=h,
        json={"channel_id": channel["channel_id"], "fee_rate_ppm": fee + max(10, fee // 5)},
    )
    assert created.status_code == 200, created.text
    applied = await client.post(
        f"{API}/changes/approve", headers=h, json={"ids": [created.json()["id"]]}
    )
    assert applied.status_code == 200 and applied.json()["status"] == "SUCCESS", applied.text
    return applied.json()
