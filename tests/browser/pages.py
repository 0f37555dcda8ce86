"""What the browser tests read off the pages the same way everywhere."""

from __future__ import annotations

from tests.support.live import REPO


def native(page, test_id: str):
    """The native input of a Quasar field (Quasar puts extra attributes on the input itself
    for some fields and on the wrapper for others)."""
    return page.get_by_test_id(test_id).locator("xpath=descendant-or-self::input").first


def chart(page, test_id: str) -> dict:
    """Labels and datasets of the Chart.js chart drawn on a canvas (waits for the chart)."""
    selector = f"canvas[data-test='{test_id}']"
    page.wait_for_function(
        "sel => { const c = document.querySelector(sel); return !!c && !!Chart.getChart(c) }",
        arg=selector,
        timeout=20_000,
    )
    return page.evaluate(
        "sel => { const d = Chart.getChart(document.querySelector(sel)).data;"
        " return {labels: d.labels,"
        " datasets: d.datasets.map(s => ({label: s.label, data: s.data}))} }",
        selector,
    )


def docs_screenshot(page, name: str, full_page: bool = True) -> None:
    """The page as docs/<name> shows it. A full-page shot scrolls to the top first: LNbits'
    header is fixed, and a full-page shot of a scrolled page drew it across the middle."""
    docs = REPO / "docs"
    docs.mkdir(exist_ok=True)
    if full_page:
        page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(docs / name), full_page=full_page)
