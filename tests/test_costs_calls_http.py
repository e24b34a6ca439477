"""Per-call enforcement over HTTP (a live gunicorn server, two workers) and `echoops costs record`."""

from __future__ import annotations

import orjson
import pytest

from echoops.core import costs
from echoops.core.errors import ValidationError

BAD_USAGE = [
    ({"model": "gpt-4o", "usd": -0.01}, "usd", "usd must be >= 0"),
    ({"model": "gpt-4o", "input_tokens": -5}, "input_tokens", None),
    ({"model": "gpt-4o", "output_tokens": 2.5}, "output_tokens", None),
    ({"model": "gpt-4o", "usd": "Infinity"}, "usd", "usd must be a finite number"),
    ({"model": "gpt-4o"}, "usd", "usd or input_tokens/output_tokens is required"),
    ({"usd": 0.1}, "model", None),
    ({"model": "gpt-4o", "usd": 0.1, "cost": 1}, "cost", None),
    ({"model": "gpt-4o", "usd": 0.1, "ts": "soon"}, "ts", None),
    ({"model": "gpt-4o", "usd": 0.1, "reservation": 12}, "reservation", None),
]


def test_a_usage_post_that_crosses_the_global_cap_makes_the_next_check_throttle(live_server, log_dir):
    server = live_server(COST_CAP_DAILY_USD="1")
    with server.client() as c:
        first = c.post("/api/costs/usage", json={"model": "gpt-4o", "usd": 0.6})
        assert first.status_code == 200
        assert first.json() == {
            "recorded_usd": 0.6,
            "decision": {"action": "allow", "model": "gpt-4o", "reason": "within caps", "retry_after_s": 0},
        }
        assert c.get("/api/costs/check", params={"model": "o3"}).json()["action"] == "allow"
        crossing = c.post(
            "/api/costs/usage", json={"model": "gpt-4o", "input_tokens": 100_000, "output_tokens": 20_000}
        )
        assert crossing.status_code == 200
        assert crossing.json()["recorded_usd"] == 0.45  # 100k x $2.50 + 20k x $10 per Mtok
        assert crossing.json()["decision"]["action"] == "throttle"
        for model in ("o3", "gpt-4o-mini", "gpt-4o"):  # whichever worker answers: the file was rewritten
            check = c.get("/api/costs/check", params={"model": model}).json()
            assert (check["action"], check["reason"]) == ("throttle", "global daily AI cap reached ($1.05 of $1.00)")
        status = c.get("/api/costs/status").json()
        assert (status["global"]["spent_usd"], status["calls"]["recorded_5m"]) == (1.05, 2)
    assert not (log_dir / "ai_usage.ndjson").exists()


def test_reserve_then_settle_or_release_over_http(server):
    with server.client() as c:
        held = c.post("/api/costs/reserve", json={"model": "gpt-4o-mini", "estimate_usd": 0.02, "ttl_s": 30})
        assert held.status_code == 200
        body = held.json()
        assert set(body) == {"reservation", "action", "model", "reason", "estimate_usd", "expires_at", "retry_after_s"}
        assert (body["action"], body["model"], body["estimate_usd"], body["retry_after_s"]) == (
            "allow",
            "gpt-4o-mini",
            0.02,
            0,
        )
        assert body["reservation"].startswith("rsv_") and body["expires_at"].endswith("Z")
        status = c.get("/api/costs/status").json()
        assert (status["calls"]["in_flight"], status["calls"]["reserved_usd"]) == (1, 0.02)
        assert status["models"]["gpt-4o-mini"]["reserved_usd"] == 0.02
        settled = c.post(
            "/api/costs/usage", json={"model": "gpt-4o-mini", "input_tokens": 1000, "reservation": body["reservation"]}
        )
        assert settled.status_code == 200 and settled.json()["recorded_usd"] == 0.00015
        again = c.post("/api/costs/usage", json={"model": "gpt-4o-mini", "usd": 1, "reservation": body["reservation"]})
        assert (again.status_code, again.json()["error"], again.json()["field"]) == (404, "not_found", "reservation")
        other = c.post("/api/costs/reserve", json={"model": "gpt-4o", "estimate_usd": 0.5}).json()
        released = c.post("/api/costs/release", json={"reservation": other["reservation"]})
        assert released.json() == {"reservation": other["reservation"], "released": True}
        assert c.post("/api/costs/release", json={"reservation": other["reservation"]}).status_code == 404
        status = c.get("/api/costs/status").json()
        assert (status["global"]["spent_usd"], status["calls"]["in_flight"], status["calls"]["reserved_usd"]) == (
            0.00015,
            0,
            0.0,
        )
        for bad, field in [
            ({"model": "gpt-4o"}, "estimate_usd"),
            ({"model": "gpt-4o", "estimate_usd": -1}, "estimate_usd"),
            ({"model": "gpt-4o", "estimate_usd": 0.1, "ttl_s": 0}, "ttl_s"),
            ({"estimate_usd": 0.1}, "model"),
            ({"model": "gpt-4o", "estimate_usd": 0.1, "extra": 1}, "extra"),
        ]:
            r = c.post("/api/costs/reserve", json=bad)
            assert (r.status_code, r.json()["field"]) == (400, field), bad
        assert c.post("/api/costs/release", json={}).json()["field"] == "reservation"
        nan = c.post("/api/costs/reserve", content=b'{"model":"gpt-4o","estimate_usd":NaN}')
        assert nan.status_code == 400


@pytest.mark.parametrize(("body", "field", "detail"), BAD_USAGE)
def test_usage_refuses_bad_amounts_naming_the_field(body, field, detail):
    with pytest.raises(ValidationError) as err:
        costs.usage_request(body)
    assert err.value.field == field
    if detail:
        assert err.value.detail == detail


def test_usage_over_http_answers_400_naming_the_field(server):
    with server.client() as c:
        for body, field, _ in BAD_USAGE:
            r = c.post("/api/costs/usage", json=body)
            assert (r.status_code, r.json()["error"], r.json()["field"]) == (400, "invalid", field), body
        nan = c.post("/api/costs/usage", content=b'{"model":"gpt-4o","usd":NaN}')
        assert nan.status_code == 400
        assert c.get("/api/costs/status").json()["global"]["spent_usd"] == 0.0
    assert server.client(None).post("/api/costs/usage", json={"model": "gpt-4o", "usd": 1}).status_code == 401


def test_costs_record_cli(cli, log_dir):
    noon = ("--now", "2026-11-27T12:00:00Z")
    tokens = cli("costs", "record", "gpt-4o-mini", "--input-tokens", "812", "--output-tokens", "95", *noon)
    assert tokens.exit_code == 0
    assert tokens.stdout == "recorded $0.000179 on gpt-4o-mini; next call: ALLOW: within caps\n"
    usd = cli("costs", "record", "gpt-4o", "--usd", "0.0123", "--json", *noon)
    assert usd.exit_code == 0
    assert orjson.loads(usd.stdout) == {
        "recorded_usd": 0.0123,
        "decision": {"action": "allow", "model": "gpt-4o", "reason": "within caps", "retry_after_s": 0},
    }
    status = orjson.loads(cli("costs", "status", "--json", *noon).stdout)
    assert status["global"]["spent_usd"] == 0.012479
    for args, field in [
        ((), "usd"),
        (("--usd", "-1"), "usd"),
        (("--usd", "nan"), "usd"),
        (("--input-tokens", "-3"), "input_tokens"),
    ]:
        bad = cli("costs", "record", "gpt-4o", *args)
        assert (bad.exit_code, bad.stdout) == (2, ""), args
        assert field in bad.stderr
    assert cli("costs", "record", "gpt-4o", "--input-tokens", "many").exit_code == 2
    assert not (log_dir / "ai_usage.ndjson").exists()
