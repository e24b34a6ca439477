"""Actuator recipes for SCALE_CMD: docker compose and kubectl (argv shape: fakes on PATH record
what echoops runs; there is no docker or cluster here) and systemd template units through
`echoops scale systemd-units`, against a fake `systemctl` on PATH.

The fake systemctl keeps the active units in a state file and answers the three verbs the
helper uses in the shapes systemctl(1) documents: `list-units ... --plain --no-legend PATTERN`
prints `UNIT LOAD ACTIVE SUB DESCRIPTION` per matching active unit; `start`/`stop` take unit
names. Every call is recorded.
"""

from __future__ import annotations

import os
import shlex
import sys

import orjson
import pytest

from echoops.core import scale
from echoops.core.errors import ValidationError
from echoops.core.scale import systemd
from tests.test_scale import T0, growing_backlog, write_queue

RECORDER = """#!{python}
import json, os, sys
with open(os.environ["FAKE_CALLS"], "a") as fh:
    fh.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
"""

SYSTEMCTL = (
    RECORDER
    + """
import fnmatch
state_path = os.environ["FAKE_SYSTEMCTL_STATE"]
active = json.load(open(state_path)) if os.path.exists(state_path) else []
args = [a for a in sys.argv[1:] if a != "--user"]
verb = args[0]
if verb == "list-units":
    pattern = [a for a in args[1:] if not a.startswith("--")][0]
    for unit in sorted(active):
        if fnmatch.fnmatch(unit, pattern):
            print(f"{unit} loaded active running Worker {unit.split('@')[1].split('.')[0]}")
elif verb in ("start", "stop"):
    units = args[1:]
    if any(u.startswith("broken@") for u in units):
        print(f"Job for {units[0]} failed because the control process exited with error code.", file=sys.stderr)
        sys.exit(1)
    active = sorted(set(active) | set(units)) if verb == "start" else [u for u in active if u not in units]
    json.dump(active, open(state_path, "w"))
else:
    sys.exit(2)
"""
)


@pytest.fixture
def fake_path(tmp_path, monkeypatch):
    """A bin dir first on PATH with recording `docker`, `kubectl` and a stateful `systemctl`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("docker", RECORDER), ("kubectl", RECORDER), ("systemctl", SYSTEMCTL)):
        exe = bin_dir / name
        exe.write_text(body.replace("{python}", sys.executable))
        exe.chmod(0o755)
    calls = tmp_path / "calls.ndjson"
    state = tmp_path / "systemctl.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("FAKE_SYSTEMCTL_STATE", str(state))

    class Fake:
        def calls(self) -> list[list[str]]:
            return [orjson.loads(x) for x in calls.read_text().splitlines()] if calls.exists() else []

        def active(self) -> list[str]:
            return orjson.loads(state.read_bytes()) if state.exists() else []

        def set_active(self, units: list[str]) -> None:
            state.write_bytes(orjson.dumps(units))

    return Fake()


@pytest.mark.parametrize(
    ("template", "argv"),
    [
        ("docker compose up -d --scale worker={n}", ["docker", "compose", "up", "-d", "--scale", "worker=4"]),
        ("kubectl scale deployment/worker --replicas={n}", ["kubectl", "scale", "deployment/worker", "--replicas=4"]),
    ],
)
def test_compose_and_kubectl_recipes_run_with_the_target_in_place(fake_path, log_dir, monkeypatch, template, argv):
    monkeypatch.setenv("SCALE_CMD", template)
    monkeypatch.setenv("SCALE_DRY_RUN", "false")
    write_queue(log_dir, growing_backlog(T0))
    body = scale.tick(now=T0 + 1800)
    assert (body["applied"], body["actual"]) == (True, 4)
    assert body["actuator"]["argv"] == argv
    assert fake_path.calls() == [argv]


def test_systemd_units_starts_the_missing_and_stops_the_extra_instances(fake_path, cli):
    out = cli("scale", "systemd-units", "--unit", "worker@", "--to", "3", "--json")
    assert out.exit_code == 0
    assert orjson.loads(out.stdout) == {
        "unit": "worker@",
        "to": 3,
        "running_before": [],
        "started": ["worker@1.service", "worker@2.service", "worker@3.service"],
        "stopped": [],
        "left_alone": [],
    }
    listing = ["systemctl", "list-units", "--type=service", "--state=active,activating,reloading", "--plain",
               "--no-legend", "--no-pager", "worker@*.service"]  # fmt: skip
    start = ["systemctl", "start", "worker@1.service", "worker@2.service", "worker@3.service"]
    assert fake_path.calls() == [listing, start]
    # worker@2 died, worker@special is someone else's: reach 1 -> stop 3 only, leave special alone
    fake_path.set_active(["worker@1.service", "worker@3.service", "worker@special.service"])
    human = cli("scale", "systemd-units", "--unit", "worker@", "--to", "1")
    assert human.stdout == "worker@: 2 running -> 1..1; started none; stopped worker@3.service\n"
    assert fake_path.active() == ["worker@1.service", "worker@special.service"]
    assert fake_path.calls()[-1] == ["systemctl", "stop", "worker@3.service"]
    # already there: one listing, nothing started or stopped
    before = len(fake_path.calls())
    assert systemd.reach("worker@", 1)["started"] == []
    assert len(fake_path.calls()) == before + 1
    assert systemd.reach("worker@", 0, user=True)["stopped"] == ["worker@1.service"]
    assert fake_path.calls()[-1] == ["systemctl", "--user", "stop", "worker@1.service"]


def test_systemd_units_as_scale_cmd_in_real_mode(fake_path, log_dir, monkeypatch):
    echoops = shlex.join([sys.executable, "-m", "echoops"])
    monkeypatch.setenv("SCALE_CMD", f"{echoops} scale systemd-units --unit worker@ --to {{n}}")
    monkeypatch.setenv("SCALE_DRY_RUN", "false")
    fake_path.set_active(["worker@1.service", "worker@2.service"])
    write_queue(log_dir, growing_backlog(T0))
    body = scale.tick(now=T0 + 1800)
    assert (body["applied"], body["actual"]) == (True, 4)
    assert fake_path.active() == [f"worker@{i}.service" for i in (1, 2, 3, 4)]


def test_systemd_failures_and_bad_usage(fake_path, cli, monkeypatch):
    failed = cli("scale", "systemd-units", "--unit", "broken@", "--to", "1")
    assert failed.exit_code == 1
    assert "systemctl start broken@1.service exited 1: Job for broken@1.service failed" in failed.stderr
    assert cli("scale", "systemd-units", "--unit", "worker", "--to", "1").exit_code == 2
    with pytest.raises(ValidationError) as err:
        systemd.reach("worker@", -1)
    assert err.value.field == "to"
    monkeypatch.setenv("PATH", "/nonexistent")
    missing = cli("scale", "systemd-units", "--unit", "worker@", "--to", "1")
    assert missing.exit_code == 1 and "systemctl not found" in missing.stderr
