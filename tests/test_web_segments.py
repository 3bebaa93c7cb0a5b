"""Segments in the dashboard: the JSON API and the pages, against a real server over a copy of
the dashboard workspace (these tests create, hide, activate and delete), then in Chromium: build
a segment with the live preview, save it, export it, add a folder destination, activate to it.

Screenshots of the builder, the list and a segment's page go to tests/artifacts/screenshots/.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest

from conftest import LiveServer
from likely.scoring import records
from likely.scoring.outputs import SCORES_FILE
from likely.web import create_app
from likely.workspace import Workspace

RULE = "buyers.percentile >= 80"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def server(dashboard_workspace: Path, tmp_path_factory):
    """A dashboard of its own over a copy of the dashboard workspace."""
    path = tmp_path_factory.mktemp("web-segments") / "ws"
    shutil.copytree(dashboard_workspace, path)
    with LiveServer(create_app(path)) as live:
        live.path = path
        yield live


@pytest.fixture(scope="module")
def client(server) -> httpx.Client:
    """POSTs carry the server's own Origin, as the dashboard's pages do."""
    with httpx.Client(base_url=server.url, timeout=60, headers={"Origin": server.url}) as c:
        yield c


@pytest.fixture(scope="module")
def latest_scores(server) -> pd.DataFrame:
    """The buyers run's scores.parquet of the newest score date, read with pandas."""
    ws = Workspace(server.path)
    instance = ws.instance("buyers")
    run = ws.runs("buyers")[0]
    assert str(run.as_of) == "2025-07-19"
    return pd.read_parquet(records.run_dir(ws.path, instance.id, run.id) / SCORES_FILE)


def create(client, name: str, rule: str = RULE, **extra) -> dict:
    response = client.post("/api/segments", json={"name": name, "rule": rule, **extra})
    assert response.status_code == 201, response.text
    return response.json()


# -- the API ------------------------------------------------------------------------------------


def test_fields_list_each_instance_and_the_profile_attributes(client):
    fields = client.get("/api/segment-fields").raise_for_status().json()
    instances = {i["name"]: i for i in fields["instances"]}
    assert instances["buyers"]["reference"] == "buyers"
    assert instances["never-run"]["reference"] == '"never-run"'
    names = [f["name"] for f in instances["buyers"]["fields"]]
    assert {"bucket", "score", "percentile", "probability", "top_reason", "reasons"} <= set(names)
    assert "loyalty_tier" in {a["name"] for a in fields["attributes"]}


def test_preview_size_is_the_count_over_the_run_scores(client, latest_scores):
    body = client.post("/api/segments/preview", json={"rule": RULE, "sample": 7})
    assert body.status_code == 200, body.text
    preview = body.json()
    expected = int((latest_scores["percentile"] >= 80).sum())
    assert 0 < expected < len(latest_scores)
    assert preview["profiles"] == expected
    assert preview["score_date"] == "2025-07-19"
    assert preview["in_words"] == "buyers percentile at least 80"
    assert len(preview["sample"]) == 7
    top = set(latest_scores.loc[latest_scores["percentile"] >= 80, "profile_id"])
    assert {r["profile_id"] for r in preview["sample"]} <= top
    assert all(r["buyers.percentile"] >= 80 for r in preview["sample"])

    high = client.post("/api/segments/preview", json={
        "rule": "buyers.bucket = 'High' AND buyers.score >= 50"}).json()
    assert high["profiles"] == int(((latest_scores["bucket"] == "High")
                                    & (latest_scores["score"] >= 50)).sum())


def test_a_bad_rule_says_which_token(client):
    typo = client.post("/api/segments/preview", json={"rule": "buyers.scor > 1"})
    assert typo.status_code == 422
    assert typo.json()["type"] == "ConditionError"
    assert typo.json()["detail"]["token"] == "buyers.scor"
    assert "Did you mean 'buyers.score'" in typo.json()["error"]
    unfinished = client.post("/api/segments/preview", json={"rule": "buyers.score >"})
    assert unfinished.status_code == 422 and unfinished.json()["detail"]["token"]
    unscored = client.post("/api/segments/preview", json={"rule": '"never-run".score > 3'})
    assert unscored.status_code == 404 and "Run it first" in unscored.json()["error"]
    empty = client.post("/api/segments/preview", json={"rule": ""})
    assert empty.status_code == 422


def test_create_show_edit_and_delete(client, latest_scores):
    name = unique("api gold/top")  # a '/' in the name: the API takes the id too
    made = create(client, name, description="Top fifth.", published=True)
    expected = int((latest_scores["percentile"] >= 80).sum())
    assert made["name"] == name and made["published"] and not made["automatic"]
    assert made["size"] == {"profiles": expected, "score_date": "2025-07-19",
                            "runs": {"buyers": latest_scores["run_id"].iloc[0]}}
    assert made["in_words"] == "buyers percentile at least 80"
    listed = {s["id"]: s for s in client.get("/api/segments").json()}
    assert listed[made["id"]]["size"]["profiles"] == expected

    shown = client.get(f"/api/segments/{made['id']}").raise_for_status().json()
    assert shown["profiles"] == shown["size"]["profiles"] == expected
    # published at creation over the last score dates: a history with entered and left
    assert [h["score_date"] for h in shown["history"]] == ["2025-06-01", "2025-07-19"]
    last = shown["history"][-1]
    assert last["profiles"] == expected and "path" not in last
    assert shown["entered"] == last["entered"] and shown["left"] == last["left"]
    assert last["entered"] - last["left"] == expected - shown["history"][0]["profiles"]
    assert len(shown["sample"]) == 20 and len(shown["entered_sample"]) == min(20, last["entered"])
    assert shown["activations"] == []

    dup = client.post("/api/segments", json={"name": name, "rule": RULE})
    assert dup.status_code == 409 and dup.json()["detail"]["field"] == "name"

    renamed = unique("api renamed")
    edited = client.post(f"/api/segments/{made['id']}/edit", json={
        "name": renamed, "description": "<b>now</b>", "rule": "buyers.percentile >= 90"})
    assert edited.status_code == 200, edited.text
    assert edited.json()["name"] == renamed and edited.json()["description"] == "<b>now</b>"
    assert edited.json()["size"]["profiles"] == int((latest_scores["percentile"] >= 90).sum())
    bad = client.post(f"/api/segments/{made['id']}/edit", json={"rule": "buyers.percentil > 3"})
    assert bad.status_code == 422 and bad.json()["detail"]["token"] == "buyers.percentil"
    assert client.get(f"/api/segments/{renamed}").json()["rule"] == "buyers.percentile >= 90"

    page = client.get(f"/segments/{made['id']}")
    assert page.status_code == 200
    assert "&lt;b&gt;now&lt;/b&gt;" in page.text and "<b>now</b>" not in page.text
    edit_page = client.get(f"/segments/{made['id']}/edit").text
    assert "buyers.percentile &gt;= 90" in edit_page

    deleted = client.post(f"/api/segments/{made['id']}/delete")
    assert deleted.json() == {"deleted": renamed}
    assert client.get(f"/api/segments/{made['id']}").status_code == 404
    assert client.get(f"/segments/{made['id']}").status_code == 404


def test_unpublished_then_published(client):
    made = create(client, unique("api later"), published=False)
    assert not made["published"]
    publication = client.post(f"/api/segments/{made['id']}/publish")
    assert publication.status_code == 200, publication.text
    assert publication.json()["published"]
    assert publication.json()["publication"]["score_date"] == "2025-07-19"
    assert client.get(f"/api/segments/{made['id']}").json()["history"][-1]["published_at"]
    client.post(f"/api/segments/{made['id']}/delete").raise_for_status()


def test_hide_and_unhide_an_automatic_segment(client):
    automatic = [s for s in client.get("/api/segments").json() if s["automatic"]]
    assert {"buyers — High", "buyers — Medium", "buyers — Low"} <= {s["name"] for s in automatic}
    target = next(s for s in automatic if s["name"] == "buyers — Low")
    hidden = client.post(f"/api/segments/{target['id']}/hide", json={"hidden": True})
    assert hidden.status_code == 200 and hidden.json()["hidden"]
    assert target["id"] not in {s["id"] for s in client.get("/api/segments").json()}
    everything = client.get("/api/segments", params={"hidden": "true"}).json()
    assert target["id"] in {s["id"] for s in everything}
    assert 'class="hidden-segment" hidden' in client.get("/segments").text
    shown = client.post(f"/api/segments/{target['id']}/hide", json={"hidden": False})
    assert not shown.json()["hidden"]
    assert target["id"] in {s["id"] for s in client.get("/api/segments").json()}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_export_downloads_the_members(client, latest_scores, fmt):
    made = create(client, unique(f"api export {fmt}"))
    try:
        response = client.get(f"/api/segments/{made['id']}/export", params={"format": fmt})
        assert response.status_code == 200, response.text
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment") and f".{fmt}" in disposition
        data = io.BytesIO(response.content)
        frame = (pd.read_csv(data) if fmt == "csv" else pd.read_parquet(data) if fmt == "parquet"
                 else pd.read_json(data, lines=True))
        top = set(latest_scores.loc[latest_scores["percentile"] >= 80, "profile_id"])
        assert set(frame["profile_id"]) == top and len(frame) == len(top)
        assert (frame["buyers.percentile"] >= 80).all()
    finally:
        client.post(f"/api/segments/{made['id']}/delete")


def test_export_refuses_an_unknown_format(client):
    made = create(client, unique("api export bad"))
    assert client.get(f"/api/segments/{made['id']}/export?format=xlsx").status_code == 422
    assert client.get("/api/segments/no-such/export").status_code == 404
    client.post(f"/api/segments/{made['id']}/delete")


def test_destinations_and_activation(client, tmp_path):
    folder = tmp_path / "drop"
    name = unique("api-drop")
    added = client.post("/api/destinations", json={
        "name": name, "kind": "folder", "config": {"path": str(folder), "format": "csv"}})
    assert added.status_code == 201, added.text
    assert added.json()["config"] == {"path": str(folder), "format": "csv", "mode": "full"}
    assert name in {d["name"] for d in client.get("/api/destinations").json()}
    again = client.post("/api/destinations", json={"name": name, "config": {"path": "x"}})
    assert again.status_code == 409
    unknown_field = client.post("/api/destinations", json={
        "name": unique("bad"), "config": {"path": "x", "fromat": "csv"}})
    assert unknown_field.status_code == 422 and unknown_field.json()["detail"]["field"] == "fromat"
    secret = client.post("/api/destinations", json={
        "name": unique("bad"), "kind": "webhook",
        "config": {"url": "https://example.invalid/hook", "secret": "s3cret"}})
    assert secret.status_code == 422 and "credential" in secret.json()["error"]

    made = create(client, unique("api activate"))
    try:
        done = client.post(f"/api/segments/{made['id']}/activate", json={"destination": name})
        assert done.status_code == 200, done.text
        outcome = done.json()
        expected = made["size"]["profiles"]
        assert outcome["status"] == "success" and outcome["mode"] == "full"
        assert outcome["sent"] == outcome["profiles"] == outcome["entered"] == expected
        assert "members_file" not in outcome["detail"]
        data_file = Path(outcome["detail"]["file"])
        assert data_file.parent == folder and len(pd.read_csv(data_file)) == expected
        manifest = json.loads(Path(outcome["detail"]["manifest"]).read_text())
        assert manifest["rows"] == expected and manifest["file"] == data_file.name
        assert (folder / "manifest.json").exists()

        delta = client.post(f"/api/segments/{made['id']}/activate",
                            json={"destination": name, "mode": "delta"}).json()
        assert delta["status"] == "success" and delta["sent"] == 0  # nobody moved since
        wrong_mode = client.post(f"/api/segments/{made['id']}/activate",
                                 json={"destination": name, "mode": "replace"})
        assert wrong_mode.status_code == 422 and "Modes: full, delta" in wrong_mode.json()["error"]
        nowhere = client.post(f"/api/segments/{made['id']}/activate",
                              json={"destination": "no-such-place"})
        assert nowhere.status_code == 404

        log = client.get(f"/api/segments/{made['id']}/activations").json()
        assert [a["mode"] for a in log] == ["delta", "full"]
        assert client.get("/api/activations", params={"segment": made["name"]}).json() == log
        assert client.get(f"/api/segments/{made['id']}").json()["activations"] == log
        page = client.get(f"/segments/{made['id']}").text
        assert name in page and "status-success" in page
    finally:
        client.post(f"/api/segments/{made['id']}/delete")
        client.post(f"/api/destinations/{name}/delete").raise_for_status()
    assert name not in {d["name"] for d in client.get("/api/destinations").json()}


def test_cross_site_posts_are_refused(client):
    evil = {"Origin": "http://evil.example"}
    assert client.post("/api/destinations", json={"name": "evil", "config": {"path": "/tmp"}},
                       headers=evil).status_code == 403
    assert client.post("/api/segments/preview", json={"rule": RULE},
                       headers=evil).status_code == 403
    assert "evil" not in {d["name"] for d in client.get("/api/destinations").json()}


def test_pages_render_and_routes_are_documented(client):
    for path in ("/segments", "/segments/new"):
        response = client.get(path)
        assert response.status_code == 200, response.text[-400:]
    builder = client.get("/segments/new").text
    assert 'data-insert="buyers.percentile"' in builder
    assert 'data-insert="&#34;never-run&#34;.score"' in builder
    assert 'data-insert="loyalty_tier"' in builder
    assert client.get("/segments/nope").status_code == 404

    # A segment of an instance that never ran: no size yet, and the pages say why.
    waiting = create(client, unique("api waiting"), rule='"never-run".score > 3')
    assert waiting["size"]["profiles"] is None and "Run it first" in waiting["size"]["problem"]
    assert waiting["in_words"] == "never-run score above 3"
    shown = client.get(f"/api/segments/{waiting['id']}").json()
    assert shown["history"] == [] and shown["sample"] == []
    page = client.get(f"/segments/{waiting['id']}")
    assert page.status_code == 200 and "No runs yet" in page.text
    assert "Run it first" in client.get("/segments").text
    client.post(f"/api/segments/{waiting['id']}/delete").raise_for_status()
    schema = client.get("/api/openapi.json").json()["paths"]
    for path in ("/api/segment-fields", "/api/segments/preview", "/api/segments/{key}/edit",
                 "/api/segments/{key}/hide", "/api/segments/{key}/publish",
                 "/api/segments/{key}/export", "/api/segments/{key}/activate",
                 "/api/destinations", "/api/activations"):
        assert path in schema, path


# -- in the browser -----------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"Chromium is not installed at {CHROMIUM} (apt-get install "
                                  "chromium); the browser tests need it.")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import expect, sync_playwright

    from test_web_browser import CHROMIUM_ARGS, TIMEOUT_MS

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser, server):
    from test_web_browser import Tab

    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    yield Tab(context.new_page(), server.url)
    context.close()


@needs_chromium
def test_build_save_export_and_activate_in_the_browser(tab, client, latest_scores, tmp_path):
    from playwright.sync_api import expect

    from test_web_browser import fmt

    page = tab.page
    expected = int((latest_scores["percentile"] >= 80).sum())
    name = unique("browser top fifth")
    tab.goto("/segments")
    page.get_by_role("link", name="New segment").click()
    page.wait_for_url("**/segments/new")
    expect(page.locator("h1")).to_have_text("New segment")
    rule, error = page.locator("#b-rule"), page.locator("#b-rule-error")

    # A typo: the error names the token, next to the rule; no preview.
    rule.press_sequentially("buyers.scor >= 80", delay=10)
    expect(error).to_contain_text("Unknown column 'buyers.scor'")
    expect(error.locator("code")).to_have_text("buyers.scor")
    expect(rule).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#preview-size")).to_have_text("–")
    tab.shot("segment-builder-error")

    # A field from the list goes in at the cursor; the preview follows the typing.
    rule.fill("")
    page.locator('button.insert[data-insert="buyers.percentile"]').click()
    expect(rule).to_have_value("buyers.percentile")
    rule.press("End")
    rule.press_sequentially(" >= 80", delay=10)
    expect(page.locator("#preview")).to_have_attribute("data-state", "ok")
    expect(page.locator("#preview-size")).to_have_text(fmt(expected))
    expect(page.locator("#preview-date")).to_have_text("2025-07-19")
    expect(page.locator("#preview-words")).to_have_text("buyers percentile at least 80")
    expect(page.locator("#preview-sample tbody tr")).to_have_count(5)
    expect(error).to_be_empty()
    expect(rule).not_to_have_attribute("aria-invalid", "true")
    page.locator("#b-name").fill(name)
    page.locator("#b-description").fill("The top fifth by score.")
    expect(page.locator("#b-published")).to_be_checked()
    tab.shot("segment-builder")

    page.locator("#b-save").click()
    page.wait_for_url(re.compile(r".*/segments/seg-[0-9a-f]+$"))
    segment_id = page.url.rsplit("/", 1)[1]
    saved = client.get(f"/api/segments/{segment_id}").raise_for_status().json()
    assert saved["name"] == name and saved["rule"] == RULE and saved["published"]
    try:
        expect(page.locator("h1")).to_have_text(name)
        expect(page.locator("#segment-size")).to_have_text(fmt(expected))
        expect(page.locator("#segment-words")).to_have_text("buyers percentile at least 80")
        expect(page.locator("#segment-history svg.main-svg").first).to_be_visible()
        assert page.locator("#segment-history g.point path").count() > 0, "no bars"
        expect(page.locator("#members-sample tbody tr")).to_have_count(20)
        expect(page.locator("#segment-entered")).to_have_text(fmt(saved["entered"]))
        expect(page.locator("#entered-sample tbody tr")).to_have_count(min(20, saved["entered"]))

        # Export: the CSV download holds every member.
        with page.expect_download() as download:
            page.locator("#export-csv").click()
        csv = tmp_path / download.value.suggested_filename
        download.value.save_as(csv)
        assert csv.suffix == ".csv"
        members = pd.read_csv(csv)
        assert len(members) == expected
        assert set(members["profile_id"]) == set(
            latest_scores.loc[latest_scores["percentile"] >= 80, "profile_id"])

        # A folder destination from the page, then activate to it.
        folder = tmp_path / "drop"
        destination = unique("browser-drop")
        expect(page.locator("#activate-button")).to_be_disabled()
        expect(page.locator("#add-destination")).to_have_attribute("open", "")
        page.locator("#d-name").fill(destination)
        page.locator("#d-path").fill(str(folder))
        page.locator("#d-format").select_option("csv")
        page.locator("#add-destination-button").click()
        expect(page.locator("#activation-outcome")).to_contain_text(f"Added folder destination "
                                                                    f"{destination}")
        expect(page.locator("#a-destination")).to_have_value(destination)
        expect(page.locator("#a-mode option")).to_have_text(
            ["the destination's default", "full", "delta"])
        page.locator("#activate-button").click()
        outcome = page.locator("#activation-outcome")
        expect(outcome).to_have_attribute("data-state", "success")
        expect(outcome.locator(".status")).to_have_text("success")
        expect(outcome).to_contain_text(f"Sent {fmt(expected)} of {fmt(expected)} members to "
                                        f"{destination} (full, scores of 2025-07-19)")
        log = page.locator("#activation-log tbody tr")
        expect(log).to_have_count(1)
        expect(log.first).to_contain_text(destination)
        expect(log.first.locator(".status")).to_have_text("success")
        drops = sorted(p.name for p in folder.iterdir())
        data_files = [n for n in drops if n.endswith(".csv")]
        manifests = [n for n in drops if n.endswith(".manifest.json")]
        assert len(data_files) == 1 and len(manifests) == 1 and "manifest.json" in drops
        manifest = json.loads((folder / manifests[0]).read_text())
        assert manifest["file"] == data_files[0] and manifest["rows"] == expected
        assert len(pd.read_csv(folder / data_files[0])) == expected
        tab.shot("segment-page")

        # Edit it in the builder: the saved rule is previewed at once, a new one as it is typed.
        narrower = int((latest_scores["percentile"] >= 90).sum())
        page.get_by_role("link", name="Edit", exact=True).click()
        page.wait_for_url(f"**/segments/{segment_id}/edit")
        expect(rule).to_have_value(RULE)
        expect(page.locator("#b-name")).to_have_value(name)
        expect(page.locator("#preview-size")).to_have_text(fmt(expected))
        rule.fill("buyers.percentile >= 90")
        expect(page.locator("#preview-size")).to_have_text(fmt(narrower))
        page.locator("#b-save").click()
        page.wait_for_url(f"**/segments/{segment_id}")
        expect(page.locator("#segment-size")).to_have_text(fmt(narrower))
        expect(page.locator("#segment-rule code")).to_have_text("buyers.percentile >= 90")
        tab.assert_clean(allowed=("status of 422",))  # the typo's answer
    finally:
        client.post(f"/api/segments/{segment_id}/delete")


@needs_chromium
def test_list_hides_and_shows_automatic_segments_in_the_browser(tab, client):
    from playwright.sync_api import expect

    page = tab.page
    target = next(s for s in client.get("/api/segments").json()
                  if s["name"] == "buyers — Medium")
    try:
        tab.goto("/segments")
        row = page.locator(f'tr[data-segment="{target["id"]}"]')
        expect(row).to_be_visible()
        expect(row.locator(".tag")).to_have_text(["automatic"])
        expect(row.get_by_role("link", name="buyers — Medium")).to_have_attribute(
            "href", f"/segments/{target['id']}")
        expect(row.locator("td.size")).to_have_text(f"{target['size']['profiles']:,}")
        row.get_by_role("button", name="Hide").click()
        page.wait_for_load_state("networkidle")
        expect(row).to_be_hidden()
        toggle = page.get_by_label(re.compile(r"Show hidden \(\d+\)"))
        toggle.check()
        expect(row).to_be_visible()
        expect(row.locator(".tag")).to_have_text(["automatic", "hidden"])
        tab.shot("segments-list")
        row.get_by_role("button", name="Unhide").click()
        page.wait_for_load_state("networkidle")
        expect(row.locator(".tag")).to_have_text(["automatic"])
        expect(page.locator("#show-hidden")).to_have_count(0)
        assert not client.get(f"/api/segments/{target['id']}").json()["hidden"]
        tab.assert_clean()
    finally:
        client.post(f"/api/segments/{target['id']}/hide", json={"hidden": False})
