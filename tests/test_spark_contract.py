"""The engine contract: the same run on DuckDB and on PySpark (``local[2]``) gives the same answer.

One small end-to-end run of one instance on tiny demo data (400 profiles, 120 days), ingested
once with DuckDB and copied into one workspace per engine: the training rows (features and
labels), the features at the score date, the scores (within 1e-9), the run's counts and metrics,
and what is read from the run afterwards (summary, targeting, segments, analytics, exports)
must agree. One Spark session serves the whole module and is stopped with its JVM at the end.

Marked ``spark``; skipped, saying why, where PySpark or Java is missing (``make test`` installs
both: the ``spark`` extra and Debian's ``openjdk-17-jre-headless``).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from likely.data import demo
from likely.engine import (
    EngineSettings,
    connect,
    ingest_connection,
    read_parquet,
    spark_missing,
    stop_spark,
    write_parquet,
)
from likely.errors import ConfigError
from likely.scoring import pipeline
from likely.scoring.records import SUCCESS, run_dir
from likely.workspace import Workspace

MISSING = spark_missing()  # why Spark cannot start here (its tests skip saying so), or None

TOLERANCE = 1e-9
# Loopback only, no web UI, two shuffle partitions for two cores: a tiny run's Spark jobs are
# bounded by per-stage overhead, not data.
SPARK_CONF = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
}
SPARK = EngineSettings(backend="spark", spark_master="local[2]", spark_conf=SPARK_CONF)
DUCKDB = EngineSettings(backend="duckdb")

INSTANCE = {
    "name": "buyers",
    "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "population": {"profile_conditions": ["country <> 'SE'"]},
    "custom_events": {"abandoned checkout": "event_type = 'commerce.checkouts'"},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "static_attributes": ["loyalty_tier", "country"],
    "min_positives": 20, "min_negatives": 20,
}
SEGMENT_RULE = "buyers.percentile >= 80 AND loyalty_tier <> 'bronze'"
ANALYTICS = {"trend": {}, "flow": {}, "overlap": {}, "distribution": {"bins": 10},
             "reasons": {"top": 5},
             "cohorts": {"attribute": "loyalty_tier"}, "outcomes": {}}


FIRST = date(2025, 3, 31)  # the first run; the second scores the data's newest day, 2025-04-30


@dataclass
class Outcome:
    """One engine's two runs and what was read from them afterwards."""

    ws: Workspace
    records: list
    training: pipeline.TrainingSet  # the first run's training rows
    seconds: list[float]
    read: dict


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Tiny demo data ingested once (ingest is DuckDB's on either engine)."""
    root = tmp_path_factory.mktemp("contract")
    data = demo.generate(root / "data", profiles=400, days=120, seed=5)
    ws = Workspace.create(root / "base")
    ws.ingest_events([data.events_path], "events")
    ws.ingest_profiles([data.profiles_path], "profiles")
    return root / "base"


@pytest.fixture(scope="module")
def spark_session():
    """The module's one Spark session; stopped with its JVM after the module."""
    if MISSING is not None:
        pytest.skip(f"Spark contract: {MISSING}")
    con = connect(SPARK)
    yield con
    stop_spark()


def scenario(base: Path, path: Path, settings: EngineSettings) -> Outcome:
    """Train and score on 2025-03-31, then run on 2025-04-30 (its outcome window has passed by
    then; the second run re-scores or retrains as the first run's drift says, on both engines
    alike); a segment published before any run gets a membership after each."""
    shutil.copytree(base, path)
    ws = Workspace(path, engine=settings)
    ws.create_instance(INSTANCE)
    ws.create_segment("top", SEGMENT_RULE)
    captured: list[pipeline.TrainingSet] = []
    original = pipeline.training_set

    def capture(*args, **kwargs):
        captured.append(original(*args, **kwargs))
        return captured[-1]

    records, seconds = [], []
    pipeline.training_set = capture
    try:
        for as_of in (FIRST, None):
            started = time.perf_counter()
            records.append(ws.run("buyers", as_of=as_of))
            seconds.append(time.perf_counter() - started)
            assert records[-1].status == SUCCESS, records[-1].error
    finally:
        pipeline.training_set = original
    top = ws.scores("buyers", top=3).to_pylist()
    read = {
        "summary": ws.summary("buyers"),
        "targeting": ws.targeting("buyers", size=40),
        "performance": ws.performance("buyers"),
        "scores_top": top,
        "explain": ws.explain("buyers", top[0]["profile_id"]),
        "preview": ws.preview_segment(SEGMENT_RULE, sample=5),
        "segment": ws.show_segment("top", sample=5),
        "members": sorted(ws.segment_members("top").to_pyarrow().column("profile_id")
                          .to_pylist()),
        "history": ws.score_history("buyers").order_by(["profile_id", "score_date"])
                     .select("profile_id", "score_date", "probability", "bucket")
                     .to_pyarrow().to_pylist(),
        **{f"analytics {kind}": ws.analytics("buyers", kind, **options)
           for kind, options in ANALYTICS.items()},
        "analytics filtered": ws.analytics("buyers", "trend", segment="top",
                                           where="loyalty_tier IN ('gold', 'platinum')"),
        "export": {fmt: ws.export("buyers", path / f"scores.{fmt}", format=fmt)
                   for fmt in ("parquet", "csv", "jsonl")},
    }
    return Outcome(ws, records, captured[0], seconds, read)


@pytest.fixture(scope="module")
def runs(spark_session, base: Path, tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("engines")
    outcomes = {"duckdb": scenario(base, root / "duckdb", DUCKDB),
                "spark": scenario(base, root / "spark", SPARK)}
    assert outcomes["spark"].ws.con.name == "pyspark"
    print("\ncontract runs: DuckDB " + " + ".join(f"{s:.1f}" for s in outcomes["duckdb"].seconds)
          + " s, Spark local[2] " + " + ".join(f"{s:.1f}" for s in outcomes["spark"].seconds)
          + " s")
    return outcomes


def run_file(outcome: Outcome, run: int, name: str) -> pa.Table:
    ws, record = outcome.ws, outcome.records[run]
    return pq.read_table(run_dir(ws.path, ws.instance("buyers").id, record.id) / name)


def without_ids(value):
    """JSON of a result with run, model, instance and segment ids and engine folders masked."""
    text = json.dumps(value, sort_keys=True, default=str)
    text = re.sub(r"\b(run|model|seg)-[0-9a-f]{12}\b", r"\1-ID", text)
    text = re.sub(r"\bbuyers-[0-9a-f]{8}\b", "buyers-ID", text)
    text = re.sub(r"\"[^\"]*_at\": \"[^\"]*\"", '"_at": "T"', text)
    text = re.sub(r"/(duckdb|spark)/", "/ENGINE/", text)
    text = re.sub(r"-[0-9a-f]{8}\.parquet", "-X.parquet", text)
    return json.loads(text)


def assert_close(left, right, where: str = "") -> None:
    """Equal structures; numbers within TOLERANCE (sums may add in another order), timings
    aside."""
    if isinstance(left, dict) and isinstance(right, dict):
        assert left.keys() == right.keys(), where
        for key in left:
            if not key.endswith("seconds"):
                assert_close(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list) and isinstance(right, list):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right)):
            assert_close(a, b, f"{where}[{i}]")
    elif (isinstance(left, float) and isinstance(right, float | int)
          and not isinstance(right, bool)):
        assert left == pytest.approx(right, abs=TOLERANCE, nan_ok=True), where
    else:
        assert left == right, where


# -- the contract ---------------------------------------------------------------------------


@pytest.mark.spark
def test_training_rows_have_equal_features_and_labels(runs):
    duck, spark = runs["duckdb"].training, runs["spark"].training
    assert len(duck.labels) > 200 and 0 < duck.labels.sum() < len(duck.labels)
    np.testing.assert_array_equal(duck.labels, spark.labels)
    np.testing.assert_array_equal(duck.holdout, spark.holdout)
    pd.testing.assert_frame_equal(duck.features, spark.features, check_exact=False,
                                  rtol=0, atol=TOLERANCE)


@pytest.mark.spark
@pytest.mark.parametrize("run", [0, 1], ids=["first run", "second run"])
def test_features_at_the_score_date_are_equal(runs, run):
    duck, spark = (run_file(runs[e], run, "features.parquet") for e in ("duckdb", "spark"))
    assert duck.schema == spark.schema
    assert duck.num_rows == spark.num_rows > 100
    pd.testing.assert_frame_equal(duck.to_pandas(), spark.to_pandas(), check_exact=False,
                                  rtol=0, atol=TOLERANCE)


@pytest.mark.spark
@pytest.mark.parametrize("run", [0, 1], ids=["first run", "second run"])
def test_scores_and_reasons_agree_within_1e_9(runs, run):
    duck, spark = (run_file(runs[e], run, "scores.parquet") for e in ("duckdb", "spark"))
    assert duck.schema == spark.schema and duck.num_rows == spark.num_rows
    same = [c for c in duck.column_names if c not in ("run_id", "model_id", "instance_id")]
    d, s = duck.select(same).to_pandas(), spark.select(same).to_pandas()
    for column in ("probability", "score", "raw_score"):
        if column in d:
            np.testing.assert_allclose(d.pop(column), s.pop(column), rtol=0, atol=TOLERANCE)
    pd.testing.assert_frame_equal(d, s, check_exact=False, rtol=0, atol=TOLERANCE)


@pytest.mark.spark
@pytest.mark.parametrize("run", [0, 1], ids=["first run", "second run"])
def test_the_run_records_agree(runs, run):
    duck, spark = runs["duckdb"].records[run], runs["spark"].records[run]
    assert duck.as_of == spark.as_of
    assert duck.counts == spark.counts
    assert without_ids(duck.notes) == without_ids(spark.notes)
    assert_close(without_ids(duck.metrics), without_ids(spark.metrics), "metrics")


@pytest.mark.parametrize("what", ["summary", "targeting", "performance", "scores_top", "explain",
                                  "preview", "segment", "members", "history",
                                  *[f"analytics {k}" for k in ANALYTICS], "analytics filtered"])
@pytest.mark.spark
def test_what_is_read_from_the_run_agrees(runs, what):
    assert_close(without_ids(runs["duckdb"].read[what]), without_ids(runs["spark"].read[what]),
                 what)


@pytest.mark.spark
def test_exports_agree(runs):
    duck, spark = runs["duckdb"].read["export"], runs["spark"].read["export"]
    masked = re.compile(r"(run|model)-[0-9a-f]{12}|buyers-[0-9a-f]{8}")
    assert masked.sub("ID", duck["jsonl"].read_text()) == masked.sub("ID",
                                                                     spark["jsonl"].read_text())
    # the same CSV, quoted differently: DuckDB quotes where needed, Arrow (Spark) every text
    csv = [pd.read_csv(p).drop(columns=["model_id", "run_id", "instance_id"])
           for p in (duck["csv"], spark["csv"])]
    pd.testing.assert_frame_equal(*csv)
    assert spark["parquet"].is_file()  # one file, not Spark's folder of parts
    d, s = pq.read_table(duck["parquet"]), pq.read_table(spark["parquet"])
    assert d.schema == s.schema and d.num_rows == s.num_rows


# -- the engine on Spark --------------------------------------------------------------------


@pytest.mark.spark
def test_spark_session_takes_the_master_and_likelys_defaults(spark_session):
    session = spark_session._session
    assert session.sparkContext.master == "local[2]"
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert session.conf.get("spark.sql.ansi.enabled") == "false"
    assert session.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert session.conf.get("spark.sql.optimizer.canChangeCachedPlanOutputPartitioning") == "true"
    assert session.conf.get("spark.sql.shuffle.partitions") == "2"  # the caller's setting


@pytest.mark.spark
def test_parts_with_different_columns_read_as_one_table_on_both_engines(spark_session,
                                                                       tmp_path):
    pq.write_table(pa.table({"profile_id": ["a", "b"], "x": [1.0, 2.0]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"profile_id": ["c"], "y": ["k"], "x": [3.0]}),
                   tmp_path / "2.parquet")
    parts = [tmp_path / "1.parquet", tmp_path / "2.parquet"]
    tables = [read_parquet(con, parts) for con in (connect(DUCKDB), spark_session)]
    assert tables[0].schema() == tables[1].schema()
    rows = [t.order_by("profile_id").to_pyarrow().to_pylist() for t in tables]
    assert rows[0] == rows[1] == [{"profile_id": "a", "x": 1.0, "y": None},
                                  {"profile_id": "b", "x": 2.0, "y": None},
                                  {"profile_id": "c", "x": 3.0, "y": "k"}]
    write_parquet(tables[1].filter(tables[1].x > 1), tmp_path / "out.parquet")
    assert (tmp_path / "out.parquet").is_file()
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 2


@pytest.mark.spark
def test_ingest_runs_on_duckdb_and_spark_reads_the_dataset(spark_session, base, tmp_path):
    ws = Workspace(base, engine=SPARK)
    assert ws.ingest_con.name == "duckdb" and ws.con.name == "pyspark"
    copy = tmp_path / "ws"
    shutil.copytree(base, copy)
    ws = Workspace(copy, engine=SPARK)
    extra = tmp_path / "more.csv"
    extra.write_text("profile_id,timestamp,event_type\np999999,2025-04-30T10:00:00Z,app.launch\n")
    report = ws.ingest_events([extra], "events")
    assert report.rows_ingested == 1
    events = ws.table("events")
    assert events._find_backend().name == "pyspark"
    assert int(events.filter(events.profile_id == "p999999").count().execute()) == 1


@pytest.mark.spark
def test_profiles_as_known_at_a_date_agree(spark_session, tmp_path):
    """A history read point-in-time: newest version before the date, ties broken by every other
    column (nulls last on both engines), later dates read as null; snapshots alike."""
    from datetime import datetime

    from likely.data.profiles import Profiles

    day = datetime.fromisoformat
    history = pa.table({
        "profile_id": ["a", "a", "a", "b", "b", "b", "c"],
        "updated_at": [day("2025-01-01"), day("2025-02-01"), day("2025-03-01"),
                       day("2025-01-10"), day("2025-01-10"), None, None],
        "tier": ["bronze", "silver", "gold", None, "gold", "silver", "bronze"],
        "signup": pa.array([date(2024, 5, 1), date(2024, 5, 1), date(2024, 5, 1),
                            date(2025, 2, 15), date(2025, 2, 15), None, date(2025, 1, 5)]),
    })
    pq.write_table(history, tmp_path / "history.parquet")
    pq.write_table(history.filter(pa.array([False, False, True, False, True, False, True])),
                   tmp_path / "snapshot.parquet")
    for name in ("history", "snapshot"):
        found = []
        for con in (connect(DUCKDB), spark_session):
            profiles = Profiles.of(read_parquet(con, [tmp_path / f"{name}.parquet"]),
                                   static=["signup"])
            found.append([profiles.shape] + [
                profiles.at(moment).order_by("profile_id").to_pyarrow().to_pylist()
                for moment in (day("2025-01-05"), day("2025-02-10"), day("2025-06-01"))])
        assert found[0] == found[1], name
    assert found[0][0] == "snapshot"


@pytest.mark.spark
def test_sampling_training_profiles_is_stable_on_spark(spark_session, base):
    """Above max_training_rows whole profiles are sampled by a hash of their id: Spark's hash
    is not DuckDB's, so the sample differs between engines, but on each it is stable."""
    profiles = Workspace(base, engine=SPARK).table("profiles")
    picks = [set(pipeline._sample(profiles, 0.5).to_pyarrow().column("profile_id").to_pylist())
             for _ in range(2)]
    assert picks[0] == picks[1]
    assert 120 < len(picks[0]) < 280


# -- settings (no Spark needed) ---------------------------------------------------------------


def test_likely_engine_chooses_the_backend(monkeypatch):
    monkeypatch.setenv("LIKELY_ENGINE", "spark")
    assert EngineSettings().backend == "spark"
    assert ingest_connection(EngineSettings()).name == "duckdb"
    monkeypatch.setenv("LIKELY_ENGINE", "Spark ")
    assert EngineSettings().backend == "spark"
    monkeypatch.delenv("LIKELY_ENGINE")
    assert EngineSettings().backend == "duckdb"
    monkeypatch.setenv("LIKELY_ENGINE", "flink")
    with pytest.raises(ConfigError, match=r"Unknown engine backend 'flink'.*duckdb, spark"):
        connect()


def test_spark_without_pyspark_or_java_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyspark" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'likely\[spark\]'"):
        connect(EngineSettings(backend="spark"))
    monkeypatch.setattr(importlib.util, "find_spec", real)
    if real("pyspark") is None:
        return
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="needs Java 17"):
        connect(EngineSettings(backend="spark"))


def test_spark_refuses_a_java_older_than_17(monkeypatch, tmp_path):
    if spark_missing() is not None and "PySpark" in spark_missing():
        pytest.skip("needs PySpark installed (the check on Java comes after it)")
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text('#!/bin/sh\necho \'openjdk version "1.8.0_292"\' >&2\n')
    java.chmod(0o755)
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    assert "is Java 8" in spark_missing()
