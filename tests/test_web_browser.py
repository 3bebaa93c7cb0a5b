"""The dashboard in a real browser: Chromium (Debian's, driven by Playwright) against a real server.

Every page loads without console or page errors and shows its key content; the latest-scores
page's factor breakdowns, targeting slider and Create segment work by mouse and keyboard; an
instance is created from the form (with the live check), run from its page and followed to the
end; the instances list clones and deletes through its dialogs. A full-page screenshot of each
page goes to tests/artifacts/screenshots/ for a person to look at.

`make test` installs Chromium when it is missing; without it (no apt) these tests skip.
"""

from __future__ import annotations

import re
import uuid
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).parent / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 15_000
RUN_TIMEOUT_MS = 180_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Chromium is not installed at {CHROMIUM}: `make test` installs it with apt-get "
           "(apt-get install chromium); the browser tests need it.")

if CHROMIUM.exists():  # Playwright comes with the dev extra; no browser download is needed
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)


def fmt(n: float | None, digits: int = 0) -> str:
    """The page's number format (likely.js ``fmt``: en-US grouping, fixed digits, halves
    rounded away from zero on the shortest decimal form, as ``toLocaleString`` does)."""
    if n is None:
        return "–"
    rounded = Decimal(repr(n)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{rounded:,.{digits}f}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def api(dashboard) -> httpx.Client:
    """The dashboard's JSON API, for what the page should show. POSTs send the server's own
    Origin, as the dashboard's pages do."""
    with httpx.Client(base_url=dashboard.url, timeout=60,
                      headers={"Origin": dashboard.url}) as client:
        yield client


@pytest.fixture(scope="module")
def summary(api) -> dict:
    return api.get("/api/instances/buyers/scores").raise_for_status().json()


@pytest.fixture(scope="module")
def profile_id(dashboard_workspace) -> str:
    from likely.workspace import Workspace

    return Workspace(dashboard_workspace).scores("buyers", top=1).column("profile_id")[0].as_py()


class Tab:
    """One browser page on the dashboard, recording console errors, page errors and dialogs."""

    def __init__(self, page, base: str) -> None:
        self.page, self.base = page, base
        self.errors: list[str] = []
        self.dialogs: list[str] = []  # native dialogs (alert, confirm): dismissed unless
        self.accept_dialogs = False   # a test expects one and accepts it
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("dialog", self._dialog)

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text} "
                               f"(at {message.location.get('url', '?')})")

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        if self.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()

    def goto(self, path: str):
        response = self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_clean(self, allowed: tuple[str, ...] = ()) -> None:
        errors = [e for e in self.errors if not any(a in e for a in allowed)]
        assert not errors, "\n".join(errors)
        assert not self.dialogs, f"unexpected native dialogs: {self.dialogs}"


@pytest.fixture
def tab(browser, dashboard):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    yield Tab(page, dashboard.url)
    context.close()


def plotly_svg(page, chart: str):
    """The Plotly drawing inside a chart container."""
    return page.locator(f"{chart} svg.main-svg").first


# -- every page: no errors, key content, a screenshot ------------------------------------------


def check_instances(page, ctx) -> None:
    expect(page.locator("h1")).to_have_text("Instances")
    buyers = page.locator('tr[data-instance="buyers"]')
    expect(buyers).to_be_visible()
    expect(buyers.locator(".status")).to_have_text("Success")
    expect(buyers.locator("td.num").first).to_have_text(fmt(ctx["summary"]["scored_profiles"]))
    never = page.locator('tr[data-instance="never-run"]')
    expect(never.locator(".status")).to_have_text("Never run")
    for action in ("Run now", "Clone", "Delete"):
        expect(buyers.get_by_role("button", name=action)).to_be_visible()


def check_new(page, ctx) -> None:
    expect(page.locator("h1")).to_have_text("Create instance")
    expect(page.locator("#instance-form")).to_be_visible()
    expect(page.locator("#f-events option")).to_have_text(["events"])
    expect(page.locator("#columns-hint")).to_contain_text("event_type")
    expect(page.locator('[data-error-for="goal.conditions"]')).to_be_empty()


def check_scores(page, ctx) -> None:
    summary = ctx["summary"]
    expect(page.locator("h1")).to_contain_text("buyers")
    expect(page.locator(".instance-head .status")).to_have_text("Success")
    expect(page.locator('nav.tabs a[aria-current="page"]')).to_have_text("Latest scores")
    expect(plotly_svg(page, "#ring")).to_be_visible()
    expect(page.locator("#ring")).to_contain_text(f"{fmt(summary['scored_profiles'])}scored")
    for bucket in ("High", "Medium", "Low"):
        expect(page.locator("#ring")).to_contain_text(bucket)
    expect(plotly_svg(page, "#histogram")).to_be_visible()
    assert page.locator("#histogram g.point path").count() > 0, "the histogram has no bars"
    expect(plotly_svg(page, "#gains")).to_be_visible()
    cards = page.locator(".bucket-card")
    expect(cards).to_have_count(3)
    for card, bucket in zip(cards.all(), summary["buckets"]):
        expect(card.locator("h2")).to_contain_text(
            f"{bucket['bucket']} {fmt(bucket['profiles'])} profiles")
        expect(card.get_by_role("button", name="Create segment")).to_be_visible()
    default = max(summary["scored_profiles"] // 10, 1)
    expect(page.locator("#t-profiles")).to_contain_text(f"{fmt(default)} (")
    expect(page.locator("#t-expected")).not_to_have_text("–")


def check_evaluation(page, ctx) -> None:
    grade = ctx["api"].get("/api/instances/buyers/evaluation").json()["grade"]["grade"]
    expect(page.locator(".grade")).to_have_text(grade)
    expect(page.locator("h2").first).to_have_text(f"Model quality: {grade}")
    expect(page.locator("tr.current td").first).to_have_text(grade)
    expect(plotly_svg(page, "#lift")).to_be_visible()
    expect(plotly_svg(page, "#calibration")).to_be_visible()
    expect(page.get_by_role("heading", name="Training windows")).to_be_visible()


def check_performance(page, ctx) -> None:
    expect(page.locator("#perf-run option")).to_have_count(1)
    expect(page.locator("#perf-run option")).to_contain_text("scores of 2025-06-01")
    expect(plotly_svg(page, "#perf-chart")).to_be_visible()
    expect(page.locator("#perf-chart")).to_contain_text("expected")
    expect(page.locator("#perf-table tbody tr")).to_have_count(3)
    expect(page.locator("#perf-table")).to_contain_text("Overall: expected")


def check_runs(page, ctx) -> None:
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.locator(".status")).to_have_text(["Success", "Success"])
    expect(rows.first.locator("td").first).to_have_text("2025-07-19")
    expect(rows.last.locator("td").first).to_have_text("2025-06-01")


def check_profile(page, ctx) -> None:
    expect(page.locator("#profile-id")).to_have_value(ctx["profile_id"])
    expect(page.locator("section.grid h2").first).to_have_text(ctx["profile_id"])
    expect(page.locator("dl.figures")).to_contain_text("Bucket")
    expect(page.locator("ol.reasons li").first).to_contain_text("the likelihood")
    expect(plotly_svg(page, "#history")).to_be_visible()


def check_never_run(page, ctx) -> None:
    expect(page.locator("h1")).to_contain_text("never-run")
    expect(page.locator(".instance-head .status")).to_have_text("Never run")
    expect(page.locator("section.empty h2")).to_have_text("No scores yet")
    expect(page.locator("section.empty")).to_contain_text("Run now")
    expect(page.locator("#ring")).to_have_count(0)
    expect(page.locator(".bucket-card")).to_have_count(0)


def check_segments(page, ctx) -> None:
    expect(page.locator("h1")).to_have_text("Segments")
    expect(page.locator("header.top a[aria-current]")).to_have_text("Segments")
    if not ctx["api"].get("/api/segments").raise_for_status().json():
        expect(page.locator("section.empty")).to_contain_text("No segments yet")
    else:
        expect(page.locator("main table")).to_be_visible()


def check_data(page, ctx) -> None:
    expect(page.locator("h1")).to_have_text("Data")
    panels = page.locator("section.panel")
    expect(panels).to_have_count(2)
    expect(panels.locator("h2")).to_contain_text(["events", "profiles"])
    expect(panels.first.locator("dl.figures")).to_contain_text("Rows")


def check_unknown(page, ctx) -> None:
    expect(page.locator("h1")).to_contain_text("Not found (404)")
    expect(page.locator("main")).to_contain_text("No such page")
    expect(page.get_by_role("link", name="Back to the instances")).to_be_visible()


PAGES = [
    ("instances", "/instances", 200, check_instances),
    ("instance-new", "/instances/new", 200, check_new),
    ("scores", "/instances/buyers", 200, check_scores),
    ("evaluation", "/instances/buyers/evaluation", 200, check_evaluation),
    ("performance", "/instances/buyers/performance", 200, check_performance),
    ("runs", "/instances/buyers/runs", 200, check_runs),
    ("profile", "/instances/buyers/profiles?id={profile_id}", 200, check_profile),
    ("never-run", "/instances/never-run", 200, check_never_run),
    ("segments", "/segments", 200, check_segments),
    ("data", "/data", 200, check_data),
    ("unknown", "/no/such/page", 404, check_unknown),
]


@pytest.mark.parametrize(("name", "path", "status", "check"), PAGES, ids=[p[0] for p in PAGES])
def test_page_loads_cleanly_and_shows_its_content(tab, api, summary, profile_id,
                                                  name, path, status, check):
    response = tab.goto(path.format(profile_id=quote(profile_id)))
    assert response.status == status
    check(tab.page, {"api": api, "summary": summary, "profile_id": profile_id})
    tab.shot(name)
    # The browser reports the error page's own 404 as a failed load; nothing else may fail.
    tab.assert_clean(allowed=("status of 404",) if status == 404 else ())


# -- latest scores: factor breakdowns, targeting -----------------------------------------------


def assert_breakdown(page, summary: dict, bucket: str, factor: str) -> None:
    dist = summary["distributions"][factor]
    box = page.locator(f"#breakdown-{bucket}")
    expect(box.locator("strong")).to_have_text(dist["name"])
    expect(box.locator(".headline")).to_have_text(re.compile(r".+: \d+% of High, \d+% of Low$"))
    expect(box.locator(".headline")).to_have_text(dist["headline"])
    coverage = ", ".join(f"{fmt(dist['buckets'][b]['coverage_pct'])}% of {b}"
                         for b in ("High", "Medium", "Low") if b in dist["buckets"])
    expect(box.locator("p.small")).to_have_text(f"Known for {coverage}.")
    expect(plotly_svg(page, f"#breakdown-{bucket} .chart")).to_be_visible()
    expect(box.locator(".chart")).to_have_attribute("aria-label", re.compile(bucket))


def test_factor_breakdown_on_hover_and_keyboard_focus(tab, summary):
    tab.goto("/instances/buyers")
    page = tab.page
    high = summary["bucket_factors"]["High"]
    assert high and all(f["factor"] in summary["distributions"] for f in high)
    expect(page.locator("#breakdown-High")).to_contain_text("Focus a factor")

    page.locator('button.factor[data-bucket="High"]').first.hover()
    assert_breakdown(page, summary, "High", high[0]["factor"])
    expect(page.locator('button.factor[data-bucket="High"]').first).to_have_class(
        re.compile(r"\bactive\b"))

    medium = summary["bucket_factors"]["Medium"]
    assert len(medium) >= 2, "the Medium card needs two factors to move between"
    page.mouse.move(0, 0)  # let go of the hover
    page.locator('button.factor[data-bucket="Medium"]').first.focus()
    assert_breakdown(page, summary, "Medium", medium[0]["factor"])
    page.keyboard.press("Tab")  # to the next factor of the card, by keyboard
    expect(page.locator('button.factor[data-bucket="Medium"]').nth(1)).to_be_focused()
    assert_breakdown(page, summary, "Medium", medium[1]["factor"])
    buttons = page.locator('button.factor[data-bucket="Medium"]')
    expect(buttons.nth(1)).to_have_class(re.compile(r"\bactive\b"))
    expect(buttons.first).not_to_have_class(re.compile(r"\bactive\b"))
    # The other card keeps its own breakdown.
    expect(page.locator("#breakdown-High strong")).to_have_text(
        summary["distributions"][high[0]["factor"]]["name"])
    tab.shot("scores-breakdown")
    tab.assert_clean()


def expect_figures(page, api, **query) -> dict:
    """The targeting figures on the page equal the API's for the same audience."""
    t = api.get("/api/instances/buyers/targeting", params=query).raise_for_status().json()
    expect(page.locator("#t-profiles")).to_have_text(
        f"{fmt(t['profiles'])} ({fmt(t['share_of_scored_pct'], 1)}%)")
    expect(page.locator("#t-expected")).to_have_text(fmt(t["expected_goal_profiles"]))
    precision = t["expected_precision"]
    expect(page.locator("#t-precision")).to_have_text(
        "–" if precision is None else f"{fmt(100 * precision, 1)}%")
    expect(page.locator("#t-captured")).to_have_text(
        "–" if t["captured_pct"] is None else f"{fmt(t['captured_pct'], 1)}%")
    expect(page.locator("#t-lowest")).to_have_text(fmt(t["lowest_score"], 1))
    return t


def test_targeting_slider_by_size_and_by_threshold(tab, api, summary):
    tab.goto("/instances/buyers")
    page = tab.page
    slider, number = page.locator("#target-slider"), page.locator("#target-value")
    default = max(summary["scored_profiles"] // 10, 1)
    first = expect_figures(page, api, size=default)

    number.fill("300")
    expect(slider).to_have_value("300")
    by_number = expect_figures(page, api, size=300)
    assert by_number["expected_goal_profiles"] != first["expected_goal_profiles"]

    slider.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(number).to_have_value("305")
    by_keys = expect_figures(page, api, size=305)
    assert by_keys["expected_goal_profiles"] > by_number["expected_goal_profiles"]

    page.get_by_role("radio", name="score threshold").check()
    expect(page.locator("#target-label")).to_contain_text("Score threshold")
    cutoff = summary["bucket_cutoffs"][1]
    expect(number).to_have_value(f"{cutoff:g}")
    high = expect_figures(page, api, threshold=cutoff)
    assert high["profiles"] == summary["buckets"][0]["profiles"]
    assert high["expected_goal_profiles"] != by_keys["expected_goal_profiles"]

    number.fill("50")
    expect(slider).to_have_value("50")
    lower = expect_figures(page, api, threshold=50)
    assert lower["profiles"] > high["profiles"]

    page.get_by_role("radio", name="audience size").check()
    expect(page.locator("#target-label")).to_have_text("Audience size")
    expect_figures(page, api, size=default)
    tab.shot("scores-targeting")
    tab.assert_clean()


# -- segments -----------------------------------------------------------------------------------


def save_bucket_segment(page, bucket: str, name: str) -> None:
    page.locator(f'.bucket-card[data-bucket="{bucket}"] button.create-segment').click()
    dialog = page.locator("#segment-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#segment-name")).to_have_value(f"buyers {bucket}")
    expect(page.locator("#segment-what")).to_contain_text(f"{bucket} bucket of buyers")
    page.locator("#segment-name").fill(name)
    page.locator("#segment-save").click()
    expect(dialog).to_be_hidden()


def test_create_segment_from_the_high_card(tab, api, summary):
    name = unique("browser high")
    high = next(b for b in summary["buckets"] if b["bucket"] == "High")
    tab.goto("/instances/buyers")
    page = tab.page
    try:
        save_bucket_segment(page, "High", name)
        notice = page.locator("#segment-saved")
        expect(notice).to_be_visible()
        expect(notice).to_have_text(f"Saved segment {name} with {fmt(high['profiles'])} profiles.")
        saved = api.get(f"/api/segments/{quote(name, safe='')}").raise_for_status().json()
        assert saved["name"] == name
        assert saved["size"]["profiles"] == high["profiles"]
        assert saved["size"]["score_date"] == summary["score_date"]
        link = notice.get_by_role("link", name=name)
        expect(link).to_have_attribute("href", f"/segments/{quote(saved['id'], safe='')}")
        tab.shot("scores-segment-saved")

        # The same name again: the dialog stays open and says why.
        page.locator('.bucket-card[data-bucket="High"] button.create-segment').click()
        page.locator("#segment-name").fill(name)
        page.locator("#segment-save").click()
        expect(page.locator("#segment-error")).to_contain_text("already exists")
        expect(page.locator("#segment-dialog")).to_be_visible()
        page.locator("#segment-cancel").click()
        expect(page.locator("#segment-dialog")).to_be_hidden()

        link.click()
        page.wait_for_url(f"**/segments/{quote(saved['id'], safe='')}")
        expect(page.locator("h1")).to_have_text(name)
        expect(page.locator("#segment-size")).to_have_text(fmt(high["profiles"]))
        expect(page.locator("#segment-rule code")).to_have_text(saved["rule"])
        tab.shot("segment")

        # Delete it from its page: a confirmation, then back to the list without it.
        tab.accept_dialogs = True
        page.get_by_role("button", name="Delete segment").click()
        page.wait_for_url("**/segments")
        assert tab.dialogs == [f'confirm: Delete segment "{name}"?']
        tab.dialogs.clear()
        expect(page.get_by_role("link", name=name)).to_have_count(0)
        assert api.get(f"/api/segments/{quote(name, safe='')}").status_code == 404
        tab.assert_clean(allowed=("status of 409",))
    finally:
        api.post(f"/api/segments/{quote(name, safe='')}/delete")


def test_segment_name_with_markup_is_shown_as_text(tab, api):
    name = f"<img src=x onerror=alert(1)> {uuid.uuid4().hex[:6]}"
    tab.goto("/instances/buyers")
    page = tab.page
    try:
        save_bucket_segment(page, "Medium", name)
        expect(page.locator("#segment-saved")).to_contain_text(f"Saved segment {name} with")
        expect(page.locator("#segment-saved img")).to_have_count(0)

        tab.goto("/segments")
        link = page.get_by_role("link", name=name)
        expect(link).to_be_visible()
        expect(link).to_have_text(name)
        expect(page.locator("main img")).to_have_count(0)
        page.wait_for_timeout(300)  # give an injected onerror the time to fire
        tab.shot("segments-markup-name")

        link.click()
        expect(page.locator("h1")).to_have_text(name)
        expect(page.locator("main img")).to_have_count(0)
        assert "<img" in page.title()
        page.wait_for_timeout(300)
        tab.assert_clean()  # no alert dialog, no error
    finally:
        api.post(f"/api/segments/{quote(name, safe='')}/delete")


# -- create an instance from the form, run it from its page ------------------------------------

CREATED: dict[str, str] = {}  # the instance the form test created, for the run test


def test_create_instance_from_the_form_with_live_check(tab, api):
    name = unique("browser-new")
    tab.goto("/instances/new")
    page = tab.page
    page.locator("#f-name").fill(name)
    page.locator("#f-description").fill("Created by the browser test.")
    page.locator("#f-events").select_option("events")
    page.locator("#f-profiles").select_option("profiles")
    goal, goal_error = page.locator("#f-goal"), page.locator('[data-error-for="goal.conditions"]')

    goal.press_sequentially("no_such_column = 'x'", delay=15)
    expect(goal_error).to_contain_text("Unknown column 'no_such_column'")
    expect(goal_error).to_contain_text("event_type")  # the known columns are listed
    expect(goal_error).to_be_visible()
    assert page.url.endswith("/instances/new")
    assert api.get(f"/api/instances/{name}").status_code == 404  # nothing created yet
    # The message sits next to the goal field, in its block.
    expect(page.locator(".field", has=goal).locator(".error")).to_contain_text("Unknown column")
    tab.shot("instance-new-error")

    goal.fill("")
    goal.press_sequentially("event_type = 'commerce.purchases'", delay=5)
    expect(goal_error).to_be_empty()
    expect(page.locator('[data-error-for="datasets"]')).to_be_empty()
    page.locator("#f-window").fill("30")
    page.locator("#create-instance").click()
    page.wait_for_url(f"**/instances/{name}")
    CREATED["form"] = name
    expect(page.locator("h1")).to_contain_text(name)
    expect(page.locator(".instance-head .status")).to_have_text("Never run")
    expect(page.locator("section.empty h2")).to_have_text("No scores yet")
    config = api.get(f"/api/instances/{name}").raise_for_status().json()["config"]
    assert config["goal"]["conditions"] == ["event_type = 'commerce.purchases'"]
    assert config["goal"]["window_days"] == 30
    assert config["datasets"] == {"events": "events", "profiles": "profiles"}
    tab.assert_clean()


def test_run_now_from_the_instance_page(tab, api):
    name = CREATED.get("form")
    if name is None:  # the form test failed: make one like it through the API
        name = unique("browser-run")
        api.post("/api/instances", json={
            "name": name, "type": "conversion",
            "datasets": {"events": "events", "profiles": "profiles"},
            "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
        }).raise_for_status()
    try:
        tab.goto(f"/instances/{name}")
        page = tab.page
        job = page.locator("#job")
        # Record every text the job box shows, however briefly.
        page.evaluate("""() => {
          const box = document.getElementById("job");
          window.jobTexts = [];
          new MutationObserver(() => window.jobTexts.push(box.textContent))
            .observe(box, { childList: true, characterData: true, subtree: true });
        }""")
        page.locator(f'.run-box [data-run="{name}"]').click()
        expect(job).to_contain_text(re.compile(r"Starting…|Running for"))
        expect(job).to_contain_text("Run finished", timeout=RUN_TIMEOUT_MS)
        texts = page.evaluate("window.jobTexts")
        stages = [t for t in texts if re.fullmatch(r"Running for \d+ s: [a-z].*…", t)]
        assert stages, f"no stage was shown while running: {texts}"
        assert api.get(f"/api/instances/{name}/job").json()["state"] == "success"
        tab.shot("instance-run-finished")

        job.get_by_role("link", name="Show the new results").click()
        page.wait_for_load_state("networkidle")
        expect(page.locator(".instance-head .status")).to_have_text("Success")
        expect(plotly_svg(page, "#ring")).to_be_visible()
        expect(page.locator(".bucket-card")).to_have_count(3)
        tab.shot("instance-run-results")
        tab.assert_clean()
    finally:
        api.post(f"/api/instances/{name}/delete")


# -- instances list: clone, delete ---------------------------------------------------------------


def test_clone_and_delete_from_the_instances_list(tab, api):
    copy = unique("browser-clone")
    tab.goto("/instances")
    page = tab.page
    try:
        page.locator('button[data-clone="never-run"]').click()
        clone = page.locator("#clone-dialog")
        expect(clone).to_be_visible()
        expect(page.locator("#clone-name")).to_have_value("never-run-copy")
        page.locator("#clone-name").fill("buyers")  # taken: the dialog says so
        clone.get_by_role("button", name="Clone").click()
        expect(page.locator("#clone-error")).to_contain_text("already exists")
        page.locator("#clone-name").fill(copy)
        clone.get_by_role("button", name="Clone").click()
        row = page.locator(f'tr[data-instance="{copy}"]')
        expect(row).to_be_visible()  # after the reload
        expect(row.locator(".status")).to_have_text("Never run")
        assert api.get(f"/api/instances/{copy}").status_code == 200
        tab.shot("instances-cloned")

        delete = page.locator("#delete-dialog")
        row.get_by_role("button", name="Delete").click()
        expect(delete).to_be_visible()
        expect(page.locator("#delete-what")).to_contain_text(f'"{copy}"')
        expect(page.locator("#delete-what")).to_contain_text("cannot be undone")
        tab.shot("instances-delete-dialog")
        delete.get_by_role("button", name="Cancel").click()
        expect(delete).to_be_hidden()
        expect(row).to_be_visible()
        assert api.get(f"/api/instances/{copy}").status_code == 200

        row.get_by_role("button", name="Delete").click()
        expect(delete).to_be_visible()
        delete.get_by_role("button", name="Delete").click()
        expect(row).to_have_count(0)  # after the reload
        expect(page.locator('tr[data-instance="never-run"]')).to_be_visible()
        assert api.get(f"/api/instances/{copy}").status_code == 404
        tab.assert_clean(allowed=("status of 409",))
    finally:
        api.post(f"/api/instances/{copy}/delete")
