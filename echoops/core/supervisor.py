"""`echoops up`: the server, the scheduler (and with --demo the demo traffic) as child
processes, supervised together.

- Each child runs `python -m echoops …` with this interpreter, in its own session (process
  group), so a Ctrl-C in the terminal reaches only `up`, which forwards it; on Linux each
  child also gets SIGTERM if `up` itself dies (PR_SET_PDEATHSIG), so none is orphaned.
- SIGINT/SIGTERM: forwarded to all; `up` waits for them (the scheduler gives running jobs
  up to 30 s) and exits 0. Children still alive after `stop_timeout_s` are SIGKILLed.
- A child that exits on its own stops the others, and `up` exits non-zero (the child's code,
  128+N for signal N, 1 for a clean exit that should not have happened).
- Before anything starts (exit 2, nothing printed but the error): one `up` per log dir (a
  second one names the running one's URL), and the port must be free (its holder named).
- `--demo`: the demo's settings go into ./echoops.env (core/demo/folder.py), so every later
  command in this folder reads the demo; its log dir (./logs/demo unless ECHOOPS_LOG_DIR is
  set) is seeded once; the scheduler runs the demo schedule (every job every minute) with
  --run-now, and `echoops demo traffic` appends live traffic. The URL and the demo's key
  are printed: the only place echoops ever shows a key (a key taken from the environment is
  never printed).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

import orjson

from echoops.core import clock, config, files, ports
from echoops.core.config import Settings
from echoops.core.errors import ConfigError, EchoopsError, NotConfigured
from echoops.core.scheduler import crontab

LOCK_NAME = "up.lock"
STOP_TIMEOUT_S = 45.0  # > the scheduler's 30 s grace
ANNOUNCE_AFTER_S = 30.0  # print the URL even if the server is not answering by then


class AlreadyRunning(EchoopsError):
    """Another `echoops up` runs on this log dir (exit 2: use it, or stop it first)."""

    code = "already_running"
    status = 409
    exit_code = 2


def run_up(
    demo: bool = False,
    host: str | None = None,
    port: int | None = None,
    *,
    env: Mapping[str, str] | None = None,
    access_log: bool = True,
    out: Callable[[str], None],
    err: Callable[[str], None],
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> int:
    """Run serve + scheduler (+ demo traffic) until a signal (-> 0) or until one dies (-> non-zero).

    ConfigError / NotConfigured / AlreadyRunning (exit 2) before anything starts when the
    settings are bad, outside demo mode DASHBOARD_KEY is unset, another `up` holds the log dir
    or the port is taken. The banner goes to `out`, child failures to `err`: the command
    decides where; core prints nothing itself.
    """
    environ = dict(os.environ if env is None else env)
    child_env = config.environment(environ)  # the environment over ./echoops.env
    first = config.load_settings(child_env)
    host, port = host or first.host, port or first.port
    url = ports.url(host, port)
    demo_settings = None
    if demo:
        from echoops.core.demo import folder as demo_folder  # lazy: the demo package (~50 ms), for --demo only

        demo_settings = demo_folder.settings(environ, child_env, host=host, port=port, url=url)
        child_env.update(demo_settings.env)
    s = config.load_settings(child_env)
    if not s.dashboard_key:
        raise NotConfigured(
            "DASHBOARD_KEY is not set: set it (the dashboard and /api need it) or run `echoops up --demo`"
        )
    weak = config.weak_dashboard_key(s.dashboard_key)
    if weak:
        raise ConfigError(f"{weak}: use a long random key, e.g. `openssl rand -hex 16`")
    _refuse_if_running(s)  # before the port: a second `up` here is told where the first one is
    ports.ensure_free(host, port)
    lock = _hold_log_dir(s, url)
    try:
        live = False
        if demo_settings is not None:
            demo_folder.write_settings(demo_settings.file)
            live = demo_folder.prepare(s, say=out)
            if not live:
                err(f"echoops up: {s.log_dir} holds no demo data (no demo.json from `echoops demo seed`): no live demo")
        children = {
            "serve": [
                "serve",
                "--host",
                host,
                "--port",
                str(port),
                "--access-log" if access_log else "--no-access-log",
            ],
            "scheduler": ["scheduler", "run", *(["--run-now"] if demo else [])],
        }
        if live:
            children["traffic"] = ["demo", "traffic"]
        banner = _banner(s, url, demo_settings.key if demo_settings else None, demo=demo, live=live)
        return _run_children(children, child_env, host, port, banner, out, err, stop_timeout_s)
    finally:
        os.close(lock)


def _banner(s: Settings, url: str, key: str | None, *, demo: bool, live: bool) -> str:
    path, source = crontab.resolve(s)
    lines = [
        "echoops is up",
        f"Dashboard: {url}",
        f"Key: {key}" if key else "Key: the DASHBOARD_KEY you set",
        f"Log dir: {s.log_dir}",
        f"Schedule: {path}{' (packaged default)' if source == 'default' else ''}",
    ]
    if live:
        lines.append(
            "Live demo: requests, AI calls, queue samples and app log lines every second, along a 15-minute "
            "loop (normal, error burst, sustained burn, recovery)"
        )
    if demo:
        lines.append(
            "Folder settings: ./echoops.env: every echoops command run here reads this demo "
            "(delete the file to go back to ./logs)"
        )
    lines.append("Stop with Ctrl-C.")
    return "\n".join(lines)


def _already_running(s: Settings) -> AlreadyRunning:
    holder = files.read_json(s.log_path(LOCK_NAME), {})
    holder = holder if isinstance(holder, dict) else {}
    where = f" at {holder['url']}" if holder.get("url") else ""
    pid = f" (PID {holder['pid']})" if holder.get("pid") else ""
    return AlreadyRunning(
        f"echoops up is already running for {s.log_dir}{pid}{where}: use that one, "
        "or stop it (Ctrl-C in its terminal) before starting another"
    )


def _refuse_if_running(s: Settings) -> None:
    """AlreadyRunning when another `up` holds the log dir's lock (creates nothing)."""
    try:
        fd = os.open(s.log_path(LOCK_NAME), os.O_RDWR)
    except OSError:  # no lock file (never started here), or no log dir yet
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _already_running(s) from None
    finally:
        os.close(fd)  # releases the probe's lock, if it got one


def _hold_log_dir(s: Settings, url: str) -> int:
    """Lock `up.lock` in the log dir for this process's life and record who holds it; AlreadyRunning
    (naming the holder's URL) when another `up` took it meanwhile. The lock dies with the process."""
    path = s.log_path(LOCK_NAME)
    try:
        fd = files.lock_file(path, wait=False)
    except BlockingIOError:
        raise _already_running(s) from None
    record = orjson.dumps({"pid": os.getpid(), "url": url, "log_dir": str(s.log_dir), "since": clock.iso(time.time())})
    os.ftruncate(fd, 0)
    os.pwrite(fd, record + b"\n", 0)
    return fd


def _run_children(
    args: dict[str, list[str]],
    child_env: dict[str, str],
    host: str,
    port: int,
    banner: str,
    out: Callable[[str], None],
    err: Callable[[str], None],
    stop_timeout_s: float,
) -> int:
    """Start each child of `args` (name -> `echoops` arguments) and supervise them until the end."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda n, _f: received.append(n)) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: dict[str, subprocess.Popen] = {}
    try:
        for name, argv in args.items():
            children[name] = _spawn(argv, child_env)
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


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"
