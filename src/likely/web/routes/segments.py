"""Segments: save a bucket of an instance (or a rule) as an audience, list and show them."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, model_validator

from likely.errors import LikelyError
from likely.web.app import page, workspace

api = APIRouter(prefix="/api", tags=["segments"])
pages = APIRouter(include_in_schema=False)


class SegmentRequest(BaseModel):
    """A rule, or an instance and one of its buckets (what a bucket card's button sends)."""

    name: str = Field(min_length=1, max_length=80)
    description: str = Field("", max_length=500)
    rule: str | None = Field(None, description="e.g. \"purchase-30d\".bucket = 'High'")
    instance: str | None = None
    bucket: Literal["High", "Medium", "Low"] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> SegmentRequest:
        if (self.rule is None) == (self.instance is None or self.bucket is None):
            raise ValueError("give either a rule, or an instance and a bucket")
        return self


@api.get("/segments", summary="Every segment with its size over the latest scores")
def list_segments(request: Request) -> list[dict[str, Any]]:
    ws = workspace(request)
    return [_with_size(ws, s.name) for s in ws.segments()]


@api.post("/segments", status_code=201, summary="Save a segment")
def create_segment(request: Request, body: SegmentRequest) -> dict[str, Any]:
    ws = workspace(request)
    if body.rule is not None:
        segment = ws.create_segment(body.name, body.rule, description=body.description)
    else:
        segment = ws.create_bucket_segment(body.name, body.instance, body.bucket,
                                           description=body.description)
    return _with_size(ws, segment.name)


@api.get("/segments/{name}", summary="A segment, its rule and its size")
def get_segment(request: Request, name: str) -> dict[str, Any]:
    return _with_size(workspace(request), name)


@api.post("/segments/{name}/delete", summary="Delete a segment")
def delete_segment(request: Request, name: str) -> dict[str, Any]:
    return {"deleted": workspace(request).delete_segment(name).name}


@pages.get("/segments")
def segments_page(request: Request) -> Response:
    return page(request, "segments.html", list_segments(request), section="segments")


@pages.get("/segments/{name}")
def segment_page(request: Request, name: str) -> Response:
    return page(request, "segment.html", get_segment(request, name), section="segments")


def _with_size(ws, name: str) -> dict[str, Any]:
    segment = ws.segment(name)
    try:
        size: dict[str, Any] = ws.segment_size(segment.name)
    except LikelyError as exc:  # an instance of the rule has no scores (yet, or any more)
        size = {"profiles": None, "score_dates": {}, "problem": exc.message}
    return {**segment.to_dict(), "size": size}
