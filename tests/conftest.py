"""Shared fixtures. Every test runs against its own log dir under tmp_path (no ./logs, no $HOME)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from echoops.core import config, store

# One session-wide Playwright/Chromium for every dashboard test (fixtures `browser`, `dashboard`);
# Debian's redis-server on a free port for the queue-source tests (fixture `redis_server`).
# Debian's PostgreSQL on a free port for the store tests run on both backends (`postgres_server`).
pytest_plugins = ["tests.browser", "tests.redis_server", "tests.postgres_server"]

BACKENDS = ("sqlite", "postgres")

TEST_KEY = "test-dash-key-0123456789abcdef"


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """Tests marked `invariant` cannot be deselected: whatever -k, -m or --deselect dropped,
    every collected one is put back (they guard two code paths that must agree)."""
    invariants = [item for item in items if item.get_closest_marker("invariant")]
    result = yield
    kept = set(items)
    items.extend(item for item in invariants if item not in kept)
    return result


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Clear every echoops variable, point the log dir and schedule at tmp_path, set a key."""
    for var in config.VARS:
        monkeypatch.delenv(var.env, raising=False)
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    monkeypatch.setenv("ECHOOPS_LOG_DIR", str(log_dir))
    monkeypatch.setenv("ECHOOPS_SCHEDULE", str(tmp_path / "schedule.cron"))
    monkeypatch.setenv("DASHBOARD_KEY", TEST_KEY)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # no echoops.env from wherever pytest runs (`up --demo` in the checkout writes one there)
    monkeypatch.setenv("ECHOOPS_ENV_FILE", str(tmp_path / "echoops.env"))
    config.use_env_file()
    store.close_all()
    yield log_dir
    store.close_all()
    config.use_env_file()


def pytest_generate_tests(metafunc):
    """Tests marked `backends` run once per store backend: SQLite and PostgreSQL (not those
    also marked `sqlite_only`: they open the SQLite file themselves)."""
    node = metafunc.definition
    if node.get_closest_marker("backends") and not node.get_closest_marker("sqlite_only"):
        metafunc.parametrize("db_backend", BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def db_backend(request, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The store backend of this test: "sqlite" (the default), or "postgres" for a test marked
    `backends` (a fresh database on the session's PostgreSQL, in ECHOOPS_DB_URL)."""
    # ECHOOPS_TEST_BACKEND=postgres runs every other test on PostgreSQL too (a survey run).
    backend = getattr(request, "param", os.environ.get("ECHOOPS_TEST_BACKEND") or "sqlite")
    if backend == "sqlite":
        yield backend
        return
    server = request.getfixturevalue("postgres_server")
    url = server.new_database()
    monkeypatch.setenv("ECHOOPS_DB_URL", url)
    store.close_all()
    yield backend
    store.close_all()
    from echoops.core import postgres  # lazy: psycopg only for the tests that use it

    postgres.close_pools()
    postgres.ensured_reset()
    server.drop(url)


@pytest.fixture
def log_dir(isolated_env: Path) -> Path:
    return isolated_env


@pytest.fixture
def settings(isolated_env: Path) -> config.Settings:
    return config.settings()


@pytest.fixture
def cli():
    """Run the echoops CLI in process: cli("slo", "status", "--json") -> Result."""
    from echoops.cli import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict | None = None):
        return runner.invoke(app, list(args), input=input, env=env, catch_exceptions=False)

    return invoke


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphan may wait for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@dataclass
class LiveServer:
    url: str
    key: str
    proc: subprocess.Popen
    log_dir: Path

    def client(self, key: str | None = "default") -> httpx.Client:
        headers = {} if key is None else {"X-Dash-Key": self.key if key == "default" else key}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


def start_server(
    env: dict[str, str], workers: int = 2, extra_args: tuple[str, ...] = (), *, wsgi: bool = False
) -> LiveServer:
    """`echoops serve` on gunicorn on a free port with `env`; waits for /healthz. `wsgi=True`:
    plain `gunicorn shim.wsgi:app` instead (no `serve` checks: a server without a key)."""
    port = free_port()
    if wsgi:
        argv = ["-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "shim.wsgi:app"]
    else:
        argv = ["-m", "echoops", "serve", "--port", str(port), "--workers", str(workers), "--no-access-log"]
    proc = subprocess.Popen(
        [sys.executable, *argv, *extra_args],
        env=env,
        stdout=subprocess.DEVNULL,  # nobody reads it: a pipe would fill and stall the server
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            httpx.get(url + "/healthz", timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        stop_server(proc)
        raise RuntimeError("server did not answer /healthz within 20 s")
    return LiveServer(url, env.get("DASHBOARD_KEY", ""), proc, Path(env["ECHOOPS_LOG_DIR"]))


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def live_server(isolated_env: Path) -> Iterator:
    """Factory: live_server(**extra_env) starts gunicorn with the test env (plus extras)."""
    procs: list[subprocess.Popen] = []

    def start(workers: int = 2, **extra: str) -> LiveServer:
        env = dict(os.environ)
        env.update({k: str(v) for k, v in extra.items()})
        server = start_server(env, workers)
        procs.append(server.proc)
        return server

    yield start
    for proc in procs:
        stop_server(proc)


@pytest.fixture
def server(live_server) -> LiveServer:
    """A live server with the default test env."""
    return live_server()


@pytest.fixture
def tg(monkeypatch) -> Iterator:
    """A fake Telegram Bot API on a loopback port, configured as this test's channel."""
    from tests.fakes_telegram import FakeTelegram  # lazy: only pager tests start it

    with FakeTelegram() as fake:
        fake.configure(monkeypatch)
        yield fake


@pytest.fixture
def smtp(monkeypatch) -> Iterator:
    """A real SMTP server (aiosmtpd) on a loopback port, configured as this test's email channel."""
    from tests.fakes_smtp import FakeSMTP  # lazy: only pager tests start it

    with FakeSMTP() as fake:
        fake.configure(monkeypatch)
        yield fake
