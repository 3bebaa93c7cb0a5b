"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temp folder, loopback only.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user (made by
Debian's package) or ``nobody``, in a folder that user owns. Trust authentication on 127.0.0.1
and a Unix socket inside the folder; fsync off, since the data dies with the test session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "likely"
DATABASE = "likely_test"


def find_bin() -> Path | None:
    """The newest installed server's bin folder (``/usr/lib/postgresql/<v>/bin``), if any."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        on_path = shutil.which("initdb")
        return Path(on_path).parent if on_path else None
    newest = max(found, key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(newest).parent


@dataclass
class PostgresServer:
    bin: Path
    folder: Path
    port: int
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        options: dict = {}
        if self.run_as is not None:
            user = pwd.getpwnam(self.run_as)
            options = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        return subprocess.run(args, cwd=self.folder, capture_output=True, text=True,
                              timeout=120, check=False, **options)

    def start(self) -> None:
        data = self.folder / "data"
        done = self._run(str(self.bin / "initdb"), "-D", str(data), "-U", USER, "-A", "trust",
                         "-E", "UTF8", "--no-sync")
        _check(done, "initdb")
        options = (f"-p {self.port} -h 127.0.0.1 -k {self.folder} -F "
                   "-c synchronous_commit=off -c full_page_writes=off")
        done = self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l",
                         str(self.folder / "server.log"), "-o", options, "-w", "-t", "60", "start")
        _check(done, "pg_ctl start", self.folder / "server.log")
        import psycopg

        with psycopg.connect(f"postgresql://{USER}@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as con:
            con.execute(f"CREATE DATABASE {DATABASE}")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m",
                      "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def start_server() -> PostgresServer:
    """Start a fresh server on a free loopback port (retried if another process took it)."""
    bin_dir = find_bin()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found "
                                "(/usr/lib/postgresql/*/bin/initdb); run 'make postgres' or "
                                "apt-get install postgresql")
    run_as = _unprivileged_user() if os.geteuid() == 0 else None
    last: Exception | None = None
    for _ in range(3):
        folder = Path(tempfile.mkdtemp(prefix="likely-pg-"))
        if run_as is not None:
            user = pwd.getpwnam(run_as)
            os.chown(folder, user.pw_uid, user.pw_gid)
        server = PostgresServer(bin_dir, folder, _free_port(), run_as)
        try:
            server.start()
            return server
        except RuntimeError as exc:
            last = exc
            server.stop()
    raise RuntimeError(f"PostgreSQL would not start: {last}")


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("Running as root and neither user 'postgres' nor 'nobody' exists; "
                       "initdb refuses to run as root.")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _check(done: subprocess.CompletedProcess, what: str, log: Path | None = None) -> None:
    if done.returncode == 0:
        return
    tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()} {tail}")
