"""What every kind of destination is handed, and what it reports back."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from likely.errors import LikelyError

Progress = Callable[[int, int], None]


class ActivationError(LikelyError, RuntimeError):
    """Delivery to a destination failed; the activation log row says what happened."""

    exit_code = 11
    http_status = 502


@dataclass(frozen=True)
class Delivery:
    """One activation's rows on their way to a destination.

    ``rows`` are the members (full or replace mode) or the entered and left ones with a
    ``change`` column (delta mode); ``members`` is always the whole current membership.
    """

    activation_id: str
    segment_id: str
    segment_name: str
    score_date: str | None
    mode: str
    rows: pa.Table
    members: pa.Table
    entered: int
    left: int
    config: dict[str, Any]
    root: Path
    folder: Path  # this activation's own folder in the workspace
    activated_at: str
    baseline: str | None = None  # the activation whose members entered/left are relative to
    progress: Progress | None = None

    def report(self, done: int) -> None:
        if self.progress is not None:
            self.progress(done, self.rows.num_rows)

    def resolve(self, path: str) -> Path:
        """A configured path; a relative one is relative to the workspace."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.root / candidate


@dataclass
class Outcome:
    """What a delivery achieved; ``status`` is success, partial or failed."""

    status: str
    sent: int
    batches: int
    failed_batches: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def slug(text: str, limit: int = 60) -> str:
    """A file-name-safe form of a segment name (lower case, '-' between words)."""
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "segment"
