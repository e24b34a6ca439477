"""GET /api/slo/status and POST /api/slo/rebaseline on a real gunicorn server."""

from __future__ import annotations

import orjson

from echoops.core import clock, slo
from tests.test_slo import events, history


def test_status_endpoint_equals_the_cli_json_and_rebaseline_resets(server, cli, settings, log_dir):
    now = clock.now_s()
    history(log_dir, end=now, minutes=180, per_minute=20, err_pct=5)
    slo.tick(s=settings, now=now)
    with server.client() as http:
        r = http.get("/api/slo/status")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        body = r.json()
        assert body == orjson.loads(cli("slo", "status", "--json").stdout)
        for key in ("p95_ms", "p99_ms", "error_rate", "period", "remaining_budget_pct", "burn_alert"):
            assert key in body
        assert body["state"] == "red" and body["burn_alert"] == "gate" and body["gate"]["set"] is True
        assert body["requests"] == 3600 and body["period"] == "24h" and body["history"][-1]["backfilled"] is False

        r = http.post("/api/slo/rebaseline", json={"reason": "incident 17 fixed"})
        assert r.status_code == 200
        out = r.json()
        assert out["reason"] == "incident 17 fixed" and out["status"]["state"] == "green"
        assert out["status"]["requests"] == 0 and out["status"]["rebaseline_at"] == out["rebaseline_at"]
        assert http.get("/api/slo/status").json()["rebaseline_at"] == out["rebaseline_at"]
        assert [e["reason"] for e in events(log_dir) if e["event"] == "slo_rebaseline"] == ["incident 17 fixed"]

        r = http.post("/api/slo/rebaseline")  # no body: allowed
        assert r.status_code == 200 and r.json()["reason"] is None

        r = http.post("/api/slo/rebaseline", content=b"[1]", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == "invalid"
        r = http.post("/api/slo/rebaseline", json={"reason": 42})
        assert r.status_code == 400 and r.json() == {
            "error": "invalid",
            "detail": "reason must be a string",
            "field": "reason",
        }
        assert http.get("/api/slo/nope").status_code == 404
        assert http.delete("/api/slo/status").status_code == 405
    with server.client(None) as anon:
        assert anon.get("/api/slo/status").status_code == 401
        assert anon.post("/api/slo/rebaseline").status_code == 401


def test_status_is_served_from_a_snapshot_with_etag_and_304(server, cli, settings, log_dir):
    now = clock.now_s()
    history(log_dir, end=now, minutes=60, per_minute=20, err_pct=0)
    slo.tick(s=settings, now=now)
    with server.client() as http:
        first = http.get("/api/slo/status")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert first.status_code == 200 and etag.startswith('"') and modified.endswith(" GMT")
        assert first.json() == orjson.loads(cli("slo", "status", "--json").stdout)
        for _ in range(4):  # both workers: the same document, the same tag
            again = http.get("/api/slo/status", headers={"If-None-Match": etag})
            assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
        assert http.get("/api/slo/status", headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304
        assert http.get("/api/slo/status", headers={"If-None-Match": "*"}).status_code == 304
        assert http.get("/api/slo/status", headers={"If-Modified-Since": modified}).status_code == 304
        stale = http.get("/api/slo/status", headers={"If-None-Match": '"other"', "If-Modified-Since": modified})
        assert stale.status_code == 200 and stale.content == first.content  # If-None-Match decides

        # every input of the document changes it: a tick, a flag file by hand, the operator's override
        slo.tick(s=settings, now=now + 60)
        ticked = http.get("/api/slo/status", headers={"If-None-Match": etag})
        assert ticked.status_code == 200 and ticked.headers["etag"] != etag
        assert len(ticked.json()["history"]) == len(first.json()["history"]) + 1
        (log_dir / "deploy_gate.flag").write_text("")
        flagged = http.get("/api/slo/status", headers={"If-None-Match": ticked.headers["etag"]})
        assert flagged.status_code == 200 and flagged.json()["gate"]["set"] is True
        assert cli("slo", "gate", "--clear", "--reason", "rolled back").exit_code == 0
        cleared = http.get("/api/slo/status", headers={"If-None-Match": flagged.headers["etag"]}).json()
        assert cleared["gate"]["set"] is False and cleared["gate"]["override"]["reason"] == "rolled back"
        assert cleared == orjson.loads(cli("slo", "status", "--json").stdout)


def test_the_snapshot_is_reused_until_its_state_changes(settings, log_dir):
    now = clock.now_s()
    before = slo.status_snapshot(s=settings, now=now)
    assert before.doc["updated_at"] is None and slo.status_snapshot(s=settings, now=now) is not before  # no tick yet
    history(log_dir, end=now, minutes=30, per_minute=10, err_pct=0)
    slo.tick(s=settings, now=now)
    snap = slo.status_snapshot(s=settings)
    assert slo.status_snapshot(s=settings) is snap and snap.body == orjson.dumps(slo.status(s=settings))
    assert snap.modified == clock.parse_ts(snap.doc["updated_at"])
    (log_dir / "deploy_gate.flag").write_text('{"reason": "by hand"}')
    by_hand = slo.status_snapshot(s=settings)
    assert by_hand is not snap and by_hand.doc["gate"]["reason"] == "by hand" and by_hand.etag != snap.etag
    assert slo.status_snapshot(s=settings) is by_hand
