"""One unreadable input never crashes a tick (issue 12, item 4): it is skipped with a named
error (`{"source", "error", "detail"}`) in the tick's result and event, and everything else
proceeds, for `slo tick`, `costs tick`, `page run` and `scale tick`.

How a file is made unreadable here, since the suite runs as root (chmod 000 does not stop
root from reading): a directory named like the input, a FIFO (opening one for reading used
to block the tick forever: those tests run the CLI in a subprocess with a timeout), a
dangling symlink, and for a real PermissionError a forked child that drops to `nobody`
before it runs the ticks (when the suite is not root, chmod 000 is enough, in process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import pytest

from echoops.core import clock, config, costs, ndjson, pager, scale, slo, store

NOW = 1_795_780_800.0  # 2026-11-27T12:00:00Z


def write_lines(path: Path, records) -> None:
    with open(path, "ab") as fh:
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))


def requests(n: int = 3) -> list[dict]:
    return [{"ts": clock.iso(NOW - 60 * (i + 1)), "status": 200, "latency_ms": 120} for i in range(n)]


def events(path: Path, name: str) -> list[dict]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(orjson.loads, lines) if e["event"] == name]


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m echoops ...` in a subprocess: a tick that blocks fails the test, not the suite."""
    return subprocess.run(
        [sys.executable, "-m", "echoops", *args], capture_output=True, timeout=timeout, env=dict(os.environ)
    )


def test_open_input_names_what_is_wrong(log_dir):
    (log_dir / "dir.ndjson").mkdir()
    os.mkfifo(log_dir / "fifo.ndjson")
    (log_dir / "gone.ndjson").symlink_to(log_dir / "missing")
    (log_dir / "ok.ndjson").write_bytes(b"{}\n")
    for name, reason, detail in [
        ("dir.ndjson", "not_a_file", "a directory"),
        ("fifo.ndjson", "not_a_file", "a FIFO"),
        ("gone.ndjson", "vanished", "symlink to a missing file"),
    ]:
        with pytest.raises(ndjson.InputError) as info:
            ndjson.check_input(log_dir / name)
        assert info.value.as_dict() == {"source": name, "error": reason, "detail": detail}
    ndjson.check_input(log_dir / "ok.ndjson")
    ndjson.check_input(log_dir / "absent.ndjson")  # no file is not an error: nothing to read yet
    conn = store.db(config.settings())
    assert ndjson.pending(conn, log_dir / "absent.ndjson", "c") is False
    with pytest.raises(ndjson.InputError) as info:  # found by a glob a moment ago, gone now
        ndjson.pending(conn, log_dir / "absent.ndjson", "c", listed=True)
    assert info.value.as_dict() == {
        "source": "absent.ndjson",
        "error": "vanished",
        "detail": "deleted or renamed after it was listed",
    }


def test_slo_tick_skips_what_it_cannot_read_and_reads_the_rest(log_dir, settings):
    write_lines(log_dir / "requests.ndjson", requests(3))
    (log_dir / "requests-archive.ndjson").mkdir()
    os.mkfifo(log_dir / "requests-pipe.ndjson")
    (log_dir / "requests-old.ndjson").symlink_to(log_dir / "moved-away.ndjson")
    result = slo.tick(now=NOW)
    expected = [
        {"source": "requests-archive.ndjson", "error": "not_a_file", "detail": "a directory"},
        {"source": "requests-old.ndjson", "error": "vanished", "detail": "symlink to a missing file"},
        {"source": "requests-pipe.ndjson", "error": "not_a_file", "detail": "a FIFO"},
    ]
    assert result["ingest"]["errors"] == expected
    assert (result["ingest"]["lines"], result["status"]["requests"]) == (3, 3)
    tick_event = events(log_dir / "slo_budget.ndjson", "slo_tick")[-1]
    assert tick_event["input_errors"] == expected
    assert (log_dir / "slo_status.json").exists()


def test_costs_tick_with_ai_usage_a_directory_still_syncs_fees_and_logs(log_dir, settings):
    (log_dir / "ai_usage.ndjson").mkdir()
    body = costs.tick(now=NOW)
    error = {"source": "ai_usage.ndjson", "error": "not_a_file", "detail": "a directory"}
    assert body["input_errors"] == [error]
    assert (body["lines"], body["calls"], body["stripe_fees"]["source"]) == (0, 0, "ledger")
    assert events(log_dir / "costs.ndjson", "cost_tick")[-1]["input_errors"] == [error]


def test_costs_tick_with_ai_usage_a_fifo_does_not_block(log_dir):
    os.mkfifo(log_dir / "ai_usage.ndjson")
    done = cli("costs", "tick", "--json", "--now", clock.iso(NOW))
    assert done.returncode == 0, done.stderr
    body = orjson.loads(done.stdout)
    assert body["input_errors"] == [{"source": "ai_usage.ndjson", "error": "not_a_file", "detail": "a FIFO"}]


def test_page_run_skips_unreadable_logs_and_pages_from_the_others(log_dir):
    (log_dir / "api.ndjson").mkdir()  # sorts first: it used to stop the run before app.ndjson
    write_lines(log_dir / "app.ndjson", [{"ts": clock.iso(NOW), "severity": "CRITICAL", "msg": "db down"}])
    os.mkfifo(log_dir / "pipe.ndjson")
    done = cli("page", "run", "--json", "--now", clock.iso(NOW))
    assert done.returncode == 0, done.stderr
    body = orjson.loads(done.stdout)
    expected = [
        {"source": "api.ndjson", "error": "not_a_file", "detail": "a directory"},
        {"source": "pipe.ndjson", "error": "not_a_file", "detail": "a FIFO"},
    ]
    assert body["ingest"]["errors"] == expected
    assert (body["ingest"]["critical"], len(body["ingest"]["incidents"])) == (1, 1)
    assert events(log_dir / "incidents.ndjson", "page_run")[-1]["input_errors"] == expected
    human = cli("page", "run", "--now", clock.iso(NOW))
    assert human.returncode == 0
    assert b"Warning: api.ndjson: not_a_file (a directory); skipped" in human.stderr


def test_scale_tick_with_queue_a_directory_decides_from_the_stored_state(log_dir, settings):
    (log_dir / "queue.ndjson").mkdir()
    body = scale.tick(now=NOW)
    error = {"source": "queue.ndjson", "error": "not_a_file", "detail": "a directory"}
    assert body["input_errors"] == [error]
    assert (body["actual"], body["desired"], body["applied"]) == (1, 1, False)
    assert events(log_dir / "scale.ndjson", "scale_decision")[-1]["ingest"]["errors"] == [error]
    assert scale.status(now=NOW)["input_errors"] == [error]


# --- a real PermissionError ---------------------------------------------------------------------------


def _ticks(log_dir: Path) -> dict:
    """The four scheduled jobs on `log_dir`, as their results."""
    s = config.load_settings({"ECHOOPS_LOG_DIR": str(log_dir)})
    out = {
        "slo": slo.tick(s=s, now=NOW)["ingest"]["errors"],
        "costs": costs.tick(s=s, now=NOW)["input_errors"],
        "page": pager.run(s=s, now=NOW)["ingest"]["errors"],
        "scale": scale.tick(s=s, now=NOW)["input_errors"],
        "slo_lines": slo.status(s=s, now=NOW)["requests"],
    }
    store.close_all()
    return out


def _fill(log_dir: Path) -> None:
    write_lines(log_dir / "requests.ndjson", requests(2))
    for name in ("requests-locked.ndjson", "ai_usage.ndjson", "queue.ndjson"):
        write_lines(log_dir / name, [{"ts": clock.iso(NOW), "severity": "CRITICAL", "msg": "x"}])
        os.chmod(log_dir / name, 0o000)


def test_a_file_without_read_permission_is_named_and_skipped(tmp_path):
    if os.geteuid() != 0:
        log_dir = tmp_path / "perm"
        log_dir.mkdir()
        _fill(log_dir)
        result = _ticks(log_dir)
    else:
        # Root reads anything: a forked child drops to nobody first. Everything the ticks import
        # lazily is imported here by a warm-up run as root (nobody cannot read root's home).
        warm = tmp_path / "warm"
        warm.mkdir()
        write_lines(warm / "requests.ndjson", requests(1))
        _ticks(warm)
        log_dir = Path(tempfile.mkdtemp(prefix="echoops-perm-"))
        try:
            os.chmod(log_dir, 0o777)
            _fill(log_dir)
            os.chown(log_dir / "requests.ndjson", 65534, 65534)
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: nobody from here on, then the ticks
                code = 1
                try:
                    os.close(read_fd)
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    os.write(write_fd, orjson.dumps(_ticks(log_dir)))
                    code = 0
                finally:
                    os._exit(code)
            os.close(write_fd)
            with os.fdopen(read_fd, "rb") as fh:
                raw = fh.read()
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            result = orjson.loads(raw)
        finally:
            shutil.rmtree(log_dir, ignore_errors=True)
    denied = {"error": "permission_denied", "detail": "Permission denied"}
    assert result == {
        "slo": [{"source": "requests-locked.ndjson", **denied}],
        "costs": [{"source": "ai_usage.ndjson", **denied}],
        "page": [{"source": name, **denied} for name in ("ai_usage.ndjson", "queue.ndjson", "requests-locked.ndjson")],
        "scale": [{"source": "queue.ndjson", **denied}],
        "slo_lines": 2,
    }
