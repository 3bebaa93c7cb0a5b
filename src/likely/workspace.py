"""The workspace: likely's front door for the CLI, the web app and Python users.

A workspace is a folder::

    <workspace>/
      catalog.sqlite        metadata: datasets, instances, runs, models, segments (SQLite, WAL)
      data/<dataset>/       ingested datasets as Parquet parts
      runs/<instance>/      run outputs (scores, explanations, models)

>>> ws = Workspace.create("/tmp/ws")                       # doctest: +SKIP
>>> ws.ingest_events(["events.csv"], name="events")        # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from datetime import date as date_type
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from likely.catalog import Catalog
from likely.config import InstanceConfig
from likely.data import datasets as _datasets
from likely.data.ingest import Dedupe, IngestReport, Progress, ingest
from likely.data.schema import DatasetKind
from likely.data.sources import SourceFormat
from likely.data.validate import OnError
from likely.engine import EngineSettings, connect, ingest_connection
from likely.errors import WorkspaceError

if TYPE_CHECKING:
    from datetime import date

    import ibis.expr.types as ir
    import pyarrow as pa
    from ibis.backends import BaseBackend

    from likely import activation as _activation
    from likely.scoring import instances as _instances
    from likely.scoring import records as _records
    from likely.segments import Segment

DEFAULT_PATH = "likely-workspace"
ENV_VAR = "LIKELY_WORKSPACE"
CATALOG = "catalog.sqlite"


def resolve_path(path: str | Path | None = None) -> Path:
    """``path``, else ``$LIKELY_WORKSPACE``, else ``./likely-workspace``."""
    return Path(path or os.environ.get(ENV_VAR) or DEFAULT_PATH).expanduser().resolve()


class Workspace:
    """An initialised workspace folder. Open one per process (or thread)."""

    def __init__(self, path: str | Path | None = None, *, engine: EngineSettings | None = None):
        self.path = resolve_path(path)
        if not (self.path / CATALOG).exists():
            raise WorkspaceError(
                f"No likely workspace at '{self.path}'. Create one with `likely init "
                f"{self.path}` (or pass --workspace / set {ENV_VAR})."
            )
        self.engine_settings = engine or EngineSettings(temp_directory=str(self.path / "tmp"))
        self.last_publish: dict | None = None

    @classmethod
    def create(cls, path: str | Path | None = None, *, exist_ok: bool = True) -> Workspace:
        """Create (or open, if ``exist_ok``) a workspace folder with an empty catalog."""
        root = resolve_path(path)
        if (root / CATALOG).exists() and not exist_ok:
            raise WorkspaceError(f"A workspace already exists at '{root}'.")
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"'{root}' exists and is not a folder.")
        for sub in ("data", "runs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        Catalog(root / CATALOG).close()
        return cls(root)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.path / CATALOG)

    @cached_property
    def con(self) -> BaseBackend:
        """The engine connection (DuckDB by default), opened on first use."""
        return connect(self.engine_settings)

    @cached_property
    def ingest_con(self) -> BaseBackend:
        """The connection ingest reads source files with: DuckDB on this machine, whatever the
        engine (Spark reads the Parquet it writes); the engine connection itself on DuckDB."""
        if self.engine_settings.backend == "duckdb":
            return self.con
        return ingest_connection(self.engine_settings)

    # -- data in -------------------------------------------------------------------------------

    def ingest(
        self,
        kind: DatasetKind,
        paths: Sequence[str | Path],
        name: str,
        *,
        format: SourceFormat | None = None,
        column_map: Mapping[str, str] | None = None,
        on_error: OnError = "fail",
        allow_duplicate_file: bool = False,
        dedupe: Dedupe = "auto",
        progress: Progress | None = None,
    ) -> IngestReport:
        """Add files to a dataset of ``kind`` ('events' or 'profiles'), creating it if new.

        Every row is kept unless ``dedupe`` says otherwise: ``auto`` drops rows whose
        ``event_id`` was already seen (when there is one), ``exact`` drops identical rows,
        ``none`` keeps everything.
        """
        return ingest(
            self.catalog, self.ingest_con, self.path, kind, paths, name, fmt=format,
            column_map=column_map, on_error=on_error,
            allow_duplicate_file=allow_duplicate_file, dedupe=dedupe, now=datetime.now(UTC),
            progress=progress,
        )

    def ingest_events(self, paths: Sequence[str | Path], name: str, **options) -> IngestReport:
        return self.ingest("events", paths, name, **options)

    def ingest_profiles(self, paths: Sequence[str | Path], name: str, **options) -> IngestReport:
        return self.ingest("profiles", paths, name, **options)

    def datasets(self) -> list[_datasets.Dataset]:
        return _datasets.list_datasets(self.catalog, self.path)

    def dataset(self, name: str) -> _datasets.Dataset:
        return _datasets.get_dataset(self.catalog, self.path, name)

    def table(self, name: str) -> ir.Table:
        """A dataset as an Ibis table (lazy: nothing is read until a result is asked for)."""
        return _datasets.open_dataset(self.con, self.dataset(name))

    def delete_dataset(self, name: str, *, force: bool = False) -> list[str]:
        """Delete a dataset; returns the instances that used it (only possible with ``force``)."""
        return _datasets.delete_dataset(self.catalog, self.path, name, force=force)

    # -- instances ----------------------------------------------------------------------------

    def create_instance(self, config: InstanceConfig | dict) -> _instances.Instance:
        """Create a prediction instance after checking it against its datasets."""
        if isinstance(config, dict):
            from likely.config import parse_instance_config

            config = parse_instance_config(config)
        from likely.scoring import instances as _instances

        return _instances.create_instance(self.catalog, self.path, config)

    def check_instance(self, config: InstanceConfig) -> None:
        """Refuse a config whose datasets, columns or conditions do not fit the data."""
        from likely.scoring import instances as _instances

        _instances.check_config(self.catalog, self.path, config)

    def instances(self) -> list[_instances.Instance]:
        from likely.scoring import instances as _instances

        return _instances.list_instances(self.catalog)

    def instance(self, name: str) -> _instances.Instance:
        from likely.scoring import instances as _instances

        return _instances.get_instance(self.catalog, name)

    def edit_instance(self, name: str, /, **changes) -> _instances.Instance:
        """Change name, description, schedule or retraining (anything else needs a clone).

        ``ws.edit_instance("buyers", name="buyers-eu")`` renames: ``name`` is positional-only.
        """
        from likely.scoring import instances as _instances

        return _instances.edit_instance(self.catalog, name, changes)

    def clone_instance(self, name: str, new_name: str, /, **overrides) -> _instances.Instance:
        from likely.scoring import instances as _instances

        return _instances.clone_instance(self.catalog, self.path, name, new_name, overrides)

    def delete_instance(self, name: str, *, keep_outputs: bool = False) -> _instances.Instance:
        from likely.scoring import instances as _instances

        return _instances.delete_instance(self.catalog, self.path, name,
                                          keep_outputs=keep_outputs)

    # -- runs and outputs ---------------------------------------------------------------------

    def run(self, name: str, *, as_of: date | None = None, progress=None,
            retrain: bool = False) -> _records.RunRecord:
        """Score, explain and write outputs for an instance; returns the run record. It trains
        a new model when retraining is due (``retrain_days``, drift) or asked for (``retrain``),
        and otherwise re-scores with the current model.

        After a successful run, the instance's automatic segments are refreshed and every
        published segment reading it gets a new membership (the report: ``last_publish``).
        """
        from likely.scoring.records import SUCCESS
        from likely.scoring.run import run_instance

        record = run_instance(self.catalog, self.con, self.path, self.instance(name),
                              as_of=as_of, progress=progress, retrain=retrain,
                              threads=self.engine_settings.resolved_threads())
        self.last_publish = None
        if record.status == SUCCESS:  # a failed run leaves every membership as it was
            if progress is not None:
                progress("segments", 0, 1)
            self.last_publish = self.publish_after_run(
                name, as_of=date_type.fromisoformat(record.as_of))
        return record

    def due(self, now: datetime | None = None) -> list[tuple[_instances.Instance, datetime]]:
        """Scheduled instances with a run due now, each with the moment it is due for."""
        from likely.schedules import due_instances

        return due_instances(self.catalog, now or datetime.now(UTC))

    def run_due(self, now: datetime | None = None, progress=None) -> list[dict]:
        """Run every instance that is due, one after the other (cron, systemd timers and
        ``likely serve`` call this). An instance already running is skipped, never doubled."""
        from likely.errors import BusyError, LikelyError

        done = []
        for instance, moment in self.due(now):
            entry = {"instance": instance.name, "due": moment.isoformat()}
            try:
                entry["run"] = self.run(instance.name, progress=progress).to_dict()
            except BusyError as exc:
                entry["skipped"] = exc.message
            except LikelyError as exc:
                entry["error"] = exc.message
            done.append(entry)
        return done

    def backfill(self, name: str, start: date, end: date, *, every_days: int = 7,
                 progress=None, retrain: bool = False) -> list[_records.RunRecord]:
        """Score as of every ``every_days`` from ``start`` to ``end``, oldest first, each with
        only the data before its date: a new instance gets a history at once. The first date
        trains (unless an earlier model exists); the others re-score with it until retraining
        is due. Stops at the first failed date (its error says which)."""
        from likely.scoring.backfill import backfill_dates

        done = []
        dates = backfill_dates(start, end, every_days)
        for i, day in enumerate(dates):
            if progress is not None:
                progress(f"backfill {day} ({i + 1}/{len(dates)})", i, len(dates))
            done.append(self.run(name, as_of=day, retrain=retrain and i == 0))
        return done

    def runs(self, name: str) -> list[_records.RunRecord]:
        from likely.scoring import records as _records

        return _records.list_runs(self.catalog, self.instance(name).id)

    def get_run(self, name: str, run_id: str | None = None) -> _records.RunRecord:
        """A run of the instance: ``run_id``, or the newest run of any status."""
        from likely.scoring import results as _results

        return _results.find_run(self.catalog, self.instance(name), run_id)

    def scores(self, name: str, *, profile_id: str | None = None,
               top: int | None = None) -> pa.Table:
        """Current scores (profile format), optionally one profile or the top N by score."""
        from likely.scoring import results as _results

        return _results.scores(self.catalog, self.con, self.path, self.instance(name),
                               profile_id=profile_id, top=top)

    def score_history(self, name: str) -> ir.Table:
        """Event format: one row per profile per successful run (score date)."""
        from likely.scoring import results as _results

        return _results.history(self.catalog, self.con, self.path, self.instance(name))

    def explain(self, name: str, profile_id: str) -> dict:
        """A profile's current score and reason codes, plus its score history."""
        from likely.scoring import results as _results

        return _results.explain_profile(self.catalog, self.con, self.path,
                                        self.instance(name), profile_id)

    def factors(self, name: str) -> dict:
        """Global influential factors of the current run, with per-bucket distributions."""
        from likely.scoring import results as _results

        return _results.factors(self.catalog, self.path, self.instance(name))

    def export(self, name: str, out: str | Path, *, format: str = "parquet") -> Path:
        """Write the current profile-format scores to CSV, Parquet or JSON Lines."""
        from likely.scoring import results as _results

        return _results.export(self.catalog, self.con, self.path, self.instance(name),
                               Path(out), format)

    # -- what the dashboard shows -------------------------------------------------------------

    def overview(self) -> list[dict]:
        """Every instance's line in the list: status, last run, profiles scored (this year too)."""
        return [self.instance_overview(i.name) for i in self.instances()]

    def instance_overview(self, name: str) -> dict:
        """One instance's line in the list."""
        from likely.scoring import results as _results

        return _results.overview(self.catalog, self.instance(name), datetime.now(UTC).year)

    def summary(self, name: str, run_id: str | None = None) -> dict:
        """A successful run's summary (default: the current run): buckets, histogram, targeting
        curve, each bucket's top factors and their value distributions."""
        from likely.scoring import results as _results

        return _results.run_summary(self.catalog, self.con, self.path, self.instance(name),
                                    run_id)

    def lifetime_value(self, name: str, run_id: str | None = None) -> dict:
        """A clv instance's run (default: the current run) at a glance: the predicted value's
        distribution, each value bucket's worth, its top behaviours, and the holdout comparison
        of the two value models."""
        from likely.scoring import value_summary as _value

        return _value.value_summary(self.catalog, self.con, self.path, self.instance(name),
                                    run_id)

    def targeting(self, name: str, *, size: int | None = None,
                  threshold: float | None = None) -> dict:
        """What an audience of the top ``size`` (or everyone scoring ≥ ``threshold``) buys:
        expected goal profiles, precision and the share of all expected goal profiles."""
        from likely.scoring import results as _results

        return _results.targeting(self.catalog, self.con, self.path, self.instance(name),
                                  size=size, threshold=threshold)

    def evaluation(self, name: str, run_id: str | None = None) -> dict:
        """Holdout quality of a run's model (default: the current run), graded in words; for a
        clv instance, its two value models compared side by side (``models``)."""
        from likely.scoring import results as _results
        from likely.scoring import value_summary as _value

        instance = self.instance(name)
        found = _results.evaluation(self.catalog, instance, run_id)
        if instance.config.type == "clv":
            found.update(models=_value.compare_models(found),
                         horizon_days=instance.config.horizon_days)
        return found

    def performance(self, name: str) -> dict:
        """Expected against actual rates of the past runs whose outcome window has passed."""
        from likely.scoring import results as _results

        return _results.performance(self.catalog, self.path, self.instance(name))

    # -- segments -----------------------------------------------------------------------------

    def create_segment(self, name: str, rule: str, *, description: str = "",
                       published: bool = True) -> Segment:
        """Save a segment. A published one gets memberships now at the last few score dates of
        its instances (so it has a history from the start), and a new one after every run of
        the instances it reads."""
        from likely import segments

        segment = segments.create_segment(self.catalog, self.path, name, rule,
                                          description=description, published=published)
        if published:
            self._publish_if_scored(segment)
        return segment

    def create_bucket_segment(self, name: str, instance: str, bucket: str, *,
                              description: str = "") -> Segment:
        """A segment of one bucket of an instance's latest scores (the dashboard's cards)."""
        from likely import segments

        rule = segments.bucket_rule(self.instance(instance), bucket)
        return self.create_segment(name, rule, description=description)

    def edit_segment(self, name: str, /, *, new_name: str | None = None,
                     rule: str | None = None, description: str | None = None,
                     published: bool | None = None, hidden: bool | None = None) -> Segment:
        """Change a segment. A new rule restarts its membership history."""
        from likely import segments

        segment = segments.edit_segment(self.catalog, self.path, name, new_name=new_name,
                                        rule=rule, description=description,
                                        published=published, hidden=hidden)
        if segment.published and (rule is not None or published):
            self._publish_if_scored(segment)
        return segment

    def segments(self, *, hidden: bool = False) -> list[Segment]:
        from likely import segments

        return segments.list_segments(self.catalog, hidden=hidden)

    def segment(self, name: str) -> Segment:
        from likely import segments

        return segments.get_segment(self.catalog, name)

    def segment_fields(self) -> dict:
        """What a rule may read: each instance's score fields and the profile attributes."""
        from likely import segments

        return segments.available_fields(self.catalog, self.path)

    def preview_segment(self, rule: str, *, sample: int = 20) -> dict:
        """A rule's size and a sample of its members at the current scores, before saving."""
        from likely import segments

        return segments.preview(self.catalog, self.con, self.path, rule, sample=sample)

    def rule_in_words(self, rule: str) -> str:
        """A segment rule as a sentence ("buyers bucket is High and …"); refuses a bad rule."""
        from likely import segments

        return segments.rule_in_words(segments.check_rule(self.catalog, self.path, rule))

    def segment_size(self, name: str) -> dict:
        """How many profiles the segment selects from the instances' current runs."""
        from likely import segments

        return segments.size(self.catalog, self.con, self.path, self.segment(name))

    def show_segment(self, name: str, *, sample: int = 20) -> dict:
        """Rule in words, size, size per run, entered/left since the previous run, a sample."""
        from likely import segments

        return segments.show(self.catalog, self.con, self.path, self.segment(name),
                             sample=sample)

    def segment_members(self, name: str, *, as_of: date | None = None) -> ir.Table:
        """Members at the newest score date on or before ``as_of`` (default: now)."""
        from likely import segments

        return segments.segment_members(self.catalog, self.con, self.path, self.segment(name),
                                        as_of)

    def export_segment(self, name: str, out: str | Path, *, format: str = "csv",
                       as_of: date | None = None) -> Path:
        """Write a segment's members (ids, scores, the attributes its rule reads)."""
        from likely.storage import export_expr

        return export_expr(self.segment_members(name, as_of=as_of), Path(out), format)

    def publish_segment(self, name: str, *, as_of: date | None = None) -> dict:
        """Materialise the membership now (or as of a date) and keep publishing after runs."""
        from likely import segments

        segment = self.segment(name)
        if not segment.published:
            segment = segments.edit_segment(self.catalog, self.path, name, published=True)
        return segments.publish(self.catalog, self.con, self.path, segment, as_of)

    def segment_history(self, name: str) -> list[dict]:
        from likely import segments

        return segments.history(self.catalog, self.con, self.path, self.segment(name))

    def delete_segment(self, name: str) -> Segment:
        from likely import segments

        return segments.delete_segment(self.catalog, self.path, name)

    # -- activation ---------------------------------------------------------------------------

    def add_destination(self, name: str, kind: str, config: dict) -> _activation.Destination:
        """Save where segments can be sent (folder, webhook, table); secrets stay in the
        environment variables the config names."""
        from likely import activation

        return activation.add_destination(self.catalog, name, kind, config)

    def destinations(self) -> list[_activation.Destination]:
        from likely import activation

        return activation.list_destinations(self.catalog)

    def remove_destination(self, name: str) -> _activation.Destination:
        from likely import activation

        return activation.remove_destination(self.catalog, name)

    def activate_segment(self, name: str, destination: str, *, mode: str | None = None,
                         as_of: date | None = None, progress=None) -> _activation.Activation:
        """Send the segment's current members (or those as of a date) to a destination; the
        outcome is logged, failed batches kept for replay."""
        from likely import activation, segments

        segment = self.segment(name)
        members = self.segment_members(name, as_of=as_of)
        score_date = segments.members_date(self.catalog, self.path, segment, as_of)
        return activation.activate(self.catalog, self.path, destination,
                                   segment_id=segment.id, segment_name=segment.name,
                                   score_date=score_date, members=members.to_pyarrow(),
                                   mode=mode, progress=progress)

    def activations(self, segment: str | None = None, *,
                    limit: int = 50) -> list[_activation.Activation]:
        """The activation log, newest first (of one segment, or all)."""
        from likely import activation

        segment_id = self.segment(segment).id if segment else None
        return activation.list_activations(self.catalog, segment_id=segment_id, limit=limit)

    def publish_after_run(self, name: str, *, as_of: date | None = None) -> dict:
        """Refresh the instance's automatic segments and publish the segments reading it."""
        from likely import segments

        return segments.after_run(self.catalog, self.con, self.path, self.instance(name),
                                  as_of)

    def _publish_if_scored(self, segment: Segment) -> None:
        import contextlib

        from likely import segments
        from likely.errors import NotFoundError

        with contextlib.suppress(NotFoundError):  # no scores yet: the first run publishes it
            segments.publish_history(self.catalog, self.con, self.path, segment)

    # -- analytics ----------------------------------------------------------------------------

    def analytics(self, name: str, kind: str, **options) -> dict:
        """One analytic of the instance's score history (``trend``, ``flow``, ``overlap``,
        ``distribution``, ``reasons``, ``cohorts``, ``outcomes``) as a JSON-ready dict.

        Filters: ``segment=`` (members at the segment's newest score date), ``bucket=`` (rows in
        that bucket at their score date), ``where=`` (a condition over profile attributes, read
        point-in-time); ``runs=`` (ids or score dates, ``"all"``); and the analytic's own options
        (``bins``, ``top``, ``attribute``). See :mod:`likely.analytics`.
        """
        from likely import analytics

        return analytics.analyse(self.catalog, self.con, self.path, self.instance(name), kind,
                                 **options)
