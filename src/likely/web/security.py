"""Who may use the dashboard: loopback by default, a token anywhere else, same-origin writes.

- Off loopback the server refuses to start without ``LIKELY_TOKEN``; with a token every request
  needs it, as a bearer header or the HttpOnly, SameSite=Strict cookie the login form sets.
- Requests that change something are POSTs; a POST whose ``Origin`` (or, without one, whose
  ``Sec-Fetch-Site``) says it came from another site is refused, so another page cannot make a
  logged-in browser run, create or delete anything.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from urllib.parse import urlsplit

from starlette.requests import Request

from likely.errors import ConfigError

TOKEN_ENV = "LIKELY_TOKEN"
COOKIE = "likely_session"
OPEN_PATHS = ("/login", "/static/", "/favicon.ico")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_token(host: str, token: str | None = None) -> str | None:
    """The token the server will require; refuses a non-loopback host without one."""
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host):
        raise ConfigError(f"Refusing to serve on {host} without a token: anyone on the network "
                          f"could read the scores. Set {TOKEN_ENV} (e.g. `export {TOKEN_ENV}="
                          "$(openssl rand -hex 24)`), or serve on 127.0.0.1.")
    if token is not None and len(token) < 16:
        raise ConfigError(f"{TOKEN_ENV} is too short: use at least 16 characters.")
    return token


def session_value(token: str) -> str:
    """What the cookie holds: derived from the token, so the cookie never is the token."""
    return hmac.new(token.encode(), b"likely-dashboard-session", hashlib.sha256).hexdigest()


def authorised(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and hmac.compare_digest(
            header[7:].strip().encode(), token.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def needs_token(path: str) -> bool:
    return not any(path == p or (p.endswith("/") and path.startswith(p)) for p in OPEN_PATHS)


def cross_site(request: Request) -> bool:
    """True for a state-changing request sent by another site's page."""
    if request.method not in UNSAFE_METHODS:
        return False
    origin = request.headers.get("origin")
    if origin:
        if origin == "null":
            return True
        return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()
    return request.headers.get("sec-fetch-site", "same-origin") == "cross-site"
