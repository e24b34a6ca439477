"""What the benchmark scripts share: the script skeleton (`main`: options, a temp dir, the
machine line, PASS/FAIL as the exit code), a clean env, `echoops serve` on a free port, one
percentile, NDJSON writing and whole-process timing.

Scripts import it as `from harness import ...` (a script's own directory, bench/, is first on
sys.path). Importing it puts this checkout on sys.path too, so a script measures the echoops
it sits next to. A script is its docstring, a `measure(args, tmp) -> bool` and one line:

    if __name__ == "__main__":
        sys.exit(main(__doc__, measure, Option("--calls", 200_000), tmp_prefix="costs"))
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PYTHON_M_ECHOOPS = [sys.executable, "-m", "echoops"]


@dataclass(frozen=True)
class Option:
    """A command-line option of a bench script; its type is its default's (a bool is a flag)."""

    flag: str
    default: Any
    help: str | None = None


def main(doc: str, measure: Callable[[argparse.Namespace, Path], bool], *options: Option, tmp_prefix: str) -> int:
    """The skeleton every bench script shares: parse `options` (the first line of `doc` is the
    description), make a temp dir, print the machine line, run `measure(args, tmp)`, remove the
    dir. The exit code: 0 when `measure` says the target was met (it prints PASS/FAIL), else 1."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    for o in options:
        if isinstance(o.default, bool):
            ap.add_argument(o.flag, action="store_true", default=o.default, help=o.help)
        else:
            ap.add_argument(o.flag, type=type(o.default), default=o.default, help=o.help)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix=f"echoops-bench-{tmp_prefix}-"))
    try:
        print(machine_line())
        precompile(ROOT)
        return 0 if measure(args, tmp) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def precompile(checkout: Path) -> None:
    """Write the bytecode of a checkout's echoops and shim, as `pip install` does for an installed
    package. An editable checkout otherwise compiles from source in every process where
    PYTHONDONTWRITEBYTECODE is set (it is, on the project's VM): ~0.1 s a whole-process run that
    no installed echoops pays, while the Python packages it is compared with have theirs."""
    import compileall

    for pkg in ("echoops", "shim"):
        if (checkout / pkg).is_dir():
            compileall.compile_dir(checkout / pkg, quiet=1)


def echoops_argv() -> list[str]:
    """The `echoops` console script next to this Python (what an install runs), else `python -m echoops`."""
    script = Path(sys.executable).with_name("echoops")
    return [str(script)] if script.exists() else list(PYTHON_M_ECHOOPS)


def bench_env(log_dir: str | Path, **extra: object) -> dict[str, str]:
    """os.environ without any variable echoops reads, plus ECHOOPS_LOG_DIR=`log_dir` and `extra`.

    A run measures echoops' defaults, not whatever SLO_*, SMTP_* or TELEGRAM_* the shell has.
    """
    from echoops.core.config import VARS

    names = {var.env for var in VARS}
    env = {k: v for k, v in os.environ.items() if k not in names}
    env["ECHOOPS_LOG_DIR"] = str(log_dir)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: Iterable[float], q: float) -> float:
    """The `q` quantile (0 < q < 1) of `values`: the sorted sample at index floor(q * n), capped at the last.

    That is the smallest sample that more than a fraction q of the samples do not exceed. It is
    always a measured value (no interpolation) and never below the nearest-rank percentile: one
    rank above it when q * n is whole (p99 of 1,000 samples is the 991st). Every p95/p99 target
    in bench/ is checked with this one definition.
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine_line() -> str:
    """Host, CPUs, Python, UTC time and 1/5/15-minute load: what a figure from a shared machine needs beside it."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {load}"
    )


def write_ndjson(path: Path, records: Iterable[dict]) -> int:
    """Write `records` to `path` as NDJSON (orjson, 10,000 lines a write); the file's size in bytes."""
    with open(path, "wb") as fh:
        block: list[bytes] = []
        for rec in records:
            block.append(orjson.dumps(rec))
            if len(block) == 10_000:
                fh.write(b"\n".join(block) + b"\n")
                block = []
        if block:
            fh.write(b"\n".join(block) + b"\n")
    return path.stat().st_size


def process_wall(argv: Sequence[str], env: dict[str, str]) -> float:
    """Wall seconds of one run of `argv` to its exit, output discarded; SystemExit with its stderr if it fails."""
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.decode()[-2000:]}")
    return elapsed


@contextlib.contextmanager
def running(argv: Sequence[str], env: dict[str, str], url: str, timeout: float = 30.0) -> Iterator[subprocess.Popen]:
    """Start `argv` in its own process group, wait until `url` answers, stop the whole group on exit.

    The server's stderr goes to a temp file (a pipe nobody reads could fill and block it); its
    tail is in the error when the server exits or never answers.
    """
    with tempfile.TemporaryFile() as log:

        def fail(why: str) -> SystemExit:
            log.seek(0)
            return SystemExit(f"{' '.join(argv)} {why}: {log.read().decode(errors='replace')[-2000:]}")

        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise fail(f"exited {proc.returncode}")
                try:
                    with urllib.request.urlopen(url, timeout=1) as r:
                        r.read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise fail(f"did not answer {url} within {timeout:.0f} s") from None
                    time.sleep(0.1)
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:PORT, no trailing slash
    proc: subprocess.Popen  # the gunicorn master; its workers are its children


@contextlib.contextmanager
def echoops_serve(env: dict[str, str], workers: int = 2, *, access_log: bool = False) -> Iterator[Server]:
    """`python -m echoops serve --workers N` on a free loopback port with `env`, from /healthz
    answering to stopped. Without its access log unless asked: the baselines have none, and a
    line per request (gunicorn's logging) costs about as much as a small route."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [*PYTHON_M_ECHOOPS, "serve", "--port", str(port), "--workers", str(workers)]
    argv.append("--access-log" if access_log else "--no-access-log")
    with running(argv, env, url + "/healthz") as proc:
        yield Server(url, proc)
