"""Destinations (where segments are activated) and the activation log.

The dashboard adds folder destinations; webhook and table ones hold the names of environment
variables with their secrets and are added from the command line (``likely destinations add``),
though this API takes any kind the workspace checks.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from likely.web.app import workspace
from likely.web.routes.segments import _activation

api = APIRouter(prefix="/api", tags=["destinations"])
pages = APIRouter(include_in_schema=False)


class DestinationRequest(BaseModel):
    name: str = Field(min_length=1, max_length=63)
    kind: Literal["folder", "webhook", "table"] = "folder"
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="folder: {path, format: csv|parquet|jsonl, mode}; webhook: {url, secret_env, "
                    "...}; table: {engine, path | url_env, table, mode}. Secrets: name an "
                    "environment variable (…_env), never the value.")


@api.get("/destinations", summary="Where segments can be sent")
def list_destinations(request: Request) -> list[dict[str, Any]]:
    return [d.to_dict() for d in workspace(request).destinations()]


@api.post("/destinations", status_code=201, summary="Add a destination (checked now)")
def add_destination(request: Request, body: DestinationRequest) -> dict[str, Any]:
    return workspace(request).add_destination(body.name, body.kind, body.config).to_dict()


@api.post("/destinations/{name}/delete", summary="Remove a destination (its log stays)")
def remove_destination(request: Request, name: str) -> dict[str, Any]:
    return {"deleted": workspace(request).remove_destination(name).name}


@api.get("/activations", summary="The activation log, newest first")
def list_activations(request: Request,
                     segment: str | None = Query(None, description="A segment's name or id"),
                     limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
    return [_activation(a.to_dict())
            for a in workspace(request).activations(segment, limit=limit)]
