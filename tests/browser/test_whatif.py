"""The what-if page in real headless Chromium: choose policies, run a simulation of the demo
node on the mainnet graph, compare the results, and shadow mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal

import httpx
from playwright.sync_api import expect

from tests.browser.pages import chart, docs_screenshot, native

API = "/daznode/api/v1"
RUN_SECONDS = 240  # a run searches routes on the 17k-node graph, on a shared machine
DAYS = 3
SENDERS = 30  # paying nodes sampled: each is a route search on that graph


def fixed1(v: float) -> str:
    """JavaScript's v.toFixed(1): the exact double rounded, halves away from zero."""
    return str(Decimal(v).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def js_number(v: float) -> str:
    """A number as JavaScript writes it in a template: 43.0 is "43"."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def signed_percent(v: float) -> str:
    """As the page shows a difference in %: one decimal, with a sign."""
    return ("+" if v > 0 else "") + fixed1(v) + " %"


def checked(locator) -> bool:
    return locator.get_attribute("aria-checked") == "true"


def choose(page, options: dict, policies: set[str], profiles: set[str]) -> None:
    """Tick exactly these baselines and profiles."""
    for p in options["policies"]:
        box = page.get_by_test_id(f"policy-{p['key']}").get_by_role("checkbox")
        if checked(box) != (p["key"] in policies):
            page.get_by_test_id(f"policy-{p['key']}").click()
        expect(box).to_have_attribute("aria-checked", str(p["key"] in policies).lower())
    for name in options["profiles"]:
        box = page.get_by_test_id(f"profile-{name}")
        if checked(box) != (name in profiles):
            box.click()
        expect(box).to_have_attribute("aria-checked", str(name in profiles).lower())


def api(server, admin, path: str):
    r = httpx.get(f"{server.url}{API}{path}", headers=admin.key_headers(admin=True), timeout=30)
    r.raise_for_status()
    return r.json()


@contextmanager
def loose_bounds(server, admin) -> Iterator[None]:
    """No cooldown and no gossip budget while inside: earlier tests (the price level trials
    card) updated every channel within the hour, which would hold a proposal back."""
    url, h = f"{server.url}{API}/execution", admin.key_headers(admin=True)
    execution = httpx.get(url, headers=h, timeout=30).json()
    loose = {
        **execution["bounds"],
        "cooldown_seconds": 0,
        "max_updates_per_channel_per_day": 1000,
        "max_updates_per_node_per_hour": 100_000,
    }
    r = httpx.put(url, headers=h, json={**execution, "bounds": loose}, timeout=30)
    assert r.status_code == 200, r.text
    try:
        yield
    finally:
        httpx.put(url, headers=h, json=execution, timeout=30).raise_for_status()


def wait_until(check, seconds: float = 20) -> None:
    """Poll `check` until it holds (an API that follows what the page saved)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        time.sleep(0.2)


def wait_for_progress(page, run_seconds: float = RUN_SECONDS) -> list[int]:
    """The percentages the progress bar showed until it went away."""
    expect(page.get_by_test_id("sim-progress")).to_be_visible(timeout=30_000)
    seen: list[int] = []
    deadline = time.monotonic() + run_seconds
    while time.monotonic() < deadline:
        text = page.evaluate(
            "() => { const e = document.querySelector(\"[data-test='sim-progress-value']\");"
            " return e ? e.textContent : null }"
        )
        if text is None:
            return seen
        seen.append(int(text.strip().rstrip("%").strip()))
        page.wait_for_timeout(250)
    raise AssertionError(f"the simulation did not finish within {run_seconds} s: {seen[-5:]}")


def test_the_form_shows_the_choices_and_refuses_bad_input(page, server, admin):
    page.get_by_test_id("to-whatif").click()  # from the dashboard
    expect(page).to_have_url(f"{server.url}/daznode/whatif")
    options = api(server, admin, "/sim/options")
    expect(page.get_by_test_id("policy-static")).to_be_visible(timeout=30_000)

    for p in options["policies"]:
        item = page.get_by_test_id(f"policy-{p['key']}")
        expect(item).to_contain_text(p["name"])
        expect(item).to_contain_text(p["description"])
    for name in options["profiles"]:  # balanced by default, the others not
        expect(page.get_by_test_id(f"profile-{name}")).to_have_attribute(
            "aria-checked", str(name == "balanced").lower()
        )
    expect(native(page, "sim-days")).to_have_value("30")
    expect(page.get_by_test_id("sim-calibrate")).to_have_attribute("aria-checked", "true")
    history = options["history"]  # the demo node has weeks of forwards
    assert history is not None
    figures = page.get_by_test_id("history-figures")
    expect(figures).to_contain_text(f"{history['forwards']:,} forwards")
    expect(figures).to_contain_text(f"{js_number(history['forwards_per_day'])} per day")
    expect(figures).to_contain_text(f"median {history['median_amount_sat']:,} sat")
    expect(page.get_by_test_id("sim-graph")).to_contain_text(f"{options['graph']['nodes']:,} nodes")
    page.get_by_test_id("sim-calibrate").click()
    expect(figures).to_contain_text("default demand will be used")
    page.get_by_test_id("sim-calibrate").click()

    before = api(server, admin, "/sim/runs?kind=whatif")
    # Nothing chosen: the server's message, no run, and the form as it was.
    choose(page, options, set(), set())
    page.get_by_test_id("sim-run").click()
    expect(page.get_by_test_id("sim-error")).to_contain_text(
        "Choose at least one policy, profile or price level"
    )
    expect(page.get_by_test_id("profile-balanced")).to_have_attribute("aria-checked", "false")

    # Days out of range: FastAPI's validation message, the number typed kept.
    choose(page, options, {"current"}, {"balanced"})
    native(page, "sim-days").fill("0")
    page.get_by_test_id("sim-run").click()
    expect(page.get_by_test_id("sim-error")).to_contain_text("days")
    expect(page.get_by_test_id("sim-error")).to_contain_text("greater than or equal to 1")
    expect(native(page, "sim-days")).to_have_value("0")
    expect(page.get_by_test_id("policy-current").get_by_role("checkbox")).to_have_attribute(
        "aria-checked", "true"
    )
    native(page, "sim-days").fill(str(options["max_days"] + 1))
    page.get_by_test_id("sim-run").click()
    expect(page.get_by_test_id("sim-error")).to_contain_text("less than or equal to")
    native(page, "sim-days").fill("3")

    # Price levels: a token that is not a whole number is caught on the page, a level out of
    # range by the server; what was typed stays.
    native(page, "sim-levels-input").fill("150, 2x")
    page.get_by_test_id("sim-run").click()
    expect(page.get_by_test_id("sim-error")).to_contain_text('"2x" is not a whole number of %')
    native(page, "sim-levels-input").fill("150 5")
    page.get_by_test_id("sim-run").click()
    expect(page.get_by_test_id("sim-error")).to_contain_text("Price level 5 %: choose 10 to 1000")
    expect(native(page, "sim-levels-input")).to_have_value("150 5")
    native(page, "sim-levels-input").fill("")

    expect(native(page, "sim-senders")).to_have_value(str(options["senders"]["default"]))
    native(page, "sim-senders").fill(str(options["senders"]["min"] - 1))
    page.get_by_test_id("sim-run").click()
    expect(page.get_by_test_id("sim-error")).to_contain_text("senders")
    expect(native(page, "sim-senders")).to_have_value(str(options["senders"]["min"] - 1))

    assert api(server, admin, "/sim/runs?kind=whatif") == before  # no run started
    assert api(server, admin, "/sim/status")["state"] != "running"
    expect(page.get_by_test_id("sim-progress")).to_have_count(0)


def test_a_run_shows_its_progress_then_the_comparison(page, server, admin):
    page.goto(f"{server.url}/daznode/whatif")
    options = api(server, admin, "/sim/options")
    expect(page.get_by_test_id("policy-static")).to_be_visible(timeout=30_000)
    policies = {"static", "chargelnd"}
    choose(page, options, policies, {"balanced"})
    native(page, "sim-levels-input").fill("150")
    native(page, "sim-days").fill(str(DAYS))
    native(page, "sim-seed").fill("7")
    native(page, "sim-senders").fill(str(SENDERS))  # a quick run
    page.get_by_test_id("sim-run").click()

    expect(page.get_by_test_id("sim-progress")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("sim-run")).to_be_disabled()  # one run at a time
    run_id = api(server, admin, "/sim/status")["run_id"]
    seen = wait_for_progress(page)
    assert seen == sorted(seen) and len(set(seen)) >= 2, seen  # the bar moved forward

    run = api(server, admin, f"/sim/runs/{run_id}")
    assert run["status"] == "done", run
    assert run["request"]["senders"] == run["result"]["stats"]["senders"] == SENDERS
    expect(page.get_by_test_id("sim-run-card")).to_have_attribute("data-run", run_id)
    expect(page.get_by_test_id("sim-run-card")).to_contain_text(f"{SENDERS} paying nodes")
    results = run["result"]["results"]
    keys = [r["key"] for r in results]
    assert set(keys) == policies | {"level:150", "daznode:balanced"}
    expect(page.get_by_test_id("sim-results")).to_be_visible()
    expect(page.get_by_test_id("sim-run")).to_be_enabled()

    # The table: a row per policy, the numbers as the API has them, the best one marked.
    expect(page.get_by_test_id("sim-row")).to_have_count(len(results))
    best = max(results, key=lambda r: r["net_profit_sat"])
    static = next((r for r in results if r["key"] == "static"), None)
    for r in results:
        row = page.locator(f"[data-test='sim-row'][data-key='{r['key']}']")
        expect(row.get_by_test_id("val-name")).to_have_text(r["name"])
        expect(row.get_by_test_id("val-net")).to_have_text(f"{r['net_profit_sat']:,}")
        expect(row.get_by_test_id("val-fees")).to_have_text(f"{r['fees_sat']:,}")
        expect(row.get_by_test_id("val-cost")).to_have_text(f"{r['rebalance_cost_sat']:,}")
        expect(row.get_by_test_id("val-volume")).to_have_text(f"{r['volume_sat']:,}")
        expect(row.get_by_test_id("val-forwards")).to_have_text(f"{r['forwards']:,}")
        rate = r["success_rate"]
        expect(row.get_by_test_id("val-success")).to_have_text(
            "—" if rate is None else f"{fixed1(rate * 100)} %"
        )
        share = r["fallback_forwards"] / r["forwards"] if r["forwards"] else None
        expect(row.get_by_test_id("val-fallback")).to_have_text(
            "—" if share is None else f"{fixed1(share * 100)} %"
        )
        expect(row.get_by_test_id("val-updates")).to_have_text(f"{r['policy_updates']:,}")
        expect(row.get_by_test_id("val-rebalances")).to_have_text(f"{r['rebalances']:,}")
        expect(row).to_have_attribute("data-best", str(r["key"] == best["key"]).lower())
        if static is None:
            expect(row.get_by_test_id("val-vs_static")).to_have_count(0)
        elif r["key"] == "static":
            expect(row.get_by_test_id("val-vs_static")).to_have_text("baseline")
        elif static["net_profit_sat"] == 0:
            expect(row.get_by_test_id("val-vs_static")).to_have_text("—")
        else:
            diff = (r["net_profit_sat"] - static["net_profit_sat"]) / abs(static["net_profit_sat"])
            expect(row.get_by_test_id("val-vs_static")).to_have_text(signed_percent(diff * 100))
    expect(page.get_by_test_id("sim-best")).to_contain_text(best["name"])

    # A price level is proposed from its row: the admin's own changes, in the approval queue.
    expect(page.locator("[data-test^='propose-level-']")).to_have_count(1)
    page.get_by_test_id("propose-level-150").click()
    expect(page.get_by_test_id("level-dialog")).to_contain_text("150 %")
    level_answer = page.expect_response(lambda r: r.url.endswith("/changes/level"))
    with loose_bounds(server, admin), level_answer as answer:
        page.get_by_test_id("level-confirm").click()
    proposal = answer.value.json()
    assert answer.value.status == 200 and proposal["proposed"], proposal
    shown = page.get_by_test_id("level-proposed")
    expect(shown.get_by_test_id("level-proposed-count")).to_have_text(
        str(len(proposal["proposed"]))
    )
    for skipped in proposal["skipped"]:
        expect(page.get_by_test_id("level-skipped")).to_contain_text(skipped["reason"])
    pending = api(server, admin, "/changes?status=pending")
    assert {c["id"] for c in proposal["proposed"]} <= {c["id"] for c in pending}
    r = httpx.post(
        f"{server.url}/daznode/api/v1/changes/reject",
        headers=admin.key_headers(admin=True),
        json={"ids": [c["id"] for c in proposal["proposed"]], "reason": "test"},
        timeout=30,
    )
    assert r.status_code == 200, r.text

    # The charts: a day per label, a line (bars) per policy; cumulative profit ends at the
    # policy's net profit (the table floors msat to sat).
    profit, volume = chart(page, "chart-profit"), chart(page, "chart-volume")
    assert len(profit["labels"]) == DAYS and len(volume["labels"]) == DAYS
    assert [d["label"] for d in profit["datasets"]] == [r["name"] for r in results]
    for r, line, bars in zip(results, profit["datasets"], volume["datasets"], strict=True):
        assert abs(line["data"][-1] - r["net_profit_sat"]) <= 1, (r["key"], line["data"])
        assert line["data"] == sorted(line["data"]) or r["rebalance_cost_sat"] > 0
        assert abs(sum(bars["data"]) - r["volume_sat"]) <= 1, (r["key"], bars["data"])

    # Channels at the end, for the policy picked (by default the best one).
    channels = page.get_by_test_id("sim-channels")
    expect(channels.locator("tbody tr")).to_have_count(min(10, len(best["channels"])))
    other = next(r for r in results if r["key"] != best["key"])
    page.get_by_test_id("channel-policy").click()
    page.locator(".q-menu .q-item", has_text=other["name"]).click()
    top = max(c["fees_sat"] for c in other["channels"])
    expect(channels.locator("tbody tr").first.locator("td").nth(4)).to_have_text(f"{top:,}")

    # The demand used and the notes.
    demand, stats = run["result"]["demand"], run["result"]["stats"]
    expect(page.get_by_test_id("demand-payments")).to_have_text(f"{demand['payments_per_day']:,}")
    expect(page.get_by_test_id("demand-channels")).to_have_text(str(run["request"]["channels"]))
    expect(page.get_by_test_id("demand-kept")).to_have_text(
        f"{stats['payments_kept']:,} of {stats['payments_drawn']:,} in the network"
    )
    if stats.get("calibrated_payments_per_day") is not None:
        expect(page.get_by_test_id("sim-calibration")).to_contain_text(
            f"{js_number(stats['calibration_target_per_day'])} forwards per day"
        )
    else:
        expect(page.get_by_test_id("sim-calibration")).to_contain_text("Not calibrated")
    expect(page.get_by_test_id("sim-notes")).to_be_visible()
    for note in run["request"]["notes"]:
        expect(page.get_by_test_id("sim-notes")).to_contain_text(note)

    # Listed first, open; after a reload the newest run opens again from the list.
    item = page.get_by_test_id("sim-run-item").first
    expect(item).to_have_attribute("data-id", run_id)
    expect(item).to_contain_text(f"{DAYS} days")
    page.reload()
    expect(page.get_by_test_id("sim-run-card")).to_have_attribute(
        "data-run", run_id, timeout=30_000
    )
    expect(page.get_by_test_id("sim-row")).to_have_count(len(results))
    assert len(chart(page, "chart-profit")["labels"]) == DAYS
    docs_screenshot(page, "whatif.png")


def test_a_running_simulation_can_be_cancelled_from_the_page(page, server, admin):
    page.goto(f"{server.url}/daznode/whatif")
    options = api(server, admin, "/sim/options")
    expect(page.get_by_test_id("policy-static")).to_be_visible(timeout=30_000)
    choose(page, options, {"current"}, {"balanced"})
    native(page, "sim-days").fill("30")
    page.get_by_test_id("sim-run").click()
    expect(page.get_by_test_id("sim-progress")).to_be_visible(timeout=30_000)
    run_id = api(server, admin, "/sim/status")["run_id"]
    page.get_by_test_id("sim-cancel").click()

    expect(page.get_by_test_id("sim-cancelled")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("sim-cancelled")).to_contain_text("cancelled: by ")
    expect(page.get_by_test_id("sim-progress")).to_have_count(0)
    expect(page.get_by_test_id("sim-run")).to_be_enabled()
    job = api(server, admin, "/sim/status")
    assert job["state"] == "cancelled" and job["run_id"] == run_id, job
    assert api(server, admin, f"/sim/runs/{run_id}")["status"] == "failed"
    item = page.locator(f"[data-test='sim-run-item'][data-id='{run_id}']")
    expect(item.get_by_text("cancelled", exact=True)).to_be_visible()
    item.click()  # opened, it reads as cancelled, not as a failure
    expect(page.get_by_test_id("run-cancelled")).to_contain_text("This run was cancelled: by ")
    expect(page.get_by_test_id("run-failed")).to_have_count(0)


def test_shadow_mode_runs_and_keeps_a_track_record(page, server, admin):
    page.goto(f"{server.url}/daznode/whatif")
    card = page.get_by_test_id("shadow-card")
    expect(card).to_contain_text("would earn from the node's current state")
    toggle = page.get_by_test_id("shadow-enabled")
    expect(toggle).to_have_attribute("aria-checked", "false", timeout=30_000)
    # Settings first, the switch last: once it is on, the monitor may start a shadow run of its
    # own, and that run must be as small as the one this test starts.
    native(page, "shadow-days").fill("2")
    native(page, "shadow-days").press("Enter")
    native(page, "shadow-senders").fill(str(SENDERS))
    native(page, "shadow-senders").press("Enter")
    wait_until(lambda: api(server, admin, "/sim/shadow")["senders"] == SENDERS)
    toggle.click()
    try:
        wait_until(lambda: api(server, admin, "/sim/shadow")["enabled"] is True)
        shadow = api(server, admin, "/sim/shadow")
        assert shadow["days"] == 2 and shadow["senders"] == SENDERS

        # 409 when the monitor's run started first: the page then follows that one.
        with page.expect_response(lambda r: r.url.endswith("/sim/shadow/run")) as started:
            page.get_by_test_id("shadow-run").click()
        assert started.value.status in (202, 409), started.value.status
        seen = wait_for_progress(page)
        assert seen == sorted(seen), seen
        shadow = api(server, admin, "/sim/shadow")
        newest = shadow["runs"][0]
        assert newest["status"] == "done", newest
        outcome = newest["outcome"]
        item = page.get_by_test_id("shadow-item").first
        expect(item).to_have_attribute("data-id", newest["id"], timeout=30_000)
        diff = outcome["difference_sat"]
        expect(item.get_by_test_id("shadow-diff")).to_have_text(
            f"{'+' if diff > 0 else ''}{diff:,} sat"
        )
        expect(item.get_by_test_id("shadow-current")).to_have_text(f"{outcome['current_sat']:,}")
        expect(item.get_by_test_id("shadow-engine")).to_have_text(f"{outcome['engine_sat']:,}")
        record = shadow["track_record"]
        expect(page.get_by_test_id("shadow-record")).to_contain_text(
            f"Engine ahead in {record['engine_ahead']} of {record['runs']} run"
        )
        assert [lv["percent"] for lv in record["levels"]] == [50, 200]
        for lv in record["levels"]:
            expect(page.get_by_test_id(f"shadow-level-{lv['percent']}")).to_contain_text(
                f"At {lv['percent']} % of the current fees: ahead of them in "
                f"{lv['ahead']} of {lv['runs']} run"
            )
        # Proposing the favoured level is the admin's choice, off by default, saved at once.
        propose = page.get_by_test_id("shadow-propose-levels")
        expect(propose).to_have_attribute("aria-checked", "false")
        propose.click()
        wait_until(lambda: api(server, admin, "/sim/shadow")["propose_levels"] is True)
        propose.click()
        wait_until(lambda: api(server, admin, "/sim/shadow")["propose_levels"] is False)
    finally:
        toggle.click()  # off again
        wait_until(lambda: api(server, admin, "/sim/shadow")["enabled"] is False)


def test_the_page_is_for_admins_only(page, server):
    # A user who registered on this LNbits, not an admin of it.
    name, password = f"visitor{int(time.time()) % 100_000}", "visitor-pw-123"
    body = {"username": name, "password": password, "password_repeat": password}
    r = httpx.post(f"{server.url}/api/v1/auth/register", json=body, timeout=30)
    r.raise_for_status()
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    token = r.json()["access_token"]
    context.add_cookies([{"name": "cookie_access_token", "value": token, "url": server.url}])
    visitor = context.new_page()
    errors: list[str] = []
    visitor.on("pageerror", lambda exc: errors.append(str(exc)))
    visitor.goto(f"{server.url}/daznode/whatif")
    expect(visitor.get_by_test_id("not-admin")).to_contain_text("for LNbits admins")
    expect(visitor.get_by_test_id("sim-form")).to_have_count(0)
    expect(visitor.get_by_test_id("shadow-card")).to_have_count(0)
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
