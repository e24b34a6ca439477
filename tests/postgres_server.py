"""Debian's PostgreSQL (15) on a free loopback port for the store tests (fixture `postgres_server`).

    def test_x(postgres_server):
        url = postgres_server.new_database()      # a fresh, empty database for this test
        postgres_server.restart()                  # fast shutdown + start, same data dir

One server per session: `initdb` in a temp dir (owned by the `postgres` user when the tests
run as root, as CI does: the server refuses to run as root), password authentication
(scram-sha-256, so the tests also prove the password never reaches output), `fsync=off`
(the data dir is thrown away; a process restart still loses nothing committed).
Outside CI a missing PostgreSQL skips the test with the reason; with `CI=true` it fails
(.ci/run installs the `postgresql` package).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.needs import need

PASSWORD = "pg-test-secret-4b7e1d"  # noqa: S105 - a throwaway for a loopback test server
USER = "echoops"
_counter = itertools.count(1)


def bindir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin with initdb and postgres in it."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists() and (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def _as_postgres(argv: list[str]) -> list[str]:
    """Run as the `postgres` user when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@dataclass
class PostgresServer:
    bin: Path
    data: Path
    port: int
    proc: subprocess.Popen | None = None
    databases: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        log = self.data.parent / "server.log"
        argv = [
            str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.data.parent}",
            "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300",
            "-c", "shared_buffers=64MB", "-c", "log_min_messages=fatal",
        ]  # fmt: skip
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                _as_postgres(argv), stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"], check=False
            )
            if done.returncode == 0:
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: `fast` (SIGINT: clients cut, a clean checkpoint) or `immediate` (SIGQUIT: a crash)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGQUIT if mode == "immediate" else signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def restart(self, mode: str = "fast", down_s: float = 0.0) -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def admin(self):
        import psycopg  # lazy: only the tests that use PostgreSQL import it

        return psycopg.connect(self.url(), autocommit=True)

    def admin_for(self, url: str):
        """A plain psycopg connection (autocommit) to the database of `url`."""
        import psycopg  # lazy: only the tests that use PostgreSQL import it

        return psycopg.connect(url, autocommit=True)

    def new_database(self) -> str:
        """A fresh database (from template0) and its URL."""
        name = f"t{os.getpid()}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")
        self.databases.append(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        try:
            with self.admin() as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except Exception:
            pass  # a server a test stopped on purpose: the whole data dir goes at the end


def psycopg_available() -> bool:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return False
    return True


def start_server() -> PostgresServer:
    """initdb + start; skips (fails in CI) without PostgreSQL or psycopg."""
    found = bindir()
    if found is None:
        need("PostgreSQL is not installed (apt-get install postgresql)")
    if not psycopg_available():
        need("psycopg is not installed (pip install -e '.[test]')")
    root = Path(tempfile.mkdtemp(prefix="echoops-pg-"))
    data = root / "data"
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run(
        _as_postgres([str(found / "initdb"), "-D", str(data), "-U", USER, "--auth=scram-sha-256",
                      f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync", "--locale=C"]),
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    pwfile.unlink()
    server = PostgresServer(found, data, free_port())
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data.parent, ignore_errors=True)
