"""Control characters in incident fields (issue 12, item 2, the validation half).

`source` and `fingerprint` are one line each: CR, LF, any other C0 or C1 control and
U+2028/U+2029 are refused with a 400 naming the field (HTTP raise) or exit 2 (`page raise`).
`msg` may span lines (tab, LF, CR, U+2028/U+2029) but holds no other control character. Log
lines the pager consumes are not refused: their control characters are replaced (U+FFFD).
Whatever gets in, a page's headline (the email subject) is one line.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from echoops.core import clock, config, pager, parsers
from echoops.core.errors import ValidationError
from echoops.core.pager import inbox
from echoops.core.pager.channels import Page
from echoops.core.pager.channels import email as email_channel
from echoops.core.portal import rows

NOW = 1_795_780_800.0

ONE_LINE_BREAKERS = ["\r", "\n", "\r\n", "\x00", "\x1b", "\x7f", "\x85", "\x9f", "\u2028", "\u2029", "\t"]


@pytest.mark.parametrize("char", ONE_LINE_BREAKERS)
@pytest.mark.parametrize("field", ["source", "fingerprint"])
def test_one_line_fields_refuse_control_characters(settings, field, char):
    fields = {"source": "api", "fingerprint": "db-down", field: f"api{char}Bcc: all@example.com"}
    with pytest.raises(ValidationError) as info:
        pager.raise_incident("CRITICAL", "db down", fields["source"], None, fields["fingerprint"], now=NOW)
    assert info.value.field == field
    assert info.value.detail == (
        f"{field} must not contain control characters or line breaks (U+{ord(char[0]):04X} at position 3)"
    )
    assert pager.summarize(now=NOW)["groups"] == []


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x0b", "\x0c", "\x7f", "\x85"])
def test_msg_refuses_control_characters_but_keeps_newlines(settings, char):
    with pytest.raises(ValidationError) as info:
        pager.raise_incident("CRITICAL", f"db{char} down", "api", now=NOW)
    assert info.value.field == "msg"
    assert info.value.detail.endswith(f"(U+{ord(char):04X} at position 2)")
    out = pager.raise_incident("CRITICAL", "db down\r\nretrying\tin 5s\u2028then giving up", "api", now=NOW)
    assert out["deduped"] is False


def test_http_raise_answers_400_naming_the_field(server):
    with server.client() as c:
        bad = c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "x", "source": "api\r\nBcc: a@b.c"})
        assert (bad.status_code, bad.json()) == (
            400,
            {
                "error": "invalid",
                "detail": "source must not contain control characters or line breaks (U+000D at position 3)",
                "field": "source",
            },
        )
        bad = c.post(
            "/api/incidents/raise",
            json={"severity": "CRITICAL", "msg": "x", "source": "api", "fingerprint": "db\u2028down"},
        )
        assert (bad.status_code, bad.json()["field"]) == (400, "fingerprint")
        ok = c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "line 1\nline 2", "source": "api"})
        assert ok.status_code == 200
        assert c.post("/api/incidents/summarize").json()["groups"][0]["source"] == "api"


def test_cli_page_raise_exits_2_naming_the_field(cli):
    result = cli("page", "raise", "--severity", "CRITICAL", "--msg", "x", "--source", "api\nBcc: a@b.c", "--no-send")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: source must not contain control characters or line breaks (U+000A at position 3)"
    )
    assert pager.summarize(now=NOW)["groups"] == []


def test_log_line_controls_are_replaced_and_the_page_is_emailed(smtp, log_dir):
    """The break: a CR/LF in a log line's source made every email for it fail and retry for a day."""
    line = {
        "ts": clock.iso(NOW),
        "severity": "CRITICAL",
        "msg": "db down\r\nBcc: everyone@example.com\x1b[31m",
        "source": "api\r\nBcc: everyone@example.com",
        "fingerprint": "db\u2028down",
    }
    (log_dir / "app.ndjson").write_bytes(orjson.dumps(line) + b"\n")
    result = pager.run(now=NOW)
    assert result["deliveries"] == {"ok": 1}  # email only: no Telegram settings here
    [incident] = result["ingest"]["incidents"]
    assert incident["fingerprint"] == "db\ufffddown"
    [group] = pager.summarize(now=NOW)["groups"]
    assert group["source"] == "api\ufffd\ufffdBcc: everyone@example.com"
    [mail] = smtp.messages
    assert mail["Subject"] == (
        "[CRITICAL] api\ufffd\ufffdBcc: everyone@example.com: db down Bcc: everyone@example.com\ufffd[31m"
    )
    assert mail["Bcc"] is None
    assert "db down\r\nBcc: everyone@example.com" in mail.get_content()  # msg keeps its lines (sent with CRLF)


def test_ledger_document_refuses_control_characters(settings):
    for doc in ("receipts/a\r\n.pdf", "https://example.com/r\x00", "https://example.com/r\u2028"):
        with pytest.raises(ValueError, match="control characters or line breaks"):
            rows.check_document(doc)


def test_control_char_rules():
    assert parsers.control_char("ok text é ✓") is None
    assert parsers.control_char("a\tb") == "U+0009 at position 1"
    assert parsers.control_char("a\tb\nc\r\u2028", multiline=True) is None
    assert parsers.control_char("a\x85", multiline=True) == "U+0085 at position 1"
    assert parsers.without_controls("a\r\nb\x00") == "a\ufffd\ufffdb\ufffd"
    assert parsers.without_controls("a\r\nb\x00", multiline=True) == "a\r\nb\ufffd"


@hsettings(max_examples=300, deadline=None)
@given(
    msg=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60),
    source=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30),
)
def test_whatever_validation_lets_in_makes_a_one_line_subject(msg, source):
    try:
        severity, msg, source, _, _ = inbox.validate("CRITICAL", msg, source)
    except ValidationError:
        return
    page = Page("inc_1", severity, source, msg, "f" * 64, 1, NOW)
    assert parsers.control_char(page.headline) is None
    s = config.load_settings({"ECHOOPS_LOG_DIR": "/nonexistent", "SMTP_FROM": "a@b.io", "SMTP_TO": "c@d.io"})
    mail = email_channel.compose(page, s)
    assert "\n" not in mail["Subject"] and "\r" not in mail["Subject"]
    mail.as_bytes()  # the headers encode
