"""Webhook destinations: signed JSON batches over HTTP, retried, and dead-lettered if they fail.

Each batch is one POST whose body never changes between attempts, with:

- ``X-Likely-Signature: sha256=<hex HMAC-SHA256 of the body bytes>`` (secret from ``secret_env``);
- ``X-Likely-Timestamp``: when this attempt was sent (Unix seconds; not part of the signature);
- ``Idempotency-Key: <activation id>:<batch index>``, the same on every attempt of the batch, so
  a receiver that applied a batch whose answer was lost can recognise the retry.

Connection errors, time-outs, 408, 429 and 5xx are retried with exponential back-off and full
jitter (``Retry-After`` honoured, capped); any other answer is final. A batch that still fails is
appended to ``activations/<id>/dead_letter.jsonl`` with its exact body and signature, ready to
replay. After a few batches in a row fail, the receiver is taken to be down and the rest are
dead-lettered unsent rather than each waiting through its own retries.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from likely.activation.base import Delivery, Outcome
from likely.activation.destinations import env_value
from likely.activation.members import json_rows
from likely.catalog import utcnow
from likely.storage import write_bytes

MAX_BACKOFF_SECONDS = 30.0
CONSECUTIVE_FAILURES_TO_STOP = 3
_RETRY_STATUSES = {408, 425, 429}
Sleep = Callable[[float], None]

#: Replaced in tests that must not wait; everything else calls the real clock.
sleep: Sleep = time.sleep


@dataclass
class Attempts:
    """How one batch went: attempts made, the last answer, and whether it landed."""

    count: int = 0
    status: int | None = None
    error: str | None = None
    delivered: bool = False
    history: list[str] = field(default_factory=list)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a hop: a signed body never goes to another address."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def deliver(job: Delivery) -> Outcome:
    config = job.config
    secret = env_value(config, "secret_env").encode()
    size = config.get("batch_size", 1000)
    total = job.rows.num_rows
    count = _batch_count(total, size, job.mode)
    sent = failed = attempts = retried = 0
    letters: list[bytes] = []
    down = 0
    for index in range(count):
        rows = job.rows.slice(index * size, size)
        body = _body(job, index, count, rows)
        key = f"{job.activation_id}:{index}"
        signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if down >= CONSECUTIVE_FAILURES_TO_STOP:
            result = Attempts(error=f"not sent: the {down} batches before it failed")
        else:
            result = _post(config, body, key, signature)
        attempts += result.count
        retried += result.count > 1
        if result.delivered:
            sent += rows.num_rows
            down = 0
            job.report(sent)
        else:
            failed += 1
            down += 1
            letters.append(_dead_letter(config, index, key, body, signature, result))
    return _outcome(job, count, sent, failed, attempts, retried, letters)


def _batch_count(total: int, size: int, mode: str) -> int:
    """Batches to send; a full activation of an empty segment still says so in one batch."""
    if total == 0:
        return 0 if mode == "delta" else 1
    return -(-total // size)


def _body(job: Delivery, index: int, count: int, rows: Any) -> bytes:
    payload = {"activation_id": job.activation_id, "segment": job.segment_name,
               "segment_id": job.segment_id, "score_date": job.score_date, "mode": job.mode,
               "batch": index, "batches": count, "members": json_rows(rows)}
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, default=str,
                      separators=(",", ":")).encode()


def _post(config: dict, body: bytes, key: str, signature: str) -> Attempts:
    """POST one batch until it lands, fails for good, or runs out of attempts."""
    result = Attempts()
    limit = config.get("max_attempts", 5)
    while result.count < limit:
        result.count += 1
        retry, wait = _attempt(config, body, key, signature, result)
        if result.delivered or not retry or result.count >= limit:
            return result
        base = config.get("backoff_seconds", 1.0)
        jitter = random.uniform(0, base * 2 ** (result.count - 1))
        sleep(min(MAX_BACKOFF_SECONDS, max(jitter, wait or 0.0)))
    return result


def _attempt(config: dict, body: bytes, key: str, signature: str,
             result: Attempts) -> tuple[bool, float | None]:
    """One POST; records the answer in ``result``; returns (retry?, Retry-After seconds)."""
    request = urllib.request.Request(config["url"], data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "likely-activation",
        "X-Likely-Signature": signature, "X-Likely-Timestamp": str(int(time.time())),
        "Idempotency-Key": key})
    try:
        with _OPENER.open(request, timeout=config.get("timeout_seconds", 10.0)) as response:
            response.read()
            result.status, result.error = response.status, None
    except urllib.error.HTTPError as exc:
        result.status, result.error = exc.code, f"HTTP {exc.code} {exc.reason}"
        result.history.append(result.error)
        retry = exc.code in _RETRY_STATUSES or exc.code >= 500
        return retry, _retry_after(exc.headers.get("Retry-After"))
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        result.status, result.error = None, f"{type(reason).__name__}: {reason}"
        result.history.append(result.error)
        return True, None
    result.delivered = 200 <= result.status < 300
    if not result.delivered:
        result.error = f"HTTP {result.status}"
        result.history.append(result.error)
    return False, None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped; None if absent."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(MAX_BACKOFF_SECONDS, max(0.0, seconds))


def _dead_letter(config: dict, index: int, key: str, body: bytes, signature: str,
                 result: Attempts) -> bytes:
    line = {"idempotency_key": key, "batch": index, "url": config["url"],
            "headers": {"Content-Type": "application/json", "X-Likely-Signature": signature,
                        "Idempotency-Key": key},
            "body": body.decode(), "attempts": result.count, "last_status": result.status,
            "last_error": result.error, "errors": result.history, "failed_at": utcnow()}
    return json.dumps(line, ensure_ascii=False).encode() + b"\n"


def _outcome(job: Delivery, count: int, sent: int, failed: int, attempts: int, retried: int,
             letters: list[bytes]) -> Outcome:
    detail: dict[str, Any] = {"url": job.config["url"], "batch_size": job.config["batch_size"],
                              "attempts": attempts, "retried_batches": retried}
    if not failed:
        return Outcome("success", sent=sent, batches=count, detail=detail)
    path = write_bytes(b"".join(letters), job.folder / "dead_letter.jsonl")
    detail["dead_letter"] = str(path)
    status = "partial" if failed < count else "failed"
    error = (f"{failed} of {count} batch(es) were not delivered to {job.config['url']} "
             f"({json.loads(letters[-1])['last_error']}); they are kept with their signatures "
             f"in {path} to replay.")
    return Outcome(status, sent=sent, batches=count, failed_batches=failed, detail=detail,
                   error=error)
