"""core/files.py: atomic JSON snapshots and flag files."""

from __future__ import annotations

import multiprocessing
import os
import stat
import subprocess
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from echoops.core import files


def _rewrite(path: str, rounds: int) -> None:
    for n in range(rounds):
        # sizes alternate between ~1 KiB and ~600 KiB so a torn read would show
        size = 600_000 if n % 2 else 1_000
        files.write_json(Path(path), {"n": n, "pad": "x" * size, "end": True})


def test_reader_never_sees_a_partial_snapshot(log_dir):
    path = log_dir / "slo_status.json"
    files.write_json(path, {"n": -1, "pad": "", "end": True})
    writer = multiprocessing.get_context("fork").Process(target=_rewrite, args=(str(path), 150))
    writer.start()
    reads = 0
    seen = set()
    while writer.is_alive() or reads == 0:
        data = path.read_bytes()  # never FileNotFoundError: the name always points at a whole file
        doc = orjson.loads(data)  # never a JSONDecodeError
        assert doc["end"] is True
        seen.add(doc["n"])
        reads += 1
    writer.join(60)
    assert writer.exitcode == 0
    assert reads > 10 and len(seen) > 2
    assert orjson.loads(path.read_bytes())["n"] == 149
    assert sorted(os.listdir(log_dir)) == ["slo_status.json"]  # no temp files left behind


def test_write_json_content_mode_and_no_temp_files(log_dir):
    path = log_dir / "nested" / "costs.json"
    files.write_json(path, {"usd": Decimal("1.25"), "dir": Path("/x"), "tags": {"a"}, 3: "k"})
    assert orjson.loads(path.read_bytes()) == {"usd": 1.25, "dir": "/x", "tags": ["a"], "3": "k"}
    assert path.read_bytes().endswith(b"}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    files.write_json(path, [1, 2])
    assert files.read_json(path) == [1, 2]
    assert os.listdir(path.parent) == ["costs.json"]


def test_failed_write_leaves_old_file_and_no_temp(log_dir):
    path = log_dir / "snap.json"
    files.write_json(path, {"v": 1})
    with pytest.raises(TypeError):
        files.write_json(path, {"v": object()})
    target_is_dir = log_dir / "adir"
    target_is_dir.mkdir()
    (target_is_dir / "inside").write_text("x")
    with pytest.raises(OSError):
        files.write_json(target_is_dir, {"v": 2})  # rename onto a non-empty directory fails
    assert files.read_json(path) == {"v": 1}
    assert sorted(os.listdir(log_dir)) == ["adir", "snap.json"]


def test_read_json_defaults(log_dir):
    assert files.read_json(log_dir / "missing.json") is None
    assert files.read_json(log_dir / "missing.json", default={}) == {}
    (log_dir / "bad.json").write_text("{not json")
    assert files.read_json(log_dir / "bad.json", default="d") == "d"
    assert files.read_json(log_dir, default="d") == "d"


def test_flags(log_dir):
    flag = log_dir / "deploy_gate.flag"
    assert files.read_flag(flag) is None
    assert files.clear_flag(flag) is False
    files.set_flag(flag, {"reason": "burn 3.1x > 2x for 2h", "since": "2026-11-27T01:00:00.000Z"})
    assert files.read_flag(flag) == {"reason": "burn 3.1x > 2x for 2h", "since": "2026-11-27T01:00:00.000Z"}
    assert files.clear_flag(flag) is True
    assert files.read_flag(flag) is None
    assert not flag.exists()


def test_flag_made_by_hand(log_dir):
    flag = log_dir / "deploy_gate.flag"
    subprocess.run(["touch", str(flag)], check=True)  # an operator's `touch`
    assert flag.stat().st_size == 0
    assert files.read_flag(flag) == {"reason": "flag file present (no reason recorded)"}
    flag.write_text("freeze for the release\n")
    assert files.read_flag(flag) == {"reason": "freeze for the release"}
    flag.write_text('["not", "an", "object"]')
    assert files.read_flag(flag) == {"reason": '["not", "an", "object"]'}
    flag.write_bytes(b"\xff\xfe bad bytes")
    assert files.read_flag(flag)["reason"].endswith("bad bytes")
    assert files.clear_flag(flag) is True
