"""The Data page: datasets with their quality report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from likely.web.app import page, workspace

api = APIRouter(prefix="/api", tags=["datasets"])
pages = APIRouter(include_in_schema=False)


@api.get("/datasets", summary="Datasets with their quality reports")
def list_datasets(request: Request) -> list[dict[str, Any]]:
    return [_public(d.to_dict()) for d in workspace(request).datasets()]


@api.get("/datasets/{name}", summary="One dataset and its quality report")
def get_dataset(request: Request, name: str) -> dict[str, Any]:
    return _public(workspace(request).dataset(name).to_dict())


@pages.get("/data")
def data_page(request: Request) -> Response:
    return page(request, "data.html", list_datasets(request), section="data")


def _public(dataset: dict[str, Any]) -> dict[str, Any]:
    """Part file paths stay on the server; the page shows how many there are."""
    parts = dataset.pop("parts", [])
    return {**dataset, "parts": len(parts)}
