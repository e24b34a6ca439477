"""An actuator for systemd template units: run instances 1..n of `worker@.service`, no more.

`echoops scale systemd-units --unit worker@ --to {n}` is the SCALE_CMD. It lists the running
instances (`systemctl list-units --type=service --state=active,activating,reloading --plain
--no-legend --no-pager 'worker@*.service'`: one `UNIT LOAD ACTIVE SUB DESCRIPTION` line each),
starts the missing ones of worker@1 .. worker@n in one `systemctl start`, and stops the
running ones numbered above n in one `systemctl stop` (highest first). Instances with a
non-numeric name (worker@special) are left alone and reported. `--user` talks to the user's
service manager. A systemctl that is missing or exits non-zero is SystemdFailed (exit 1), so
the autoscaler keeps its `actual` and raises its actuator incident.
"""

from __future__ import annotations

import re
import subprocess

from echoops.core.errors import EchoopsError, ValidationError
from echoops.core.scale.types import SystemdUnits

_UNIT_PREFIX = re.compile(r"[A-Za-z0-9:_.\\-]+@\Z")
MAX_INSTANCES = 10_000


class SystemdFailed(EchoopsError):
    """systemctl could not be run or exited non-zero."""

    code = "systemctl_failed"
    status = 502
    exit_code = 1


def _run(argv: list[str], timeout: float) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise SystemdFailed(f"{argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise SystemdFailed(f"{' '.join(argv[:3])} timed out after {timeout:g}s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-300:]
        raise SystemdFailed(f"{' '.join(argv[:3])} exited {proc.returncode}" + (f": {tail}" if tail else ""))
    return proc.stdout.decode("utf-8", "replace")


def reach(
    unit: str, n: int, *, user: bool = False, systemctl: str = "systemctl", timeout: float = 60.0
) -> SystemdUnits:
    """Start/stop instances of the template `unit` ("worker@") so that exactly 1..n run."""
    if not _UNIT_PREFIX.match(unit):
        raise ValidationError("unit must be a template prefix ending in @, e.g. worker@", field="unit")
    if type(n) is not int or not 0 <= n <= MAX_INSTANCES:
        raise ValidationError(f"to must be a whole number from 0 to {MAX_INSTANCES}", field="to")
    base = [systemctl, "--user"] if user else [systemctl]
    listing = _run(
        [*base, "list-units", "--type=service", "--state=active,activating,reloading", "--plain", "--no-legend",
         "--no-pager", f"{unit}*.service"],
        timeout,
    )  # fmt: skip
    running: dict[int, str] = {}
    other: list[str] = []
    for line in listing.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith(unit) or not fields[0].endswith(".service"):
            continue
        instance = fields[0][len(unit) : -len(".service")]
        if instance.isdigit() and int(instance) > 0:
            running[int(instance)] = fields[0]
        else:
            other.append(fields[0])
    start = [f"{unit}{i}.service" for i in range(1, n + 1) if i not in running]
    stop = [running[i] for i in sorted(running, reverse=True) if i > n]
    if start:
        _run([*base, "start", *start], timeout)
    if stop:
        _run([*base, "stop", *stop], timeout)
    return {
        "unit": unit,
        "to": n,
        "running_before": [running[i] for i in sorted(running)],
        "started": start,
        "stopped": stop,
        "left_alone": sorted(other),
    }
