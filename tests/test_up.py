"""`echoops up`: a real process tree (up -> serve on gunicorn + scheduler run) on a free port."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import TEST_KEY, alive, free_port, wait_for

PY = shlex.quote(sys.executable)


def children_of(pid: int) -> dict[str, int]:
    """{"serve": pid, "scheduler": pid, "traffic": pid} among the direct children of `pid` (from /proc)."""
    out: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
            continue
        if b"serve" in argv:
            out["serve"] = int(entry.name)
        elif b"scheduler" in argv:
            out["scheduler"] = int(entry.name)
        elif b"traffic" in argv:
            out["traffic"] = int(entry.name)
    return out


class Up:
    """`python -m echoops up …` in `cwd`; stdout collected by a thread, stderr to a file."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str):
        self.stderr_path = cwd / "up.stderr"
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "echoops", "up", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.stderr_path.open("wb"),
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            self.lines.append(raw.decode().rstrip("\n"))

    def wait_line(self, prefix: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {prefix!r} line; stdout={self.lines} stderr={self.stderr_path.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            for pid in children_of(self.proc.pid).values():
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def up_env(tmp_path: Path) -> tuple[Path, dict[str, str], int]:
    """A temp working dir with a one-line schedule (set in ECHOOPS_SCHEDULE, which the demo then
    leaves alone), and the env for `up` (no log dir, no key set)."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / "light.cron").write_text(f"* * * * * {PY} -c pass  # name=light\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("ECHOOPS_LOG_DIR", "DASHBOARD_KEY", "ECHOOPS_SCHEDULE")}
    env.update(ECHOOPS_PORT=str(port), ECHOOPS_WORKERS="1", ECHOOPS_SCHEDULE=str(cwd / "light.cron"))
    return cwd, env, port


def wait_healthy(url: str, up: Up, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert up.proc.poll() is None, f"up exited {up.proc.returncode}: {up.stderr_path.read_text()[-2000:]}"
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server never answered /healthz")


def test_up_demo_prints_a_working_key_and_sigterm_stops_both_children(up_env):
    cwd, env, port = up_env
    up = Up(cwd, env, "--demo")
    try:
        key = up.wait_line("Key:")
        dashboard = up.wait_line("Dashboard:")
        assert dashboard == f"http://127.0.0.1:{port}/"
        assert len(key) >= 32
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, up)
        with_key = httpx.get(url + "/api/no-such-route", headers={"X-Dash-Key": key}, timeout=5)
        assert with_key.status_code != 401
        assert with_key.json()["error"] == "not_found"
        assert httpx.get(url + "/api/no-such-route", timeout=5).status_code == 401
        # the demo portal works out of the box: a signing key is generated, links point here
        receipts = httpx.get(
            url + "/api/portal/receipts", params={"email": "qa@echopilot.ai"}, headers={"X-Dash-Key": key}, timeout=10
        )
        assert receipts.status_code == 200, receipts.text
        link = receipts.json()["purchases"][0]["receipt_url"]
        assert link.startswith(url + "/api/portal/download?token=")
        assert httpx.get(link, timeout=10).status_code == 200
        demo_dir = cwd / "logs" / "demo"
        assert (demo_dir / "requests.ndjson").stat().st_size > 0  # seeded
        assert up.wait_line("Log dir:") == str(demo_dir)
        log = demo_dir / "scheduler.ndjson"
        wait_for(lambda: log.exists() and b'"job_end"' in log.read_bytes(), timeout=15, what="the --run-now job to end")
        first = [orjson.loads(line) for line in log.read_bytes().splitlines()][:2]
        assert [(e["event"], e.get("trigger")) for e in first] == [("scheduler_start", None), ("job_start", "run_now")]
        kids = children_of(up.proc.pid)
        assert set(kids) == {"serve", "scheduler", "traffic"}
        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(30) == 0
        for pid in kids.values():
            assert not alive(pid)
        with pytest.raises(httpx.HTTPError):
            httpx.get(url + "/healthz", timeout=1)
        assert key not in up.stderr_path.read_text()
        assert sum(key in line for line in up.lines) == 1  # printed once
    finally:
        up.kill()


def test_up_exits_non_zero_when_the_server_dies_and_stops_the_scheduler(up_env):
    cwd, env, port = up_env
    env["DASHBOARD_KEY"] = TEST_KEY
    env["ECHOOPS_LOG_DIR"] = str(cwd / "data")
    (cwd / "data").mkdir()
    (cwd / "data" / "requests.ndjson").write_text('{"ts": 1800000000, "status": 200, "latency_ms": 5}\n')
    up = Up(cwd, env, "--demo")
    try:
        assert up.wait_line("Key:") == "the DASHBOARD_KEY you set"
        wait_healthy(f"http://127.0.0.1:{port}", up)
        assert not (cwd / "logs").exists()  # ECHOOPS_LOG_DIR was set: no ./logs/demo
        assert (cwd / "data" / "requests.ndjson").read_text().count("\n") == 1  # not seeded over
        kids = children_of(up.proc.pid)
        os.killpg(kids["serve"], signal.SIGKILL)
        assert up.proc.wait(30) == 128 + signal.SIGKILL
        assert not alive(kids["scheduler"])
        assert "echoops up: serve exited with signal SIGKILL; stopping the other process" in up.stderr_path.read_text()
        assert all(TEST_KEY not in line for line in up.lines)
    finally:
        up.kill()


def test_up_without_a_key_refuses_before_starting_anything(cli, monkeypatch, tmp_path):
    monkeypatch.delenv("DASHBOARD_KEY")
    monkeypatch.chdir(tmp_path)
    result = cli("up", "--port", str(free_port()))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: DASHBOARD_KEY is not set")
    assert result.stdout == ""
