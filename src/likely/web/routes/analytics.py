"""Analytics: an instance's score history as charts, one JSON answer per analytic.

The page carries what its filter form offers (runs, segments, profile attributes); its script
asks ``/api/instances/{name}/analytics/{kind}`` for each chart with the filter in the query.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from likely.analytics import KINDS
from likely.errors import LikelyError, NotFoundError
from likely.web.app import page, workspace
from likely.web.routes.instances import get_instance

api = APIRouter(prefix="/api", tags=["analytics"])
pages = APIRouter(include_in_schema=False)


@api.get("/instances/{name}/analytics/{kind}",
         summary="One analytic of the score history: trend, flow, overlap, distribution, "
                 "reasons, cohorts or outcomes")
def analytic(
    request: Request, name: str, kind: str,
    segment: str | None = Query(None, description="Only this segment's members (at its newest "
                                                  "score date)."),
    bucket: str | None = Query(None, description="Only profiles in this bucket at each score "
                                                 "date (overlap: the bucket compared)."),
    where: str | None = Query(None, max_length=2000,
                              description="Only profiles whose attributes meet this condition "
                                          "at each score date, e.g. loyalty_tier = 'gold'."),
    runs: str | None = Query(None, description="Run ids or score dates, comma-separated; 'all' "
                                               "for every run."),
    bins: int | None = Query(None, ge=2, le=100, description="distribution: score bins."),
    top: int | None = Query(None, ge=1, le=50, description="reasons and cohorts: how many "
                                                            "reasons or values to keep apart."),
    attribute: str | None = Query(None, description="cohorts: the profile attribute."),
) -> dict[str, Any]:
    return workspace(request).analytics(name, kind, segment=segment, bucket=bucket, where=where,
                                        runs=runs, bins=bins, top=top, attribute=attribute)


@pages.get("/instances/{name}/analytics")
def analytics_page(request: Request, name: str, segment: str | None = None,
                   bucket: str | None = None, where: str | None = None,
                   attribute: str | None = None) -> Response:
    ws = workspace(request)
    info = get_instance(request, name)
    instance = ws.instance(name)
    runs = [{"run_id": r.id, "score_date": r.as_of}
            for r in sorted((r for r in ws.runs(name) if r.status == "success"),
                            key=lambda r: r.as_of)]
    attributes = []
    if instance.config.datasets.profiles:
        try:
            dataset = ws.dataset(instance.config.datasets.profiles)
            attributes = [{"name": c["name"], "type": c["type"]} for c in dataset.columns
                          if c["name"] not in ("profile_id", "updated_at")]
        except LikelyError:
            attributes = []
    data: dict[str, Any] = {
        "instance": instance.name, "type": instance.config.type, "kinds": list(KINDS),
        "runs": runs, "segments": [s.name for s in ws.segments()], "attributes": attributes,
        "filter": {"segment": segment or "", "bucket": bucket or "", "where": where or ""},
        "attribute": attribute or _default_attribute(attributes),
        "window_days": instance.config.goal.window_days,
    }
    if not runs:
        data["empty"] = NotFoundError(
            f"Instance '{instance.name}' has no successful run yet, so no history to analyse."
        ).message
    return page(request, "analytics.html", data, section="instances", tab="analytics",
                instance=info)


def _default_attribute(attributes: list[dict[str, str]]) -> str:
    """A text attribute with few values reads best as cohorts: prefer a tier, else the first."""
    names = [a["name"] for a in attributes]
    for wanted in ("loyalty_tier", "tier", "segment", "country"):
        if wanted in names:
            return wanted
    text = [a["name"] for a in attributes if a["type"] in ("string", "boolean")]
    return (text or names or [""])[0]
