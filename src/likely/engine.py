"""The compute engine: one place that opens an Ibis backend.

Every query over customer data is an Ibis expression, so moving from DuckDB (the embedded default)
to Spark changes only how the connection is opened and how Parquet is read. Backends are imported
lazily: a missing optional one says exactly what to install.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from likely.errors import ConfigError

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

BACKENDS = ("duckdb", "spark")


@dataclass(frozen=True)
class EngineSettings:
    """How to open the engine.

    ``threads`` governs DuckDB and LightGBM alike (see :meth:`resolved_threads`);
    ``memory_limit`` is DuckDB's (``None`` = its default, 80% of RAM).
    """

    backend: str = "duckdb"
    threads: int | None = None
    memory_limit: str | None = None
    temp_directory: str | None = None

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

    >>> con = connect()
    >>> con.name
    'duckdb'
    """
    settings = settings or EngineSettings()
    if settings.backend == "duckdb":
        return _connect_duckdb(settings)
    if settings.backend == "spark":
        return _connect_spark(settings)
    raise ConfigError(
        f"Unknown engine backend '{settings.backend}'. Allowed: {', '.join(BACKENDS)}."
    )


def _connect_duckdb(settings: EngineSettings) -> BaseBackend:
    import ibis

    config: dict[str, object] = {"threads": settings.resolved_threads()}
    if settings.memory_limit or os.environ.get("LIKELY_MEMORY_LIMIT"):
        config["memory_limit"] = settings.memory_limit or os.environ["LIKELY_MEMORY_LIMIT"]
    if settings.temp_directory:
        config["temp_directory"] = settings.temp_directory
    con = ibis.duckdb.connect(**config)
    # Timestamps with an offset are converted to UTC through the session time zone. (Set after
    # connecting: as a connect option DuckDB tries to autoload ICU before it is loaded.)
    con.raw_sql("SET TimeZone = 'UTC'")
    return con


def _connect_spark(settings: EngineSettings) -> BaseBackend:
    if importlib.util.find_spec("pyspark") is None:
        raise ConfigError(
            "The Spark engine needs PySpark. Install it with: pip install 'likely[spark]'"
        )
    import ibis
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.appName("likely")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    return ibis.pyspark.connect(session)


def read_parquet(con: BaseBackend, paths: Sequence[str | Path]) -> ir.Table:
    """Read Parquet parts as one table; parts written at different times may add columns."""
    files = [str(p) for p in paths]
    if con.name == "duckdb":
        return con.read_parquet(files, union_by_name=True)
    return con.read_parquet(files)


def iter_batches(expr: ir.Expr, chunk_size: int = 250_000) -> Iterable:
    """Stream a result as Arrow record batches instead of materialising it."""
    yield from expr.to_pyarrow_batches(chunk_size=chunk_size)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else None
