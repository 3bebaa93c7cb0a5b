"""Logging in with the dashboard token (only when the server requires one)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from likely.web import security
from likely.web.app import page

api = APIRouter(prefix="/api", tags=["session"])
pages = APIRouter(include_in_schema=False)


@pages.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return page(request, "login.html", {}, next=_local(next), failed=False)


@pages.post("/login")
def login(request: Request, token: str = Form(...), next: str = Form("/")) -> Response:
    expected = request.app.state.token
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        response = page(request, "login.html", {}, next=_local(next), failed=bool(expected))
        response.status_code = 401 if expected else 200
        return response
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(security.COOKIE, security.session_value(expected), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


@pages.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(security.COOKIE)
    return response


def _local(target: str) -> str:
    """Only redirect within this site (never to another host after login)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
