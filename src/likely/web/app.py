"""``create_app(workspace)``: the dashboard's FastAPI application.

Routers per noun (instances, segments, datasets, session); one error handler turns the library's
errors into an error page for HTML and a JSON body under ``/api``. Each request gets the
workspace of its worker thread (a catalog and an engine connection per thread, opened once).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from likely.errors import LikelyError
from likely.web import security
from likely.web.jobs import RunJobs
from likely.workspace import Workspace, resolve_path

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def create_app(workspace: str | Path | Workspace | None = None, *,
               token: str | None = None) -> FastAPI:
    """The dashboard over one workspace. ``token``: require it on every request (bearer header
    or login cookie); ``likely serve`` passes ``$LIKELY_TOKEN``."""
    path = workspace.path if isinstance(workspace, Workspace) else resolve_path(workspace)
    Workspace(path)  # refuse a missing workspace now, not on the first request
    app = FastAPI(title="likely", summary="Customer AI: scores, reasons and segments",
                  version="1", docs_url="/api/docs", openapi_url="/api/openapi.json",
                  redoc_url=None)
    app.state.workspace_path = path
    app.state.token = token
    app.state.jobs = RunJobs(path)
    app.state.local = threading.local()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _add_security(app)
    _add_error_handlers(app)
    from likely.web.routes import (
        analytics,
        assets,
        datasets,
        destinations,
        instances,
        segments,
        session,
    )

    for module in (session, assets, instances, analytics, segments, destinations, datasets):
        app.include_router(module.api)
        app.include_router(module.pages)
    return app


def workspace(request: Request) -> Workspace:
    """The workspace for this worker thread (FastAPI dependency)."""
    local = request.app.state.local
    ws = getattr(local, "workspace", None)
    if ws is None:
        ws = local.workspace = Workspace(request.app.state.workspace_path)
    return ws


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _add_security(app: FastAPI) -> None:
    @app.middleware("http")
    async def guard(request: Request, call_next):
        token = request.app.state.token
        if token and security.needs_token(request.url.path) and not security.authorised(
                request, token):
            if wants_json(request):
                return JSONResponse({"error": "Authentication required: send the dashboard "
                                              "token as 'Authorization: Bearer <token>'.",
                                     "type": "Unauthorized", "detail": {}}, status_code=401)
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if security.cross_site(request):
            message = ("Refused: this request to change something came from another site. "
                       "Use the dashboard's own pages.")
            if wants_json(request):
                return JSONResponse({"error": message, "type": "Forbidden", "detail": {}},
                                    status_code=403)
            return _error_page(request, 403, "Forbidden", message)
        started = time.perf_counter()
        response = await call_next(request)
        # the server's own time, for the benchmark and the browser's network panel
        response.headers["Server-Timing"] = f"app;dur={1000 * (time.perf_counter() - started):.1f}"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LikelyError)
    async def likely_error(request: Request, exc: LikelyError) -> Response:
        if wants_json(request):
            return JSONResponse(exc.to_dict(), status_code=exc.http_status)
        return _error_page(request, exc.http_status, type(exc).__name__, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = ("No such page. Start from the instances list." if exc.status_code == 404
                   else str(exc.detail))
        if wants_json(request):
            return JSONResponse({"error": message, "type": "HTTPException", "detail": {}},
                                status_code=exc.status_code)
        return _error_page(request, exc.status_code, "Not found" if exc.status_code == 404
                           else "Error", message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        if wants_json(request):
            return JSONResponse({"error": f"Invalid request: {problems}",
                                 "type": "ValidationError",
                                 "detail": {"errors": [{k: e[k] for k in ("loc", "msg", "type")}
                                                       for e in exc.errors()]}},
                                status_code=422)
        return _error_page(request, 422, "Invalid request", problems)


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    return templates.TemplateResponse(request, "error.html",
                                      {"title": title, "message": message, "status": status,
                                       "data": {"error": message, "status": status}},
                                      status_code=status)


def page(request: Request, template: str, data: dict, **context) -> Response:
    """Render a page; ``data`` (the page's JSON twin, encoded as the API encodes it: dates as
    ISO text) is embedded for its charts."""
    return templates.TemplateResponse(request, template,
                                      {"data": jsonable_encoder(data), **context})
