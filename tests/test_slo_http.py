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
