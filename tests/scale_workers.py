#!/usr/bin/env python3
"""The closed-loop test's SCALE_CMD: start or stop RQ worker processes until `n` run.

    SCALE_CMD="python tests/scale_workers.py STATE_DIR QUEUE {n}"

Each worker is `python -m rq worker QUEUE` (SimpleWorker: jobs run in the worker process),
started in its own session with the Redis URL from RQ_REDIS_URL (the environment, so the
password is not in the argv echoops reports), its pid in STATE_DIR/worker-<pid>.pid. Scaling
down sends SIGTERM to the newest ones: RQ's warm shutdown finishes the job in hand and
unregisters the worker. Exits 0 once the processes are started or signalled (it does not
wait for them to register), 2 on bad arguments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def running(state: Path) -> list[int]:
    """Pids of the workers this script started that still run (oldest first); stale files removed."""
    pids = []
    for f in sorted(state.glob("worker-*.pid"), key=lambda p: p.stat().st_mtime_ns):
        pid = int(f.read_text())
        if alive(pid):
            pids.append(pid)
        else:
            f.unlink()
    return pids


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[2].isdigit():
        sys.stderr.write("usage: scale_workers.py STATE_DIR QUEUE N\n")
        return 2
    state, queue, n = Path(argv[0]), argv[1], int(argv[2])
    state.mkdir(parents=True, exist_ok=True)
    pids = running(state)
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    while len(pids) < n:
        log = open(state / "workers.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "rq.cli", "worker", queue, "--worker-class", "rq.worker.SimpleWorker", "--quiet"],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        (state / f"worker-{proc.pid}.pid").write_text(str(proc.pid))
        with open(state / "spawned", "a") as fh:  # every pid ever started, for the test's clean-up
            fh.write(f"{proc.pid}\n")
        pids.append(proc.pid)
    for pid in pids[n:][::-1]:
        os.kill(pid, signal.SIGTERM)
        (state / f"worker-{pid}.pid").unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
