"""Every error likely raises on purpose.

Each class also inherits the matching builtin, so callers that catch ``ValueError`` keep working,
and carries the exit code the CLI uses and the HTTP status the web app returns. Faces convert an
error once, at their boundary; nothing below them prints or exits.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class LikelyError(Exception):
    """Base of every error likely raises on purpose; its message is meant for the user."""

    exit_code: int = 1
    http_status: int = 400

    def __init__(self, message: str, *, detail: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}

    def to_dict(self) -> dict:
        return {"error": self.message, "type": type(self).__name__, "detail": self.detail}


class ConfigError(LikelyError, ValueError):
    """A setting, a config file or a command-line option is wrong."""

    exit_code = 2
    http_status = 422


class ConditionError(ConfigError):
    """A condition (goal, population, segment rule) is not allowed; names the offending token."""

    def __init__(self, message: str, *, token: str | None = None, condition: str = "") -> None:
        super().__init__(message, detail={"token": token, "condition": condition})
        self.token = token
        self.condition = condition


class NotFoundError(LikelyError, LookupError):
    """A dataset, instance, run or profile that was asked for does not exist."""

    exit_code = 3
    http_status = 404


class AlreadyExistsError(LikelyError, ValueError):
    """Something with that name (or that file) is already there."""

    exit_code = 4
    http_status = 409


class InUseError(LikelyError, RuntimeError):
    """An object cannot be removed or changed because something else depends on it."""

    exit_code = 5
    http_status = 409


class BusyError(LikelyError, RuntimeError):
    """Another process holds the lock this operation needs (e.g. a run of the same instance)."""

    exit_code = 6
    http_status = 409


class DataError(LikelyError, ValueError):
    """Input data is unreadable or invalid; the message names the file, rows and column."""

    exit_code = 7
    http_status = 422


class WorkspaceError(LikelyError, RuntimeError):
    """The workspace folder is missing, not initialised, or from a newer version of likely."""

    exit_code = 8
    http_status = 500


class RunError(LikelyError, RuntimeError):
    """A run could not produce scores. ``code`` mirrors the product's run error codes (400-414).

    ``status`` is the run status recorded in the catalog: ``training_issue`` for a model below the
    quality gate, ``failed`` for everything else.
    """

    exit_code = 10
    http_status = 422

    def __init__(
        self, code: int, message: str, *, status: str = "failed", detail: dict | None = None
    ) -> None:
        super().__init__(f"[{code}] {message}", detail={"code": code, **(detail or {})})
        self.code = code
        self.status = status


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """" Did you mean 'x'?" for the closest known name, or "" when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""
