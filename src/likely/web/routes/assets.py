"""plotly.js from the installed ``plotly`` package: no CDN, the dashboard works offline."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

api = APIRouter(prefix="/api", tags=["assets"])
pages = APIRouter(include_in_schema=False)


@cache
def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@pages.get("/assets/plotly.min.js")
def plotly_bundle() -> FileResponse:
    return FileResponse(plotly_js(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
