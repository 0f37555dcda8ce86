"""The reports page in real headless Chromium: generate, read, chart and download."""

from __future__ import annotations

import csv
import io
import json
import re
import time

import httpx
from playwright.sync_api import expect

from engine.exports import report_schemas
from engine.reports import period_bounds
from tests.browser.pages import chart, docs_screenshot, native

API = "/daznode/api/v1"
CHARTS = ("chart-earnings", "chart-flow", "chart-balance")


def sat(msat: int) -> str:
    """As the page shows msat: whole sat, rounded half up, with thousands separators."""
    return f"{(msat + 500) // 1000:,}" if msat >= 0 else f"-{(-msat + 500) // 1000:,}"


def test_generate_a_daily_report_read_it_chart_and_download(page, server, admin):
    h = admin.key_headers(admin=True)
    page.get_by_test_id("to-reports").click()  # from the dashboard
    expect(page).to_have_url(f"{server.url}/daznode/reports")
    expect(page.get_by_test_id("report-list").get_by_test_id("report-item").first).to_be_visible(
        timeout=30_000
    )
    page.get_by_test_id("period").get_by_text("Daily").click()
    before = int(time.time())
    # The background task may already have written today's daily report, whose title the page
    # shows as soon as Daily is picked: wait for the generate request itself, not the title.
    with page.expect_response(
        lambda r: "/reports/generate" in r.url and r.request.method == "POST"
    ) as generated:
        page.get_by_test_id("generate").click()
    assert generated.value.ok

    label = period_bounds("daily", before).label
    expect(page.get_by_test_id("report-title")).to_contain_text(f"report {label}", timeout=30_000)
    listed = httpx.get(f"{server.url}{API}/reports?kind=daily", headers=h, timeout=30).json()
    assert listed[0]["label"] == label and listed[0]["created_at"] >= before - 1
    report = httpx.get(f"{server.url}{API}/reports/{listed[0]['id']}", headers=h, timeout=30)
    data = report.json()["data"]
    totals = data["totals"]

    first = page.get_by_test_id("report-list").get_by_test_id("report-item").first
    expect(first).to_contain_text(label)
    expect(first).to_have_class(re.compile("bg-primary"))

    shown = page.get_by_test_id("report-totals")
    for name in ("Fees earned", "Volume forwarded", "Forwards", "Success ratio"):
        expect(shown).to_contain_text(name)
    for name in ("Rebalancing cost", "Net profit", "Uptime"):
        expect(shown).to_contain_text(name)
    expect(page.get_by_test_id("total-fees")).to_have_text(f"{sat(totals['fees_msat'])} sat")
    expect(page.get_by_test_id("total-net")).to_have_text(f"{sat(totals['net_profit_msat'])} sat")
    expect(page.get_by_test_id("total-forwards")).to_have_text(f"{totals['forwards']:,}")
    ratio = totals["success_ratio"]
    expect(page.get_by_test_id("total-success")).to_have_text(
        "unknown" if ratio is None else f"{round(ratio * 100)} %"
    )
    highlights = page.get_by_test_id("report-highlights").locator(".q-item")
    expect(highlights).to_have_count(len(data["highlights"]))
    assert data["highlights"]
    expect(highlights.first).to_contain_text(data["highlights"][0])
    expect(page.get_by_test_id("balance-buckets").locator(".q-item")).to_have_count(
        len(data["balance_buckets"])
    )
    expect(page.get_by_test_id("fee-changes").get_by_test_id("fee-change")).to_have_count(
        len(data["fee_changes"])
    )
    if data["top_earners"]:
        expect(page.get_by_test_id("top-earners").locator(".q-item")).to_have_count(
            len(data["top_earners"])
        )

    # The three charts: a canvas each with a Chart.js chart on it.
    assert len(chart(page, "chart-earnings")["labels"]) == 30  # every day of the 30-day window
    assert len(chart(page, "chart-flow")["labels"]) > 0
    assert len(chart(page, "chart-balance")["labels"]) > 0
    page.get_by_test_id("series-days").get_by_text("7 d").click()
    page.wait_for_function(
        "() => Chart.getChart(document.querySelector(\"canvas[data-test='chart-earnings']\"))"
        ".data.labels.length === 7",
        timeout=20_000,
    )
    for test_id in CHARTS:  # redrawn, not stacked: still one chart per canvas
        assert len(chart(page, test_id)["labels"]) > 0
    docs_screenshot(page, "reports.png")

    # Channels table as CSV: the header row is the table's columns.
    with page.expect_download() as info:
        page.get_by_test_id("export-csv").click()
    download = info.value
    assert download.suggested_filename == f"daznode-daily-{label}-channels.csv"
    text = download.path().read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(report_schemas()["channels"])
    assert len(rows) == 1 + len(data["channels"])

    # The whole report as JSON.
    with page.expect_download() as info:
        page.get_by_test_id("export-json").click()
    exported = json.loads(info.value.path().read_bytes())
    assert exported["totals"] == totals and exported["highlights"] == data["highlights"]

    # Parquet when pyarrow is there, else a disabled button with the hint.
    formats = httpx.get(f"{server.url}{API}/reports/formats", headers=h, timeout=30).json()
    if formats["parquet"]:
        page.get_by_test_id("export-table").click()
        page.locator(".q-menu .q-item", has_text="Summary").click()
        with page.expect_download() as info:
            page.get_by_test_id("export-parquet").click()
        assert info.value.suggested_filename.endswith("-summary.parquet")
        assert info.value.path().read_bytes()[:4] == b"PAR1"
    else:
        expect(page.get_by_test_id("export-parquet")).to_be_disabled()
        expect(page.get_by_test_id("parquet-hint")).to_contain_text("pip install pyarrow")

    # Raw forwards.
    with page.expect_download() as info:
        page.get_by_test_id("forwards-csv").click()
    header = next(csv.reader(io.StringIO(info.value.path().read_bytes().decode("utf-8-sig"))))
    assert {"idx", "ts", "fee_msat", "status"} <= set(header)
    expect(page.get_by_test_id("export-error")).to_have_count(0)
    expect(page.get_by_test_id("forwards-error")).to_have_count(0)


def test_unavailable_parquet_and_failed_downloads_are_shown(page, server, admin):
    # As on an LNbits without pyarrow: the formats say so, and an export answers 409. LNbits'
    # service worker would see the requests before page.route does: a context without it
    # (and LNbits told its registration went fine, as it reads the registration's scope).
    context = page.context.browser.new_context(
        viewport={"width": 1400, "height": 1000}, service_workers="block"
    )
    context.add_init_script(
        "if (navigator.serviceWorker) navigator.serviceWorker.register ="
        " () => Promise.resolve({scope: '(blocked in this test)'})"
    )
    context.add_cookies([{"name": "cookie_access_token", "value": admin.token, "url": server.url}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    hint = "Parquet export needs the pyarrow package (pip install pyarrow)."

    def formats(route):
        body = {"formats": ["csv", "json", "parquet"], "parquet": False, "hint": hint}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    def refused(route):
        route.fulfill(
            status=409, content_type="application/json", body=json.dumps({"detail": hint})
        )

    page.route(re.compile(r"/daznode/api/v1/reports/formats$"), formats)
    page.route(re.compile(r"/daznode/api/v1/reports/\d+/export\?"), refused)
    page.goto(f"{server.url}/daznode/reports")
    expect(page.get_by_test_id("report-title")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("export-parquet")).to_be_disabled()
    expect(page.get_by_test_id("forwards-parquet")).to_be_disabled()
    expect(page.get_by_test_id("parquet-hint")).to_have_text(hint)

    # A download the server refuses: its message (from the blob body) is on the page.
    page.get_by_test_id("export-csv").click()
    expect(page.get_by_test_id("export-error")).to_have_text(hint)

    # Days in the wrong order: said on the page, and what was typed stays.
    native(page, "forwards-since").fill("2024-03-05")
    native(page, "forwards-until").fill("2024-03-01")
    page.get_by_test_id("forwards-json").click()
    expect(page.get_by_test_id("forwards-error")).to_contain_text("must not be before")
    expect(native(page, "forwards-since")).to_have_value("2024-03-05")
    expect(native(page, "forwards-until")).to_have_value("2024-03-01")

    # Another period: the list and the report follow it.
    page.get_by_test_id("period").get_by_text("Monthly").click()
    expect(page.get_by_test_id("report-title")).to_contain_text("monthly report", ignore_case=True)
    expect(page.get_by_test_id("report-list").get_by_test_id("report-item").first).to_contain_text(
        period_bounds("monthly", int(time.time())).label
    )
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
