"""The dashboard's JSON API against a real server on loopback: shapes, errors, auth, origins."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from conftest import DASHBOARD_INSTANCE, LiveServer
from likely.cli.main import main
from likely.errors import ConfigError
from likely.web import create_app
from likely.web.security import server_token
from likely.workspace import Workspace

TOKEN = "s3cret-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def client(dashboard) -> httpx.Client:
    with httpx.Client(base_url=dashboard.url, timeout=60) as c:
        yield c


def same_origin(client: httpx.Client) -> dict[str, str]:
    return {"Origin": str(client.base_url).rstrip("/")}


# -- reading ------------------------------------------------------------------------------------


def test_instances_list_says_status_goal_population_and_counts(client, dashboard_workspace):
    lines = {i["name"]: i for i in client.get("/api/instances").json()}
    assert set(lines) == {"buyers", "never-run"} or {"buyers", "never-run"} <= set(lines)
    buyers, never = lines["buyers"], lines["never-run"]
    assert buyers["status"] == "success" and never["status"] == "never_run"
    assert buyers["goal"].startswith("The profile has an event where event_type")
    assert buyers["population"].startswith("Profiles with any event in the 45 days")
    runs = Workspace(dashboard_workspace).runs("buyers")
    assert buyers["profiles_scored"] == runs[0].counts["scored_profiles"]
    # both runs finished this year: the year's total adds them
    assert buyers["profiles_scored_this_year"] == sum(r.counts["scored_profiles"] for r in runs)
    assert never["last_run"] is None and never["profiles_scored"] == 0


def test_latest_scores_is_the_run_summary(client, dashboard_workspace):
    body = client.get("/api/instances/buyers/scores").json()
    ws = Workspace(dashboard_workspace)
    current = ws.runs("buyers")[0]
    assert body["run_id"] == current.id and body["score_date"] == "2025-07-19"
    counts = {b["bucket"]: b["profiles"] for b in body["buckets"]}
    assert counts == current.counts["buckets"]
    assert [b["bucket"] for b in body["buckets"]] == ["High", "Medium", "Low"]
    assert sum(sum(v) for v in body["histogram"]["counts"].values()) == body["scored_profiles"]
    assert set(body["bucket_factors"]) == {"High", "Medium", "Low"}
    shown = {f["factor"] for fs in body["bucket_factors"].values() for f in fs}
    assert shown <= set(body["distributions"])


def test_targeting_by_size_and_by_threshold(client):
    top = client.get("/api/instances/buyers/targeting", params={"size": 100}).json()
    assert top["profiles"] == 100 and 0 < top["expected_goal_profiles"] <= 100
    assert top["expected_precision"] == pytest.approx(top["expected_goal_profiles"] / 100,
                                                      abs=1e-3)
    high = client.get("/api/instances/buyers/targeting", params={"threshold": 75}).json()
    summary = client.get("/api/instances/buyers/scores").json()
    assert high["profiles"] == summary["buckets"][0]["profiles"]
    assert high["expected_goal_profiles"] == pytest.approx(
        summary["buckets"][0]["expected_goal_profiles"], abs=0.01)
    both = client.get("/api/instances/buyers/targeting", params={"size": 5, "threshold": 5})
    neither = client.get("/api/instances/buyers/targeting")
    out_of_range = client.get("/api/instances/buyers/targeting", params={"threshold": 101})
    assert both.status_code == neither.status_code == out_of_range.status_code == 422
    assert "one of them" in both.json()["error"]


def test_evaluation_performance_runs_profile_datasets(client, dashboard_workspace):
    evaluation = client.get("/api/instances/buyers/evaluation").json()
    assert evaluation["grade"]["grade"] in {"Poor", "Fair", "Good", "Excellent"}
    assert len(evaluation["grade"]["bands"]) == 4 and evaluation["optimistic"] is False
    assert len(evaluation["holdout"]["lift"]) == 10 and evaluation["training_windows"]

    performance = client.get("/api/instances/buyers/performance").json()
    assert [r["score_date"] for r in performance["runs"]] == ["2025-06-01"]
    assert [p["score_date"] for p in performance["pending"]] == ["2025-07-19"]
    assert performance["pending"][0]["window_closes"] == "2025-08-19"
    measured = performance["runs"][0]
    assert {b["bucket"] for b in measured["buckets"]} == {"High", "Medium", "Low"}
    assert 0 < measured["actual_rate"] < 1

    runs = client.get("/api/instances/buyers/runs").json()
    assert [r["as_of"] for r in runs] == ["2025-07-19", "2025-06-01"]
    assert all(r["status"] == "success" and r["timings"]["summary"] >= 0 for r in runs)

    profile_id = Workspace(dashboard_workspace).scores("buyers", top=1).column(
        "profile_id")[0].as_py()
    profile = client.get(f"/api/instances/buyers/profiles/{profile_id}").json()
    assert profile["profile"]["profile_id"] == profile_id
    assert [h["score_date"] for h in profile["history"]][-1] == "2025-07-19"

    datasets = {d["name"]: d for d in client.get("/api/datasets").json()}
    assert datasets["events"]["quality"]["rows"] > 0 and datasets["events"]["parts"] == 1
    assert client.get("/api/datasets/profiles").json()["kind"] == "profiles"


@pytest.mark.parametrize("path", [
    "/api/instances/nope", "/api/instances/nope/scores", "/api/instances/buyers/evaluation?run=x",
    "/api/instances/buyers/profiles/no-such-profile", "/api/segments/nope", "/api/datasets/nope",
    "/api/instances/never-run/scores", "/api/instances/never-run/targeting?size=3",
])
def test_unknown_things_are_404_with_a_message(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"] and response.json()["type"] == "NotFoundError"


def test_unknown_pages_get_an_error_page_and_unknown_api_paths_json(client):
    page = client.get("/no/such/page")
    assert page.status_code == 404 and "No such page" in page.text and "<html" in page.text
    api = client.get("/api/no/such/thing")
    assert api.status_code == 404 and api.json()["error"]
    instance_page = client.get("/instances/nope")
    assert instance_page.status_code == 404 and "No instance named" in instance_page.text


def test_every_api_route_is_in_the_openapi_schema(client):
    from likely.web.routes import datasets, destinations, instances, segments

    paths = set(client.get("/api/openapi.json").json()["paths"])
    routes = {r.path.replace(":path}", "}")
              for m in (datasets, instances, segments, destinations)
              for r in m.api.routes}
    assert len(routes) >= 15 and routes <= paths
    assert not any(not p.startswith("/api/") for p in paths)


def test_pages_embed_their_json_twin(client):
    page = client.get("/instances/buyers").text
    assert '<script type="application/json" id="page-data">' in page
    assert '"bucket_factors"' in page and "/assets/plotly.min.js" in page
    bundle = client.get("/assets/plotly.min.js")
    assert bundle.status_code == 200 and "plotly.js" in bundle.text[:200]


# -- changing things ----------------------------------------------------------------------------


def test_check_reports_each_problem_with_its_field(client):
    bad_column = {**DASHBOARD_INSTANCE, "name": "check-me",
                  "goal": {"conditions": ["evnt_type = 'x'"], "window_days": 30}}
    result = client.post("/api/instances/check", json=bad_column,
                         headers=same_origin(client)).json()
    assert result["ok"] is False
    [error] = result["errors"]
    assert error["field"].startswith("goal.conditions") and "event_type" in error["message"]
    bad_shape = client.post("/api/instances/check", json={**bad_column, "name": "no spaces",
                                                          "goal": {"conditions": []}},
                            headers=same_origin(client)).json()
    assert {e["field"].split(".")[0] for e in bad_shape["errors"]} == {"name", "goal"}
    fine = client.post("/api/instances/check", json={**DASHBOARD_INSTANCE, "name": "fine"},
                       headers=same_origin(client)).json()
    assert fine == {"ok": True, "errors": []}


def test_create_clone_delete_an_instance(client):
    config = {**DASHBOARD_INSTANCE, "name": "api-made"}
    created = client.post("/api/instances", json=config, headers=same_origin(client))
    assert created.status_code == 201 and created.json()["name"] == "api-made"
    again = client.post("/api/instances", json=config, headers=same_origin(client))
    assert again.status_code == 409 and "already exists" in again.json()["error"]
    clone = client.post("/api/instances/api-made/clone", json={"new_name": "api-made-2"},
                        headers=same_origin(client))
    assert clone.status_code == 201 and clone.json()["config"]["goal"] == created.json()[
        "config"]["goal"]
    for name in ("api-made", "api-made-2"):
        assert client.post(f"/api/instances/{name}/delete",
                           headers=same_origin(client)).json() == {"deleted": name}
        assert client.get(f"/api/instances/{name}").status_code == 404


def test_run_now_runs_in_the_background_one_at_a_time(client):
    client.post("/api/instances", json={**DASHBOARD_INSTANCE, "name": "bg-run"},
                headers=same_origin(client)).raise_for_status()
    started = client.post("/api/instances/bg-run/runs", json={}, headers=same_origin(client))
    assert started.status_code == 202 and started.json()["state"] == "running"
    second = client.post("/api/instances/bg-run/runs", json={}, headers=same_origin(client))
    assert second.status_code == 409 and "already running" in second.json()["error"]
    busy_delete = client.post("/api/instances/bg-run/delete", headers=same_origin(client))
    assert busy_delete.status_code == 409
    stages, deadline = set(), time.time() + 240
    while time.time() < deadline:
        job = client.get("/api/instances/bg-run/job").json()
        stages.add(job["stage"])
        if job["state"] != "running":
            break
        time.sleep(0.5)
    assert job["state"] == "success", job
    assert {"features", "training"} <= set(job["stages"])
    assert client.get("/api/instances/bg-run").json()["overview"]["status"] == "success"
    assert client.get("/api/instances/bg-run/scores").json()["run_id"] == job["run_id"]
    client.post("/api/instances/bg-run/delete", headers=same_origin(client)).raise_for_status()


def test_segments_from_a_bucket_and_from_a_rule(client):
    high = client.get("/api/instances/buyers/scores").json()["buckets"][0]["profiles"]
    made = client.post("/api/segments", json={"name": "api high", "instance": "buyers",
                                              "bucket": "High"}, headers=same_origin(client))
    assert made.status_code == 201
    body = made.json()
    assert body["rule"] == "buyers.bucket = 'High'" and body["size"]["profiles"] == high
    assert body["size"]["score_date"] == "2025-07-19" and set(body["size"]["runs"]) == {"buyers"}
    rule = client.post("/api/segments", json={"name": "api top", "rule": '"buyers".score >= 75'},
                       headers=same_origin(client)).json()
    assert rule["size"]["profiles"] == high
    assert {"api high", "api top"} <= {s["name"] for s in client.get("/api/segments").json()}
    dup = client.post("/api/segments", json={"name": "api high", "instance": "buyers",
                                             "bucket": "Low"}, headers=same_origin(client))
    assert dup.status_code == 409
    bad = client.post("/api/segments", json={"name": "x", "rule": '"buyers".scor > 1'},
                      headers=same_origin(client))
    assert bad.status_code == 422 and bad.json()["detail"]["token"] == "buyers.scor"
    neither = client.post("/api/segments", json={"name": "x"}, headers=same_origin(client))
    assert neither.status_code == 422
    for name in ("api high", "api top"):
        client.post(f"/api/segments/{name}/delete", headers=same_origin(client)).raise_for_status()
    assert client.get("/api/segments/api high").status_code == 404


def test_user_text_is_escaped_in_pages(client):
    name = "<script>alert('x')</script>"
    made = client.post("/api/segments", json={"name": name, "instance": "buyers",
                                              "bucket": "Low", "description": "<b>bold</b>"},
                       headers=same_origin(client))
    made.raise_for_status()
    page = client.get("/segments").text
    assert "<script>alert(" not in page and "&lt;script&gt;alert(" in page
    assert "<b>bold</b>" not in page
    segment_id = made.json()["id"]  # names may hold '/': pages link segments by id
    assert f'href="/segments/{segment_id}"' in page
    client.post(f"/api/segments/{segment_id}/delete",
                headers=same_origin(client)).raise_for_status()


# -- who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
])
def test_a_cross_site_post_is_refused_and_changes_nothing(client, headers):
    response = client.post("/api/segments", json={"name": "csrf", "instance": "buyers",
                                                  "bucket": "High"}, headers=headers)
    assert response.status_code == 403 and "another site" in response.json()["error"]
    assert client.get("/api/segments/csrf").status_code == 404
    run = client.post("/api/instances/never-run/runs", json={}, headers=headers)
    assert run.status_code == 403
    assert client.get("/api/instances/never-run/job").json()["state"] == "idle"


def test_serving_off_loopback_needs_a_token(dashboard_workspace, monkeypatch, capsys):
    monkeypatch.delenv("LIKELY_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="without a token"):
        server_token("0.0.0.0")
    with pytest.raises(ConfigError, match="too short"):
        server_token("0.0.0.0", "short")
    assert server_token("127.0.0.1") is None and server_token("::1") is None
    assert main(["serve", "--host", "0.0.0.0", "-w", str(dashboard_workspace)]) == 2
    assert "LIKELY_TOKEN" in capsys.readouterr().err


def test_with_a_token_every_request_needs_it(dashboard_workspace):
    with LiveServer(create_app(dashboard_workspace, token=TOKEN)) as server, httpx.Client(
            base_url=server.url, timeout=30, follow_redirects=False) as c:
        assert c.get("/api/instances").status_code == 401
        assert c.get("/assets/plotly.min.js").status_code == 303  # to the login page
        page = c.get("/instances/buyers")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert c.get("/login").status_code == 200
        bearer = c.get("/api/instances", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bearer.status_code == 200
        wrong = c.post("/login", data={"token": "nope", "next": "/"})
        assert wrong.status_code == 401 and "not the dashboard" in wrong.text
        login = c.post("/login", data={"token": TOKEN, "next": "//evil.example/"})
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN not in cookie
        assert c.get("/api/instances").status_code == 200  # the cookie now carries it
        assert c.get("/instances/buyers").status_code == 200


def test_the_cli_targets_with_the_same_function(client, dashboard_workspace, capsys):
    assert main(["target", "buyers", "--size", "250", "--json", "-w",
                 str(dashboard_workspace)]) == 0
    cli = json.loads(capsys.readouterr().out)
    api = client.get("/api/instances/buyers/targeting", params={"size": 250}).json()
    assert cli == api
    assert main(["target", "buyers", "-w", str(dashboard_workspace)]) == 2
    assert "one of them" in capsys.readouterr().err


def test_every_page_renders(client, dashboard_workspace):
    profile_id = Workspace(dashboard_workspace).scores("buyers", top=1).column(
        "profile_id")[0].as_py()
    for path in ("/", "/instances", "/instances/new", "/instances/buyers",
                 "/instances/buyers/evaluation", "/instances/buyers/performance",
                 "/instances/buyers/runs", "/instances/buyers/profiles",
                 f"/instances/buyers/profiles?id={profile_id}", "/instances/never-run",
                 "/instances/never-run/evaluation", "/instances/never-run/runs",
                 "/instances/never-run/performance", "/segments", "/data", "/login"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[-500:])
        assert "server-timing" in response.headers
    profile_page = client.get(f"/instances/buyers/profiles?id={profile_id}").text
    assert "raises the likelihood" in profile_page or "lowers the likelihood" in profile_page
    assert "No scores yet" in client.get("/instances/never-run").text


def test_a_rule_reading_no_instance_is_refused(client):
    response = client.post("/api/segments", json={"name": "everyone", "rule": "1 = 1"},
                           headers=same_origin(client))
    assert response.status_code == 422 and "reads no instance" in response.json()["error"]
    assert client.get("/api/segments/everyone").status_code == 404
