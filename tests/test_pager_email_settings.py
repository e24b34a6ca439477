"""Email settings and what a page shows: SMTP_CA_FILE (a private CA trusted on top of the
system's), SMTP_USER/SMTP_PASS only as a pair, and the raise's `meta` in the email body and
the Telegram message. Real aiosmtpd over TLS with a certificate from a CA made in the test."""

from __future__ import annotations

import html
import time

import pytest

from echoops.core import config, pager
from echoops.core.pager.channels import Page, telegram
from tests.fakes_smtp import PASSWORD, USER, FakeSMTP, make_cert
from tests.fakes_telegram import FakeTelegram

T0 = time.time()


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_smtp_ca_file_trusts_a_private_ca_over_tls(tmp_path, monkeypatch, log_dir, tls):
    cert, key, ca = make_cert(tmp_path / "pki")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with FakeSMTP(tls=tls, cert=(cert, key), auth=True) as fake:
        fake.configure(monkeypatch, tls)
        monkeypatch.setenv("SMTP_USER", USER)
        monkeypatch.setenv("SMTP_PASS", PASSWORD)
        monkeypatch.setenv("SMTP_CA_FILE", str(ca))
        out = pager.raise_incident("CRITICAL", "private CA", "mail", now=T0)
        assert pager.run(now=T0)["deliveries"] == {"ok": 1}
        assert len(fake.messages) == 1 and fake.logins == [(USER, PASSWORD)]
        # without it the same server is refused: the test CA is what made it trusted
        monkeypatch.delenv("SMTP_CA_FILE")
        again = pager.raise_incident("CRITICAL", "no private CA", "mail", now=T0 + 1)
        pager.run(now=T0 + 1)
        assert len(fake.messages) == 1
        row = pager.db(config.settings()).execute(
            "SELECT state, last_status FROM pager_outbox WHERE incident_id=?", (again["id"],)
        )
        assert tuple(row.fetchone()) == ("failed", "SSLCertVerificationError")
        assert out["id"] != again["id"]


def test_smtp_ca_file_adds_to_the_system_store(tmp_path, monkeypatch):
    _, _, ca = make_cert(tmp_path / "pki")
    monkeypatch.setenv("SMTP_CA_FILE", str(ca))
    from echoops.core.pager.channels import email

    system = email.ssl.create_default_context().cert_store_stats()["x509_ca"]
    with_ca = email.tls_context(config.settings()).cert_store_stats()["x509_ca"]
    assert with_ca == system + 1


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("missing.pem", "no such file"),
        (".", "is a directory, not a PEM file"),
        ("notpem.txt", "holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
    ],
)
def test_a_bad_smtp_ca_file_is_a_config_error(cli, tmp_path, monkeypatch, value, why):
    (tmp_path / "notpem.txt").write_text("hello\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMTP_CA_FILE", value)
    result = cli("config")
    assert result.exit_code == 2
    assert result.stderr == f"Error: invalid configuration: SMTP_CA_FILE={value!r}: {why}\n"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("SMTP_USER", "SMTP_PASS is not set but SMTP_USER is: set both to log in to SMTP_HOST, or neither"),
        ("SMTP_PASS", "SMTP_USER is not set but SMTP_PASS is: set both to log in to SMTP_HOST, or neither"),
    ],
)
def test_smtp_user_and_pass_only_as_a_pair(cli, monkeypatch, given, message):
    monkeypatch.setenv(given, "smtp-secret-value-9876" if given == "SMTP_PASS" else USER)
    result = cli("page", "test", "--channel", "email")
    assert result.exit_code == 2
    assert result.stderr == f"Error: invalid configuration: {message}\n"
    assert "smtp-secret-value-9876" not in result.output
    monkeypatch.setenv("SMTP_USER", USER)
    monkeypatch.setenv("SMTP_PASS", PASSWORD)
    assert cli("config").exit_code == 0


def test_meta_is_in_the_email_body_and_the_telegram_message(monkeypatch, log_dir):
    meta = {"burn": 14.4, "window": "1h", "runbook": "https://wiki/slo?a=1&b=<2>", "seen": [1, 2]}
    with FakeSMTP() as smtp, FakeTelegram() as tg:
        smtp.configure(monkeypatch)
        tg.configure(monkeypatch)
        out = pager.raise_incident("CRITICAL", "SLO burn", "slo", meta, now=T0)
        assert pager.run(now=T0)["deliveries"] == {"ok": 2}
    [mail] = smtp.messages
    body = mail.get_content().replace("\r\n", "\n")  # sent with CRLF line ends
    assert body.startswith(
        "CRITICAL from slo\n\nSLO burn\n\n"
        "burn: 14.4\nwindow: 1h\nrunbook: https://wiki/slo?a=1&b=<2>\nseen: [1,2]\n\nfirst seen "
    )
    [sent] = tg.delivered
    assert sent["parse_mode"] == "HTML"
    line = "burn=14.4 · window=1h · runbook=https://wiki/slo?a=1&amp;b=&lt;2&gt; · seen=[1,2]"
    assert f"SLO burn\n\n<code>{line}</code>\n\n<i>first seen" in sent["text"]
    assert out["id"] in sent["text"]


def test_a_page_without_meta_has_no_meta_lines(monkeypatch, log_dir):
    with FakeSMTP() as smtp:
        smtp.configure(monkeypatch)
        pager.raise_incident("CRITICAL", "plain", "app", now=T0)
        pager.run(now=T0)
    assert smtp.messages[0].get_content().replace("\r\n", "\n").startswith("CRITICAL from app\n\nplain\n\nfirst seen ")


def test_huge_meta_and_msg_still_fit_one_telegram_message():
    meta = {"trace": "<&>" * 5000, "host": "db-1"}
    page = Page("inc_x", "CRITICAL", "db", "é" * 5000, "f" * 64, 1, T0, meta=meta)
    rich, plain = telegram.compose(page)
    assert telegram._units(rich) <= telegram.MAX_CHARS and telegram._units(plain) <= telegram.MAX_CHARS
    code = rich.split("<code>", 1)[1].split("</code>", 1)[0]
    assert telegram._units("\n\n<code>" + code + "</code>") <= telegram.MAX_META_UNITS
    assert code.endswith("…") and "&lt;&amp;&gt;" in code and "&lt;&amp;&gt" + "…" not in code
    assert html.unescape(code).startswith("trace=<&><&>")
    assert rich.endswith(f"fingerprint {'f' * 16}</i>")  # the tail is never cut
