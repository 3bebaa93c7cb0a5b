"""A lifetime-value instance in a real browser: Chromium (Debian's, driven by Playwright).

Over the CLV surfaces' workspace ('buyers' and 'clv_90d', see ``_clv_workspace``): the clv
instance's latest scores show the Lifetime value card (the predicted value distribution drawn
from the API's bins, the value buckets and the two models' holdout comparison as the API says),
its other pages load without errors, the segment builder previews a rule over value fields, and
the propensity page has no such card. Screenshots go to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import httpx
import pytest

from _clv_workspace import clv_workspace, scores_file
from conftest import LiveServer
from test_web_browser import CHROMIUM, CHROMIUM_ARGS, Tab, fmt, plotly_svg

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Chromium is not installed at {CHROMIUM}: `make test` installs it with apt-get "
           "(apt-get install chromium); the browser tests need it.")

if CHROMIUM.exists():
    from playwright.sync_api import expect, sync_playwright


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from likely.web import create_app

    with LiveServer(create_app(clv_workspace(tmp_path_factory))) as live:
        yield live


@pytest.fixture(scope="module")
def api(server) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=60,
                      headers={"Origin": server.url}) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser, server):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    yield Tab(context.new_page(), server.url)
    context.close()


def test_the_clv_page_shows_the_lifetime_value_card(tab, api):
    card = api.get("/api/instances/clv_90d/value").raise_for_status().json()
    page = tab.page
    assert tab.goto("/instances/clv_90d").status == 200
    section = page.locator("#lifetime-value")
    expect(section.locator("h2")).to_have_text("Lifetime value")
    expect(section).to_contain_text(f"{card['predicted_value_total']:,.0f}")

    expect(plotly_svg(page, "#value-distribution")).to_be_visible()
    assert page.locator("#value-distribution g.point path").count() > 0, "no bars drawn"
    drawn = page.evaluate("""() => document.getElementById("value-distribution").data.map(
        (t) => ({ name: t.name, x: t.x, y: t.y }))""")
    assert [t["name"] for t in drawn] == ["rest (Low)", "next 30% (Medium)", "top 10% (High)"]
    for trace, bucket in zip(drawn, ("Low", "Medium", "High"), strict=True):
        assert trace["x"] == card["distribution"]["labels"]
        assert trace["y"] == card["distribution"]["counts"][bucket]
    assert sum(sum(t["y"]) for t in drawn) == card["scored_profiles"]

    rows = page.locator("#value-buckets tbody tr")
    expect(rows).to_have_count(3)
    for row, line in zip(rows.all(), card["buckets"], strict=True):
        cells = row.locator("td")
        expect(cells.nth(0)).to_contain_text(line["value_bucket"])
        expect(cells.nth(1)).to_have_text(f"{line['profiles']:,}")
        expect(cells.nth(3)).to_have_text(f"{line['predicted_value_total']:,.0f}")
        expect(cells.nth(4)).to_have_text(f"{line['predicted_value_mean']:,.2f}")

    models = card["models"]
    expect(page.locator("#value-models th.chosen")).to_have_text(
        f"{models['chosen_name']} (chosen)")
    gini = next(r for r in models["metrics"] if r["metric"] == "gini")
    expect(page.locator('#value-models tr[data-metric="gini"] td.num')).to_have_text(
        [f"{gini[m['model']]:.3f}" for m in models["models"]])
    expect(page.locator("#value-behaviours li").first).to_contain_text(
        card["behaviours"][0]["behaviour"])

    expect(page.locator("#targeting h2")).to_have_text("Targeting: what an audience is worth")
    expect(page.locator("#t-expected")).not_to_have_text("–")
    expect(page.locator("#t-precision")).not_to_contain_text("%")
    expect(page.locator(".bucket-card h2").first).to_contain_text("High · top 10%")
    tab.shot("clv-scores")
    tab.assert_clean()


def test_the_clv_instance_pages_load_cleanly(tab, api, tmp_path_factory):
    from likely.workspace import Workspace

    ws = Workspace(clv_workspace(tmp_path_factory))
    never = scores_file(ws, "clv_90d").query("probability_active.isna()")["profile_id"].iloc[0]
    gini = ws.get_run("clv_90d").metrics["holdout"]["gini"]
    page = tab.page
    tab.goto("/instances/clv_90d/evaluation")
    expect(page.locator("#value-evaluation h2")).to_have_text(
        f"Model quality: normalised Gini {gini:.3f}")
    expect(page.locator("#value-models tbody tr")).to_have_count(5)
    tab.shot("clv-evaluation")
    tab.goto("/instances/clv_90d/runs")
    expect(page.locator("table.runs thead")).to_contain_text("Gini")
    expect(page.locator("table.runs tbody tr").first).to_contain_text(f"{gini:.3f}")
    tab.goto(f"/instances/clv_90d/profiles?id={never}")
    expect(page.locator("dl.figures")).to_contain_text("Predicted value (90 days)")
    expect(page.locator("dl.figures")).to_contain_text("never bought")
    tab.goto("/instances/clv_90d/analytics")
    expect(plotly_svg(page, "#c-trend")).to_be_visible()
    tab.goto("/instances")
    expect(page.locator('tr[data-instance="clv_90d"] .status')).to_have_text("Success")
    tab.assert_clean()


def test_the_segment_builder_previews_a_rule_over_value_fields(tab, api):
    page = tab.page
    tab.goto("/segments/new")
    page.locator('button.insert[data-insert="clv_90d.predicted_value"]').click()
    page.locator("#b-rule").press_sequentially(" > 50 AND buyers.bucket != 'Low'")
    rule = "clv_90d.predicted_value > 50 AND buyers.bucket != 'Low'"
    expected = api.post("/api/segments/preview", json={"rule": rule, "sample": 5}).json()
    expect(page.locator("#preview")).to_have_attribute("data-state", "ok")
    expect(page.locator("#preview-size")).to_have_text(fmt(expected["profiles"]))
    expect(page.locator("#preview-sample thead")).to_contain_text("clv_90d.predicted_value")
    expect(page.locator("#preview-sample thead")).to_contain_text("clv_90d.value_bucket")
    tab.shot("clv-segment-builder")
    tab.assert_clean()


def test_the_propensity_page_has_no_lifetime_value_card(tab):
    page = tab.page
    tab.goto("/instances/buyers")
    expect(plotly_svg(page, "#histogram")).to_be_visible()
    expect(page.locator("#lifetime-value")).to_have_count(0)
    expect(page.locator("#targeting h2")).to_have_text("Targeting: what an audience buys")
    expect(page.locator("#t-precision")).to_contain_text("%")
    tab.assert_clean()


def test_a_measured_clv_run_shows_predicted_against_actual_spend(browser, tmp_path_factory):
    """A copy of the workspace scored 90 days before its end, then at its end: the later run
    measures the earlier one, and the performance tab shows spend per bucket as the API says."""
    import shutil
    from datetime import date

    from likely.web import create_app
    from likely.workspace import Workspace

    copy = tmp_path_factory.mktemp("clv-outcome") / "ws"
    shutil.copytree(clv_workspace(tmp_path_factory), copy)
    ws = Workspace(copy)
    end = date.fromisoformat(ws.get_run("clv_90d").as_of)
    ws.run("clv_90d", as_of=date.fromordinal(end.toordinal() - 91))
    assert ws.run("clv_90d", as_of=end).counts["outcomes_measured"] == 1
    measured = ws.performance("clv_90d")["runs"][0]
    with LiveServer(create_app(copy)) as live:
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        tab = Tab(context.new_page(), live.url)
        page = tab.page
        assert tab.goto("/instances/clv_90d/performance").status == 200
        expect(plotly_svg(page, "#perf-chart")).to_be_visible()
        drawn = page.evaluate("""() => document.getElementById("perf-chart").data.map(
            (t) => ({ name: t.name, y: t.y }))""")
        assert [t["name"] for t in drawn] == ["predicted", "actual"]
        assert drawn[1]["y"] == [b["actual_value"] for b in measured["buckets"]]
        expect(page.locator("#perf-table thead")).to_contain_text("Actual per profile")
        high = page.locator("#perf-table tbody tr").first.locator("td")
        expect(high.nth(0)).to_have_text("High")
        expect(high.nth(6)).to_have_text(f"{measured['buckets'][0]['actual_total']:,.2f}")
        expect(page.locator("#perf-table p")).to_contain_text(
            f"Normalised Gini on what was spent: {measured['gini']:.3f}")
        tab.shot("clv-performance")
        tab.assert_clean()
        context.close()


def test_the_instance_form_creates_a_lifetime_value_instance(tab, api):
    """Choosing "Lifetime value" turns the goal into purchases and the window into the horizon,
    offers the value column, and refuses a horizon under 7 days next to its field."""
    page = tab.page
    tab.goto("/instances/new")
    page.locator("#f-name").fill("clv-from-form")
    page.locator("#f-events").select_option("events")
    expect(page.locator("#f-value-column")).to_be_hidden()
    page.locator("#f-type").select_option("clv")
    expect(page.locator("#f-value-column")).to_be_visible()
    expect(page.locator("#f-occurs")).to_be_hidden()
    expect(page.locator('label[for="f-window"]')).to_have_text("spend over the next (days)")
    page.locator("#f-goal").fill("event_type = 'commerce.purchases'")
    page.locator("#f-window").fill("3")
    page.locator("#create-instance").click()
    expect(page.locator('[data-error-for="horizon_days"]')).to_contain_text("7")
    assert api.get("/api/instances/clv-from-form").status_code == 404
    page.locator("#f-window").fill("120")
    page.locator("#create-instance").click()
    page.wait_for_url("**/instances/clv-from-form")
    config = api.get("/api/instances/clv-from-form").raise_for_status().json()["config"]
    assert config["type"] == "clv" and config["horizon_days"] == 120
    assert config["goal"]["window_days"] == 120 and config["value_column"] == "value"
    api.post("/api/instances/clv-from-form/delete").raise_for_status()
    tab.assert_clean()
