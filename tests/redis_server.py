"""Debian's redis-server on a free loopback port for the queue-source tests (fixture `redis_server`).

    def test_x(redis_server):
        r = redis_server.client()            # redis-py, decode_responses=False (what RQ wants)
        redis_server.url                      # redis://:PASSWORD@127.0.0.1:PORT/0

Started with `--save '' --appendonly no` (nothing written to disk), `--requirepass` (so the
tests also prove the password never reaches errors, events or output), `--dir` a temp dir.
Outside CI a missing redis-server or redis client skips the test with the reason; with
`CI=true` it fails (.ci/run installs both).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.needs import module, need

PASSWORD = "redis-test-secret-7f3a9c"  # noqa: S105 - a throwaway for a loopback test server


def redis_module():
    return module("redis")


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen
    url: str

    def client(self):
        return redis_module().Redis.from_url(self.url)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(tmp: Path) -> RedisServer:
    exe = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if exe is None:
        need("redis-server is not installed (apt-get install redis-server)")
    redis = redis_module()
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", PASSWORD, "--dir", str(tmp), "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    server = RedisServer(port, proc, url)
    deadline = time.monotonic() + 10
    while True:
        try:
            if redis.Redis.from_url(url, socket_connect_timeout=0.5).ping():
                return server
        except redis.RedisError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"redis-server did not answer on port {port}")
        time.sleep(0.05)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test (empty, password-protected, loopback, nothing on disk)."""
    (tmp_path / "redis").mkdir()
    server = start(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()
