"""The purchase ledger: import (NDJSON/CSV, idempotent, bad rows by line, --strict), fees_by_day, suppressions."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from echoops.core import parsers, portal
from echoops.core.errors import ValidationError
from echoops.core.portal import ledger, rows

GOOD = [
    {
        "id": "p1",
        "email": " QA@EchoPilot.ai ",
        "created": "2026-11-20T10:00:00Z",
        "amount_cents": 1900,
        "currency": "USD",
        "description": "Pro plan",
        "invoice_number": "INV-0001",
        "fee_cents": 85,
    },
    {
        "id": "p2",
        "email": "qa@echopilot.ai",
        "created": 1795000000,
        "amount_cents": 500,
        "currency": "eur",
        "description": "Add-on",
        "fee_cents": 30,
        "document": "qa/p2.pdf",
    },
    {
        "id": "p3",
        "email": "other@example.com",
        "created": 1795000100,
        "amount_cents": 0,
        "currency": "usd",
        "description": "",
        "document": "https://pay.stripe.com/receipts/x",
    },
]


def _ndjson(path, records, extra_lines=()):
    lines = [orjson.dumps(r).decode() for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(settings):
    conn = ledger.conn_for(settings)
    return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM portal_purchases")}


def test_ndjson_import_normalises_and_is_idempotent(tmp_path, settings):
    f = _ndjson(tmp_path / "p.ndjson", GOOD)
    report = portal.import_purchases(f, s=settings, now=1_800_000_000)
    assert {k: report[k] for k in ("format", "rows", "landed", "bad", "errors")} == {
        "format": "ndjson",
        "rows": 3,
        "landed": 3,
        "bad": 0,
        "errors": [],
    }
    rows = _rows(settings)
    assert rows["p1"]["email"] == "qa@echopilot.ai"
    assert rows["p1"]["currency"] == "usd"
    assert rows["p1"]["created"] == datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp()
    assert rows["p2"]["receipt_doc"] == "qa/p2.pdf"
    assert rows["p3"]["receipt_doc"] == "https://pay.stripe.com/receipts/x" and rows["p3"]["fee_cents"] is None
    again = portal.import_purchases(f, s=settings, now=1_800_000_000)
    assert again["landed"] == 3 and ledger.count(s=settings) == 3
    assert _rows(settings) == rows
    # an upsert changes the row in place
    _ndjson(f, [{**GOOD[1], "amount_cents": 700}])
    portal.import_purchases(f, s=settings, now=1_800_000_000)
    assert _rows(settings)["p2"]["amount_cents"] == 700 and ledger.count(s=settings) == 3


BAD_LINES = [
    "not json",
    '["a list"]',
    '{"id": "b1", "email": "nope", "created": 1795000000, "amount_cents": 1, "currency": "usd", "description": ""}',
    '{"id": "b2", "email": "a@b.io", "created": 1795000000, "amount_cents": -5, "currency": "usd", "description": ""}',
    '{"id": "b3", "email": "a@b.io", "created": 1795000000, "amount_cents": 1.5, "currency": "usd", "description": ""}',
    '{"id": "b4", "email": "a@b.io", "created": 1795000000, "amount_cents": 1, "currency": "us", "description": ""}',
    '{"id": "b5", "email": "a@b.io", "created": "yesterday", "amount_cents": 1, "currency": "usd", "description": ""}',
    '{"id": "b6", "email": "a@b.io", "created": 1795000000, "amount_cents": 1, "currency": "usd"}',
    '{"id": "b7", "email": "a@b.io", "created": 1795000000, "amount_cents": 1, "currency": "usd", "description": "",'
    ' "document": "../../echoops.db"}',
    '{"id": "b8", "email": "a@b.io", "created": 1795000000, "amount_cents": 1, "currency": "usd", "description": "",'
    ' "document": "/etc/passwd"}',
    '{"id": "b9", "email": "a@b.io", "created": 1795000000, "amount_cents": 1, "currency": "usd", "description": "",'
    ' "fee_cents": "x"}',
]


def test_bad_rows_are_reported_by_line_and_good_rows_land(tmp_path, settings):
    f = _ndjson(tmp_path / "p.ndjson", GOOD[:1], BAD_LINES + [orjson.dumps(GOOD[2]).decode()])
    report = portal.import_purchases(f, s=settings)
    assert report["rows"] == 13 and report["landed"] == 2 and report["bad"] == 11
    assert report["errors"] == [
        {"line": 2, "error": "not valid JSON"},
        {"line": 3, "error": "not a JSON object"},
        {"line": 4, "error": "email: 'nope' is not a valid email address"},
        {"line": 5, "error": "amount_cents: must be >= 0"},
        {"line": 6, "error": "amount_cents: must be a whole number of minor units"},
        {"line": 7, "error": "currency: must be a 3-letter ISO code"},
        {"line": 8, "error": "created: must be ISO-8601 or epoch seconds (2000..2200)"},
        {"line": 9, "error": "description: missing"},
        {"line": 10, "error": "document: path escapes logs/receipts/"},
        {"line": 11, "error": "document: must be a path relative to logs/receipts/ or an http(s) URL"},
        {"line": 12, "error": "fee_cents: must be a whole number of minor units"},
    ]
    assert sorted(_rows(settings)) == ["p1", "p3"]


def test_strict_lands_nothing_when_any_row_is_bad(tmp_path, settings):
    f = _ndjson(tmp_path / "p.ndjson", GOOD, BAD_LINES[:1])
    report = portal.import_purchases(f, strict=True, s=settings)
    assert report["landed"] == 0 and report["bad"] == 1 and report["errors"] == [{"line": 4, "error": "not valid JSON"}]
    assert ledger.count(s=settings) == 0
    f2 = _ndjson(tmp_path / "ok.ndjson", GOOD)
    assert portal.import_purchases(f2, strict=True, s=settings)["landed"] == 3


def test_csv_import_with_optional_columns_and_line_numbers(tmp_path, settings):
    f = tmp_path / "p.csv"
    f.write_text(
        "\ufeffid,email,created,amount_cents,currency,description,invoice_number,fee_cents,document\n"
        'c1,Buyer@Example.com,2026-11-01T00:00:00Z,1234,usd,"Pro, yearly",INV-9,44,\n'
        'c2,buyer@example.com,1795000000,99,jpy,"multi\nline",,,https://example.com/r/c2\n'
        "c3,buyer@example.com,1795000000,-1,usd,x,,,\n"
        "c4,too,few\n"
        "c5,buyer@example.com,1795000000,5,usd,ok,,,\n"
    )
    report = portal.import_purchases(f, s=settings)
    assert report["format"] == "csv"
    assert report["errors"] == [
        {"line": 5, "error": "amount_cents: must be >= 0"},
        {"line": 6, "error": "expected 9 fields, found 3"},
    ]
    rows = _rows(settings)
    assert sorted(rows) == ["c1", "c2", "c5"]
    assert rows["c1"]["description"] == "Pro, yearly" and rows["c1"]["fee_cents"] == 44
    assert rows["c1"]["invoice_number"] == "INV-9" and rows["c2"]["invoice_number"] is None
    assert rows["c2"]["currency"] == "jpy" and rows["c2"]["receipt_doc"] == "https://example.com/r/c2"


def test_csv_without_required_columns_is_refused(tmp_path, settings):
    f = tmp_path / "p.csv"
    f.write_text("id,email\nx,y@z.io\n")
    with pytest.raises(ValidationError, match="lacks column"):
        portal.import_purchases(f, s=settings)


def test_missing_file(tmp_path, settings):
    with pytest.raises(ValidationError) as info:  # bad usage (exit 2), like any bad argument
        portal.import_purchases(tmp_path / "nope.csv", s=settings)
    assert info.value.field == "file"


def test_fees_by_day(tmp_path, settings):
    day1 = 1_795_000_000  # 2026-11-18
    f = _ndjson(
        tmp_path / "p.ndjson",
        [
            {**GOOD[0], "id": "f1", "created": day1, "fee_cents": 30},
            {**GOOD[0], "id": "f2", "created": day1 + 60, "fee_cents": 45},
            {**GOOD[0], "id": "f3", "created": day1 + 120, "currency": "eur", "fee_cents": 10},
            {**GOOD[0], "id": "f4", "created": day1 + 86400, "fee_cents": 7},
            {**GOOD[0], "id": "f5", "created": day1 + 86400, "fee_cents": None},
        ],
    )
    portal.import_purchases(f, s=settings)
    assert portal.fees_by_day(s=settings) == {"2026-11-18": {"usd": 75, "eur": 10}, "2026-11-19": {"usd": 7}}
    assert portal.fees_by_day(s=settings, since=day1 + 86000) == {"2026-11-19": {"usd": 7}}
    assert portal.fees_by_day(s=settings, until=day1 + 60) == {"2026-11-18": {"usd": 30}}
    assert portal.fees_by_day(s=settings, since=day1 + 2 * 86400) == {}


def test_suppression_list_is_idempotent(settings):
    assert ledger.unsubscribe("a@b.io", source="t", s=settings, now=1) is True
    assert ledger.unsubscribe("a@b.io", source="t", s=settings, now=2) is False
    assert ledger.is_unsubscribed("a@b.io", s=settings)
    assert ledger.resubscribe("a@b.io", s=settings) is True
    assert ledger.resubscribe("a@b.io", s=settings) is False
    assert not ledger.is_unsubscribed("a@b.io", s=settings)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2 * 10**9),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "usd", "USD", "eu", "€ur", "1795000000", "2026-11-20T10:00:00Z", "2026-11-20T10:05:00Z",
                     "2026-11-20T10:05:01Z", "1795168800", "1795168801", "12", "-3", " 7 ",
                     "١٢", "1_000", "a@b.io", " QA@EchoPilot.ai ", "x@y", "receipts/a.pdf", "a.pdf", "../x", "paid",
                     "a\r\n.pdf", "K", "İ"]),
    st.text(max_size=12),
)  # fmt: skip


@pytest.mark.invariant  # runs whenever this file is collected, whatever -k/-m/--deselect say
@hsettings(max_examples=600, deadline=None)
@given(
    rec=st.fixed_dictionaries(
        {},
        optional={k: _values for k in rows.REQUIRED + rows.OPTIONAL},
    ),
    base=st.booleans(),
)
def test_fast_path_gives_the_same_answer_as_the_careful_path(rec, base):
    if base:  # mostly-valid records, so the fast path is exercised, with the drawn fields on top
        rec = {**GOOD[0], "fee_cents": 5, **rec}

    def answer(fn):
        try:
            # GOOD[0] was created 2026-11-20T10:00:00Z: now is then, so later stamps are "future"
            return fn(rec, source="t", now=1_795_168_500.0)
        except ValueError as exc:
            return ("error", str(exc))

    assert answer(rows.purchase_row) == answer(rows.checked_row)


@pytest.mark.parametrize(
    ("field", "at_limit", "over"),
    [
        ("id", "p" * 200, "p" * 201),
        ("description", "d" * 1000, "d" * 1001),
        ("invoice_number", "n" * 1000, "n" * 1001),
        ("status", "s" * 1000, "s" * 1001),
        ("amount_cents", 10**15, 10**15 + 1),
        ("amount_cents", str(10**15), str(10**15 + 1)),
        ("fee_cents", 10**15, 10**15 + 1),
        ("fee_cents", "0" * 20, "0" * 21),  # leading zeros: fine up to max_digits
    ],
)
def test_both_paths_take_their_limits_and_messages_from_the_one_table(field, at_limit, over):
    def both(rec):
        out = []
        for fn in (rows.purchase_row, rows.checked_row):
            try:
                out.append(fn(rec, source="t", now=1_795_168_500.0))
            except ValueError as exc:
                out.append(str(exc))
        assert out[0] == out[1]
        return out[0]

    assert isinstance(both({**GOOD[0], field: at_limit}), tuple)
    message = both({**GOOD[0], field: over})
    assert isinstance(message, str) and message.startswith(f"{field}: ")
    rule = rows.FIELDS[field]
    assert rule.max_chars == len(at_limit) if rule.max_chars else int(at_limit) <= (rule.max_value or 0)


def _indexes(settings) -> list[str]:
    conn = ledger.conn_for(settings)
    return [
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='portal_purchases'")
    ]


def test_large_import_rebuilds_the_email_index_once_and_strict_rollback_keeps_it(tmp_path, settings, monkeypatch):
    from echoops.core.portal import importer

    monkeypatch.setattr(importer, "REBUILD_MIN_ROWS", 1)
    monkeypatch.setattr(importer, "BATCH", 2)  # several batches through the writer thread
    f = _ndjson(tmp_path / "p.ndjson", GOOD)
    assert importer._worth_rebuilding(ledger.conn_for(settings), f) is True
    assert portal.import_purchases(f, s=settings)["landed"] == 3
    assert "portal_purchases_email" in _indexes(settings)
    plan = " ".join(
        str(r[3])
        for r in ledger.conn_for(settings).execute(
            "EXPLAIN QUERY PLAN SELECT id FROM portal_purchases WHERE email=? ORDER BY created DESC LIMIT 5", ("x",)
        )
    )
    assert "portal_purchases_email" in plan
    bad = _ndjson(tmp_path / "bad.ndjson", [{**GOOD[0], "id": f"n{i}"} for i in range(5)], BAD_LINES[:1])
    report = portal.import_purchases(bad, strict=True, s=settings)
    assert report["landed"] == 0 and ledger.count(s=settings) == 3
    assert "portal_purchases_email" in _indexes(settings)


def test_reimport_leaves_unchanged_rows_alone(tmp_path, settings):
    f = _ndjson(tmp_path / "p.ndjson", GOOD)
    portal.import_purchases(f, s=settings, now=1_800_000_000)
    _ndjson(f, [GOOD[0], {**GOOD[1], "description": "Add-on (renamed)"}, GOOD[2]])
    report = portal.import_purchases(f, s=settings, now=1_800_000_100)
    assert report["landed"] == 3
    rows = _rows(settings)
    assert {k: rows[k]["updated_at"] for k in rows} == {"p1": 1_800_000_000, "p2": 1_800_000_100, "p3": 1_800_000_000}
    assert rows["p2"]["description"] == "Add-on (renamed)"


@pytest.mark.parametrize("bad", ["qa@echopilot", "a b@c.io", "qa@-x.io", "qa@x..io", "qa@x_y.io"])
def test_one_email_check_for_the_ledger_and_smtp_to(bad):
    # the ledger's strict rule lives in parsers.is_email; SMTP_TO (parsers.emails) uses the same one
    assert parsers.is_email(bad) is False
    with pytest.raises(ValidationError):
        rows.normalize_email(bad)
    with pytest.raises(ValueError, match="is not an email address"):
        parsers.emails(f"ops@example.com,{bad}")


def test_smtp_to_accepts_mixed_case_and_keeps_it():
    assert parsers.emails("Ops@Example.COM, b@example.org") == ("Ops@Example.COM", "b@example.org")
    assert rows.normalize_email(" Ops@Example.COM ") == "ops@example.com"


def test_large_import_really_drops_and_rebuilds_the_email_index(tmp_path, settings, monkeypatch):
    # the rebuild builds whatever EMAIL_INDEX_SQL says: rename it to see that the old index went and the new came

    from echoops.core.portal import importer

    monkeypatch.setattr(importer, "REBUILD_MIN_ROWS", 1)
    rebuilt = ledger.EMAIL_INDEX_SQL.replace("portal_purchases_email ", "portal_purchases_email_rebuilt ")
    monkeypatch.setattr(ledger, "EMAIL_INDEX_SQL", rebuilt)
    assert _indexes(settings) == ["portal_purchases_email"]
    assert portal.import_purchases(_ndjson(tmp_path / "p.ndjson", GOOD), s=settings)["landed"] == 3
    assert _indexes(settings) == ["portal_purchases_email_rebuilt"]


def test_import_failing_at_commit_time_raises_instead_of_hanging(tmp_path, settings, monkeypatch):
    # an error after the last batch (index build, COMMIT: disk full, I/O) must come back to the caller
    import sqlite3
    import threading

    from echoops.core.portal import importer

    monkeypatch.setattr(importer, "REBUILD_MIN_ROWS", 1)
    monkeypatch.setattr(ledger, "EMAIL_INDEX_SQL", "CREATE INDEX broken ON no_such_table(x)")
    f = _ndjson(tmp_path / "p.ndjson", GOOD)
    outcome: list[BaseException | dict] = []

    def run():
        try:
            outcome.append(portal.import_purchases(f, s=settings))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "import_purchases hung after the writer failed at commit time"
    assert isinstance(outcome[0], sqlite3.OperationalError) and "no_such_table" in str(outcome[0])
    assert ledger.count(s=settings) == 0 and _indexes(settings) == ["portal_purchases_email"]
