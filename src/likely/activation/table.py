"""Table destinations: segment members in a DuckDB or PostgreSQL table, through Ibis.

Several segments can share one table; each row names its segment. ``replace`` deletes the
segment's rows and inserts the current members in one transaction, so readers see the old
members or the new ones, never a mix, and a failure leaves the old ones. ``delta`` appends the
entered and left members (column ``change``), also in one transaction. Columns: ``segment_id``,
``segment``, ``profile_id``, ``score_date``, ``activation_id``, ``activated_at`` (and ``change``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import ibis
import pyarrow as pa
import sqlglot as sg

from likely.activation.base import Delivery, Outcome
from likely.activation.destinations import env_value
from likely.activation.members import CHANGE, PROFILE_ID
from likely.errors import ConfigError

SCHEMA = {"segment_id": "string", "segment": "string", PROFILE_ID: "string",
          "score_date": "string", "activation_id": "string", "activated_at": "timestamp('UTC')"}
Execute = Callable[[str, list[Any]], None]


def deliver(job: Delivery) -> Outcome:
    config = job.config
    con = _connect(job)
    try:
        rows = _rows(job)
        with _transaction(con) as execute:
            _ensure_table(con, config, rows.schema)
            if job.mode == "replace":
                execute(f"DELETE FROM {_qualified(con, config)} WHERE segment_id = {{p}}",
                        [job.segment_id])
            if rows.num_rows:
                con.insert(config["table"], rows, database=config.get("schema"))
    finally:
        con.disconnect()
    job.report(job.rows.num_rows)
    detail = {"engine": config["engine"], "table": _qualified_name(config), "rows": rows.num_rows}
    if config["engine"] == "duckdb":
        detail["path"] = str(job.resolve(config["path"]))
    return Outcome("success", sent=rows.num_rows, batches=1, detail=detail)


def _connect(job: Delivery) -> Any:
    config = job.config
    if config["engine"] == "duckdb":
        path = job.resolve(config["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        return ibis.duckdb.connect(str(path))
    url = env_value(config, "url_env")
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(f"Environment variable {config['url_env']} must hold a "
                          "postgresql://user:password@host:port/database URL.",
                          detail={"field": "url_env"})
    try:
        return ibis.connect(url.replace(f"{parts.scheme}://", "postgres://", 1))
    except Exception as exc:
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
        message = str(exc).replace(parts.password or "\0", "***")
        raise ConfigError(f"Could not connect to PostgreSQL at {where} (URL from "
                          f"{config['url_env']}): {message}",
                          detail={"field": "url_env"}) from None


def _rows(job: Delivery) -> pa.Table:
    """The rows to write: one per member (replace) or per entered/left member (delta)."""
    ids = job.rows[PROFILE_ID]
    n = len(ids)
    stamp = datetime.fromisoformat(job.activated_at.replace("Z", "+00:00"))
    columns = {"segment_id": pa.array([job.segment_id] * n, pa.string()),
               "segment": pa.array([job.segment_name] * n, pa.string()),
               PROFILE_ID: ids,
               "score_date": pa.array([job.score_date] * n, pa.string()),
               "activation_id": pa.array([job.activation_id] * n, pa.string()),
               "activated_at": pa.array([stamp] * n, pa.timestamp("us", tz="UTC"))}
    if job.mode == "delta":
        columns[CHANGE] = job.rows[CHANGE]
    return pa.table(columns)


def _ensure_table(con: Any, config: dict, schema: pa.Schema) -> None:
    """Create the table when missing; refuse one that lacks a column this mode writes."""
    name, database = config["table"], config.get("schema")
    wanted = ibis.schema({**SCHEMA, **({CHANGE: "string"} if CHANGE in schema.names else {})})
    if name not in con.list_tables(database=database):
        con.create_table(name, schema=wanted, database=database)
        return
    existing = set(con.table(name, database=database).columns)
    missing = [column for column in wanted.names if column not in existing]
    if missing:
        raise ConfigError(
            f"Table {_qualified_name(config)} exists without column(s) "
            f"{', '.join(missing)} that a {config.get('mode', 'replace')} activation writes. "
            "Point the destination at another table.", detail={"field": "table"})


@contextlib.contextmanager
def _transaction(con: Any) -> Iterator[Execute]:
    """One transaction around everything inside; yields a way to run parameterised SQL.

    ``{p}`` in the SQL marks a bound parameter (never pasted text). PostgreSQL: Ibis's
    ``begin()`` (a psycopg transaction; Ibis's own statements inside become savepoints).
    DuckDB: BEGIN / COMMIT / ROLLBACK on the same connection.
    """
    if con.name == "postgres":
        with con.begin() as cursor:
            yield lambda sql, params: cursor.execute(sql.format(p="%s"), params)
        return
    con.raw_sql("BEGIN TRANSACTION")
    try:
        yield lambda sql, params: con.raw_sql(sql.format(p="?"), parameters=params)
    except BaseException:
        con.raw_sql("ROLLBACK")
        raise
    con.raw_sql("COMMIT")


def _qualified(con: Any, config: dict) -> str:
    """The table's quoted name in the engine's dialect (names are checked identifiers)."""
    return sg.table(config["table"], db=config.get("schema"), quoted=True).sql(con.dialect)


def _qualified_name(config: dict) -> str:
    return ".".join(part for part in (config.get("schema"), config["table"]) if part)
