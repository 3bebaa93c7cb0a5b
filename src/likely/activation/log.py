"""Activating a segment: deliver its members to a destination and log what happened.

Every activation gets a row in the catalog's ``activations`` table before anything is sent
(status ``running``), and the row always ends as ``success``, ``partial`` (a webhook delivered
some batches; the rest are dead-lettered) or ``failed`` (with the error in words), even when
delivery raises. The activated profile ids are kept under ``activations/<id>/`` so the next
delta activation to the same destination knows who entered and who left.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from likely.activation import folder, table, webhook
from likely.activation.base import ActivationError, Delivery, Outcome, Progress
from likely.activation.destinations import MODES, Destination, get_destination
from likely.activation.members import (
    PROFILE_ID,
    changes,
    check_members,
    delta_rows,
    save_ids,
)
from likely.catalog import Catalog, utcnow
from likely.errors import ConfigError, LikelyError, NotFoundError, did_you_mean
from likely.storage import exclusive_lock

ACTIVATIONS_DIR = "activations"
MEMBERS_FILE = "members.parquet"
_DELIVER = {"folder": folder.deliver, "webhook": webhook.deliver, "table": table.deliver}


@dataclass(frozen=True)
class Activation:
    id: str
    segment_id: str
    segment_name: str
    destination: str
    mode: str
    score_date: str | None
    status: str
    started_at: str
    finished_at: str | None
    profiles: int
    sent: int
    entered: int | None
    exited: int | None
    batches: int
    failed_batches: int
    detail: dict[str, Any]
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "detail": dict(self.detail)}


def activation_dir(root: Path, activation_id: str) -> Path:
    return Path(root) / ACTIVATIONS_DIR / activation_id


def activate(catalog: Catalog, root: Path, destination: str, *, segment_id: str,
             segment_name: str, score_date: str | None, members: pa.Table,
             mode: str | None = None, progress: Progress | None = None) -> Activation:
    """Send ``members`` of a segment to ``destination``; returns the logged activation.

    A webhook whose batches failed returns with status ``partial`` or ``failed`` (the batches
    are dead-lettered, replayable); anything that stops delivery raises a LikelyError after the
    log row is marked failed. Two activations of one segment to one destination never overlap
    (BusyError), since both would compare with the same last success.
    """
    target = get_destination(catalog, destination)
    request = _Request(segment_id, segment_name, score_date, _mode(target, mode),
                       check_members(members), progress)
    root = Path(root)
    key = hashlib.sha256(f"{segment_id}\0{target.name}".encode()).hexdigest()[:24]
    with exclusive_lock(root / ACTIVATIONS_DIR / ".locks" / f"{key}.lock",
                        f"Activation of segment '{segment_name}' to '{target.name}'"):
        return _run(catalog, root, target, request)


@dataclass(frozen=True)
class _Request:
    segment_id: str
    segment_name: str
    score_date: str | None
    mode: str
    members: pa.Table
    progress: Progress | None


def _run(catalog: Catalog, root: Path, target: Destination, request: _Request) -> Activation:
    """Log the activation as running, deliver it, and end the log row whatever happens."""
    activation_id = f"act-{uuid.uuid4().hex[:12]}"
    started = utcnow()
    catalog.insert("activations", {
        "id": activation_id, "segment_id": request.segment_id,
        "segment_name": request.segment_name, "destination": target.name,
        "mode": request.mode, "score_date": request.score_date, "status": "running",
        "started_at": started, "profiles": request.members.num_rows,
        "detail": {"kind": target.kind}})
    try:
        job = _prepare(catalog, root, target, activation_id, started, request)
        outcome = _DELIVER[target.kind](job)
    except BaseException as exc:
        _fail(catalog, activation_id, target, exc)
        if isinstance(exc, LikelyError) or not isinstance(exc, Exception):
            raise
        raise ActivationError(
            f"Activating segment '{request.segment_name}' to '{target.name}' failed: "
            f"{_words(exc)}", detail={"activation_id": activation_id}) from exc
    _finish(catalog, activation_id, target, job, outcome)
    return get_activation(catalog, activation_id)


def get_activation(catalog: Catalog, activation_id: str) -> Activation:
    row = catalog.query_one("SELECT * FROM activations WHERE id = ?", (activation_id,))
    if row is None:
        raise NotFoundError(f"No activation with id '{activation_id}'.")
    return Activation(**row)


def list_activations(catalog: Catalog, *, segment_id: str | None = None,
                     limit: int = 50) -> list[Activation]:
    """The newest activations first, of one segment or of all."""
    where, params = ("WHERE segment_id = ?", (segment_id,)) if segment_id else ("", ())
    rows = catalog.query(f"SELECT * FROM activations {where} "
                         "ORDER BY started_at DESC, id DESC LIMIT ?", (*params, int(limit)))
    return [Activation(**row) for row in rows]


def _mode(target: Destination, mode: str | None) -> str:
    mode = mode or target.default_mode
    allowed = MODES[target.kind]
    if mode not in allowed:
        raise ConfigError(f"Mode '{mode}' does not apply to {target.kind} destination "
                          f"'{target.name}'.{did_you_mean(mode, allowed)} Modes: "
                          f"{', '.join(allowed)}.", detail={"field": "mode"})
    return mode


def _prepare(catalog: Catalog, root: Path, target: Destination, activation_id: str,
             started: str, request: _Request) -> Delivery:
    """Keep the members, compare them with the last success, and shape the rows to send."""
    here = activation_dir(root, activation_id)
    members = request.members
    save_ids(members, here / MEMBERS_FILE)
    found = changes(members, *_baseline(catalog, root, target, request.segment_id))
    rows = delta_rows(members, found) if request.mode == "delta" else members
    return Delivery(activation_id=activation_id, segment_id=request.segment_id,
                    segment_name=request.segment_name, score_date=request.score_date,
                    mode=request.mode, rows=rows, members=members,
                    entered=found.entered.num_rows, left=len(found.left), config=target.config,
                    root=root, folder=here, activated_at=started, baseline=found.baseline,
                    progress=request.progress)


def _baseline(catalog: Catalog, root: Path, target: Destination,
              segment_id: str) -> tuple[pa.Array | None, str | None]:
    """Profile ids of the last successful activation of this segment here (since it was added).

    A destination removed and added again under the same name starts afresh.
    """
    row = catalog.query_one(
        "SELECT id FROM activations WHERE segment_id = ? AND destination = ? "
        "AND status = 'success' AND started_at >= ? ORDER BY started_at DESC, id DESC LIMIT 1",
        (segment_id, target.name, target.created_at))
    if row is None:
        return None, None
    path = activation_dir(root, row["id"]) / MEMBERS_FILE
    if not path.exists():
        return None, None  # the workspace lost it: treat everyone as new rather than guess
    ids = pq.read_table(path, columns=[PROFILE_ID])[PROFILE_ID].combine_chunks()
    return ids, row["id"]


def _finish(catalog: Catalog, activation_id: str, target: Destination, job: Delivery,
            outcome: Outcome) -> None:
    detail = {"kind": target.kind, "members_file": str(job.folder / MEMBERS_FILE),
              "baseline": job.baseline, **outcome.detail}
    catalog.update("activations", "id", activation_id, {
        "status": outcome.status, "finished_at": utcnow(), "sent": outcome.sent,
        "entered": job.entered, "exited": job.left, "batches": outcome.batches,
        "failed_batches": outcome.failed_batches, "detail": detail, "error": outcome.error})


def _fail(catalog: Catalog, activation_id: str, target: Destination,
          exc: BaseException) -> None:
    message = _words(exc) if isinstance(exc, Exception) else f"interrupted ({type(exc).__name__})"
    catalog.update("activations", "id", activation_id, {
        "status": "failed", "finished_at": utcnow(), "error": message,
        "detail": {"kind": target.kind, "error_type": type(exc).__name__}})


def _words(exc: BaseException) -> str:
    if isinstance(exc, LikelyError):
        return exc.message
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")
