"""Segments: build one from a rule (live preview), list them, show one with its history,
export its members and activate it to a destination.

Pages link segments by id (names may hold '/'); the API takes a name or an id. Every page's
data comes from a function here that its ``/api`` twin shares.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, model_validator
from starlette.background import BackgroundTask

from likely.errors import LikelyError
from likely.web.app import page, workspace

api = APIRouter(prefix="/api", tags=["segments"])
pages = APIRouter(include_in_schema=False)

PREVIEW_SAMPLE = 5
PAGE_SAMPLE = 20
EXPORTS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet",
           "jsonl": "application/x-ndjson"}


class SegmentRequest(BaseModel):
    """A rule, or an instance and one of its buckets (what a bucket card's button sends)."""

    name: str = Field(min_length=1, max_length=80)
    description: str = Field("", max_length=500)
    rule: str | None = Field(None, description="e.g. \"purchase-30d\".bucket = 'High'")
    instance: str | None = None
    bucket: Literal["High", "Medium", "Low"] | None = None
    published: bool = Field(True, description="Keep the membership after every run (history, "
                                              "entered and left).")

    @model_validator(mode="after")
    def _one_way(self) -> SegmentRequest:
        if (self.rule is None) == (self.instance is None or self.bucket is None):
            raise ValueError("give either a rule, or an instance and a bucket")
        return self


class PreviewRequest(BaseModel):
    rule: str = Field(min_length=1, max_length=4000)
    sample: int = Field(PREVIEW_SAMPLE, ge=0, le=100)


class EditRequest(BaseModel):
    """Only what is given changes. A new rule restarts the membership history."""

    name: str | None = Field(None, min_length=1, max_length=80, description="A new name.")
    rule: str | None = Field(None, min_length=1, max_length=4000)
    description: str | None = Field(None, max_length=500)
    published: bool | None = None


class HideRequest(BaseModel):
    hidden: bool = Field(True, description="false shows a hidden segment again")


class ActivateRequest(BaseModel):
    destination: str = Field(min_length=1, max_length=63)
    mode: Literal["full", "replace", "delta"] | None = Field(
        None, description="Default: the destination's mode")
    as_of: date | None = Field(None, description="Send the members of the newest score date "
                                                 "on or before this day; default: the latest.")


# -- building: fields, preview, create ----------------------------------------------------------


@api.get("/segment-fields", summary="What a rule may read: instances' fields, attributes")
def segment_fields(request: Request) -> dict[str, Any]:
    return workspace(request).segment_fields()


@api.post("/segments/preview", summary="A rule's size, words and a sample before saving it")
def preview_segment(request: Request, body: PreviewRequest) -> dict[str, Any]:
    """422 with ``detail.token`` (the offending part) for a rule that does not parse or reads
    an unknown field; 404 when an instance it reads has no scores yet."""
    return workspace(request).preview_segment(body.rule, sample=body.sample)


@api.post("/segments", status_code=201, summary="Save a segment")
def create_segment(request: Request, body: SegmentRequest) -> dict[str, Any]:
    ws = workspace(request)
    if body.rule is not None:
        segment = ws.create_segment(body.name, body.rule, description=body.description,
                                    published=body.published)
    else:
        segment = ws.create_bucket_segment(body.name, body.instance, body.bucket,
                                           description=body.description)
        if not body.published:
            segment = ws.edit_segment(segment.id, published=False)
    return _line(ws, segment)


# -- reading ------------------------------------------------------------------------------------


@api.get("/segments", summary="Segments with their rule in words and size at the latest scores")
def list_segments(request: Request, hidden: bool = Query(
        False, description="Include hidden (automatic) segments")) -> list[dict[str, Any]]:
    ws = workspace(request)
    return [_line(ws, s) for s in ws.segments(hidden=hidden)]


@api.get("/segments/{key}", summary="A segment: rule in words, size, history, entered/left, "
                                    "samples, its activations")
def get_segment(request: Request, key: str,
                sample: int = Query(PAGE_SAMPLE, ge=0, le=200)) -> dict[str, Any]:
    ws = workspace(request)
    segment = ws.segment(key)
    try:
        shown = ws.show_segment(segment.id, sample=sample)
    except LikelyError as exc:  # e.g. its rule reads an instance that is gone
        shown = {**segment.to_dict(), "in_words": segment.rule, "instances": [],
                 "profiles": None, "score_date": None, "history": [], "entered": None,
                 "left": None, "sample": [], "entered_sample": [], "left_sample": [],
                 "problem": exc.message}
    shown["history"] = [{k: v for k, v in h.items() if k not in ("path", "segment_id")}
                        for h in shown["history"]]
    return {**shown, "size": _size(ws, segment),
            "activations": [_activation(a.to_dict())
                            for a in ws.activations(segment.id, limit=20)]}


@api.get("/segments/{key}/history", summary="Size, entered and left per score date")
def segment_history(request: Request, key: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in ("path", "segment_id")}
            for h in workspace(request).segment_history(key)]


@api.get("/segments/{key}/export", summary="Download the members as CSV, Parquet or JSON Lines",
         response_class=FileResponse)
def export_segment(request: Request, key: str,
                   format: Literal["csv", "parquet", "jsonl"] = "csv",
                   as_of: date | None = Query(None, description="Members of the newest score "
                                                                "date on or before this day")
                   ) -> FileResponse:
    ws = workspace(request)
    segment = ws.segment(key)
    stem = _file_stem(segment.name) + (f"-{as_of.isoformat()}" if as_of else "")
    folder = Path(tempfile.mkdtemp(prefix="likely-export-"))
    try:
        path = ws.export_segment(segment.id, folder / f"{stem}.{format}", format=format,
                                 as_of=as_of)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(path, media_type=EXPORTS[format], filename=path.name,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


# -- changing -----------------------------------------------------------------------------------


@api.post("/segments/{key}/edit", summary="Rename, change the rule, description or publishing")
def edit_segment(request: Request, key: str, body: EditRequest) -> dict[str, Any]:
    ws = workspace(request)
    segment = ws.edit_segment(ws.segment(key).id, new_name=body.name, rule=body.rule,
                              description=body.description, published=body.published)
    return _line(ws, segment)


@api.post("/segments/{key}/hide", summary="Hide a segment from the list (or show it again)")
def hide_segment(request: Request, key: str, body: HideRequest | None = None) -> dict[str, Any]:
    ws = workspace(request)
    hidden = body.hidden if body is not None else True
    return _line(ws, ws.edit_segment(ws.segment(key).id, hidden=hidden))


@api.post("/segments/{key}/publish", summary="Keep the membership now and after every run")
def publish_segment(request: Request, key: str) -> dict[str, Any]:
    ws = workspace(request)
    segment = ws.segment(key)
    published = ws.publish_segment(segment.id)
    published = {k: v for k, v in published.items() if k not in ("path", "segment_id")}
    return {**_line(ws, ws.segment(segment.id)), "publication": published}


@api.post("/segments/{key}/delete", summary="Delete a segment")
def delete_segment(request: Request, key: str) -> dict[str, Any]:
    return {"deleted": workspace(request).delete_segment(key).name}


@api.post("/segments/{key}/activate", summary="Send the members to a destination")
def activate_segment(request: Request, key: str, body: ActivateRequest) -> dict[str, Any]:
    """The logged activation (status success, partial or failed). A delivery that stops
    altogether answers with its error (the log keeps the failed row)."""
    ws = workspace(request)
    done = ws.activate_segment(ws.segment(key).id, body.destination, mode=body.mode,
                               as_of=body.as_of)
    return _activation(done.to_dict())


@api.get("/segments/{key}/activations", summary="This segment's activation log, newest first")
def segment_activations(request: Request, key: str,
                        limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
    ws = workspace(request)
    return [_activation(a.to_dict()) for a in ws.activations(ws.segment(key).id, limit=limit)]


# -- pages --------------------------------------------------------------------------------------


@pages.get("/segments")
def segments_page(request: Request) -> Response:
    return page(request, "segments.html", list_segments(request, hidden=True),
                section="segments")


@pages.get("/segments/new")
def new_segment_page(request: Request) -> Response:
    return page(request, "segment_builder.html",
                {"fields": segment_fields(request), "segment": None}, section="segments")


@pages.get("/segments/{key}/edit")
def edit_segment_page(request: Request, key: str) -> Response:
    segment = workspace(request).segment(key).to_dict()
    return page(request, "segment_builder.html",
                {"fields": segment_fields(request), "segment": segment}, section="segments")


@pages.get("/segments/{key}")
def segment_page(request: Request, key: str) -> Response:
    from likely.activation import MODES

    data = get_segment(request, key, PAGE_SAMPLE)
    destinations = [d.to_dict() for d in workspace(request).destinations()]
    return page(request, "segment.html", {**data, "destinations": destinations,
                                          "modes": {k: list(v) for k, v in MODES.items()}},
                section="segments")


# -- helpers ------------------------------------------------------------------------------------


def _line(ws, segment) -> dict[str, Any]:
    """A segment with its rule in words and its size at the instances' current scores (a
    published segment's from its membership: listing does not re-evaluate rules)."""
    try:
        words = ws.rule_in_words(segment.rule)
    except LikelyError:  # e.g. its rule names an instance that is gone: the size says why
        words = segment.rule
    return {**segment.to_dict(), "in_words": words, "size": _size(ws, segment)}


def _size(ws, segment) -> dict[str, Any]:
    try:
        return ws.segment_size(segment.id)
    except LikelyError as exc:
        return {"profiles": None, "score_date": None, "runs": {}, "problem": exc.message}


def _activation(activation: dict[str, Any]) -> dict[str, Any]:
    """The log row; the workspace-internal copy of the members stays on the server."""
    detail = {k: v for k, v in (activation.get("detail") or {}).items() if k != "members_file"}
    return {**activation, "detail": detail}


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60] or "segment"
