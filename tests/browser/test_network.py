"""The network page and the action queue in real headless Chromium."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser.pages import docs_screenshot, native

API = "/daznode/api/v1"
ACINQ = "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f"


def test_network_page_rankings_lookup_and_suggestions(page, server):
    page.goto(f"{server.url}/daznode/network")
    expect(page.get_by_test_id("graph-card")).to_contain_text("17,3", timeout=30_000)
    expect(page.get_by_test_id("graph-stats")).to_contain_text("diameter")
    rows = page.get_by_test_id("rankings-table").locator("tbody tr")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("1")

    native(page, "rank-search").fill("ACINQ")
    expect(rows.first).to_contain_text("ACINQ", timeout=10_000)
    rows.first.locator("a").click()
    card = page.get_by_test_id("score-card")
    expect(card).to_contain_text("ACINQ")
    expect(card).to_contain_text(ACINQ)
    expect(card).to_contain_text("centrality")
    hood = page.get_by_test_id("neighbourhood")
    expect(hood.locator("circle")).to_have_count(80)

    page.get_by_test_id("card-peers").click()
    expect(page.get_by_test_id("card-peer-list").locator(".q-item").first).to_be_visible()
    own = page.get_by_test_id("own-peers").locator(".q-item")
    expect(own.first).to_contain_text("more nodes within 3 hops")
    docs_screenshot(page, "network.png")

    # Lookup by alias fragment: matches to pick from.
    native(page, "lookup-input").fill("acinq")
    expect(page.get_by_test_id("lookup-matches")).to_contain_text("ACINQ")

    # Lookup by a key that is not in the graph: a clear message, no card.
    native(page, "lookup-input").fill("02" + "ab" * 32)
    page.get_by_test_id("lookup-go").click()
    expect(page.get_by_test_id("lookup-error")).to_contain_text("not in the synced graph")


def test_a_bad_snapshot_upload_is_refused_with_its_reason(page, server, admin, tmp_path):
    page.goto(f"{server.url}/daznode/network")
    expect(page.get_by_test_id("graph-card")).to_contain_text("Version", timeout=30_000)
    broken = tmp_path / "graph.json"
    broken.write_text('{"nodes": [], "edges": [{"channel_id": ')
    native(page, "graph-file").set_input_files(str(broken))
    page.get_by_test_id("graph-upload").click()
    expect(page.get_by_test_id("upload-error")).to_contain_text("graph.json")
    status = httpx.get(f"{server.url}{API}/graph/status", headers=admin.key_headers(), timeout=30)
    assert status.json()["job"]["state"] == "idle"  # nothing started, nothing lost


def test_approve_a_channel_close_in_the_queue(page, server, admin):
    h = admin.key_headers(admin=True)

    def call(method: str, path: str, **kw):
        r = httpx.request(method, f"{server.url}{API}{path}", headers=h, timeout=60, **kw)
        assert r.status_code < 300, r.text
        return r.json()

    settings, profile = call("GET", "/settings"), call("GET", "/profile")["active"]
    call("PUT", "/profile", json={**profile, "capital_return_pct": 20.0, "close_min_age_days": 1})
    call("PUT", "/execution", json={"min_confidence": 0.3})
    try:
        close = None
        for seed in (17, 38, 3, 4, 8, 9, 24, 27, 30, 32):
            call("PUT", "/settings", json={**settings, "sim_seed": seed})
            call("POST", "/monitor/run")
            pending = call("GET", "/changes", params={"status": "pending"})
            close = next((c for c in pending if c["kind"] == "close"), None)
            if close:
                break
        assert close, "no demo seed gave a close proposal"
        page.reload()
        row = page.get_by_test_id("pending-table").locator(
            "tr", has=page.get_by_test_id("change-close"), has_text=close["channel_id"]
        )
        expect(row.get_by_test_id("change-close")).to_contain_text("cooperative close")
        row.locator(".q-checkbox").first.click()
        page.get_by_test_id("approve").click()
        done = page.get_by_test_id("actions-done")
        expect(done).to_contain_text("close applied", timeout=30_000)
        expect(done).to_contain_text(close["channel_id"])
        expect(done).to_contain_text("closing tx")
        expect(page.locator(f"tr[data-test='channel-{close['channel_id']}']")).to_have_count(0)
    finally:
        call("PUT", "/settings", json=settings)
        call("PUT", "/profile", json=profile)
        call("PUT", "/execution", json={"min_confidence": 0.5, "overrides": []})
        call("POST", "/monitor/run")


def test_buy_a_deep_report_and_see_it_open_when_paid(page, server, admin):
    h = admin.key_headers(admin=True)
    # The seller's wallet receives the payments (a user of its own: nobody pays themselves).
    shop = httpx.post(f"{server.url}/api/v1/account", json={"name": "report-seller"}, timeout=30)
    shop.raise_for_status()
    receiving = shop.json()["id"]
    r = httpx.put(
        f"{server.url}{API}/premium/settings",
        headers=h,
        json={"wallet_id": receiving, "prices": {"node_report": 50}},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    # Paid from any wallet: here a funded wallet of someone else.
    payer = httpx.post(f"{server.url}/api/v1/account", json={"name": "payer"}, timeout=30).json()
    r = httpx.put(
        f"{server.url}/users/api/v1/balance",
        headers=admin.bearer(),
        json={"id": payer["id"], "amount": 500},
        timeout=30,
    )
    assert r.status_code == 200, r.text

    page.goto(f"{server.url}/daznode/network")
    native(page, "lookup-input").fill(ACINQ)
    page.get_by_test_id("lookup-go").click()
    expect(page.get_by_test_id("score-card")).to_contain_text("ACINQ", timeout=30_000)
    page.get_by_test_id("buy-report").click()
    invoice = page.get_by_test_id("purchase-invoice")
    expect(invoice).to_contain_text("50")
    expect(invoice.locator("svg").first).to_be_visible()  # the QR code
    bolt11 = page.get_by_test_id("purchase-bolt11").inner_text().strip()
    assert bolt11.startswith("lnbc")

    r = httpx.post(
        f"{server.url}/api/v1/payments",
        headers={"X-API-KEY": payer["adminkey"]},
        json={"out": True, "bolt11": bolt11},
        timeout=60,
    )
    assert r.status_code in (200, 201), r.text
    content = page.get_by_test_id("purchase-content")
    expect(content).to_contain_text("ACINQ", timeout=30_000)  # no reload: the page was told
    expect(content).to_contain_text("Opening to the best candidates")
    expect(page.get_by_test_id("purchase-source")).to_have_text("built-in")
    docs_screenshot(page, "premium.png", full_page=False)
