"""Activation end to end with real components: files read back by pandas and DuckDB, a real HTTP
receiver on loopback that fails on purpose, a DuckDB file and a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import duckdb
import pandas as pd
import psycopg
import pyarrow as pa
import pytest

from likely.activation import (
    ActivationError,
    activate,
    activation_dir,
    add_destination,
    get_activation,
    get_destination,
    list_activations,
    list_destinations,
    parse_destination_file,
    remove_destination,
)
from likely.catalog import Catalog
from likely.errors import (
    AlreadyExistsError,
    BusyError,
    ConfigError,
    DataError,
    NotFoundError,
)
from pg_server import find_bin, start_server

SECRET = "s3cret-for-tests"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def catalog(root: Path) -> Catalog:
    return Catalog(root / "catalog.sqlite")


def members(ids: list[str], *, scores: list[float] | None = None) -> pa.Table:
    """Members with awkward column names, as segments hand them over."""
    scores = scores if scores is not None else [i / 10 for i in range(len(ids))]
    return pa.table({"profile_id": ids, "purchase-30d.score": scores,
                     "purchase-30d.bucket": ["High" if s >= 0.5 else "Low" for s in scores]})


def run(catalog: Catalog, root: Path, destination: str, ids: list[str], *,
        segment: str = "seg-1", name: str = "High buyers", **kwargs) -> object:
    return activate(catalog, root, destination, segment_id=segment, segment_name=name,
                    score_date=kwargs.pop("score_date", "2025-07-19"),
                    members=kwargs.pop("table", None) or members(ids), **kwargs)


# -- destinations: config checks ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "config", "field"), [
    ("ftp", {"path": "x"}, "kind"),
    ("folder", {}, "path"),
    ("folder", {"path": "  "}, "path"),
    ("folder", {"path": "out", "format": "xlsx"}, "format"),
    ("folder", {"pth": "out"}, "pth"),
    ("folder", {"path": "out", "mode": "replace"}, "mode"),
    ("webhook", {"secret_env": "S"}, "url"),
    ("webhook", {"url": "ftp://example.org/in", "secret_env": "S"}, "url"),
    ("webhook", {"url": "https://bob:pw@example.org/in", "secret_env": "S"}, "url"),
    ("webhook", {"url": "https://example.org/in"}, "secret_env"),
    ("webhook", {"url": "https://example.org/in", "secret": "hunter2"}, "secret"),
    ("webhook", {"url": "https://example.org/in", "secret_env": "S", "api_token": "x"},
     "api_token"),
    ("webhook", {"url": "https://example.org/in", "secret_env": "my secret"}, "secret_env"),
    ("webhook", {"url": "https://example.org/in", "secret_env": "S", "batch_size": 0},
     "batch_size"),
    ("webhook", {"url": "https://example.org/in", "secret_env": "S", "batch_size": True},
     "batch_size"),
    ("webhook", {"url": "https://example.org/in", "secret_env": "S", "max_attempts": 99},
     "max_attempts"),
    ("table", {"engine": "duckdb", "path": "t.duckdb"}, "table"),
    ("table", {"engine": "duckdb", "path": "t.duckdb", "table": "m; DROP TABLE x"}, "table"),
    ("table", {"engine": "duckdb", "path": "t.duckdb", "table": "1members"}, "table"),
    ("table", {"engine": "duckdb", "table": "members"}, "path"),
    ("table", {"engine": "mysql", "table": "members"}, "engine"),
    ("table", {"engine": "postgres", "table": "members"}, "url_env"),
    ("table", {"engine": "postgres", "table": "members", "url": "postgresql://u:p@h/db"}, "url"),
    ("table", {"engine": "postgres", "table": "members", "url_env": "U", "password": "p"},
     "password"),
    ("table", {"engine": "postgres", "table": "members", "url_env": "U", "schema": "a.b"},
     "schema"),
    ("table", {"engine": "duckdb", "path": "t.duckdb", "table": "m", "mode": "full"}, "mode"),
])
def test_refuses_a_bad_config_naming_the_field(catalog, kind, config, field):
    with pytest.raises(ConfigError) as caught:
        add_destination(catalog, "dest", kind, config)
    assert caught.value.detail["field"] == field
    assert f"'{field}'" in caught.value.message or field == "kind"
    assert list_destinations(catalog) == []


def test_credentials_are_refused_in_words(catalog):
    with pytest.raises(ConfigError, match=r"looks like a credential.*environment variable"):
        add_destination(catalog, "hook", "webhook",
                        {"url": "https://example.org/in", "secret": "hunter2"})
    with pytest.raises(ConfigError, match="Did you mean 'path'"):
        add_destination(catalog, "drop", "folder", {"pth": "out"})


def test_destinations_are_saved_with_defaults_listed_and_removed(catalog):
    hook = add_destination(catalog, "crm", "webhook",
                           {"url": "https://example.org/in", "secret_env": "CRM_SECRET"})
    assert hook.config == {"url": "https://example.org/in", "secret_env": "CRM_SECRET",
                           "batch_size": 1000, "max_attempts": 5, "backoff_seconds": 1.0,
                           "timeout_seconds": 10.0, "mode": "full"}
    drop = add_destination(catalog, "drop", "folder", {"path": "out"})
    assert drop.config == {"path": "out", "format": "csv", "mode": "full"}
    table = add_destination(catalog, "db", "table",
                            {"engine": "postgres", "url_env": "PG_URL", "table": "members"})
    assert table.config == {"engine": "postgres", "url_env": "PG_URL", "table": "members",
                            "mode": "replace"}
    assert [d.name for d in list_destinations(catalog)] == ["crm", "db", "drop"]
    assert json.dumps(hook.to_dict())
    with pytest.raises(AlreadyExistsError):
        add_destination(catalog, "crm", "folder", {"path": "out"})
    with pytest.raises(NotFoundError, match="Did you mean 'crm'"):
        get_destination(catalog, "cmr")
    with pytest.raises(ConfigError):
        add_destination(catalog, "../etc", "folder", {"path": "out"})
    assert remove_destination(catalog, "crm").name == "crm"
    assert [d.name for d in list_destinations(catalog)] == ["db", "drop"]


def test_destination_file_is_read_into_name_kind_and_config(tmp_path):
    good = tmp_path / "crm.yaml"
    good.write_text("name: crm\nkind: webhook\nurl: https://example.org/in\n"
                    "secret_env: CRM_SECRET\nbatch_size: 500\n")
    assert parse_destination_file(good) == (
        "crm", "webhook", {"url": "https://example.org/in", "secret_env": "CRM_SECRET",
                           "batch_size": 500})
    bad = tmp_path / "bad.yaml"
    for text, message in [("kind: folder\npath: out\n", "no 'name'"),
                          ("- a\n- b\n", "must hold a mapping"),
                          ("name: [unclosed\n", "not valid YAML")]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            parse_destination_file(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        parse_destination_file(tmp_path / "missing.yaml")


def test_refuses_members_without_unique_ids_and_a_mode_the_kind_lacks(catalog, root):
    add_destination(catalog, "drop", "folder", {"path": "out"})
    with pytest.raises(DataError, match="repeat a profile_id"):
        run(catalog, root, "drop", [], table=members(["a", "b", "a"]))
    with pytest.raises(DataError, match="no 'profile_id'"):
        run(catalog, root, "drop", [], table=pa.table({"id": ["a"]}))
    with pytest.raises(ConfigError, match="Modes: full, delta"):
        run(catalog, root, "drop", ["a"], mode="replace")
    with pytest.raises(NotFoundError):
        run(catalog, root, "nowhere", ["a"])
    assert list_activations(catalog) == []


def test_missing_environment_variable_is_a_failed_activation_naming_it(catalog, root,
                                                                       monkeypatch):
    monkeypatch.delenv("LIKELY_TEST_UNSET_SECRET", raising=False)
    monkeypatch.delenv("LIKELY_TEST_UNSET_URL", raising=False)
    add_destination(catalog, "hook", "webhook", {"url": "http://127.0.0.1:9/in",
                                                 "secret_env": "LIKELY_TEST_UNSET_SECRET"})
    add_destination(catalog, "pg", "table", {"engine": "postgres", "table": "members",
                                             "url_env": "LIKELY_TEST_UNSET_URL"})
    for destination, variable in [("hook", "LIKELY_TEST_UNSET_SECRET"),
                                  ("pg", "LIKELY_TEST_UNSET_URL")]:
        with pytest.raises(ConfigError, match=f"{variable} .* is not set"):
            run(catalog, root, destination, ["a", "b"])
        [logged] = list_activations(catalog, limit=1)
        assert (logged.destination, logged.status, logged.sent) == (destination, "failed", 0)
        assert variable in logged.error and logged.finished_at


# -- folder ------------------------------------------------------------------------------------


def _read_back(path: Path, fmt: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The file as pandas reads it and as DuckDB reads it."""
    if fmt == "csv":
        frame = pd.read_csv(path, dtype={"profile_id": str})
        sql = f"SELECT * FROM read_csv('{path}', header = true)"
    elif fmt == "parquet":
        frame = pd.read_parquet(path)
        sql = f"SELECT * FROM read_parquet('{path}')"
    else:
        frame = pd.read_json(path, lines=True, dtype={"profile_id": str})
        sql = f"SELECT * FROM read_json_auto('{path}')"
    return frame, duckdb.sql(sql).df()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_folder_drop_reads_back_and_matches_its_manifest(catalog, root, fmt):
    add_destination(catalog, "drop", "folder", {"path": "exports/crm", "format": fmt})
    table = members(["p1", "p2", "p3"], scores=[0.9, float("nan"), 0.2])
    done = run(catalog, root, "drop", [], table=table, name="High buyers / July!")
    assert (done.status, done.sent, done.profiles, done.entered, done.exited) == (
        "success", 3, 3, 3, 0)
    folder = root / "exports" / "crm"
    data = folder / f"high-buyers-july-2025-07-19-{done.id}.{fmt}"
    assert Path(done.detail["file"]) == data
    for frame in _read_back(data, fmt):
        assert list(frame.columns) == ["profile_id", "purchase-30d.score", "purchase-30d.bucket"]
        assert frame["profile_id"].tolist() == ["p1", "p2", "p3"]
        assert frame["purchase-30d.score"].iloc[0] == pytest.approx(0.9)
        assert pd.isna(frame["purchase-30d.score"].iloc[1])
        assert frame["purchase-30d.bucket"].tolist() == ["High", "Low", "Low"]
    manifest = json.loads((folder / f"{data.stem}.manifest.json").read_text())
    assert manifest["file"] == data.name and manifest["rows"] == 3
    assert manifest["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert manifest["bytes"] == data.stat().st_size
    assert manifest["counts"] == {"members": 3, "entered": 3, "left": 0}
    assert (manifest["activation_id"], manifest["mode"], manifest["score_date"]) == (
        done.id, "full", "2025-07-19")
    assert manifest["segment"] == {"id": "seg-1", "name": "High buyers / July!"}
    index = json.loads((folder / "manifest.json").read_text())
    assert [d["activation_id"] for d in index["drops"]] == [done.id]
    assert not list(folder.glob(".*.tmp"))


def test_folder_delta_says_who_entered_and_left_since_the_last_success(catalog, root):
    add_destination(catalog, "drop", "folder", {"path": "out", "mode": "delta"})
    first = run(catalog, root, "drop", ["a", "b", "c"])
    rows = pd.read_csv(first.detail["file"])
    assert sorted(zip(rows["profile_id"], rows["change"])) == [
        ("a", "entered"), ("b", "entered"), ("c", "entered")]
    # a failed activation in between is not the baseline: the next delta is against 'first'
    (root / "out").rename(root / "out-moved")
    (root / "out").write_text("a file where the folder was")
    with pytest.raises(ActivationError, match="FileExistsError"):
        run(catalog, root, "drop", ["x"])
    (root / "out").unlink()
    (root / "out-moved").rename(root / "out")

    second = run(catalog, root, "drop", ["b", "c", "d", "e"], score_date=None)
    assert (second.entered, second.exited, second.sent, second.profiles) == (2, 1, 3, 4)
    assert second.detail["baseline"] == first.id
    assert Path(second.detail["file"]).name.startswith("high-buyers-live-")
    rows = pd.read_csv(second.detail["file"])
    assert sorted(zip(rows["profile_id"], rows["change"])) == [
        ("a", "left"), ("d", "entered"), ("e", "entered")]
    assert rows.loc[rows["profile_id"] == "a", "purchase-30d.score"].isna().all()
    manifest = json.loads(Path(second.detail["manifest"]).read_text())
    assert manifest["counts"] == {"members": 4, "entered": 2, "left": 1}
    assert manifest["mode"] == "delta" and manifest["change_column"] == "change"
    index = json.loads((root / "out" / "manifest.json").read_text())
    assert [d["activation_id"] for d in index["drops"]] == [first.id, second.id]
    # the next one compares with 'second'
    third = run(catalog, root, "drop", ["b", "c", "d", "e"])
    assert (third.entered, third.exited, third.sent) == (0, 0, 0)


def test_delta_of_a_million_profiles_is_quick(catalog, root):
    add_destination(catalog, "drop", "folder", {"path": "out", "format": "parquet",
                                                "mode": "delta"})
    ids = [f"p{i:07d}" for i in range(1_000_000)]
    big = pa.table({"profile_id": ids})
    run(catalog, root, "drop", [], table=big)
    shifted = pa.table({"profile_id": ids[1000:] + [f"q{i}" for i in range(500)]})
    started = time.perf_counter()
    second = run(catalog, root, "drop", [], table=shifted)
    assert (second.entered, second.exited, second.profiles) == (500, 1000, 999_500)
    assert time.perf_counter() - started < 10


# -- webhook: a real receiver on loopback --------------------------------------------------------


class Receiver:
    """An idempotent webhook receiver that misbehaves on a script.

    ``script[batch]`` lists what to do on each attempt of a batch: ``503`` (answer 503), ``429``
    (answer 429 with Retry-After: 0), ``drop`` (close the connection without an answer),
    ``apply-500`` (apply the batch, then answer 500: the answer is lost), ``apply-slow`` (apply,
    then answer too late), ``ok``. Past the script every attempt is ``ok``; batches in
    ``always_fail`` answer 503 forever. A batch is applied once per Idempotency-Key.
    """

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret.encode()
        self.script: dict[int, list[str]] = {}
        self.always_fail: set[int] = set()
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.applied: dict[str, list[dict]] = {}
        self.bodies: dict[str, dict] = {}
        self.headers: list[dict] = []
        self.bad_signatures = 0

    def applications(self) -> Counter[str]:
        """How many times each profile was applied (every value must be 1)."""
        return Counter(m["profile_id"] for batch in self.applied.values() for m in batch)

    def handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers["Content-Length"]))
        key = request.headers["Idempotency-Key"]
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        with self.lock:
            self.headers.append(dict(request.headers))
            if not hmac.compare_digest(expected, request.headers["X-Likely-Signature"]):
                self.bad_signatures += 1
                return self._answer(request, 401)
            payload = json.loads(body)
            attempt = self.attempts[key]
            self.attempts[key] += 1
            plan = self.script.get(payload["batch"], [])
            action = "503" if payload["batch"] in self.always_fail else (
                plan[attempt] if attempt < len(plan) else "ok")
            if action in ("ok", "apply-500", "apply-slow") and key not in self.applied:
                self.applied[key] = payload["members"]
                self.bodies[key] = payload
        if action == "drop":
            request.close_connection = True
            request.connection.shutdown(socket.SHUT_RDWR)
        elif action == "apply-slow":
            time.sleep(1.0)
            self._answer(request, 200)
        elif action == "429":
            self._answer(request, 429, {"Retry-After": "0"})
        else:
            self._answer(request, {"503": 503, "apply-500": 500}.get(action, 200))

    @staticmethod
    def _answer(request, status: int, headers: dict | None = None) -> None:
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", "2")
        request.end_headers()
        with contextlib.suppress(OSError):  # the client gave up waiting (apply-slow): on purpose
            request.wfile.write(b"{}")


@pytest.fixture
def receiver(monkeypatch):
    """A Receiver served on a free loopback port; yields (receiver, url)."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("LIKELY_TEST_WEBHOOK_SECRET", SECRET)
    target = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            target.handle(self)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.handle_error = lambda *args: None  # a dropped or abandoned connection is on purpose
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield target, f"http://127.0.0.1:{server.server_address[1]}/hooks/likely"
    server.shutdown()
    server.server_close()


def hook(catalog: Catalog, url: str, name: str = "crm", **config) -> None:
    add_destination(catalog, name, "webhook", {
        "url": url, "secret_env": "LIKELY_TEST_WEBHOOK_SECRET", "batch_size": 10,
        "backoff_seconds": 0.001, "timeout_seconds": 5, **config})


def test_webhook_retries_until_each_member_is_applied_exactly_once(catalog, root, receiver):
    target, url = receiver
    target.script = {0: ["503", "503", "ok"], 1: ["drop", "apply-500", "ok"],
                     2: ["429", "apply-slow", "ok"]}
    hook(catalog, url, timeout_seconds=0.4)
    ids = [f"p{i:02d}" for i in range(25)]
    seen: list[tuple[int, int]] = []
    done = run(catalog, root, "crm", ids, table=members(ids, scores=[float("nan")] + [
        i / 25 for i in range(1, 25)]), progress=lambda d, t: seen.append((d, t)))
    assert (done.status, done.sent, done.batches, done.failed_batches) == ("success", 25, 3, 0)
    assert done.detail["attempts"] == 9 and done.detail["retried_batches"] == 3
    assert target.bad_signatures == 0
    assert target.attempts == {f"{done.id}:0": 3, f"{done.id}:1": 3, f"{done.id}:2": 3}
    assert sorted(target.applied) == [f"{done.id}:{i}" for i in range(3)]
    assert target.applications() == dict.fromkeys(ids, 1)
    first = target.bodies[f"{done.id}:0"]
    assert (first["activation_id"], first["segment"], first["score_date"], first["mode"],
            first["batch"], first["batches"]) == (done.id, "High buyers", "2025-07-19", "full",
                                                  0, 3)
    assert first["members"][0] == {"profile_id": "p00", "purchase-30d.score": None,
                                   "purchase-30d.bucket": "Low"}
    assert all(h["Content-Type"] == "application/json" and h["X-Likely-Timestamp"].isdigit()
               for h in target.headers)
    assert seen[-1] == (25, 25) and not (root / "activations" / done.id / "dead_letter.jsonl"
                                          ).exists()


def test_webhook_dead_letters_a_batch_that_keeps_failing_and_it_replays(catalog, root,
                                                                        receiver):
    target, url = receiver
    target.always_fail = {1}
    hook(catalog, url, max_attempts=3)
    ids = [f"p{i:02d}" for i in range(30)]
    done = run(catalog, root, "crm", ids)
    assert (done.status, done.sent, done.batches, done.failed_batches) == ("partial", 20, 3, 1)
    assert "1 of 3 batch(es) were not delivered" in done.error and "HTTP 503" in done.error
    assert target.attempts[f"{done.id}:1"] == 3
    assert sorted(target.applied) == [f"{done.id}:0", f"{done.id}:2"]
    dead = activation_dir(root, done.id) / "dead_letter.jsonl"
    assert done.detail["dead_letter"] == str(dead)
    [letter] = [json.loads(line) for line in dead.read_text().splitlines()]
    assert (letter["idempotency_key"], letter["batch"], letter["attempts"],
            letter["last_status"]) == (f"{done.id}:1", 1, 3, 503)
    body = letter["body"].encode()
    assert letter["headers"]["X-Likely-Signature"] == "sha256=" + hmac.new(
        SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert [m["profile_id"] for m in json.loads(body)["members"]] == ids[10:20]

    # the receiver recovers; replaying the dead letter (twice) applies the batch once
    target.always_fail = set()
    for _ in range(2):
        replay = urllib.request.Request(letter["url"], data=body, method="POST",
                                        headers=letter["headers"])
        with urllib.request.urlopen(replay, timeout=5) as answer:
            assert answer.status == 200
    assert target.applications() == dict.fromkeys(ids, 1)
    assert target.bad_signatures == 0


def test_webhook_with_a_wrong_secret_fails_without_retrying_and_stops_early(
        catalog, root, receiver, monkeypatch):
    target, url = receiver
    monkeypatch.setenv("LIKELY_TEST_WEBHOOK_SECRET", "not-the-receivers-secret")
    hook(catalog, url)
    done = run(catalog, root, "crm", [f"p{i:02d}" for i in range(50)])
    assert (done.status, done.sent, done.batches, done.failed_batches) == ("failed", 0, 5, 5)
    assert target.bad_signatures == 3 and not target.applied  # 401 is final; then it stops
    letters = [json.loads(line) for line in Path(done.detail["dead_letter"]).read_text()
               .splitlines()]
    assert [(x["batch"], x["attempts"], x["last_status"]) for x in letters] == [
        (0, 1, 401), (1, 1, 401), (2, 1, 401), (3, 0, None), (4, 0, None)]
    assert "not sent" in letters[3]["last_error"]


def test_webhook_delta_sends_entered_and_left(catalog, root, receiver):
    target, url = receiver
    hook(catalog, url)
    first = run(catalog, root, "crm", ["a", "b", "c"])
    second = run(catalog, root, "crm", ["b", "c", "d"], mode="delta")
    assert (second.mode, second.entered, second.exited, second.sent) == ("delta", 1, 1, 2)
    sent = target.bodies[f"{second.id}:0"]["members"]
    assert sorted((m["profile_id"], m["change"]) for m in sent) == [
        ("a", "left"), ("d", "entered")]
    assert first.status == second.status == "success"
    nothing = run(catalog, root, "crm", ["b", "c", "d"], mode="delta")
    assert (nothing.batches, nothing.sent, nothing.status) == (0, 0, "success")


def test_webhook_that_nobody_answers_fails(catalog, root, receiver):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook(catalog, f"http://127.0.0.1:{port}/in", max_attempts=2)
    done = run(catalog, root, "crm", ["a", "b"])
    assert (done.status, done.failed_batches, done.sent) == ("failed", 1, 0)
    assert "ConnectionRefusedError" in done.error


# -- table: DuckDB and a real PostgreSQL ---------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server():
    if find_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (/usr/lib/postgresql/*/bin): "
                    "'make postgres' installs Debian's postgresql")
    server = start_server()
    yield server
    server.stop()


class TableSide:
    """One engine's table destination config and a reader of its rows."""

    def __init__(self, engine: str, root: Path, url: str | None) -> None:
        self.engine, self.root, self.url = engine, root, url
        self.table = f"members_{uuid.uuid4().hex[:8]}"
        self.path = root / "warehouse" / "crm.duckdb"

    def config(self, **extra) -> dict:
        if self.engine == "duckdb":
            return {"engine": "duckdb", "path": "warehouse/crm.duckdb", "table": self.table,
                    **extra}
        return {"engine": "postgres", "url_env": "LIKELY_TEST_PG_URL", "table": self.table,
                **extra}

    def sql(self, statement: str) -> list[tuple]:
        if self.engine == "duckdb":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with duckdb.connect(str(self.path)) as con:
                con.execute(statement)
                if not con.description:
                    return []
                # through Arrow: DuckDB's own fetch of a TIMESTAMPTZ needs pytz
                return [tuple(row.values()) for row in con.to_arrow_table().to_pylist()]
        with psycopg.connect(self.url, autocommit=True) as con:
            cursor = con.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def rows(self, *columns: str, where: str = "") -> list[tuple]:
        return self.sql(f"SELECT {', '.join(columns)} FROM {self.table} {where} "
                        f"ORDER BY {', '.join(columns)}")


@pytest.fixture(params=["duckdb", "postgres"])
def side(request, root, monkeypatch) -> TableSide:
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").url
        monkeypatch.setenv("LIKELY_TEST_PG_URL", url)
    return TableSide(request.param, root, url)


def test_table_replace_swaps_one_segments_rows_and_leaves_the_others(catalog, root, side):
    add_destination(catalog, "db", "table", side.config())
    tricky = "seg-'; DROP TABLE x; --"
    first = run(catalog, root, "db", ["a", "b", "c"], segment="seg-1")
    other = run(catalog, root, "db", ["x", "y"], segment=tricky, name="Churn 'risk'")
    second = run(catalog, root, "db", ["b", "c", "d"], segment="seg-1", score_date="2025-07-20")
    assert [a.status for a in (first, other, second)] == ["success"] * 3
    assert (second.sent, second.entered, second.exited, second.mode) == (3, 1, 1, "replace")
    assert side.rows("segment_id", "segment", "profile_id", "score_date", "activation_id") == [
        ("seg-'; DROP TABLE x; --", "Churn 'risk'", "x", "2025-07-19", other.id),
        ("seg-'; DROP TABLE x; --", "Churn 'risk'", "y", "2025-07-19", other.id),
        ("seg-1", "High buyers", "b", "2025-07-20", second.id),
        ("seg-1", "High buyers", "c", "2025-07-20", second.id),
        ("seg-1", "High buyers", "d", "2025-07-20", second.id)]
    [(stamp,)] = side.sql(f"SELECT DISTINCT activated_at FROM {side.table} "
                          "WHERE segment_id = 'seg-1'")
    assert stamp.tzinfo is not None
    assert second.detail["table"] == side.table and second.detail["engine"] == side.engine
    empty = run(catalog, root, "db", [], segment="seg-1", table=members([]))
    assert empty.status == "success" and empty.sent == 0
    assert side.rows("profile_id", where="WHERE segment_id = 'seg-1'") == []


def test_table_failure_mid_way_leaves_the_previous_rows(catalog, root, side):
    # the table refuses one profile id: the DELETE has run when the INSERT fails
    side.sql(f"CREATE TABLE {side.table} (segment_id TEXT, segment TEXT, profile_id TEXT "
             "CHECK (profile_id <> 'boom'), score_date TEXT, activation_id TEXT, "
             "activated_at TIMESTAMPTZ)")
    add_destination(catalog, "db", "table", side.config())
    before = run(catalog, root, "db", ["a", "b"])
    with pytest.raises(ActivationError, match="Activating segment 'High buyers' to 'db' failed"):
        run(catalog, root, "db", ["c", "boom", "d"])
    assert side.rows("profile_id", "activation_id") == [("a", before.id), ("b", before.id)]
    failed = list_activations(catalog, limit=1)[0]
    assert (failed.status, failed.sent) == ("failed", 0)
    assert "boom" in failed.error and failed.finished_at
    # and the next delta baseline is still 'before'
    after = run(catalog, root, "db", ["b", "e"])
    assert (after.entered, after.exited) == (1, 1)


def test_table_delta_appends_entered_and_left(catalog, root, side):
    add_destination(catalog, "db", "table", side.config(mode="delta"))
    first = run(catalog, root, "db", ["a", "b"])
    second = run(catalog, root, "db", ["b", "c"])
    assert (second.mode, second.sent, second.entered, second.exited) == ("delta", 2, 1, 1)
    assert side.rows("activation_id", "profile_id", "change") == sorted([
        (first.id, "a", "entered"), (first.id, "b", "entered"),
        (second.id, "a", "left"), (second.id, "c", "entered")])


def test_table_without_the_needed_columns_is_refused(catalog, root, side):
    side.sql(f"CREATE TABLE {side.table} (segment_id TEXT, profile_id TEXT)")
    add_destination(catalog, "db", "table", side.config())
    with pytest.raises(ConfigError, match="exists without column"):
        run(catalog, root, "db", ["a"])
    assert list_activations(catalog)[0].status == "failed"


def test_postgres_schema_and_unreachable_server(catalog, root, postgres_server, monkeypatch):
    monkeypatch.setenv("LIKELY_TEST_PG_URL", postgres_server.url)
    with psycopg.connect(postgres_server.url, autocommit=True) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marketing")
    add_destination(catalog, "db", "table", {"engine": "postgres", "schema": "marketing",
                                             "url_env": "LIKELY_TEST_PG_URL",
                                             "table": "audience"})
    done = run(catalog, root, "db", ["a", "b"])
    assert done.detail["table"] == "marketing.audience"
    with psycopg.connect(postgres_server.url) as con:
        assert con.execute("SELECT profile_id FROM marketing.audience ORDER BY 1").fetchall() \
            == [("a",), ("b",)]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LIKELY_TEST_PG_URL", f"postgresql://likely:pw-xyz@127.0.0.1:{port}/db")
    with pytest.raises(ConfigError, match=f"Could not connect to PostgreSQL at 127.0.0.1:{port}"
                       ) as caught:
        run(catalog, root, "db", ["a"])
    assert "pw-xyz" not in caught.value.message


# -- the activation log --------------------------------------------------------------------------


def test_log_is_running_during_delivery_and_lists_newest_first(catalog, root, receiver):
    target, url = receiver
    hook(catalog, url)
    add_destination(catalog, "drop", "folder", {"path": "out"})
    states: list[str] = []

    def watch(done: int, total: int) -> None:
        states.append(list_activations(catalog, limit=1)[0].status)

    one = run(catalog, root, "crm", [f"p{i}" for i in range(25)], progress=watch)
    assert states == ["running"] * 3
    two = run(catalog, root, "drop", ["a"], segment="seg-2", name="Other")
    three = run(catalog, root, "drop", ["a", "b"], segment="seg-1")
    assert [a.id for a in list_activations(catalog)] == [three.id, two.id, one.id]
    assert [a.id for a in list_activations(catalog, segment_id="seg-1")] == [three.id, one.id]
    assert [a.id for a in list_activations(catalog, limit=1)] == [three.id]
    assert get_activation(catalog, two.id) == two
    logged = one.to_dict()
    assert json.loads(json.dumps(logged))["detail"]["kind"] == "webhook"
    assert (logged["profiles"], logged["sent"], logged["batches"], logged["entered"],
            logged["exited"], logged["started_at"] <= logged["finished_at"]) == (
        25, 25, 3, 25, 0, True)
    assert Path(logged["detail"]["members_file"]).exists()
    assert len(target.applied) == 3


def test_one_segment_is_not_activated_twice_at_once_to_one_destination(catalog, root):
    add_destination(catalog, "drop", "folder", {"path": "out"})
    add_destination(catalog, "other", "folder", {"path": "elsewhere"})
    meanwhile: list[str] = []

    def second_process(done: int, total: int) -> None:
        with pytest.raises(BusyError, match="Activation of segment 'High buyers' to 'drop'"):
            run(catalog, root, "drop", ["z"])
        meanwhile.append(run(catalog, root, "drop", ["z"], segment="seg-2").status)
        meanwhile.append(run(catalog, root, "other", ["z"]).status)

    assert run(catalog, root, "drop", ["a"], progress=second_process).status == "success"
    assert meanwhile == ["success", "success"]
    assert len(list_activations(catalog)) == 3


def test_an_exception_during_delivery_ends_the_row_failed_and_reraises(catalog, root):
    add_destination(catalog, "drop", "folder", {"path": "out"})

    def explode(done: int, total: int) -> None:
        raise RuntimeError("the progress bar broke")

    with pytest.raises(ActivationError, match="RuntimeError: the progress bar broke") as caught:
        run(catalog, root, "drop", ["a"], progress=explode)
    logged = get_activation(catalog, caught.value.detail["activation_id"])
    assert (logged.status, logged.error) == ("failed", "RuntimeError: the progress bar broke")
    assert logged.detail == {"kind": "folder", "error_type": "RuntimeError"}
