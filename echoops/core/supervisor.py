"""`echoops up`: the server and the scheduler as two child processes, supervised together.

- Each child runs `python -m echoops …` with this interpreter, in its own session (process
  group), so a Ctrl-C in the terminal reaches only `up`, which forwards it; on Linux each
  child also gets SIGTERM if `up` itself dies (PR_SET_PDEATHSIG), so none is orphaned.
- SIGINT/SIGTERM: forwarded to both; `up` waits for them (the scheduler gives running jobs
  up to 30 s) and exits 0. Children still alive after `stop_timeout_s` are SIGKILLed.
- A child that exits on its own stops the other, and `up` exits non-zero (the child's code,
  128+N for signal N, 1 for a clean exit that should not have happened).
- `--demo`: ECHOOPS_LOG_DIR defaults to ./logs/demo, demo data is seeded when that dir has
  none, DASHBOARD_KEY is generated when unset, and the scheduler starts with --run-now so
  the dashboard fills at once. The URL and the generated key are printed once: the only
  place echoops ever shows a key (a key taken from the environment is never printed).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from echoops.core import config
from echoops.core import demo as demo_data
from echoops.core.errors import ConfigError, NotConfigured
from echoops.core.scheduler import crontab

DEMO_LOG_DIR = Path("logs") / "demo"
STOP_TIMEOUT_S = 45.0  # > the scheduler's 30 s grace
ANNOUNCE_AFTER_S = 30.0  # print the URL even if the server is not answering by then


def run_up(
    demo: bool = False,
    host: str | None = None,
    port: int | None = None,
    *,
    env: Mapping[str, str] | None = None,
    out: Callable[[str], None],
    err: Callable[[str], None],
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> int:
    """Run serve + scheduler until a signal (-> 0) or until one of them dies (-> non-zero).

    ConfigError / NotConfigured (exit 2) before anything starts when the settings are bad
    or, outside demo mode, DASHBOARD_KEY is unset. The banner goes to `out`, child failures to
    `err`: the command decides where; core prints nothing itself.
    """
    child_env = dict(os.environ if env is None else env)
    generated_key = None
    if demo:
        if not child_env.get("ECHOOPS_LOG_DIR", "").strip():
            child_env["ECHOOPS_LOG_DIR"] = str(DEMO_LOG_DIR.absolute())
        if not child_env.get("DASHBOARD_KEY", "").strip():
            generated_key = child_env["DASHBOARD_KEY"] = secrets.token_urlsafe(24)
        # The demo portal needs a signing key (never printed; links die with the process).
        if not child_env.get("PORTAL_SIGNING_SECRET", "").strip():
            child_env["PORTAL_SIGNING_SECRET"] = secrets.token_urlsafe(48)
    s = config.load_settings(child_env)
    if not s.dashboard_key:
        raise NotConfigured(
            "DASHBOARD_KEY is not set: set it (the dashboard and /api need it) or run `echoops up --demo`"
        )
    weak = config.weak_dashboard_key(s.dashboard_key)
    if weak:
        raise ConfigError(f"{weak}: use a long random key, e.g. `openssl rand -hex 16`")
    host, port = host or s.host, port or s.port
    if demo and not child_env.get("PORTAL_BASE_URL", "").strip():
        child_env["PORTAL_BASE_URL"] = _url(host, port).rstrip("/")  # signed links point at this server
    s.log_dir.mkdir(parents=True, exist_ok=True)
    if demo and demo_data.is_empty(s=s):
        counts = demo_data.seed(s=s)["counts"]
        out(f"Seeded demo data in {s.log_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda n, _f: received.append(n)) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: dict[str, subprocess.Popen] = {}
    try:
        children["serve"] = _spawn(["serve", "--host", host, "--port", str(port)], child_env)
        children["scheduler"] = _spawn(["scheduler", "run", *(["--run-now"] if demo else [])], child_env)
        path, source = crontab.resolve(s)
        banner = (
            "echoops is up\n"
            f"Dashboard: {_url(host, port)}\n"
            + (f"Key: {generated_key}\n" if generated_key else "Key: the DASHBOARD_KEY you set\n")
            + f"Log dir: {s.log_dir}\n"
            + f"Schedule: {path}{' (packaged default)' if source == 'default' else ''}\n"
            + "Stop with Ctrl-C."
        )
        return _supervise(children, received, ready=lambda: _answers(host, port), announce=lambda: out(banner), err=err)
    finally:
        _stop(children, received[0] if received else signal.SIGTERM, received, stop_timeout_s)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _supervise(
    children: dict[str, subprocess.Popen],
    received: list[int],
    *,
    ready: Callable[[], bool],
    announce: Callable[[], None],
    err: Callable[[str], None],
) -> int:
    """Poll the children: 0 once a signal arrived, non-zero when a child exits on its own."""
    started = time.monotonic()
    announced = False
    while not received:
        for name, proc in children.items():
            rc = proc.poll()
            if rc is not None:
                err(f"echoops up: {name} exited with {_describe(rc)}; stopping the other process")
                return 128 - rc if rc < 0 else (rc or 1)
        if not announced and (ready() or time.monotonic() - started > ANNOUNCE_AFTER_S):
            announced = True
            announce()
        time.sleep(0.1)
    return 0  # the finally of run_up forwards the signal and waits


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "echoops", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when `up` dies (Linux only; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _stop(children: dict[str, subprocess.Popen], sig: int, received: list[int], timeout_s: float) -> None:
    """Send `sig` to every live child (and any signal received meanwhile), wait, then SIGKILL their groups."""
    _forward(children, sig)
    seen = len(received)
    deadline = time.monotonic() + timeout_s
    while any(p.poll() is None for p in children.values()) and time.monotonic() < deadline:
        for signum in received[seen:]:  # a second Ctrl-C tells the scheduler to stop waiting
            _forward(children, signum)
        seen = len(received)
        time.sleep(0.05)
    for proc in children.values():
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def _forward(children: dict[str, subprocess.Popen], sig: int) -> None:
    for proc in children.values():
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((_connect_host(host), port), timeout=0.2):
            return True
    except OSError:
        return False


def _connect_host(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _url(host: str, port: int) -> str:
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"
