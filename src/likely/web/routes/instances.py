"""Instances: the list, create/clone/delete, run now, and each instance's pages.

Every page's data comes from one function here that the page and its ``/api`` twin share.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from likely.config import InstanceConfig
from likely.errors import BusyError, LikelyError, NotFoundError
from likely.web.app import page, workspace

api = APIRouter(prefix="/api", tags=["instances"])
pages = APIRouter(include_in_schema=False)

_FIELD = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")


class CloneRequest(BaseModel):
    new_name: str = Field(min_length=1, max_length=64)


class RunRequest(BaseModel):
    as_of: date | None = Field(None, description="Score as of the end of this day; default: the "
                                                 "newest complete day of the data.")


# -- the list, create, clone, delete ------------------------------------------------------------


@api.get("/instances", summary="Every instance with its status and what it scored")
def list_instances(request: Request) -> list[dict[str, Any]]:
    jobs = request.app.state.jobs
    out = []
    for line in workspace(request).overview():
        job = jobs.get(line["name"])
        out.append({**line, "job": job.to_dict() if job else None})
    return out


@pages.get("/")
@pages.get("/instances")
def instances_page(request: Request) -> Response:
    return page(request, "instances.html", list_instances(request), section="instances",
                has_datasets=bool(workspace(request).datasets()))


@pages.get("/instances/new")
def new_instance_page(request: Request) -> Response:
    ws = workspace(request)
    datasets = [{"name": d.name, "kind": d.kind, "columns": d.columns} for d in ws.datasets()]
    return page(request, "instance_new.html", {"datasets": datasets}, section="instances")


@api.post("/instances/check", summary="Check an instance config without creating it")
def check_instance(request: Request, config: dict[str, Any] = Body(...)) -> dict[str, Any]:
    """Every problem found, each with the config field it belongs to (for inline errors)."""
    try:
        parsed = InstanceConfig.model_validate(config)
    except ValidationError as exc:
        return {"ok": False, "errors": [
            {"field": ".".join(str(p) for p in e["loc"]) or "config", "message": e["msg"]}
            for e in exc.errors()]}
    try:
        workspace(request).check_instance(parsed)
    except LikelyError as exc:
        match = _FIELD.match(exc.message)
        field = match.group(1) if match else "datasets"
        return {"ok": False, "errors": [{"field": field, "message": exc.message}]}
    return {"ok": True, "errors": []}


@api.post("/instances", status_code=201, summary="Create an instance from its config")
def create_instance(request: Request, config: dict[str, Any] = Body(...)) -> dict[str, Any]:
    return workspace(request).create_instance(config).to_dict()


@api.get("/instances/{name}", summary="An instance: its config and status")
def get_instance(request: Request, name: str) -> dict[str, Any]:
    ws = workspace(request)
    instance = ws.instance(name)
    line = ws.instance_overview(instance.name)
    job = request.app.state.jobs.get(instance.name)
    return {**instance.to_dict(), "overview": line, "job": job.to_dict() if job else None}


@api.post("/instances/{name}/clone", status_code=201, summary="Copy an instance's config")
def clone_instance(request: Request, name: str, body: CloneRequest) -> dict[str, Any]:
    return workspace(request).clone_instance(name, body.new_name).to_dict()


@api.post("/instances/{name}/delete", summary="Delete an instance and its outputs")
def delete_instance(request: Request, name: str) -> dict[str, Any]:
    job = request.app.state.jobs.get(name)
    if job is not None and job.state == "running":
        raise BusyError(f"Instance '{name}' is running; delete it when the run has finished.")
    return {"deleted": workspace(request).delete_instance(name).name}


# -- runs ---------------------------------------------------------------------------------------


@api.post("/instances/{name}/runs", status_code=202, summary="Start a run in the background")
def start_run(request: Request, name: str, body: RunRequest | None = None) -> dict[str, Any]:
    instance = workspace(request).instance(name)
    job = request.app.state.jobs.start(instance.name, body.as_of if body else None)
    return job.to_dict()


@api.get("/instances/{name}/job", summary="The dashboard-started run: stage and progress")
def run_job(request: Request, name: str) -> dict[str, Any]:
    instance = workspace(request).instance(name)
    job = request.app.state.jobs.get(instance.name)
    return job.to_dict() if job else {"instance": instance.name, "state": "idle"}


@api.get("/instances/{name}/runs", summary="Every run: status, timings, metrics, errors")
def list_runs(request: Request, name: str) -> list[dict[str, Any]]:
    return [_run_line(r.to_dict()) for r in workspace(request).runs(name)]


@pages.get("/instances/{name}/runs")
def runs_page(request: Request, name: str) -> Response:
    return _instance_page(request, name, "runs.html", "runs", list_runs(request, name))


def _run_line(run: dict[str, Any]) -> dict[str, Any]:
    holdout = (run.get("metrics") or {}).get("holdout") or {}
    return {k: run[k] for k in ("id", "as_of", "status", "started_at", "finished_at",
                                "model_id", "timings", "notes", "error_code", "error")} | {
        "scored_profiles": (run.get("counts") or {}).get("scored_profiles"),
        "buckets": (run.get("counts") or {}).get("buckets"),
        "auc": holdout.get("auc"), "pr_auc": holdout.get("pr_auc"),
        "gini": holdout.get("gini"), "value_model": holdout.get("model"),
        "optimistic": holdout.get("out_of_time") is False,
        "seconds": round(sum((run.get("timings") or {}).values()), 1),
        "model": _model_words(run.get("metrics") or {}),
        "drift": (run.get("metrics") or {}).get("drift"),
    }


def _model_words(metrics: dict[str, Any]) -> str | None:
    """'trained' or 're-scored (model of 2025-06-01)'; None for runs before retraining existed."""
    retraining = metrics.get("retraining")
    if not retraining:
        return None
    if retraining.get("retrained"):
        return "trained"
    return f"re-scored (model of {retraining.get('model_trained_as_of')})"


# -- latest scores, targeting -------------------------------------------------------------------


@api.get("/instances/{name}/scores", summary="Latest scores: buckets, distribution, factors "
                                             "(clv: and the lifetime value card)")
def latest_scores(request: Request, name: str) -> dict[str, Any]:
    ws = workspace(request)
    summary = ws.summary(name)
    if ws.instance(name).config.type == "clv":
        summary["lifetime_value"] = ws.lifetime_value(name, summary["run_id"])
    return summary


@api.get("/instances/{name}/value", summary="A clv instance's lifetime value: predicted value "
                                            "distribution, value buckets, top behaviours, "
                                            "holdout comparison of the two value models")
def lifetime_value(request: Request, name: str, run: str | None = None) -> dict[str, Any]:
    return workspace(request).lifetime_value(name, run)


@api.get("/instances/{name}/targeting", summary="What an audience of the top scores buys")
def targeting(request: Request, name: str, size: int | None = Query(None, ge=0),
              threshold: float | None = Query(None, ge=0, le=100)) -> dict[str, Any]:
    return workspace(request).targeting(name, size=size, threshold=threshold)


@pages.get("/instances/{name}")
def scores_page(request: Request, name: str) -> Response:
    try:
        data = latest_scores(request, name)
    except NotFoundError as exc:  # never run, or no success yet: say what to do
        data = {"empty": exc.message}
    return _instance_page(request, name, "scores.html", "scores", data)


# -- evaluation, performance --------------------------------------------------------------------


@api.get("/instances/{name}/evaluation", summary="Model quality on the holdout, graded "
                                                 "(clv: the two value models compared)")
def evaluation(request: Request, name: str, run: str | None = None) -> dict[str, Any]:
    return workspace(request).evaluation(name, run)


@pages.get("/instances/{name}/evaluation")
def evaluation_page(request: Request, name: str, run: str | None = None) -> Response:
    try:
        data = evaluation(request, name, run)
    except NotFoundError as exc:
        data = {"empty": exc.message}
    return _instance_page(request, name, "evaluation.html", "evaluation", data)


@api.get("/instances/{name}/performance", summary="Expected against actual rates of past runs")
def performance(request: Request, name: str) -> dict[str, Any]:
    return workspace(request).performance(name)


@pages.get("/instances/{name}/performance")
def performance_page(request: Request, name: str) -> Response:
    return _instance_page(request, name, "performance.html", "performance",
                          performance(request, name))


# -- profiles -----------------------------------------------------------------------------------


@api.get("/instances/{name}/profiles/{profile_id:path}",
         summary="One profile: score, bucket, reasons and score history")
def profile(request: Request, name: str, profile_id: str) -> dict[str, Any]:
    return workspace(request).explain(name, profile_id)


@pages.get("/instances/{name}/profiles")
def profile_page(request: Request, name: str, id: str | None = None) -> Response:
    data: dict[str, Any] = {"query": id}
    if id:
        try:
            data = {"query": id, **profile(request, name, id.strip())}
        except NotFoundError as exc:
            data = {"query": id, "empty": exc.message}
    return _instance_page(request, name, "profile.html", "profiles", data)


def _instance_page(request: Request, name: str, template: str, tab: str,
                   data: dict[str, Any] | list) -> Response:
    info = get_instance(request, name)
    return page(request, template, data, section="instances", tab=tab, instance=info)
