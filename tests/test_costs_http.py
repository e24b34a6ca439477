"""/api/costs/* on a live gunicorn server: status with caps and utilisation, set-cap, check."""

from __future__ import annotations

import time

import orjson

from echoops.core import clock


def spend(log_dir, tokens: int, model: str = "gpt-4o-mini") -> None:
    line = {"ts": time.time() - 1, "model": model, "input_tokens": tokens, "output_tokens": 0}
    with open(log_dir / "ai_usage.ndjson", "ab") as fh:
        fh.write(orjson.dumps(line) + b"\n")


def test_status_shows_caps_and_utilisation_and_check_throttles_at_the_cap(server, cli, log_dir):
    spend(log_dir, 100_000_000)  # $15: 100% of the gpt-4o-mini cap
    assert cli("costs", "tick").exit_code == 0
    with server.client() as c:
        r = c.get("/api/costs/status")
        assert r.status_code == 200
        body = r.json()
        assert set(body) == {
            "day",
            "mode",
            "global",
            "models",
            "stripe_fees",
            "unpriced",
            "updated_at",
            "calls",
            "spend_today",
        }
        assert body["mode"] == "enforce" and body["global"]["cap_source"] == "env"
        assert body["day"] == clock.day_iso(time.time())
        assert body["global"]["spent_usd"] == 15.0
        assert body["global"]["cap_usd"] == 25.0
        assert body["global"]["pct"] == 60.0
        assert body["global"]["state"] == "ok"
        assert "forecast_usd" in body["global"]
        mini = body["models"]["gpt-4o-mini"]
        assert (mini["spent_usd"], mini["cap_usd"], mini["pct"], mini["state"], mini["action"]) == (
            15.0,
            15.0,
            100.0,
            "throttle",
            "throttle",
        )
        assert body["models"]["embeddings"]["cap_usd"] == 2.0
        check = c.get("/api/costs/check", params={"model": "gpt-4o-mini"})
        assert check.status_code == 200
        assert check.json()["action"] == "throttle"
        assert check.json()["retry_after_s"] > 0
        assert c.get("/api/costs/check", params={"model": "gpt-4o"}).json()["action"] == "allow"
        missing = c.get("/api/costs/check")
        assert (missing.status_code, missing.json()["field"]) == (400, "model")
        for junk in (" ", "x" * 201, "gpt\u00004o"):
            bad = c.get("/api/costs/check", params={"model": junk})
            assert (bad.status_code, bad.json()["field"]) == (400, "model"), junk
        padded = c.get("/api/costs/check", params={"model": " gpt-4o-mini "}).json()
        assert (padded["action"], padded["model"]) == ("throttle", "gpt-4o-mini")


def test_set_cap_over_http(server, log_dir):
    with server.client() as c:
        r = c.post("/api/costs/set-cap", json={"scope": "model", "key": "gpt-4o", "usd_cap": 4})
        assert r.status_code == 200
        assert r.json()["cap"] == {
            "scope": "model",
            "key": "gpt-4o",
            "usd_cap": 4.0,
            "old_usd_cap": None,
            "old_source": None,
        }
        assert c.get("/api/costs/status").json()["models"]["gpt-4o"]["cap_usd"] == 4.0
        for body, field in [
            ({"scope": "daily", "usd_cap": -1}, "usd_cap"),
            ({"scope": "daily", "usd_cap": "NaN"}, "usd_cap"),
            ({"scope": "daily"}, "usd_cap"),
            ({"scope": "model", "usd_cap": 3}, "key"),
            ({"scope": "monthly", "usd_cap": 3}, "scope"),
        ]:
            bad = c.post("/api/costs/set-cap", json=body)
            assert bad.status_code == 400, body
            assert bad.json()["error"] == "invalid"
            assert bad.json()["field"] == field
        nan = c.post("/api/costs/set-cap", content=b'{"scope":"daily","usd_cap":NaN}')
        assert nan.status_code == 400
    assert server.client(None).get("/api/costs/status").status_code == 401
    logged = [orjson.loads(x) for x in (log_dir / "costs.ndjson").read_bytes().splitlines()]
    assert [e["event"] for e in logged] == ["cap_set"]
