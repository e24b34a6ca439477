"""`echoops portal …`: exact outputs and exit codes; help text on every command."""

from __future__ import annotations

import orjson
import pytest

from echoops.core import portal, signing

SECRET = "cli-test-signing-key-0123456789abcdefghij"
NOW = "2026-11-25T12:00:00Z"


@pytest.fixture
def seeded(monkeypatch, log_dir, cli):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    f = log_dir.parent / "p.ndjson"
    f.write_text(
        '{"id":"c1","email":"qa@echopilot.ai","created":"2026-11-20T10:00:00Z","amount_cents":1900,'
        '"currency":"usd","description":"Pro plan","invoice_number":"INV-1"}\n'
    )
    result = cli("portal", "import", str(f))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1 row(s) read (ndjson), 1 landed, 0 bad")
    return f


def test_every_portal_command_has_help_and_example(cli):
    from echoops.commands.portal import app

    names = [c.name for c in app.registered_commands]
    assert set(names) == {
        "receipts",
        "link",
        "verify",
        "import",
        "sync-stripe",
        "audit",
        "unsubscribe",
        "resubscribe",
    }
    for name in names:
        result = cli("portal", name, "--help")
        assert result.exit_code == 0
        assert "Example: echoops portal " + name in " ".join(result.stdout.split()), name


def test_receipts_json_is_the_endpoint_body(seeded, cli):
    result = cli("portal", "receipts", "QA@echopilot.ai", "--json", "--now", NOW)
    assert result.exit_code == 0
    from echoops.core import clock

    assert orjson.loads(result.stdout) == portal.receipts("qa@echopilot.ai", now=clock.parse_cli_time(NOW))
    human = cli("portal", "receipts", "qa@echopilot.ai", "--now", NOW)
    assert human.exit_code == 0 and "c1 receipt:\nhttp://localhost:5000/api/portal/download?token=v1." in human.stdout


def test_receipts_bad_email_exit_2(seeded, cli):
    result = cli("portal", "receipts", "nope")
    assert result.exit_code == 2 and "Error: 'nope' is not a valid email address" in result.output


def test_link_and_verify_for_support(seeded, cli):
    link = cli("portal", "link", "c1", "--kind", "invoice", "--now", NOW)
    assert link.exit_code == 0
    url = link.stdout.strip()
    assert url.startswith("http://localhost:5000/api/portal/download?token=v1.")
    ok = cli("portal", "verify", url, "--now", NOW)
    assert ok.exit_code == 0
    assert ok.stdout.strip() == (
        "valid (portal.download invoice:c1 for qa@echopilot.ai, expires 2026-11-26T12:00:00.000Z)"
    )
    late = cli("portal", "verify", url, "--now", "2026-11-26T12:01:00Z")
    assert late.exit_code == 1 and late.stdout.startswith("invalid: expired at 2026-11-26T12:00:00.000Z")
    tampered = cli("portal", "verify", url[:-1] + ("x" if url[-1] != "x" else "y"), "--json")
    assert tampered.exit_code == 1
    assert orjson.loads(tampered.stdout) == {"valid": False, "reason": "tampered: signature does not match"}
    unsub = cli("portal", "receipts", "qa@echopilot.ai", "--json", "--now", NOW)
    token = orjson.loads(unsub.stdout)["unsubscribe_url"].split("token=")[1]
    purpose = cli("portal", "verify", token, "--json", "--now", NOW)
    assert orjson.loads(purpose.stdout)["purpose"] == "portal.unsubscribe"
    missing = cli("portal", "link", "nope")
    assert missing.exit_code == 1 and "no purchase with id 'nope'" in missing.output


def test_import_exit_codes(log_dir, cli):
    f = log_dir.parent / "p.csv"
    f.write_text(
        "id,email,created,amount_cents,currency,description\n"
        "a,a@b.io,1795000000,1,usd,x\n"
        "b,a@b.io,1795000000,-1,usd,x\n"
    )
    strict = cli("portal", "import", str(f), "--strict", "--json")
    assert strict.exit_code == 1
    body = orjson.loads(strict.stdout)
    assert (body["landed"], body["bad"], body["errors"]) == (0, 1, [{"line": 3, "error": "amount_cents: must be >= 0"}])
    loose = cli("portal", "import", str(f))
    assert loose.exit_code == 1
    assert "1 landed, 1 bad" in loose.stdout and "line 3: amount_cents: must be >= 0" in loose.stdout
    missing = cli("portal", "import", str(log_dir / "missing.csv"))
    assert missing.exit_code == 2 and missing.stderr == f"Error: no such file: {log_dir / 'missing.csv'}\n"


def test_unsubscribe_resubscribe_audit(seeded, cli):
    assert cli("portal", "unsubscribe", "QA@echopilot.ai").stdout.strip() == "qa@echopilot.ai unsubscribed"
    assert cli("portal", "unsubscribe", "qa@echopilot.ai").stdout.strip() == "qa@echopilot.ai unsubscribed (already)"
    body = orjson.loads(cli("portal", "receipts", "qa@echopilot.ai", "--json").stdout)
    assert body["unsubscribed"] is True
    assert cli("portal", "resubscribe", "qa@echopilot.ai").stdout.strip() == "qa@echopilot.ai resubscribed"
    assert cli("portal", "unsubscribe", "bad-email").exit_code == 2

    token = portal.link("c1")["url"].split("token=")[1]
    portal.download(token, ip="192.0.2.1")
    with pytest.raises(signing.BadToken):
        portal.download(token + "x", ip="192.0.2.2")
    audit = orjson.loads(cli("portal", "audit", "--json").stdout)
    assert [(e["status"], e["ip"], e["action"]) for e in audit["entries"]] == [
        (403, "192.0.2.2", "download"),
        (200, "192.0.2.1", "download:rendered"),
        (200, None, "link"),  # portal.link() called in process: no ip
        (200, "cli", "resubscribe"),  # subscription changes from the CLI are audited too
        (200, "cli", "lookup"),  # `portal receipts` above
        (200, "cli", "unsubscribe"),  # the second one changed nothing, and is audited as asked
        (200, "cli", "unsubscribe"),
    ]
    only = orjson.loads(cli("portal", "audit", "--email", "qa@echopilot.ai", "--json").stdout)
    assert [e["status"] for e in only["entries"]] == [200] * 6
    table = cli("portal", "audit")
    assert table.exit_code == 0 and "403" in table.stdout


def test_without_secret_exit_2(cli):
    result = cli("portal", "receipts", "qa@echopilot.ai")
    assert result.exit_code == 2 and "PORTAL_SIGNING_SECRET is not set" in result.output
