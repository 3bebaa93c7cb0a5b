"""A run: train on past anchors, score everyone eligible now, explain, write outputs.

The stages hand each other plain data. Every failure of a requirement is a coded
:class:`~likely.errors.RunError`; the run is recorded with that status and code, and nothing the
previous successful run wrote is touched (this run's files go to its own folder, which only
becomes current when the catalog marks the run successful).
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from likely.catalog import Catalog, utcnow
from likely.conditions import Condition, combine, parse_condition
from likely.config import InstanceConfig
from likely.data.datasets import get_dataset, open_dataset
from likely.data.profiles import Profiles
from likely.data.quality import id_overlap
from likely.errors import LikelyError, RunError
from likely.model.labels import Exclusion, GoalRule, PopulationRule
from likely.scoring import pipeline, records, retraining
from likely.scoring.instances import Instance, outputs_dir
from likely.scoring.records import FAILED, RUNNING, SUCCESS, SUPERSEDED, RunRecord
from likely.scoring.windows import event_span, plan_windows
from likely.storage import exclusive_lock, write_json

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

Progress = Callable[[str, int, int], None]
MIN_ID_OVERLAP = 0.5  # below this share of event profiles found in the profiles: a note


@dataclass
class RunContext:
    """What every stage of one run can see; stages record timings, counts and notes here."""

    catalog: Catalog
    con: BaseBackend
    root: Path
    instance: Instance
    run_id: str
    folder: Path
    progress: Progress | None = None
    threads: int = 1  # for DuckDB and LightGBM alike
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> InstanceConfig:
        return self.instance.config

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.report(name, 0, 1)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - started, 3)

    def report(self, what: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(what, done, total)


@dataclass(frozen=True)
class RunInputs:
    """The instance's data and rules, compiled against the datasets."""

    events: ir.Table
    profiles: Profiles | None
    population: PopulationRule
    goal: GoalRule
    custom_events: dict[str, Condition]


def run_instance(
    catalog: Catalog,
    con: BaseBackend,
    root: Path,
    instance: Instance,
    *,
    as_of: date | None = None,
    progress: Progress | None = None,
    threads: int = 1,
    retrain: bool = False,
) -> RunRecord:
    """Run an instance at ``as_of`` (default: the newest event's date) and return its record.

    It trains a new model when retraining is due (or ``retrain``), else re-scores with the
    current one (see :mod:`likely.scoring.retraining`). Raises :class:`RunError` (after
    recording the failed run) when a requirement is not met.
    Only one run of an instance at a time: a second one is refused with a BusyError.
    """
    lock = outputs_dir(root, instance.id) / ".lock"
    with exclusive_lock(lock, f"Instance '{instance.name}'"):
        _close_interrupted_runs(catalog, root, instance)
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        folder = records.run_dir(root, instance.id, run_id)
        ctx = RunContext(catalog, con, root, instance, run_id, folder, progress, threads)
        with catalog.transaction():
            catalog.insert("runs", {"id": run_id, "instance_id": instance.id,
                                    "as_of": (as_of or date.min).isoformat(), "status": RUNNING,
                                    "started_at": utcnow()})
        try:
            resolved_as_of, model_id = _execute(ctx, as_of, retrain)
        except LikelyError as exc:
            _finish_failed(ctx, exc)
            raise
        except BaseException as exc:  # a bug, or Ctrl-C: the record still says what happened
            what = "Interrupted" if isinstance(exc, KeyboardInterrupt) else "Unexpected failure"
            _finish_failed(ctx, LikelyError(f"{what}: {exc!r}"))
            raise
        return _finish_success(ctx, resolved_as_of, model_id)


def _close_interrupted_runs(catalog: Catalog, root: Path, instance: Instance) -> None:
    """Runs still 'running' while we hold the instance's lock died with their process."""
    stale = catalog.query("SELECT id FROM runs WHERE instance_id = ? AND status = ?",
                          (instance.id, RUNNING))
    for row in stale:
        with catalog.transaction():
            catalog.update("runs", "id", row["id"], {
                "status": FAILED, "finished_at": utcnow(),
                "error": "Interrupted: the process running it ended before it finished."})
        shutil.rmtree(records.run_dir(root, instance.id, row["id"]), ignore_errors=True)


def _execute(ctx: RunContext, as_of: date | None, retrain: bool) -> tuple[date, str]:
    with ctx.stage("prepare"):
        inputs = _compile_inputs(ctx)
        windows = plan_windows(ctx.config, event_span(inputs.events), as_of)
        if inputs.profiles is not None:  # static attributes are read up to the cutoff only
            inputs = replace(inputs, profiles=replace(inputs.profiles, horizon=windows.cutoff))
        ctx.metrics["windows"] = windows.to_dict()
        ctx.notes.extend(windows.notes())
        _check_profile_ids(ctx, inputs)
        with ctx.catalog.transaction():
            ctx.catalog.update("runs", "id", ctx.run_id, {"as_of": windows.as_of.isoformat()})
    decision = retraining.decide(ctx.catalog, ctx.instance, windows.as_of, force=retrain)
    retraining.record(ctx, decision, windows.as_of)
    stages = pipeline
    if ctx.config.type == "clv":  # imported here: its scipy costs every other run 1 s to load
        from likely.scoring import lifetime_value as stages
    if decision.retrain:
        model_id = stages.train_and_score(ctx, inputs, windows)
    else:
        model, model_id, plan = retraining.reuse(ctx, decision.base)
        model_id = stages.rescore(ctx, inputs, windows, model, model_id, plan)
    return windows.as_of, model_id


def _compile_inputs(ctx: RunContext) -> RunInputs:
    cfg = ctx.config
    events = open_dataset(ctx.con, get_dataset(ctx.catalog, ctx.root, cfg.datasets.events))
    schema = dict(events.schema().items())
    profiles = None
    if cfg.datasets.profiles:
        table = open_dataset(ctx.con, get_dataset(ctx.catalog, ctx.root, cfg.datasets.profiles))
        profiles = Profiles.of(table, cfg.static_attributes)
    total = int(events.count().execute())
    ctx.counts["events"] = total
    if total == 0:
        raise RunError(412, f"Dataset '{cfg.datasets.events}' has no events. Ingest data first.")
    if cfg.exclusions:
        excluded = combine([parse_condition(c, schema) for c in cfg.exclusions], "any", events)
        events = events.filter(~excluded.fill_null(False))
        kept = int(events.count().execute())
        ctx.counts["events_after_exclusions"] = kept
        if kept == 0:
            raise RunError(411, f"No events left after the exclusions ({total:,} excluded). "
                                "Check the exclusion conditions.")
    profile_schema = {}
    if profiles is not None:
        profile_schema = {c: t for c, t in profiles.table.schema().items()
                          if c in profiles.attributes}
    pop = cfg.population
    population = PopulationRule(
        conditions=tuple(parse_condition(c, schema) for c in pop.conditions),
        match=pop.match, lookback_days=pop.lookback_days,
        profile_conditions=tuple(parse_condition(c, profile_schema)
                                 for c in pop.profile_conditions),
        exclusions=tuple(Exclusion(parse_condition(rule.condition, schema), rule.lookback_days)
                         for rule in pop.exclude_if),
        requires_activity=pop.requires_activity,
    )
    goal = GoalRule(conditions=tuple(parse_condition(c, schema) for c in cfg.goal.conditions),
                    match=cfg.goal.match, occurs=cfg.goal.occurs,
                    window_days=cfg.goal.window_days)
    custom = {name: parse_condition(text, schema) for name, text in cfg.custom_events.items()}
    return RunInputs(events, profiles, population, goal, custom)


def _check_profile_ids(ctx: RunContext, inputs: RunInputs) -> None:
    """Say so when the events' and the profiles' ids barely overlap (two id namespaces)."""
    if inputs.profiles is None:
        return
    overlap = id_overlap(inputs.events, inputs.profiles.table)
    ctx.counts["profiles_matched"] = overlap["matched"]
    if overlap["share"] < MIN_ID_OVERLAP:
        ctx.notes.append(
            f"Only {overlap['share']:.0%} of the profiles in the events ({overlap['matched']:,} "
            f"of {overlap['event_profiles']:,}) appear in profiles dataset "
            f"'{ctx.config.datasets.profiles}': check that both use the same ids (e.g. '123' "
            "against 'C-123'). Profile attributes are missing for the others.")


def _finish_success(ctx: RunContext, as_of: date, model_id: str) -> RunRecord:
    stamp = utcnow()
    previous = [r for r in records.successful_runs(ctx.catalog, ctx.instance.id)
                if r.as_of == as_of.isoformat()]
    values = {"status": SUCCESS, "finished_at": stamp, "model_id": model_id,
              "timings": ctx.timings, "counts": ctx.counts, "metrics": ctx.metrics,
              "notes": ctx.notes}
    write_json({"id": ctx.run_id, "instance_id": ctx.instance.id, "as_of": as_of.isoformat(),
                **values}, ctx.folder / "run.json")
    with ctx.catalog.transaction():
        ctx.catalog.update("runs", "id", ctx.run_id, values)
        for old in previous:
            ctx.catalog.update("runs", "id", old.id, {"status": SUPERSEDED})
    for old in previous:  # re-running a score date replaces that date's outputs
        shutil.rmtree(records.run_dir(ctx.root, ctx.instance.id, old.id), ignore_errors=True)
    return records.get_run(ctx.catalog, ctx.run_id)


def _finish_failed(ctx: RunContext, exc: LikelyError) -> None:
    status = exc.status if isinstance(exc, RunError) else FAILED
    code = exc.code if isinstance(exc, RunError) and exc.code else None
    with ctx.catalog.transaction():
        ctx.catalog.update("runs", "id", ctx.run_id, {
            "status": status, "finished_at": utcnow(), "timings": ctx.timings,
            "counts": ctx.counts, "metrics": ctx.metrics, "notes": ctx.notes,
            "error_code": code, "error": exc.message})
    shutil.rmtree(ctx.folder, ignore_errors=True)
    exc.detail.setdefault("run_id", ctx.run_id)
