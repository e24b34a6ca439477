"""Bulk ingest on every core (issue 20): a backlog above ECHOOPS_INGEST_BULK_MB is split at line
boundaries and folded in forked processes, the parts merged exactly in one transaction; the
typed (msgspec) chunks read exactly what the per-line path reads."""

from __future__ import annotations

import json
import os
from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from echoops.core import bulk, clock, costs, ndjson, store
from echoops.core.config import load_settings
from echoops.core.costs import ingest as costs_ingest
from echoops.core.slo import aggregates

NOW = 1_795_780_800.0  # 2026-11-27T12:00:00Z


def request_lines(n: int, start: float = NOW - 3 * 3600) -> bytes:
    """n request lines over 3 hours: ISO and epoch stamps, errors, slow ones, and a few bad lines."""
    out = []
    for i in range(n):
        ts: object = clock.iso(start + i * 10_800 / n)
        if i % 7 == 0:
            ts = start + i * 10_800 / n  # epoch seconds
        line = {"ts": ts, "status": 503 if i % 50 == 0 else 200, "latency_ms": (i * 37) % 2000 + 0.5, "path": "/x"}
        if i % 97 == 0:
            line["status"] = "oops"
        out.append(orjson.dumps(line))
        if i % 211 == 0:
            out.append(b"not json")
    return b"\n".join(out) + b"\n"


def slo_state(s) -> tuple:
    conn = aggregates.db(s)
    minutes = [tuple(r) for r in conn.execute("SELECT * FROM slo_minute ORDER BY minute")]
    sketches = [tuple(r) for r in conn.execute("SELECT * FROM slo_minute_sketch ORDER BY minute")]
    hours = [tuple(r) for r in conn.execute("SELECT * FROM slo_hour ORDER BY hour")]
    cursor = tuple(conn.execute("SELECT offset, lines, bad FROM cursors WHERE consumer='slo'").fetchone())
    return minutes, sketches, hours, cursor


def _settings(tmp_path, name: str, **env) -> object:
    d = tmp_path / name
    d.mkdir()
    return load_settings({"ECHOOPS_LOG_DIR": str(d), **{k: str(v) for k, v in env.items()}})


def test_slo_bulk_fold_in_processes_equals_one_process(tmp_path):
    data = request_lines(6000)
    one = _settings(tmp_path, "one", ECHOOPS_INGEST_PROCESSES=1)
    many = _settings(tmp_path, "many", ECHOOPS_INGEST_PROCESSES=3, ECHOOPS_INGEST_BULK_MB=0.01)
    reports = []
    for s in (one, many):
        (s.log_dir / "requests.ndjson").write_bytes(data[:-20])  # a partial last line stays unread
        reports.append(aggregates.ingest(s, now=NOW))
        with open(s.log_dir / "requests.ndjson", "ab") as fh:
            fh.write(data[-20:] + request_lines(50, NOW - 60))
        second = aggregates.ingest(s, now=NOW)
        assert second["lines"] == 51 + 1  # the finished line, 50 new ones and one bad
    assert {k: v for k, v in reports[0].items() if k != "minutes_touched"} == {
        k: v for k, v in reports[1].items() if k != "minutes_touched"
    }
    assert reports[0]["lines"] == 6000 + 29 - 1
    assert reports[0]["bad_reasons"] == {"bad_status": 62, "not_json": 29}
    assert slo_state(one) == slo_state(many)
    store.close_all()


def test_costs_bulk_fold_in_processes_equals_one_process(tmp_path):
    lines = []
    for i in range(5000):
        ts: object = clock.iso(NOW - 7200 + i)
        if i % 5 == 0:
            ts = NOW - 7200 + i
        if i % 3 == 0:
            lines.append({"ts": ts, "model": ("gpt-4o", "gpt-4o-mini")[i % 2], "usd": 0.0012 * (i % 7)})
        else:
            lines.append({"ts": ts, "model": "gpt-4o-mini", "input_tokens": i, "output_tokens": i % 50})
        if i % 101 == 0:
            lines.append({"ts": ts, "model": "x\ny", "usd": 1.0})
    data = b"".join(orjson.dumps(x) + b"\n" for x in lines)
    results = []
    for name, env in (("one", {"ECHOOPS_INGEST_PROCESSES": 1}), ("many", {"ECHOOPS_INGEST_BULK_MB": 0.01})):
        s = _settings(tmp_path, name, **{"ECHOOPS_INGEST_PROCESSES": 2, **env})
        (s.log_dir / "ai_usage.ndjson").write_bytes(data)
        report = costs.tick(s=s, now=NOW)
        conn = store.db(s, costs.SCHEMA)
        rows = [tuple(r) for r in conn.execute("SELECT * FROM costs_spend ORDER BY day, model")]
        results.append((report["lines"], report["calls"], report["bad"], rows))
    assert results[0] == results[1]
    assert results[0][:3] == (5050, 5000, {"bad_model": 50})
    store.close_all()


@pytest.fixture
def conn(settings):
    return store.db(settings)


def test_reader_fold_splits_the_backlog_over_processes_and_keeps_the_cursor(conn, log_dir):
    path = log_dir / "app.ndjson"
    path.write_bytes(b"".join(orjson.dumps({"i": i, "pad": "x" * (i % 40)}) + b"\n" for i in range(3000)) + b'{"i":')

    def fold(scan):
        ids = [o["i"] for batch in scan.batches() for o in batch]
        return scan.remote, os.getpid(), ids

    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, "t")
        parts = reader.fold(fold, bulk_bytes=1000, processes=3)
        reader.commit(NOW)
    assert [remote for remote, _, _ in parts] == [False, True, True, False]  # 3 pieces, then the rest here
    assert len({pid for _, pid, _ in parts}) == 3
    assert [i for _, _, ids in parts for i in ids] == list(range(3000))
    assert reader.lines == 3000 and not reader.bad
    with open(path, "ab") as fh:
        fh.write(b'3000}\n{"i": 3001}\n')
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, "t")
        assert reader.fold(fold, bulk_bytes=1000, processes=3)[0][2] == [3000, 3001]  # small: one process
        reader.commit(NOW)


def test_reader_fold_reads_a_rotated_file_and_the_new_one_in_pieces(conn, log_dir):
    path = log_dir / "app.ndjson"
    path.write_bytes(b'{"i": 0}\n')
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, "t")
        list(reader)
        reader.commit(NOW)
    with open(path, "ab") as fh:
        fh.write(b"".join(orjson.dumps({"i": i}) + b"\n" for i in range(1, 2000)) + b"nope")
    path.rename(log_dir / "app.ndjson.1")
    path.write_bytes(b"".join(orjson.dumps({"i": i}) + b"\n" for i in range(2000, 4000)) + b"[1]\n")
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, "t")
        parts = reader.fold(lambda scan: [o["i"] for b in scan.batches() for o in b], bulk_bytes=100, processes=2)
        reader.commit(NOW)
    assert [i for ids in parts for i in ids] == list(range(1, 4000))
    assert (reader.events, dict(reader.bad)) == (["rotated"], {"unterminated": 1, "not_object": 1})
    with store.transaction(conn):
        reader = ndjson.Reader(conn, path, "t")
        assert list(reader) == [] and not reader.bad


def test_a_failing_piece_rolls_the_whole_tick_back(settings, log_dir, monkeypatch):
    (log_dir / "requests.ndjson").write_bytes(request_lines(3000))
    settings = load_settings({"ECHOOPS_LOG_DIR": str(log_dir), "ECHOOPS_INGEST_BULK_MB": "0.01"})
    real = aggregates._fold_scan

    def failing_in_children(scan, *args):
        if scan.remote:
            raise ValueError("piece failed")
        return real(scan, *args)

    monkeypatch.setattr(aggregates, "_fold_scan", failing_in_children)
    with pytest.raises(ValueError, match="piece failed"):
        aggregates.ingest(settings, now=NOW)
    conn = aggregates.db(settings)
    assert conn.execute("SELECT count(*) FROM slo_minute").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM cursors WHERE consumer='slo'").fetchone()[0] == 0
    monkeypatch.setattr(aggregates, "_fold_scan", real)
    assert aggregates.ingest(settings, now=NOW)["lines"] == 3000 + 15


def test_an_input_error_in_a_child_comes_back_as_itself(log_dir):
    path = log_dir / "x.ndjson"
    path.write_bytes(b"{}\n" * 10)

    def fold(piece):
        if piece.remote:
            raise ndjson.InputError(path, "io_error", "disk on fire")
        return "here"

    fh = open(path, "rb")
    try:
        seg = ndjson._Segment(fh, 0, 1, "x")
        scan = ndjson.Piece.__new__(ndjson.Piece)
        scan.path, scan.chunk, scan.typed = path, 64, None
        pieces = [ndjson.Piece(scan, seg, a, b) for a, b in bulk.split(fh.fileno(), 0, 30, 3)]
        assert [(p._seg.start, p._stop) for p in pieces] == [(0, 12), (12, 21), (21, 30)]
        with pytest.raises(ndjson.InputError) as caught:
            bulk.fan_out(pieces, fold, lambda: "rest")
        assert (caught.value.reason, caught.value.cause) == ("io_error", "disk on fire")
    finally:
        fh.close()


def test_a_child_that_dies_without_answering_fails_the_fold(log_dir):
    path = log_dir / "x.ndjson"
    path.write_bytes(b"{}\n" * 10)

    def fold(piece):
        if piece.remote:
            os._exit(3)  # killed, out of memory...: no answer comes back
        return "here"

    with open(path, "rb") as fh:
        scan = ndjson.Piece.__new__(ndjson.Piece)
        scan.path, scan.chunk, scan.typed = path, 64, None
        seg = ndjson._Segment(fh, 0, 1, "x")
        pieces = [ndjson.Piece(scan, seg, a, b) for a, b in bulk.split(fh.fileno(), 0, 30, 2)]
        with pytest.raises(RuntimeError, match="ended without an answer"):
            bulk.fan_out(pieces, fold, lambda: "rest")


def test_processes_setting_and_the_single_thread_rule():
    assert bulk.processes(3) == 3
    assert bulk.processes(0) == bulk.available_cpus()
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert bulk.processes(3) == 1  # never fork a threaded process (a server worker)
    finally:
        stop.set()
        t.join()


def test_line_boundaries(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"aaaa\nbb\n" + b"c" * 200_000 + b"\nd")
    with open(p, "rb") as fh:
        fd = fh.fileno()
        assert bulk.line_end(fd, 0, p.stat().st_size) == 200_009
        assert bulk.line_end(fd, 8, 200_008) == 8  # no newline in [8, 200008)
        assert bulk.split(fd, 0, 200_009, 4) == [(0, 200_009)]  # every cut would fall in the long line
        assert bulk.split(fd, 0, 200_009, 2) == [(0, 200_009)]
    p.write_bytes(b"aaaa\n" * 1000)
    with open(p, "rb") as fh:
        assert bulk.split(fh.fileno(), 0, 5000, 4) == [(0, 1255), (1255, 2505), (2505, 3755), (3755, 5000)]


# --- the typed chunks read what the per-line path reads ------------------------------------------------

# Extra fields, raw: what msgspec skips unread must be what the per-line rule accepts.
EXTRA = st.sampled_from(
    [
        b'"GET"',
        b"1e400",
        b"-1e999",
        b"9" * 400,
        b"1" + b"0" * 309,
        b"123456789012345678901234567890",
        b'"\\ud83d\\ude00"',
        b'"\\ud800"',
        b'"\\udc00x"',
        b'"a\\u0000b"',
        b'"\\x"',
        b"NaN",
        b"Infinity",
        b'[1,2,{"a":[null,true,false]}]',
        b"[" * 100 + b"]" * 100,
        b"01",
        b"1.",
        b".5",
        b"-0",
        b"1E+2",
        b'"\x01"',
        b'"\xc3\xa9"',
        b'"\xff"',
        b"{}",
        b"tru",
    ]
)
STATUS = st.one_of(
    st.sampled_from([b"200", b"503"]), st.sampled_from([b"-1", b"1000", b"200.0", b"true", b'"200"', b"1e400", b"null"])
)
LATENCY = st.sampled_from([b"12.5", b"0", b"800", b"801", b"-1", b"1e12", b"true", b"1e400", b'"5"', b"3"])
TS = st.sampled_from(
    [
        b'"2026-11-27T11:58:00.250Z"',
        b'"2026-11-27T11:58:61Z"',
        b'"2026-11-27 11:58:00"',
        b"1795780740",
        b"1795780740.5",
        b"1795781101",
        b"1e400",
        b"true",
        b'"2026-11-27T11:58:00+05:00"',
    ]
)


@st.composite
def raw_request_line(draw) -> bytes:
    fields = [b'"ts":' + draw(TS), b'"status":' + draw(STATUS), b'"latency_ms":' + draw(LATENCY)]
    fields += [b'"x%d":' % i + draw(EXTRA) for i in range(draw(st.integers(0, 2)))]
    if draw(st.integers(0, 6)) == 0:
        fields.append(b'"status":' + draw(STATUS))  # a duplicate key: the last one counts
    fields = draw(st.permutations(fields))
    line = b"{" + b",".join(fields) + b"}"
    if draw(st.integers(0, 5)):
        return line
    return draw(st.sampled_from([b" " + line + b"\r", line + line, line + b" " + line, b"", b" ", b"null"]))


def _per_line(raw: bytes) -> list:
    """What the per-line path (the definition) makes of one line: [] for a bad or blank line."""
    scan = ndjson.Piece.__new__(ndjson.Piece)
    scan.bad, scan.lines = Counter(), 0
    return scan._parse_lines([raw])


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_request_line(), min_size=1, max_size=3))
def test_a_typed_chunk_is_read_as_the_per_line_path_reads_it(lines):
    typed = aggregates.request_lines()
    buf = b"".join(line + b"\n" for line in lines)
    got = typed.chunk(buf)
    if got is None:
        return  # the per-line path reads this chunk
    assert len(got) == len(lines)
    for raw, struct in zip(lines, got, strict=True):
        (obj,) = _per_line(raw)
        assert (obj["ts"], obj["status"], obj["latency_ms"]) == (struct.ts, struct.status, struct.latency_ms)
        assert type(obj["status"]) is int and type(obj["latency_ms"]) in (int, float)


def test_the_per_line_rule_keeps_huge_numbers_and_refuses_lone_surrogates():
    assert _per_line(b'{"a": 1e400, "b": ' + b"9" * 30 + b"}") == [{"a": float("inf"), "b": int("9" * 30)}]
    assert _per_line(b'{"a": "\\ud800"}') == []
    assert _per_line(b'{"a": NaN}') == []
    assert _per_line(json.dumps({"a": "\U0001f600"}).encode()) == [{"a": "\U0001f600"}]


class BadLines(Counter):
    def count_bad(self, reason: str, n: int = 1) -> None:
        self[reason] += n


def _counts(agg) -> dict:
    return {m: Counter(keys) for m, keys in agg.per.items() if keys}


OLDEST = int(NOW // 60) - 31 * 1440


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_request_line(), min_size=1, max_size=30))
def test_slo_typed_fold_equals_the_careful_path(lines):
    typed = aggregates.request_lines()
    structs = [s for line in lines for s in (typed.chunk(line + b"\n") or [])]
    if not structs:
        return
    fast, fast_bad = aggregates._Agg(), BadLines()
    aggregates._fold(structs, fast, clock.Stamps(NOW), {}, 800.0, OLDEST, fast_bad)
    careful, careful_bad = aggregates._Agg(), BadLines()
    for o in structs:
        line = {"ts": o.ts, "status": o.status, "latency_ms": o.latency_ms}
        aggregates._careful(line, careful, clock.Stamps(NOW), 800.0, OLDEST, careful_bad)
    assert (_counts(fast), fast.old, fast_bad) == (_counts(careful), careful.old, careful_bad)


USAGE_TS = st.sampled_from(["2026-11-27T11:58:00.250Z", "2026-11-27T11:58:61Z", 1795780740, 1795780740.5, NOW + 301])


@st.composite
def usage_line(draw) -> dict:
    line: dict = {"ts": draw(USAGE_TS), "model": draw(st.sampled_from(["gpt-4o", "gpt-4o-mini", " ", "a\tb"]))}
    if draw(st.booleans()):
        line["usd"] = draw(st.sampled_from([0.0012, 1, 0, 10**7, 1000.5, None]))
    if draw(st.booleans()):
        line["input_tokens"] = draw(st.sampled_from([812, 0, 10**10, None]))
    if draw(st.booleans()):
        line["output_tokens"] = draw(st.sampled_from([95, 0, None]))
    return line


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(usage_line(), min_size=1, max_size=30))
def test_costs_typed_fold_equals_the_careful_path(lines):
    typed = costs_ingest.usage_lines()
    structs = [s for line in lines for s in (typed.chunk(orjson.dumps(line) + b"\n") or [])]
    assert len(structs) == len(lines)  # every line here is of the typed shape
    bad_fast: Counter = Counter()
    fast = costs_ingest.aggregate([structs], bad_fast, now=NOW)
    careful: dict = {}
    bad_careful: Counter = Counter()
    for line in lines:
        found = costs_ingest.line_spend(line, NOW)
        if isinstance(found, str):
            bad_careful[found] += 1
            continue
        day, model, add = found
        acc = careful.setdefault((clock.day_iso(day * 86400), model), [0] * 6)
        for i, v in enumerate(add):
            acc[i] += v
    assert (fast, bad_fast) == (careful, bad_careful)
