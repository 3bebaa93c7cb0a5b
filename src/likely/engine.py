"""The compute engine: one place that opens an Ibis backend.

Every query over customer data is an Ibis expression, so moving from DuckDB (the embedded default)
to Spark changes only how the connection is opened, how Parquet is read and how a result leaves
the engine. Backends are imported lazily: a missing optional one says exactly what to install.

``LIKELY_ENGINE=spark`` opens (or joins) a PySpark session; the master and every other Spark
setting come the usual Spark ways (``SPARK_MASTER`` or ``MASTER``, ``spark-defaults.conf`` in
``$SPARK_CONF_DIR``, ``PYSPARK_SUBMIT_ARGS``, ``SPARK_REMOTE`` for Spark Connect), and Spark's
own default is ``local[*]``. Ingest always converts source files with DuckDB on this machine
(:func:`ingest_connection`); everything after it reads the workspace's Parquet through Spark.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from likely.errors import ConfigError

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa
    from ibis.backends import BaseBackend

BACKENDS = ("duckdb", "spark")
ENGINE_VAR = "LIKELY_ENGINE"
PARQUET_BATCH_ROWS = 100_000  # rows the driver holds at once while copying Spark's parts

#: Spark SQL settings likely relies on, applied unless Spark's own configuration sets them.
#: ANSI mode off: casts of bad text, division by zero and integer overflow give NULL as in DuckDB
#: instead of failing the query. Arrow makes a result's trip to the driver columnar. Records cast
#: to JSON keep their null fields (``"value": null``), as DuckDB writes them. A cached table (the
#: scored population) may keep the few partitions adaptive execution coalesced it to: at
#: ``spark.sql.shuffle.partitions`` (200) every read of a 5,000-row cache was 200 tasks, and the
#: features at the score date took 3x longer on local[2].
SPARK_DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.jsonGenerator.ignoreNullFields": "false",
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
}


def _default_backend() -> str:
    return os.environ.get(ENGINE_VAR, "").strip().lower() or "duckdb"


@dataclass(frozen=True)
class EngineSettings:
    """How to open the engine.

    ``backend`` is ``duckdb`` (default) or ``spark``, else ``$LIKELY_ENGINE``.
    ``threads`` governs DuckDB and LightGBM alike (see :meth:`resolved_threads`);
    ``memory_limit`` is DuckDB's (``None``: ``$LIKELY_MEMORY_LIMIT``, else a sixth of the
    machine's memory, at least 1 GB; see :func:`default_memory_limit`).
    ``spark_master`` (else ``$SPARK_MASTER``, else ``$MASTER``, else ``spark-defaults.conf``,
    else ``local[*]``) and ``spark_conf`` (extra Spark settings, applied over
    ``spark-defaults.conf``) are Spark's.
    """

    backend: str = field(default_factory=_default_backend)
    threads: int | None = None
    memory_limit: str | None = None
    temp_directory: str | None = None
    spark_master: str | None = None
    spark_conf: Mapping[str, str] = field(default_factory=dict)

    def resolved_threads(self) -> int:
        """``threads``, else ``$LIKELY_THREADS``, else the machine's physical cores.

        One number for every engine of a run: DuckDB and LightGBM each defaulting to every
        logical core made one 0.1 s fit take 8-26 s on a busy 2-core machine.
        """
        return self.threads or _env_int("LIKELY_THREADS") or physical_cores()


def physical_cores() -> int:
    """Physical cores this process may use (affinity, cgroup quota; hyper-threads count once)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        allowed = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            cores = set(allowed)
            break
    return max(1, min(len(cores), _cgroup_cpus() or len(cores)))


def _cgroup_cpus() -> int | None:
    """The CPU quota of a container (cgroup v2 ``cpu.max``), rounded up; None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


def connect(settings: EngineSettings | None = None) -> BaseBackend:
    """Open a fresh Ibis connection.

    >>> con = connect(EngineSettings(backend="duckdb"))
    >>> con.name
    'duckdb'
    """
    settings = settings or EngineSettings()
    if settings.backend == "duckdb":
        return _connect_duckdb(settings)
    if settings.backend == "spark":
        return _connect_spark(settings)
    raise ConfigError(
        f"Unknown engine backend '{settings.backend}' (from {ENGINE_VAR} or the engine "
        f"settings). Allowed: {', '.join(BACKENDS)}."
    )


def ingest_connection(settings: EngineSettings) -> BaseBackend:
    """The connection that turns source files into a dataset's Parquet: DuckDB on this machine.

    Source files are local to the machine that ingests them, and reading them loosely (CSV as
    text, JSON as inferred, every problem reported with its row) is DuckDB's; the Parquet it
    writes into the workspace is what Spark reads afterwards.
    """
    if settings.backend == "duckdb":
        return connect(settings)
    return _connect_duckdb(settings)


def _connect_duckdb(settings: EngineSettings) -> BaseBackend:
    import ibis

    config: dict[str, object] = {"threads": settings.resolved_threads()}
    config["memory_limit"] = (settings.memory_limit or os.environ.get("LIKELY_MEMORY_LIMIT")
                              or default_memory_limit())
    if settings.temp_directory:
        config["temp_directory"] = settings.temp_directory
    con = ibis.duckdb.connect(**config)
    # Timestamps with an offset are converted to UTC through the session time zone. (Set after
    # connecting: as a connect option DuckDB tries to autoload ICU before it is loaded.)
    con.raw_sql("SET TimeZone = 'UTC'")
    return con


def default_memory_limit() -> str:
    """A sixth of the machine's memory (at least 1 GB) for DuckDB, which spills beyond it.

    DuckDB's own default (80% of RAM) let a 1M-profile run peak at 13 GB; the rest of a run
    (Arrow batches, the training frame, LightGBM) needs a few GB beside it. With a sixth, that
    run peaked at 5.7 GB on a 24 GB machine.
    """
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{max(total // 6, 2**30) // 2**20}MB"


def spark_missing() -> str | None:
    """Why the Spark engine cannot start here (PySpark, or Java 17+, missing), else None."""
    if importlib.util.find_spec("pyspark") is None:
        return "The Spark engine needs PySpark. Install it with: pip install 'likely[spark]'"
    if os.environ.get("SPARK_REMOTE"):
        return None  # Spark Connect: the JVM runs on the server
    install = ("Install it, e.g. apt-get install openjdk-17-jre-headless, or point JAVA_HOME "
               "at one.")
    # the java PySpark starts: $JAVA_HOME/bin/java when JAVA_HOME is set, else java on PATH
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home, "bin", "java")) if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        return f"The Spark engine needs Java 17 or later (PySpark starts a JVM). {install}"
    version = _java_major(java)
    if version is not None and version < 17:
        return f"The Spark engine needs Java 17 or later; {java} is Java {version}. {install}"
    return None


def _java_major(java: str) -> int | None:
    """The major version ``java -version`` reports (8 for "1.8.0_292"), None if unreadable."""
    import re
    import subprocess

    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def _connect_spark(settings: EngineSettings) -> BaseBackend:
    missing = spark_missing()
    if missing:
        raise ConfigError(missing)
    import ibis
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("likely")
    master = (settings.spark_master or os.environ.get("SPARK_MASTER")
              or os.environ.get("MASTER"))
    if master and not os.environ.get("SPARK_REMOTE"):
        builder = builder.master(master)
    for key, value in settings.spark_conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    configured = _spark_configured(session)
    for key, value in SPARK_DEFAULTS.items():
        if key not in configured and key not in settings.spark_conf:
            session.conf.set(key, value)
    return ibis.pyspark.connect(session)


def stop_spark() -> None:
    """Stop this process's Spark session and the JVM PySpark started for it (its memory goes
    back to the machine); the next Spark connection starts a new one."""
    if importlib.util.find_spec("pyspark") is None:
        return
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    gateway.shutdown()
    proc = getattr(gateway, "proc", None)  # None when PySpark joined a JVM it did not start
    if proc is not None:
        proc.stdin.close()  # the JVM exits when its stdin closes
        proc.wait(timeout=60)
    SparkContext._gateway = None
    SparkContext._jvm = None


def _spark_configured(session) -> set[str]:
    """Keys the user set through Spark's own configuration (spark-defaults.conf, --conf)."""
    try:
        return {key for key, _ in session.sparkContext.getConf().getAll()}
    except Exception:  # Spark Connect has no SparkContext: runtime settings are the server's
        return set()


def read_parquet(con: BaseBackend, paths: Sequence[str | Path]) -> ir.Table:
    """Read Parquet parts as one table; parts written at different times may add columns."""
    files = [str(p) for p in paths]
    if con.name == "duckdb":
        return con.read_parquet(files, union_by_name=True)
    if con.name == "pyspark":
        return _spark_read_parquet(con, files)
    return con.read_parquet(files)


def _spark_read_parquet(con: BaseBackend, files: list[str]) -> ir.Table:
    """Spark reads the parts as one DataFrame (schemas merged by name) under a temporary view.

    Paths are read as ``file://`` URIs: the workspace must be on a file system that every
    executor mounts at the same path (for ``local[*]``, the driver's own disk).
    """
    from ibis import util

    frame = con._session.read.option("mergeSchema", "true").parquet(*map(_uri, files))
    name = util.gen_name("likely_parquet")
    frame.createOrReplaceTempView(name)
    return con.table(name)


def to_arrow(expr: ir.Expr) -> pa.Table:
    """A result as one Arrow table with the expression's schema."""
    con = expr._find_backend()
    if con.name != "pyspark":
        return expr.to_pyarrow()
    from ibis.formats.pyarrow import PyArrowData

    table_expr = expr.as_table()
    frame = con._session.sql(con.compile(table_expr))
    return PyArrowData.convert_table(frame.toArrow(), table_expr.schema())


def iter_batches(expr: ir.Expr, chunk_size: int = 250_000) -> Iterable[pa.RecordBatch]:
    """Stream a result as Arrow record batches instead of materialising it.

    On Spark the result is collected to the driver as Arrow (Ibis's PySpark backend goes
    through pandas), then cut into batches.
    """
    con = expr._find_backend()
    if con.name != "pyspark":
        yield from expr.to_pyarrow_batches(chunk_size=chunk_size)
        return
    yield from to_arrow(expr).to_batches(max_chunksize=chunk_size)


def write_parquet(expr: ir.Table, path: str | Path) -> None:
    """Write a result to one Parquet file (zstd) at ``path``.

    DuckDB writes it itself, streaming. Spark's executors write their partitions as part files
    into a folder beside ``path`` (in order, for a sorted result); the driver then copies them
    batch by batch into the one file, so memory holds a batch, not the result.
    """
    con = expr._find_backend()
    if con.name != "pyspark":
        expr.to_parquet(path, compression="zstd")
        return
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq
    from ibis.formats.pyarrow import PyArrowData

    path = Path(path)
    folder = path.with_name(f".{path.name}.spark-{uuid.uuid4().hex[:8]}")
    schema = expr.schema()
    try:
        frame = con._session.sql(con.compile(expr))
        frame.write.option("compression", "zstd").parquet(_uri(folder))
        with pq.ParquetWriter(path, schema.to_pyarrow(), compression="zstd") as writer:
            for part in sorted(folder.glob("part-*.parquet")):
                for batch in pq.ParquetFile(part).iter_batches(batch_size=PARQUET_BATCH_ROWS):
                    table = PyArrowData.convert_table(pa.Table.from_batches([batch]), schema)
                    writer.write_table(table)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _uri(path: str | Path) -> str:
    """A local path as a ``file://`` URI (a URI is kept): on a cluster whose default file
    system is HDFS, a bare path would be looked up there."""
    text = str(path)
    return text if "://" in text else Path(text).absolute().as_uri()


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None
