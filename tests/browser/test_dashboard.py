"""The dashboard in real headless Chromium against a live LNbits with the simulated node."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import httpx
from playwright.sync_api import expect

from tests.browser.pages import REPO, docs_screenshot


def test_dashboard_shows_the_simulated_node_and_its_channels(page):
    expect(page.get_by_test_id("demo-banner")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("demo-banner")).to_contain_text("simulated node")
    expect(page.get_by_test_id("node-alias")).to_have_text("daznode-demo")
    expect(page.get_by_test_id("monitor-state")).to_have_text("running")
    rows = page.locator("tr[data-test^='channel-']")
    expect(rows).to_have_count(12)
    expect(page.get_by_test_id("total-channels")).to_contain_text("/ 12")
    first = rows.first
    expect(first).to_contain_text("ppm")
    docs_screenshot(page, "dashboard.png")

    first.click()
    dialog = page.get_by_test_id("history-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("canvas")).to_be_visible()


def test_settings_dialog_reports_bad_input_and_keeps_it(page):
    page.get_by_test_id("open-settings").click()
    dialog = page.get_by_test_id("settings-dialog")
    expect(dialog).to_be_visible()
    interval = page.get_by_test_id("setting-interval")
    interval.fill("5")
    page.get_by_test_id("save-settings").click()
    error = page.get_by_test_id("settings-error")
    expect(error).to_contain_text("monitor_interval_seconds")
    expect(interval).to_have_value("5")  # what was typed is still there

    interval.fill("3599")
    page.get_by_test_id("save-settings").click()
    expect(dialog).to_be_hidden()
    page.get_by_test_id("open-settings").click()
    expect(page.get_by_test_id("setting-interval")).to_have_value("3599")  # and no monitor
    # pass in the background during the other tests (see conftest)


def test_page_updates_live_when_the_monitor_runs(page, server, admin):
    with page.expect_websocket(lambda ws: ws.url.endswith("/api/v1/ws/daznode-monitor")) as ws:
        page.reload()
    socket = ws.value
    expect(page.locator("tr[data-test^='channel-']")).to_have_count(12)
    page.wait_for_timeout(500)  # let the first loads settle
    # The monitor's tick arrives over the websocket and the page re-reads the API at once
    # (its fallback poll is 30 s away).
    with (
        socket.expect_event("framereceived", timeout=15_000),
        page.expect_request(lambda r: r.url.endswith("/daznode/api/v1/status"), timeout=15_000),
    ):
        r = httpx.post(
            f"{server.url}/daznode/api/v1/monitor/run",
            headers=admin.key_headers(admin=True),
            timeout=30,
        )
        assert r.status_code == 200, r.text


def test_recommendations_profile_and_rules(page, server, admin):
    recs = page.locator("tr[data-test^='rec-']")
    expect(recs).to_have_count(12, timeout=30_000)
    recs.first.click()
    expect(page.get_by_test_id("reasons").first).to_be_visible()
    card = page.get_by_test_id("recommendations")
    docs_screenshot(page, "recommendations.png")

    page.get_by_test_id("profile-select").click()
    page.get_by_role("option", name="aggressive").click()
    expect(card).to_contain_text("profile aggressive")

    page.get_by_test_id("open-profile").click()
    profile = page.get_by_test_id("profile-text")
    expect(profile).to_have_value(re.compile("deadband: 0.07"))  # aggressive, as YAML
    yaml = profile.input_value()
    profile.fill(yaml.replace("deadband: 0.07", "deadband: 9"))
    page.get_by_test_id("save-profile").click()
    expect(page.get_by_test_id("profile-error")).to_contain_text("deadband")
    profile.fill(
        yaml.replace("deadband: 0.07", "deadband: 0.12").replace(
            'name: "aggressive"', 'name: "my-node"'
        )
    )
    page.get_by_test_id("save-profile").click()
    expect(page.get_by_test_id("profile-dialog")).to_be_hidden()
    expect(card).to_contain_text("profile my-node")

    page.get_by_test_id("open-rules").click()
    text = page.get_by_test_id("rules-text")
    bad = '[{"name": "x", "when": "ratoi < 1", "action": {"type": "leave_alone"}}]'
    text.fill(bad)
    page.get_by_test_id("save-rules").click()
    expect(page.get_by_test_id("rules-error")).to_contain_text("ratoi")
    expect(text).to_have_value(bad)  # nothing typed is lost
    text.fill('[{"name": "hands-off", "when": "always", "action": {"type": "leave_alone"}}]')
    page.get_by_test_id("save-rules").click()
    expect(page.get_by_test_id("rules-dialog")).to_be_hidden()
    expect(card.locator("text=rule hands-off").first).to_be_visible()
    expect(card.locator("text=rule hands-off")).to_have_count(12)

    # Leave the shared server as we found it.
    for path, body in (("/rules", []), ("/profile", {"name": "balanced"})):
        r = httpx.put(
            f"{server.url}/daznode/api/v1{path}",
            json=body,
            headers=admin.key_headers(admin=True),
            timeout=30,
        )
        assert r.status_code == 200, r.text


def test_approve_a_change_and_see_it_on_the_node(page, server, admin):
    h = admin.key_headers(admin=True)
    channels = httpx.get(f"{server.url}/daznode/api/v1/channels", headers=h, timeout=30).json()
    ch = sorted(channels, key=lambda c: c["channel_id"])[-1]
    fee = ch["local_policy"]["fee_rate_ppm"]
    wanted = fee + max(10, fee // 5)
    r = httpx.post(
        f"{server.url}/daznode/api/v1/changes",
        headers=h,
        timeout=30,
        json={"channel_id": ch["channel_id"], "fee_rate_ppm": wanted},
    )
    assert r.status_code == 200, r.text
    change_id = r.json()["id"]
    page.reload()
    pending = page.get_by_test_id("pending-table")
    # By its diff: the channel may also have a rebalance or close waiting.
    row = pending.locator("tr", has_text=ch["channel_id"]).filter(
        has_text=f"fee_rate_ppm: {fee} → {wanted}"
    )
    expect(row).to_have_count(1)
    # The engine leaves the channel alone meanwhile, and its recommendation says so.
    rec = page.locator(f"tr[data-test='rec-{ch['channel_id']}']")
    expect(rec.get_by_test_id("admin-change-waiting")).to_be_visible(timeout=30_000)
    row.locator(".q-checkbox").first.click()
    page.get_by_test_id("approve").click()
    channel_row = page.locator(f"tr[data-test='channel-{ch['channel_id']}']")
    expect(channel_row).to_contain_text(f"{wanted} ppm", timeout=30_000)
    expect(page.get_by_test_id("batches")).to_contain_text("SUCCESS")
    docs_screenshot(page, "approvals.png")
    changes = httpx.get(f"{server.url}/daznode/api/v1/changes", headers=h, timeout=30).json()
    assert next(c for c in changes if c["id"] == change_id)["status"] == "applied"


def test_limits_dialog_validates_and_pins_a_channel(page, server, admin):
    h = admin.key_headers(admin=True)
    page.get_by_test_id("open-limits").click()
    dialog = page.get_by_test_id("limits-dialog")
    expect(dialog).to_be_visible()
    page.get_by_test_id("bound-max_fee_ppm").fill("-3")
    page.get_by_test_id("save-limits").click()
    expect(page.get_by_test_id("limits-error")).to_contain_text("max_fee_ppm")
    expect(page.get_by_test_id("bound-max_fee_ppm")).to_have_value("-3")
    page.get_by_test_id("bound-max_fee_ppm").fill("4000")
    channels = httpx.get(f"{server.url}/daznode/api/v1/channels", headers=h, timeout=30).json()
    cid = channels[0]["channel_id"]
    page.get_by_test_id("pinned").fill(cid)
    page.get_by_test_id("save-limits").click()
    expect(dialog).to_be_hidden()
    saved = httpx.get(f"{server.url}/daznode/api/v1/execution", headers=h, timeout=30).json()
    assert saved["bounds"]["max_fee_ppm"] == 4000
    assert [o["channel_id"] for o in saved["overrides"] if o["pinned"]] == [cid]
    fee = channels[0]["local_policy"]["fee_rate_ppm"]
    r = httpx.post(
        f"{server.url}/daznode/api/v1/changes/preview",
        headers=h,
        timeout=30,
        json={"channel_id": cid, "fee_rate_ppm": fee + 10},
    )
    assert r.status_code == 200 and not r.json()["ok"]
    assert any("pinned" in reason for reason in r.json()["reasons"])
    r = httpx.put(
        f"{server.url}/daznode/api/v1/execution",
        headers=h,
        timeout=30,
        json={"overrides": [], "bounds": {"max_fee_ppm": 5000}},
    )
    assert r.status_code == 200, r.text


def test_alerts_dialog_reports_errors_and_never_shows_secrets(page):
    page.get_by_test_id("open-alerts").click()
    text = page.get_by_test_id("alerts-text")
    expect(text).to_have_value(re.compile('"webhooks"'))
    bad = '{"webhooks": [{"url": "http://example.com/hook", "secret": "s3cret-s3cret-s3cret"}]}'
    text.fill(bad)
    page.get_by_test_id("save-alerts").click()
    expect(page.get_by_test_id("alerts-error")).to_contain_text("https")
    expect(text).to_have_value(bad)
    page.get_by_test_id("test-alerts").click()  # nothing configured: it says so
    expect(page.get_by_test_id("alerts-error")).to_contain_text("destination")


def test_rebalance_now_from_a_recommendation(page, server, admin):
    h = admin.key_headers(admin=True)
    api = f"{server.url}/daznode/api/v1"
    settings = httpx.get(f"{api}/settings", headers=h, timeout=30).json()
    try:
        rec = None
        for seed in (17, 38, 3, 4, 8, 9, 24, 27, 30, 32):
            httpx.put(f"{api}/settings", headers=h, json={**settings, "sim_seed": seed}, timeout=60)
            httpx.post(f"{api}/monitor/run", headers=h, timeout=60).raise_for_status()
            recs = httpx.get(f"{api}/recommendations", headers=h, timeout=60).json()["data"]
            rec = next(
                (
                    r
                    for r in recs
                    if r["suggested"]["rebalance"]
                    and r["suggested"]["rebalance"]["source_channel_id"]
                ),
                None,
            )
            if rec:
                break
        assert rec, "no demo seed gave a rebalance plan with a source channel"
        before = len(httpx.get(f"{api}/rebalances", headers=h, timeout=30).json())
        page.reload()
        row = page.locator(f"tr[data-test='rec-{rec['channel_id']}']")
        row.click()
        page.get_by_test_id(f"rebalance-{rec['channel_id']}").click()
        expect(page.locator(".q-notification").first).to_contain_text("Rebalance", timeout=30_000)
        log = httpx.get(f"{api}/rebalances", headers=h, timeout=30).json()
        assert len(log) == before + 1 and log[0]["in_channel"] == rec["channel_id"]
        assert log[0]["fee_msat"] <= log[0]["max_fee_msat"]
    finally:
        httpx.put(f"{api}/settings", headers=h, json=settings, timeout=60)
        httpx.post(f"{api}/monitor/run", headers=h, timeout=60)


def test_premium_dialog_validates_and_saves(page, server, admin):
    page.get_by_test_id("open-premium").click()
    dialog = page.get_by_test_id("premium-dialog")
    expect(dialog).to_be_visible()
    price = page.get_by_test_id("premium-price-report").locator("xpath=descendant-or-self::input")
    price.first.fill("99999999")
    page.get_by_test_id("save-premium").click()
    expect(page.get_by_test_id("premium-error")).to_contain_text("prices.node_report")
    expect(price.first).to_have_value("99999999")  # what was typed stays
    price.first.fill("77")
    page.get_by_test_id("save-premium").click()
    expect(dialog).to_be_hidden()
    saved = httpx.get(
        f"{server.url}/daznode/api/v1/premium/settings",
        headers=admin.key_headers(admin=True),
        timeout=30,
    ).json()
    assert saved["prices"]["node_report"] == 77


def _end_the_trial_day(server, fees_msat: list[int]) -> None:
    """Move the day's start back 60 days (before the node's history) and write what the node
    earned in it, straight into the live server's SQLite file: the next pass ends the day."""
    con = sqlite3.connect(server.data_folder / "ext_daznode.sqlite3", timeout=10)
    try:
        (doc,) = con.execute("SELECT data FROM settings WHERE id = 'level_trials'").fetchone()
        state = json.loads(doc)
        start = int(time.time()) - 60 * 86400
        state["day_start"] = start
        con.execute("UPDATE settings SET data = ? WHERE id = 'level_trials'", (json.dumps(state),))
        (pk,) = con.execute("SELECT node_pubkey FROM monitor_state").fetchone()
        for i, fee in enumerate(fees_msat):
            ts = start + 3600 * (i + 1)
            con.execute(
                "INSERT INTO forwards (node_pubkey, idx, ts, ts_ns, chan_in, chan_out, "
                "amt_in_msat, amt_out_msat, fee_msat, status) "
                "VALUES (?, ?, ?, ?, '1x1x1', '2x2x2', ?, 100000000, ?, 'settled')",
                (pk, 700_000_000 + i, ts, ts * 10**9, 100_000_000 + fee, fee),
            )
        con.commit()
    finally:
        con.close()


def test_price_level_trials_card(page, server, admin):
    h = admin.key_headers(admin=True)
    api = f"{server.url}/daznode/api/v1"
    profile = httpx.get(f"{api}/profile", headers=h, timeout=30).json()["active"]
    execution = httpx.get(f"{api}/execution", headers=h, timeout=30).json()
    loose = {**execution["bounds"], "cooldown_seconds": 0, "max_updates_per_channel_per_day": 1000}
    try:
        assert httpx.put(f"{api}/profile", headers=h, json={"name": "balanced"}).status_code == 200
        r = httpx.put(
            f"{api}/execution", headers=h, json={**execution, "mode": "auto", "bounds": loose}
        )
        assert r.status_code == 200, r.text
        httpx.post(f"{api}/monitor/run", headers=h, timeout=60).raise_for_status()
        page.reload()
        card = page.get_by_test_id("level-trials")
        expect(card.get_by_test_id("level-today")).to_contain_text("Today: 100 %")
        expect(card.get_by_test_id("level-reason")).to_contain_text("not tried yet")
        # No cooldown here: the engine's fee changes pause only when the next level comes.
        expect(card.get_by_test_id("level-quiet")).to_contain_text("pause in 24 h")
        expect(card.get_by_test_id("level-no-days")).to_be_visible()

        _end_the_trial_day(server, [3000, 4000])
        httpx.post(f"{api}/monitor/run", headers=h, timeout=60).raise_for_status()
        page.reload()
        expect(card.get_by_test_id("level-today")).to_contain_text("Today: 50 %")
        day = card.get_by_test_id("level-100")
        expect(day).to_contain_text("100 %")
        expect(day).to_contain_text("best")
        expect(day.locator("td").nth(2)).to_have_text("2")  # forwards
        expect(day.locator("td").nth(3)).to_have_text("7")  # sat a day
        # The recommendations show the engine's own fee and the level it is multiplied by.
        expect(page.get_by_test_id("rec-level").first).to_contain_text("level 50 %")
        card.screenshot(path=str(REPO / "docs" / "level-trials.png"))

        page.get_by_test_id("level-trials-toggle").click()
        expect(card.get_by_test_id("level-why-not")).to_contain_text("off in the profile")
        assert httpx.get(f"{api}/profile", headers=h).json()["active"]["level_trials"] is False
    finally:
        httpx.put(f"{api}/profile", headers=h, json=profile, timeout=30)
        httpx.put(f"{api}/execution", headers=h, json=execution, timeout=30)
        httpx.post(f"{api}/monitor/run", headers=h, timeout=60)
