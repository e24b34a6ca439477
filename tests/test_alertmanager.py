"""Alertmanager's webhook into the inbox: the payload (version 4) mapped to incidents, deduplicated
re-sends, resolution, malformed payloads; then Debian's real Alertmanager 0.25 routing to a live
echoops with bearer auth."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from echoops.core import pager
from echoops.core.errors import ValidationError
from tests import prometheus_stack as stack
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
T0 = 1796040000.0  # 2026-11-30T12:00:00Z


def alert(fp: str, status: str = "firing", **labels: str) -> dict:
    out = {
        "status": status,
        "labels": {"alertname": "HighLatency", **labels},
        "annotations": {},
        "startsAt": "2026-11-30T11:58:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-30T12:10:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fp,
    }
    return out


def payload(*alerts: dict, status: str = "firing") -> dict:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "echoops",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def incidents(settings) -> list[dict]:
    return [dict(r) for r in pager.db(settings).execute("SELECT * FROM pager_incidents ORDER BY first_seen, id")]


def outbox(settings) -> list[dict]:
    return [dict(r) for r in pager.db(settings).execute("SELECT incident_id, channel, state FROM pager_outbox")]


def test_each_firing_alert_becomes_an_incident_with_the_documented_mapping(settings):
    critical = alert("a1", severity="critical", instance="web-1")
    critical["annotations"] = {"summary": "p99 over 2s on web-1", "description": "long text"}
    warning = alert("b2", severity="Warning")
    warning["annotations"] = {"description": "latency creeping up"}
    other = alert("c3", severity="page")
    bare = alert("d4")
    bare["labels"] = {"team": "core"}  # no alertname, no severity
    result = pager.receive_alertmanager(payload(critical, warning, other, bare), s=settings, now=T0)
    assert (result["receiver"], result["firing"], result["resolved"], result["truncated"]) == ("echoops", 4, 0, 0)
    assert [(a["fingerprint"], a["status"], a["deduped"]) for a in result["alerts"]] == [
        ("am:a1", "firing", False),
        ("am:b2", "firing", False),
        ("am:c3", "firing", False),
        ("am:d4", "firing", False),
    ]
    assert result["alerts"][0]["channels"] == {"telegram": "skipped", "email": "skipped"}  # CRITICAL is paged
    assert result["alerts"][1]["channels"] == {}
    rows = {r["fingerprint"]: r for r in incidents(settings)}
    assert {fp: (r["severity"], r["source"], r["msg"]) for fp, r in rows.items()} == {
        "am:a1": ("CRITICAL", "HighLatency", "p99 over 2s on web-1"),
        "am:b2": ("WARNING", "HighLatency", "latency creeping up"),
        "am:c3": ("ERROR", "HighLatency", "HighLatency"),
        "am:d4": ("ERROR", "alertmanager", "alert d4"),
    }
    assert orjson.loads(rows["am:a1"]["meta"]) == {
        "alertname": "HighLatency",
        "severity": "critical",
        "instance": "web-1",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
    }
    assert sorted(r["id"] for r in incidents(settings)) == sorted(a["id"] for a in result["alerts"])


def test_resent_groups_do_not_page_again_and_a_resolved_alert_resolves_its_incident(settings, log_dir):
    body = payload(alert("f00d", severity="critical"))
    first = pager.receive_alertmanager(body, s=settings, now=T0)
    for k in range(1, 4):  # Alertmanager re-sends the group every group_interval
        again = pager.receive_alertmanager(body, s=settings, now=T0 + k * 300)
        assert again["alerts"][0]["deduped"] is True and again["alerts"][0]["id"] == first["alerts"][0]["id"]
    assert len(incidents(settings)) == 1 and incidents(settings)[0]["count"] == 4
    assert len(outbox(settings)) == 2  # one delivery per channel, once

    group = pager.summarize(s=settings, now=T0 + 1000)["groups"][0]
    assert (group["state"], group["resolved_at"]) == ("open", None)
    done = pager.receive_alertmanager(
        payload(alert("f00d", "resolved", severity="critical"), status="resolved"), s=settings, now=T0 + 1200
    )
    assert done["alerts"] == [
        {
            "fingerprint": "am:f00d",
            "status": "resolved",
            "id": first["alerts"][0]["id"],
            "deduped": False,
            "channels": {},
        }
    ]
    group = pager.summarize(s=settings, now=T0 + 1300)["groups"][0]
    assert (group["state"], group["resolved_by"], group["count"]) == ("resolved", "alertmanager", 4)
    assert group["resolved_at"] == "2026-11-30T12:20:00.000Z"  # when echoops heard
    assert group["note"] == "resolved in Alertmanager at 2026-11-30T12:10:00.000Z"  # Alertmanager's endsAt
    events = [orjson.loads(x) for x in (log_dir / "incidents.ndjson").read_bytes().splitlines()]
    resolved = [e for e in events if e["event"] == "incident_resolve"]
    assert [(e["id"], e["fingerprint"], e["by"]) for e in resolved] == [
        (first["alerts"][0]["id"], "am:f00d", "alertmanager")
    ]
    # a second resolved notification changes nothing (the pager's resolve is idempotent)
    pager.receive_alertmanager(
        payload(alert("f00d", "resolved", severity="critical"), status="resolved"), s=settings, now=T0 + 1250
    )
    events = [orjson.loads(x) for x in (log_dir / "incidents.ndjson").read_bytes().splitlines()]
    assert sum(e["event"] == "incident_resolve" for e in events) == 1

    # it fires again: the resolve re-opened the fingerprint, so it is a new, open incident
    again = pager.receive_alertmanager(body, s=settings, now=T0 + 1500)
    assert again["alerts"][0]["deduped"] is False and again["alerts"][0]["id"] != first["alerts"][0]["id"]
    assert pager.summarize(s=settings, now=T0 + 1600)["groups"][0]["state"] == "open"
    # a resolved alert echoops never saw firing resolves nothing
    unknown = pager.receive_alertmanager(payload(alert("beef", "resolved")), s=settings, now=T0 + 1700)
    assert unknown["alerts"][0]["id"] is None and unknown["resolved"] == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.update(version="3"), "version"),
        (lambda b: b.pop("version"), "version"),
        (lambda b: b.update(alerts={"a": 1}), "alerts"),
        (lambda b: b.update(truncatedAlerts=-1), "truncatedAlerts"),
        (lambda b: b.update(truncatedAlerts=1.5), "truncatedAlerts"),
        (lambda b: b["alerts"].append("nope"), "alerts[2]"),
        (lambda b: b["alerts"][1].update(status="pending"), "alerts[1].status"),
        (lambda b: b["alerts"][1].pop("fingerprint"), "alerts[1].fingerprint"),
        (lambda b: b["alerts"][1].update(fingerprint="../x"), "alerts[1].fingerprint"),
        (lambda b: b["alerts"][1].update(labels={"severity": 2}), "alerts[1].labels"),
        (lambda b: b["alerts"][1].update(labels=["a"]), "alerts[1].labels"),
        (lambda b: b["alerts"][1].update(annotations={"summary": None}), "alerts[1].annotations"),
        (lambda b: b["alerts"][1].update(generatorURL=5), "alerts[1].generatorURL"),
        (lambda b: b["alerts"][1].update(startsAt=0), "alerts[1].startsAt"),
        (lambda b: b["alerts"][1]["labels"].update({f"l{i}": "x" * 1000 for i in range(20)}), "alerts[1].labels"),
    ],
)
def test_a_malformed_payload_names_the_field_and_stores_nothing(settings, change, field):
    body = payload(alert("ff", severity="critical"), alert("0a", severity="critical"))
    change(body)
    with pytest.raises(ValidationError) as err:
        pager.receive_alertmanager(body, s=settings, now=T0)
    assert err.value.field == field
    assert incidents(settings) == []  # not even the valid first alert


def test_truncated_alerts_is_reported_and_a_whole_float_is_a_whole_number(settings):
    body = payload(alert("9a"))
    body["truncatedAlerts"] = 74.0
    assert pager.receive_alertmanager(body, s=settings, now=T0)["truncated"] == 74
    del body["truncatedAlerts"]
    assert pager.receive_alertmanager(body, s=settings, now=T0)["truncated"] == 0


def test_a_long_summary_is_cut_to_the_pager_limit_not_refused(settings):
    a = alert("ab", severity="warning")
    a["annotations"] = {"summary": "é" * 5000}
    pager.receive_alertmanager(payload(a), s=settings, now=T0)
    msg = incidents(settings)[0]["msg"]
    assert msg.endswith("...") and len(msg.encode()) <= 4096 and msg.startswith("éé")


def test_over_http_the_webhook_takes_a_bearer_key_and_answers_400_naming_the_field(server):
    url = server.url + "/api/incidents/alertmanager"
    body = payload(alert("c0ffee", severity="critical"))
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer wrong-key-0123456789"}).status_code == 401
    r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {server.key}"})
    assert r.status_code == 200 and r.json()["alerts"][0]["fingerprint"] == "am:c0ffee"
    body["alerts"][0]["status"] = "maybe"
    r = httpx.post(url, json=body, headers={"Authorization": f"bearer {server.key}"})
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid",
        "detail": "alerts[0].status must be firing or resolved",
        "field": "alerts[0].status",
    }


# --- the real Alertmanager ----------------------------------------------------------------------


def receiver_config(echoops_url: str, key_file: Path) -> str:
    """contrib/alertmanager/alertmanager.yml pointed at `echoops_url` with `key_file`, short timers."""
    text = (ROOT / "contrib" / "alertmanager" / "alertmanager.yml").read_text()
    text = text.replace("http://127.0.0.1:5000", echoops_url).replace(
        "/etc/alertmanager/echoops_dashboard_key", str(key_file)
    )
    for name, value in (("group_wait", "0s"), ("group_interval", "1s"), ("repeat_interval", "2s")):
        text = "\n".join(
            line.split(":")[0] + f": {value}" if line.strip().startswith(name + ":") else line
            for line in text.splitlines()
        )
    return text + "\n"


def test_the_shipped_receiver_config_passes_amtool(tmp_path):
    amtool = stack.need("amtool")
    import subprocess

    conf = tmp_path / "alertmanager.yml"
    conf.write_text((ROOT / "contrib" / "alertmanager" / "alertmanager.yml").read_text())
    out = subprocess.run([amtool, "check-config", str(conf)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Found:" in out.stdout and "1 receivers" in out.stdout


@pytest.mark.slow
def test_a_real_alertmanager_pages_once_through_the_webhook_and_resolves(live_server, tmp_path, log_dir, settings):
    binary = stack.need(stack.ALERTMANAGER)
    srv = live_server()
    key_file = tmp_path / "echoops_dashboard_key"
    key_file.write_text(srv.key + "\n")
    with stack.alertmanager(binary, tmp_path / "am", receiver_config(srv.url, key_file)) as am:
        now = time.time()
        fired = {
            "labels": {"alertname": "CheckoutErrors", "severity": "critical", "service": "checkout"},
            "annotations": {"summary": "checkout 5xx above 5% for 10m"},
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=rate",
        }
        assert httpx.post(am + "/api/v2/alerts", json=[fired], timeout=10).status_code == 200

        def rows():
            return (
                pager.db(settings)
                .execute("SELECT fingerprint, count, severity, source, msg FROM pager_incidents")
                .fetchall()
            )

        # Alertmanager re-sends the group every repeat_interval (2s): wait for two re-sends
        wait_for(lambda: rows() and rows()[0]["count"] >= 3, timeout=60, what="Alertmanager to send the group 3 times")
        found = rows()
        assert len(found) == 1  # one incident, however often the group arrives
        fp, count, severity, source, msg = found[0]
        assert (severity, source, msg) == ("CRITICAL", "CheckoutErrors", "checkout 5xx above 5% for 10m")
        assert fp.startswith("am:") and len(fp) == 3 + 16
        assert len(outbox(settings)) == 2  # paged once (one delivery per channel)

        ended = {**fired, "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))}
        assert httpx.post(am + "/api/v2/alerts", json=[ended], timeout=10).status_code == 200

        def resolved():
            groups = srv.client().post("/api/incidents/summarize").json()["groups"]
            return [g for g in groups if g["fingerprint"] == fp and g["state"] == "resolved"]

        wait_for(resolved, timeout=60, what="the resolved notification")
        assert len(outbox(settings)) == 2
    events = [orjson.loads(x) for x in (log_dir / "incidents.ndjson").read_bytes().splitlines()]
    resolves = [(e["fingerprint"], e["by"]) for e in events if e["event"] == "incident_resolve"]
    assert resolves[:1] == [(fp, "alertmanager")]
    assert sum(1 for e in events if e["event"] == "incident" and not e["deduped"]) == 1
