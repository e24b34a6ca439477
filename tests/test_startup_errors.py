"""Start-up: a port in use (exit 2 naming the holder), `serve`'s line and access log (tokens
redacted, no key), `serve --demo` gone, missing input files as bad usage."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from echoops.core import ports
from echoops.core.errors import ConfigError
from tests.conftest import TEST_KEY, free_port, stop_server, wait_for


@pytest.fixture
def held_port():
    """A port this test process listens on (as another server would)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def me() -> str:
    return Path("/proc/self/comm").read_text().strip()


def test_owner_names_the_listening_process(held_port):
    assert ports.owner(held_port) == (os.getpid(), me())
    assert ports.owner(free_port()) is None


@pytest.mark.parametrize("command", ["serve", "up"])
def test_a_port_in_use_is_exit_2_naming_its_holder(held_port, log_dir, tmp_path, command):
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-m", "echoops", command, "--port", str(held_port)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"Error: port {held_port} is in use (by PID {os.getpid()}, {me()}): pass --port or set ECHOOPS_PORT\n"
    )
    assert result.stdout == ""  # no banner, no key
    assert list(log_dir.iterdir()) == []  # nothing started, nothing left behind (no up.lock)


def test_other_bind_failures_are_config_errors():
    with pytest.raises(ConfigError) as info:
        ports.ensure_free("192.0.2.1", free_port())  # TEST-NET-1: not an address of this machine
    assert (
        info.value.detail
        == "cannot listen on 192.0.2.1: not an address of this machine: pass --host or set ECHOOPS_HOST"
    )
    with pytest.raises(ConfigError) as info:
        ports.ensure_free("no-such-host.invalid", free_port())
    assert info.value.detail.startswith("cannot resolve host 'no-such-host.invalid'")


def test_serve_demo_is_gone_with_a_pointer(cli):
    result = cli("serve", "--demo", "--port", str(free_port()))
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: serve --demo is gone: run `echoops up --demo` (server, scheduler and live demo traffic), "
        "or `echoops serve` in a folder where `echoops up --demo` ran\n"
    )


def _serve(log_dir: Path, *flags: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    out = log_dir.parent / f"serve-{port}.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "echoops", "serve", "--port", str(port), "--workers", "1", *flags],
        env=dict(os.environ, PORTAL_SIGNING_SECRET="portal-signing-secret-0123456789abcdef"),
        stdout=out.open("wb"),
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=0.5).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=30, what="serve")
    return proc, url, out


def test_serve_prints_its_url_and_an_access_line_per_request_without_tokens_or_key(log_dir):
    proc, url, out = _serve(log_dir)
    token = "v1.eyJwIjoicG9ydGFsLmRvd25sb2FkIn0.c2lnbmF0dXJlLW9mLWEtdG9rZW4"
    try:
        assert httpx.get(f"{url}/api/ping", headers={"X-Dash-Key": TEST_KEY}).status_code == 200
        assert httpx.get(f"{url}/api/portal/download", params={"token": token}).status_code == 403
        wait_for(lambda: out.read_bytes().count(b"\n") >= 4, timeout=10, what="access lines")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = out.read_text()
    first, *rest = text.splitlines()
    assert first == f"echoops serve: {url}/ (log dir {log_dir}; Ctrl-C stops)"
    ping = next(line for line in rest if "/api/ping" in line)
    assert ping.startswith("[") and ' 127.0.0.1 "GET /api/ping HTTP/1.1" 200 ' in ping and ping.endswith("ms")
    download = next(line for line in rest if "/api/portal/download" in line)
    assert '"GET /api/portal/download?token=<redacted> HTTP/1.1" 403 ' in download
    assert token not in text and token[:20] not in text and TEST_KEY not in text


def test_no_access_log_leaves_only_the_start_line(log_dir):
    proc, url, out = _serve(log_dir, "--no-access-log")
    try:
        httpx.get(f"{url}/api/ping", headers={"X-Dash-Key": TEST_KEY})
    finally:
        stop_server(proc)
    assert out.read_text() == f"echoops serve: {url}/ (log dir {log_dir}; Ctrl-C stops)\n"


def test_redact_query_keeps_everything_but_token_values():
    from shim.server import redact_query

    assert redact_query("GET /x?a=1&token=v1.abc&b=2 HTTP/1.1") == "GET /x?a=1&token=<redacted>&b=2 HTTP/1.1"
    assert redact_query("token=abc") == "token=<redacted>"
    assert redact_query("/x?mytoken=1") == "/x?mytoken=1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("scale", "simulate", "missing.ndjson"), "Error: trace missing.ndjson does not exist\n"),
        (("portal", "import", "missing.csv"), "Error: no such file: missing.csv\n"),
    ],
)
def test_a_missing_input_file_is_bad_usage(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr == message


def test_owner_reads_proc_tables_and_skips_what_it_cannot_read(tmp_path):
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    (proc / "net" / "tcp").write_text(
        header
        + "   0: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 4242 1\n"
        + "   1: 0100007F:1388 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000 0 999 1\n"
        + "   2: junk\n"
    )
    (proc / "net" / "tcp6").write_text(header)
    (proc / "7").mkdir()  # another user's process: no readable fd dir
    (proc / "12" / "fd").mkdir(parents=True)
    (proc / "12" / "fd" / "3").symlink_to("socket:[4242]")
    (proc / "12" / "comm").write_text("gunicorn\n")
    (proc / "self").mkdir()
    assert ports.owner(5000, proc=proc) == (12, "gunicorn")
    assert ports.owner(5001, proc=proc) is None
    assert ports.owner(5000, proc=tmp_path / "no-proc") is None
