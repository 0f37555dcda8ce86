"""Reports and exports on the real app: built from the demo node's stored history."""

from __future__ import annotations

import csv
import io
import json

API = "/daznode/api/v1"


async def test_generate_read_and_export_a_report(client, admin, alice):
    h = admin.key_headers(admin=True)
    r = await client.post(f"{API}/monitor/run", headers=h)
    assert r.status_code == 200
    assert (await client.get(f"{API}/reports", headers=alice.key_headers())).status_code == 403

    r = await client.post(f"{API}/reports/generate", headers=h, json={"kind": "weekly"})
    assert r.status_code == 201, r.text
    report = r.json()
    data = report["data"]
    totals = data["totals"]
    assert report["kind"] == "weekly" and report["label"].count("-W") == 1
    assert totals["net_profit_msat"] == totals["fees_msat"] - totals["rebalance_cost_msat"]
    assert totals["forwards"] == sum(c["forwards_out"] for c in data["channels"])
    assert data["highlights"]

    listed = (await client.get(f"{API}/reports?kind=weekly", headers=h)).json()
    assert listed[0]["id"] == report["id"]
    again = (
        await client.post(f"{API}/reports/generate", headers=h, json={"kind": "weekly"})
    ).json()
    assert again["id"] == report["id"] and again["created_at"] >= report["created_at"]
    assert len((await client.get(f"{API}/reports?kind=weekly", headers=h)).json()) == 1

    r = await client.get(
        f"{API}/reports/{report['id']}/export?format=csv&table=channels", headers=h
    )
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {row["channel_id"].strip("'") for row in rows} == {
        c["channel_id"] for c in data["channels"]
    }
    r = await client.get(f"{API}/reports/{report['id']}/export?format=json", headers=h)
    assert json.loads(r.content)["totals"] == totals
    r = await client.get(
        f"{API}/reports/{report['id']}/export?format=parquet&table=summary", headers=h
    )
    assert r.status_code in (200, 409)
    if r.status_code == 409:
        assert "pip install pyarrow" in r.json()["detail"]

    for bad in (
        f"{API}/reports/{report['id']}/export?format=xls",
        f"{API}/reports/{report['id']}/export?format=csv&table=nope",
        f"{API}/reports?kind=hourly",
    ):
        assert (await client.get(bad, headers=h)).status_code == 400, bad
    assert (await client.get(f"{API}/reports/999999", headers=h)).status_code == 404
    r = await client.post(f"{API}/reports/generate", headers=h, json={"kind": "yearly"})
    assert r.status_code == 400 and "kind" in r.json()["detail"]


async def test_monitor_builds_the_reports_that_are_due(client, admin):
    h = admin.key_headers(admin=True)
    await client.post(f"{API}/monitor/run", headers=h)
    kinds = {r["kind"] for r in (await client.get(f"{API}/reports", headers=h)).json()}
    assert kinds == {"daily", "weekly", "monthly"}


async def test_series_and_forward_export(client, admin):
    h = admin.key_headers(admin=True)
    series = (await client.get(f"{API}/reports/series?days=14", headers=h)).json()
    assert series["days"] and series["balance"] and series["channels"]
    assert all(d["fees_msat"] >= 0 for d in series["days"])
    r = await client.get(f"{API}/exports/forwards?format=json", headers=h)
    assert r.status_code == 200
    forwards = json.loads(r.content)
    assert forwards and {"idx", "ts", "fee_msat", "status"} <= set(forwards[0])
    r = await client.get(f"{API}/exports/forwards?format=csv&since=10&until=5", headers=h)
    assert r.status_code == 400
