"""Debian's real Prometheus, promtool and Alertmanager for the tests (and bench/slo_prometheus.py).

`need(name)` finds a binary; a test that needs a missing one skips with the reason, except in
CI (`CI=true`, set by .ci/run, which installs them), where it fails. `backfill` turns an
OpenMetrics file into TSDB blocks with promtool; `prometheus(...)` and `alertmanager(...)` run
the servers on a free loopback port until the block ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

PROMETHEUS = "prometheus"
PROMTOOL = "promtool"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for the alertmanager binary
INSTALL = "Debian: apt-get install prometheus prometheus-alertmanager (.ci/run installs them)"


def need(name: str) -> str:
    """The path of `name`; pytest.skip without it (pytest.fail in CI)."""
    path = shutil.which(name)
    if path is None:
        import pytest  # lazy: the bench imports this module without pytest

        reason = f"{name} is not installed ({INSTALL})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def backfill(promtool: str, openmetrics: Path, data_dir: Path) -> None:
    """`promtool tsdb create-blocks-from openmetrics FILE DIR` (blocks of up to a day)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            str(openmetrics),
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"promtool backfill failed ({out.returncode}): {out.stderr[-2000:]}")


@contextlib.contextmanager
def _process(argv: list[str], ready_url: str, timeout: float = 60.0) -> Iterator[subprocess.Popen]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {log.read().decode()[-3000:]}")
                try:
                    if httpx.get(ready_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{argv[0]} not ready within {timeout:.0f} s: {log.read().decode()[-3000:]}")
                time.sleep(0.1)
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@contextlib.contextmanager
def prometheus(binary: str, data_dir: Path, config: str = "", *, port: int | None = None) -> Iterator[str]:
    """Prometheus on 127.0.0.1 over `data_dir` with `config` (YAML; empty: scrape nothing); yields its URL."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    config_file = data_dir.parent / f"prometheus-{port}.yml"
    config_file.write_text(config or "global: {}\n")
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=3650d",  # backfilled history is older than the default 15d
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with _process(argv, url + "/-/ready"):
        yield url


@contextlib.contextmanager
def alertmanager(binary: str, work_dir: Path, config: str, *, port: int | None = None) -> Iterator[str]:
    """Alertmanager on 127.0.0.1 with `config` (YAML), clustering off; yields its URL."""
    port = port or free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    config_file = work_dir / "alertmanager.yml"
    config_file.write_text(config)
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={config_file}",
        f"--storage.path={work_dir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: a single instance
        "--log.level=warn",
    ]
    with _process(argv, url + "/-/ready"):
        yield url


def query(url: str, expr: str, at: float | None = None) -> list[dict]:
    """An instant query's vector (for assertions)."""
    params = {"query": expr} if at is None else {"query": expr, "time": str(at)}
    body = httpx.get(url + "/api/v1/query", params=params, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]["result"]
