"""The Analytics tab and its API, over the four-run history of test_analytics.

The API gives what the library gives, with the filter in the query; refusals are JSON errors.
In a real Chromium (Debian's, driven by Playwright) the tab draws the trend, flow, overlap,
distribution, reasons, cohort and outcome charts without console errors, and the filter form
changes them to what the API answers for that filter. Screenshots go to
tests/artifacts/screenshots/.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from conftest import LiveServer
from likely.workspace import Workspace
from test_analytics import DATES, SEGMENT, WHERE, build_history

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).parent / "artifacts" / "screenshots"
TIMEOUT_MS = 20_000
KINDS = ["trend", "flow", "overlap", "distribution", "reasons", "cohorts", "outcomes"]


@pytest.fixture(scope="module")
def history(demo_workspace, tmp_path_factory) -> Path:
    return build_history(demo_workspace, tmp_path_factory)


@pytest.fixture(scope="module")
def server(history):
    from likely.web import create_app

    with LiveServer(create_app(history)) as live:
        yield live


@pytest.fixture(scope="module")
def client(server) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def fmt(n: float | None, digits: int = 0) -> str:
    """likely.js's ``fmt``: en-US grouping, fixed digits, halves away from zero."""
    if n is None:
        return "–"
    rounded = Decimal(repr(n)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{rounded:,.{digits}f}"


# -- the API -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_api_answers_what_the_library_answers(client, history, kind):
    ws = Workspace(history)
    options = {"cohorts": {"attribute": "signup_date", "top": 4}, "distribution": {"bins": 10},
               "reasons": {"top": 3}, "flow": {"runs": "all"}}.get(kind, {})
    filters = {} if kind == "outcomes" else {"segment": SEGMENT[0], "where": WHERE}
    body = client.get(f"/api/instances/buyers/analytics/{kind}",
                      params={**filters, **options}).raise_for_status().json()
    assert body == json.loads(json.dumps(ws.analytics("buyers", kind, **filters, **options)))
    assert body["kind"] == kind and body["instance"] == "buyers"


def test_api_bucket_filter_and_runs(client):
    body = client.get("/api/instances/buyers/analytics/trend",
                      params={"bucket": "high", "runs": f"{DATES[0]},{DATES[-1]}"}).json()
    assert [d["score_date"] for d in body["dates"]] == [DATES[0], DATES[-1]]
    assert all(d["buckets"]["Medium"] == d["buckets"]["Low"] == 0 for d in body["dates"])
    assert body["filter"]["bucket"] == "High"


@pytest.mark.parametrize(("path", "params", "status", "words"), [
    ("trend", {"where": "loyalty_tier = 'gold'; DROP TABLE runs"}, 422, "';'"),
    ("trend", {"where": "favourite_colour = 'red'"}, 422, "Unknown column 'favourite_colour'"),
    ("trend", {"bucket": "Hot"}, 422, "Unknown bucket"),
    ("trend", {"segment": "nobody"}, 404, "No segment named 'nobody'"),
    ("trend", {"runs": "1999-01-01"}, 404, "Score dates"),
    ("trending", {}, 422, "Unknown analytic 'trending'"),
    ("distribution", {"bins": 500}, 422, "bins"),
    ("trend", {"bins": 5}, 422, "takes no options"),
    ("cohorts", {"attribute": "shoe_size"}, 422, "Unknown profile attribute 'shoe_size'"),
])
def test_api_refusals_are_json(client, path, params, status, words):
    response = client.get(f"/api/instances/buyers/analytics/{path}", params=params)
    assert response.status_code == status
    assert words in response.json()["error"]


def test_api_unknown_instance_and_never_run(client):
    assert client.get("/api/instances/nope/analytics/trend").status_code == 404
    response = client.get("/api/instances/no-profiles/analytics/trend")
    assert response.status_code == 404 and "no successful run" in response.json()["error"]


def test_page_has_the_tab_the_form_and_the_runs(client):
    html = client.get("/instances/buyers/analytics?bucket=High").raise_for_status().text
    assert 'aria-current="page">Analytics</a>' in html
    assert 'href="/instances/buyers/analytics"' in client.get("/instances/buyers").text
    assert '<option value="High" selected>' in html
    for day in DATES:
        assert day in html
    assert "/static/analytics.js" in html
    empty = client.get("/instances/no-profiles/analytics").raise_for_status().text
    assert "No history yet" in empty and "/static/analytics.js" not in empty


# -- in a real browser ---------------------------------------------------------------------------

browser_only = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Chromium is not installed at {CHROMIUM}: `make test` installs it with apt-get.")


@pytest.fixture(scope="module")
def page(server):
    if not CHROMIUM.exists():
        pytest.skip("no Chromium")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        tab.errors = []
        tab.on("console", lambda m: m.type == "error" and tab.errors.append(m.text))
        tab.on("pageerror", lambda e: tab.errors.append(str(e)))
        yield tab
        browser.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def wait_ready(page) -> None:
    from playwright.sync_api import expect

    for kind in KINDS:
        expect(page.locator(f"#p-{kind}")).to_have_attribute("data-state", "ready")


def trend_line(client, **params) -> str:
    body = client.get("/api/instances/buyers/analytics/trend", params=params).json()
    last = body["dates"][-1]
    buckets = ", ".join(f"{fmt(last['buckets'][b])} {b}" for b in ("High", "Medium", "Low"))
    return (f"{fmt(last['profiles'])} profiles at {last['score_date']}: {buckets}; "
            f"mean score {fmt(last['mean_score'], 1)}.")


@browser_only
def test_tab_draws_every_chart(page, server, client):
    from playwright.sync_api import expect

    page.goto(f"{server.url}/instances/buyers")
    page.get_by_role("link", name="Analytics").click()
    expect(page).to_have_url(f"{server.url}/instances/buyers/analytics")
    expect(page.locator('nav.tabs a[aria-current="page"]')).to_have_text("Analytics")
    wait_ready(page)
    for chart in ("trend", "flow", "overlap", "distribution", "reasons", "cohorts", "outcomes",
                  "calibration"):
        expect(page.locator(f"#c-{chart} svg.main-svg").first).to_be_visible()
    expect(page.locator("#n-trend .summary")).to_have_text(trend_line(client))
    expect(page.locator("#filter-words")).to_have_text("Showing every scored profile.")
    # the Sankey joins the newest two runs; its counts are the API's
    flow = client.get("/api/instances/buyers/analytics/flow").json()["pairs"][-1]
    expect(page.locator("#n-flow .pair")).to_have_text(
        f"{DATES[-2]} → {DATES[-1]}: {fmt(flow['stayed'])} stayed, {fmt(flow['up'])} moved up, "
        f"{fmt(flow['down'])} moved down, {fmt(flow['entered'])} entered, "
        f"{fmt(flow['left'])} left.")
    expect(page.locator("#c-flow .sankey-node")).not_to_have_count(0)
    # the Venn: three circles and the seven region counts of the API
    overlap = client.get("/api/instances/buyers/analytics/overlap").json()
    expect(page.locator("#c-overlap path[data-index]")).to_have_count(3)
    annotations = page.locator("#c-overlap .annotation-text")
    expect(annotations).to_have_count(7 + 3)
    texts = annotations.all_text_contents()
    assert sorted(texts[:7]) == sorted(fmt(r["profiles"]) for r in overlap["regions"])
    assert texts[7:] == [f"{r['score_date']}: {fmt(n)}"
                         for r, n in zip(overlap["runs"], overlap["sizes"], strict=True)]
    expect(page.locator("#n-overlap .summary")).to_have_text(
        f"{fmt(overlap['union'])} profiles in High at least once; {fmt(overlap['in_all'])} in "
        f"all 3 runs.")
    # side-by-side histograms: one x axis per run
    expect(page.locator("#c-distribution .xtick").first).to_be_visible()
    expect(page.locator("#c-distribution g.cartesianlayer > g.subplot")).to_have_count(4)
    expect(page.locator("#n-cohorts .summary")).to_have_text("4 cohorts by loyalty_tier.")
    expect(page.locator("#c-cohorts .legendtext")).to_have_text(
        ["bronze", "silver", "gold", "platinum"])
    expect(page.locator("#n-outcomes tbody tr")).to_have_count(2)
    shot(page, "analytics")
    assert not page.errors, page.errors


@browser_only
def test_filters_change_the_charts(page, server, client):
    from playwright.sync_api import expect

    page.goto(f"{server.url}/instances/buyers/analytics")
    wait_ready(page)
    before = page.locator("#n-trend .summary").text_content()
    page.locator("#f-bucket").select_option("High")
    page.locator("#f-where").fill("loyalty_tier IN ('gold', 'platinum', 'silver')")
    page.get_by_role("button", name="Apply").click()
    wanted = trend_line(client, bucket="High",
                        where="loyalty_tier IN ('gold', 'platinum', 'silver')")
    expect(page.locator("#n-trend .summary")).to_have_text(wanted)
    assert wanted != before
    wait_ready(page)
    assert "bucket=High" in page.url and "loyalty_tier" in page.url
    expect(page.locator("#filter-words")).to_contain_text("in bucket High at each score date")
    # the flow now shows who entered and left High; its numbers follow the filter
    flow = client.get("/api/instances/buyers/analytics/flow", params={
        "bucket": "High", "where": "loyalty_tier IN ('gold', 'platinum', 'silver')"}).json()
    expect(page.locator("#n-flow .pair")).to_contain_text(f"{fmt(flow['pairs'][-1]['stayed'])} "
                                                          "stayed")
    cohorts = client.get("/api/instances/buyers/analytics/cohorts", params={
        "bucket": "High", "where": "loyalty_tier IN ('gold', 'platinum', 'silver')",
        "attribute": "loyalty_tier"}).json()
    expect(page.locator("#c-cohorts .legendtext")).to_have_text(cohorts["values"])
    shot(page, "analytics-filtered")

    # a segment, and every consecutive pair in the flow
    page.locator("#f-bucket").select_option("")
    page.locator("#f-where").fill("")
    page.locator("#f-segment").select_option(SEGMENT[0])
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#n-trend .summary")).to_have_text(trend_line(client,
                                                                      segment=SEGMENT[0]))
    page.locator("#flow-all").check()
    expect(page.locator("#n-flow .pair")).to_have_count(3)
    # cohorts by signup month, from the page's own selector
    page.locator("#cohort-attribute").select_option("signup_date")
    months = client.get("/api/instances/buyers/analytics/cohorts", params={
        "segment": SEGMENT[0], "attribute": "signup_date"}).json()
    expect(page.locator("#n-cohorts .summary")).to_have_text(
        f"{len(months['series'])} cohorts by month of signup_date.")
    wait_ready(page)
    shot(page, "analytics-segment")

    # a refused condition says why, next to the form
    page.locator("#f-where").fill("loyalty_tier = 'gold'; DROP TABLE runs")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#filter-error")).to_contain_text("';'")
    expect(page.locator("#p-trend")).to_have_attribute("data-state", "error")
    # Clear brings everyone back
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#n-trend .summary")).to_have_text(trend_line(client))
    expect(page.locator("#filter-error")).to_be_empty()
    errors = [e for e in page.errors if "422" not in e and "Unprocessable" not in e]
    assert not errors, errors


@browser_only
def test_page_opens_with_the_filter_in_its_address(page, server, client):
    from playwright.sync_api import expect

    where = "signup_date >= '2025-01-01'"
    page.goto(f"{server.url}/instances/buyers/analytics?where={quote(where)}"
              "&attribute=age_band")
    wait_ready(page)
    expect(page.locator("#f-where")).to_have_value(where)
    expect(page.locator("#n-trend .summary")).to_have_text(trend_line(client, where=where))
    expect(page.locator("#cohort-attribute")).to_have_value("age_band")
