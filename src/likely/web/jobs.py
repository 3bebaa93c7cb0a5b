"""Runs started from the dashboard: one background thread per run, at most one per instance.

The engine's per-instance lock already refuses a second run of an instance (from the CLI too);
this registry refuses it earlier and keeps each run's stage and progress for the page to show.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from likely.errors import BusyError, LikelyError


@dataclass
class RunJob:
    instance: str
    state: str = "running"  # running, success, failed
    stage: str = "starting"
    done: int = 0
    total: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None
    run_id: str | None = None
    error: str | None = None
    stages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "elapsed_s": round((self.finished or time.time()) - self.started,
                                                   1)}


class RunJobs:
    """The dashboard's background runs, by instance name."""

    def __init__(self, workspace_path: Path) -> None:
        self.path = workspace_path
        self._jobs: dict[str, RunJob] = {}
        self._lock = threading.Lock()

    def get(self, instance: str) -> RunJob | None:
        with self._lock:
            return self._jobs.get(instance)

    def start(self, instance: str, as_of: date | None = None) -> RunJob:
        with self._lock:
            current = self._jobs.get(instance)
            if current is not None and current.state == "running":
                raise BusyError(f"Instance '{instance}' is already running (started "
                                f"{current.to_dict()['elapsed_s']:.0f} s ago). Wait for it "
                                "to finish.")
            job = self._jobs[instance] = RunJob(instance)
        thread = threading.Thread(target=self._run, args=(job, as_of), daemon=True,
                                  name=f"likely-run-{instance}")
        thread.start()
        return job

    def _run(self, job: RunJob, as_of: date | None) -> None:
        from likely.workspace import Workspace

        def progress(what: str, done: int, total: int) -> None:
            if what != job.stage:
                job.stages.append(what)
            job.stage, job.done, job.total = what, done, total

        try:
            ws = Workspace(self.path)  # its own catalog and engine connection
            record = ws.run(job.instance, as_of=as_of, progress=progress)
            job.run_id, job.state = record.id, "success"
        except LikelyError as exc:
            job.state, job.error = "failed", exc.message
            job.run_id = exc.detail.get("run_id")
        except Exception as exc:  # a bug: the run record says so too
            job.state, job.error = "failed", f"Unexpected failure: {exc!r}"
        finally:
            job.finished = time.time()


class Scheduler:
    """Starts the runs that schedules make due, as background jobs (``likely serve``).

    Each check asks the workspace which instances are due at ``clock()`` and starts a job for
    each one not already running here; the engine's lock refuses one running elsewhere (a CLI
    run, ``likely run --due`` from cron). ``check`` is one pass, so tests drive it with their
    own clock; ``start`` repeats it every ``interval`` seconds in a daemon thread.
    """

    def __init__(self, jobs: RunJobs, clock: Callable[[], datetime] | None = None,
                 interval: float = 30.0) -> None:
        self.jobs = jobs
        self.clock = clock or (lambda: datetime.now(UTC))
        self.interval = interval
        self._stop = threading.Event()

    def check(self) -> list[str]:
        """Start the due runs; returns the instances started."""
        from likely.workspace import Workspace

        started = []
        for instance, _moment in Workspace(self.jobs.path).due(self.clock()):
            try:
                self.jobs.start(instance.name)
                started.append(instance.name)
            except BusyError:  # already running here: never a second one
                continue
        return started

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._loop, daemon=True, name="likely-scheduler")
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:  # one bad check must not stop every later schedule: say it
                logging.getLogger("likely.scheduler").exception("Schedule check failed")
            self._stop.wait(self.interval)
