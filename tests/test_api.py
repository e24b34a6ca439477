"""The public Python API (`echoops.api`) and the result types every surface shares.

The type check (mypy, in CI) proves the core builds its documents from the TypedDicts; these
tests prove the documents that really come out, in process, over HTTP and from `--json`,
have exactly the keys and value types the TypedDicts promise (a field added to a body but
not to its type, or the other way round, fails here).
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, get_args, get_origin, get_type_hints, is_typeddict

import orjson

import echoops.api
from echoops.api import guard, raise_incident, slo_status
from echoops.core import config, costs, demo, pager, portal, scale, scheduler, slo
from echoops.core.costs import types as costs_types
from echoops.core.pager import types as pager_types
from echoops.core.portal import types as portal_types
from echoops.core.scale import types as scale_types
from echoops.core.scheduler import types as scheduler_types
from echoops.core.slo import types as slo_types

TYPE_MODULES = (slo_types, pager_types, portal_types, costs_types, scale_types, scheduler_types)
# Every name the type modules define, for the annotations they spell as strings.
NAMESPACE = {name: value for module in TYPE_MODULES for name, value in vars(module).items()}
SECRET = "api-test-signing-secret-0123456789abcdefghijkl"
AM_PAYLOAD = {
    "version": "4",
    "receiver": "echoops",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "Api", "severity": "critical"},
            "annotations": {"summary": "api test"},
            "generatorURL": "",
            "fingerprint": "a91",
        },
        {"status": "resolved", "labels": {"alertname": "Api"}, "fingerprint": "a91", "endsAt": "2026-11-30T12:00:00Z"},
    ],
}


def problems(value: Any, tp: Any, path: str = "$") -> list[str]:
    """Where `value` (decoded JSON or a core result) differs from the type `tp`."""
    if tp is Any:
        return []
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object"]
        hints = get_type_hints(tp, localns=NAMESPACE)
        out = [f"{path}: missing {k!r}" for k in sorted(tp.__required_keys__ - value.keys())]
        out += [f"{path}: {k!r} is not in {tp.__name__}" for k in sorted(value.keys() - hints.keys())]
        for key in value.keys() & hints.keys():
            out += problems(value[key], hints[key], f"{path}.{key}")
        return out
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        found = [problems(value, arm, path) for arm in get_args(tp)]
        return [] if any(not f for f in found) else [f"{path}: {value!r:.60} is none of {tp}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        return [p for i, item in enumerate(value) for p in problems(item, get_args(tp)[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object"]
        key_t, value_t = get_args(tp)
        return [p for k, v in value.items() for p in problems(k, key_t, path) + problems(v, value_t, f"{path}.{k}")]
    if tp is type(None):
        return [] if value is None else [f"{path}: {value!r:.60}, not null"]
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    return [] if ok else [f"{path}: {value!r:.60} is not {tp.__name__}"]


def test_the_checker_catches_wrong_missing_and_extra_keys():
    good = {"id": "inc_1", "fingerprint": "f", "deduped": False, "channels": {}, "state": "open"}
    assert problems(good, pager_types.Raised) == []
    assert problems({**good, "deliveries": {"telegram": "ok"}}, pager_types.Raised) == []
    assert problems({**good, "deduped": "no", "colour": 1}, pager_types.Raised) == [
        "$: 'colour' is not in Raised",
        "$.deduped: 'no' is not bool",
    ]
    assert problems({k: v for k, v in good.items() if k != "id"}, pager_types.Raised) == ["$: missing 'id'"]
    assert problems({"ok": True, "status": None, "detail": "x"}, pager_types.TestResult) == [
        "$.status: None is none of str | int"
    ]


def test_the_api_module_exports_documented_typed_functions():
    assert sorted(echoops.api.__all__) == echoops.api.__all__
    for name in echoops.api.__all__:
        obj = getattr(echoops.api, name)
        assert inspect.getdoc(obj), name
    functions = {n: getattr(echoops.api, n) for n in echoops.api.__all__ if inspect.isfunction(getattr(echoops.api, n))}
    documents = {
        "costs_status",
        "guard",
        "raise_incident",
        "receipts",
        "record_usage",
        "resolve_incident",
        "scale_status",
        "slo_status",
    }
    # spend() yields a Spend (its document() is a Reservation); guard_openai returns the client it wraps
    assert set(functions) == documents | {"spend", "guard_openai"}
    assert get_type_hints(echoops.api.Spend.document, localns=NAMESPACE)["return"] is costs_types.Reservation
    for name, fn in ((n, functions[n]) for n in documents):
        returns = get_type_hints(fn, localns=NAMESPACE)["return"]
        assert is_typeddict(returns), (name, returns)
        assert getattr(echoops.api, returns.__name__) is returns  # the result type is exported too
    assert (raise_incident, guard) == (pager.raise_incident, costs.guard)


def _cli_json(cli, *args: str) -> Any:
    result = cli(*args)
    assert result.exit_code in (0, 1), result.output
    return orjson.loads(result.stdout)


def test_every_result_matches_its_type_in_process_over_http_and_from_the_cli(monkeypatch, cli, live_server):
    monkeypatch.setenv("PORTAL_SIGNING_SECRET", SECRET)
    s = config.settings()
    demo.seed(s=s)
    ticked = {
        "slo tick": (slo.tick(s=s), slo_types.SloTick),
        "page run": (pager.run(s=s), pager_types.PageRun),
        "costs tick": (costs.tick(s=s), costs_types.CostsTick),
        "scale tick": (scale.tick(s=s), scale_types.ScaleApplied),
        "scale sample": (scale.sample(s=s), scale_types.ScaleSample),
    }
    for name, (result, tp) in ticked.items():
        assert problems(result, tp) == [], name
    assert ticked["page run"][0]["ingest"]["new_incidents"] == 1  # the demo's CRITICAL app line

    payments = raise_incident("CRITICAL", "payments down", "app", fingerprint="app:payments", s=s)
    in_process = {
        "slo": (slo_status(s=s), slo_types.SloStatus),
        "costs": (echoops.api.costs_status(s=s), costs_types.CostsStatus),
        "scale": (echoops.api.scale_status(s=s), scale_types.ScaleStatus),
        "receipts": (echoops.api.receipts("qa@echopilot.ai", s=s), portal_types.Receipts),
        "guard": (guard("gpt-4o-mini", s=s), costs_types.Decision),
        "raise": (raise_incident("INFO", "deploy done", "ci", {"sha": "abc"}, s=s), pager_types.Raised),
        "raise+send": (raise_incident("WARNING", "slow", "ci", s=s, send=True), pager_types.Raised),
        "summary": (pager.summarize(s=s), pager_types.Summary),
        "ack": (pager.ack(raise_incident("CRITICAL", "db down", "db", s=s)["id"], s=s), pager_types.IncidentAction),
        "resolve": (echoops.api.resolve_incident(payments["fingerprint"], s=s), pager_types.IncidentAction),
        "silence": (pager.add_silence({"source": "maint"}, 600, "migration", s=s), pager_types.Silence),
        "silences": (pager.list_silences(s=s), pager_types.Silences),
        "rebaseline": (slo.rebaseline("test", s=s), slo_types.Rebaselined),
        "set-cap": (costs.set_cap("model", "gpt-4o", 19.99, s=s), costs_types.CapSet),
        "record_usage": (echoops.api.record_usage("gpt-4o", input_tokens=10, s=s), costs_types.Recorded),
        "reserve": (costs.reserve("gpt-4o", estimate_usd=0.1, s=s).document(), costs_types.Reservation),
        "calls": (costs.calls_status(s=s), costs_types.Calls),
        "apply": (scale.apply(True, s=s), scale_types.ScaleApplied),
        "audit": (portal.audit(s=s), portal_types.Audit),
        "subscription": (portal.set_subscription("qa@echopilot.ai", True, s=s), portal_types.Subscription),
        "gate": (slo.gate(s=s), slo_types.GateFlag),
        "alertmanager": (pager.receive_alertmanager(AM_PAYLOAD, s=s), pager_types.AlertmanagerReceived),
        "slo ingest": (slo.ingest(s=s), slo_types.RequestIngest),
        "page logs": (pager.ingest_logs(s=s), pager_types.LogIngest),
        "leadership": (scheduler.leadership(s=s), scheduler_types.Leadership),
    }
    for name, (result, tp) in in_process.items():
        assert problems(result, tp) == [], name
    assert in_process["receipts"][0]["purchases"], "the demo has purchases for qa@echopilot.ai"

    server = live_server(PORTAL_SIGNING_SECRET=SECRET)
    c = server.client()
    reserve_body = {"model": "gpt-4o", "estimate_usd": 0.1}
    over_http = {
        "GET /api/slo/status": (c.get("/api/slo/status"), slo_types.SloStatus),
        "POST /api/slo/rebaseline": (c.post("/api/slo/rebaseline", json={}), slo_types.Rebaselined),
        "POST /api/incidents/raise": (
            c.post("/api/incidents/raise", json={"severity": "CRITICAL", "msg": "m", "source": "s"}),
            pager_types.Raised,
        ),
        "POST /api/incidents/summarize": (c.post("/api/incidents/summarize"), pager_types.Summary),
        "POST /api/incidents/alertmanager": (
            c.post("/api/incidents/alertmanager", json={**AM_PAYLOAD, "status": "resolved"}),
            pager_types.AlertmanagerReceived,
        ),
        "POST /api/incidents/ack": (
            c.post("/api/incidents/ack", json={"fingerprint": "app:payments"}),
            pager_types.IncidentAction,
        ),
        "POST /api/incidents/resolve": (
            c.post("/api/incidents/resolve", json={"fingerprint": "app:payments", "note": "again"}),
            pager_types.IncidentAction,
        ),
        "POST /api/incidents/silence": (
            c.post("/api/incidents/silence", json={"match": {"msg~": "disk"}, "for_min": 5, "reason": "r"}),
            pager_types.Silence,
        ),
        "GET /api/incidents/silences": (c.get("/api/incidents/silences?all=true"), pager_types.Silences),
        "GET /api/portal/receipts": (c.get("/api/portal/receipts?email=qa@echopilot.ai"), portal_types.Receipts),
        "GET /api/portal/audit": (c.get("/api/portal/audit"), portal_types.Audit),
        "GET /api/costs/status": (c.get("/api/costs/status"), costs_types.CostsStatus),
        "GET /api/costs/check": (c.get("/api/costs/check?model=gpt-4o"), costs_types.Decision),
        "POST /api/costs/set-cap": (
            c.post("/api/costs/set-cap", json={"scope": "daily", "usd_cap": 30.5}),
            costs_types.CapSet,
        ),
        "POST /api/costs/usage": (c.post("/api/costs/usage", json={"model": "o3", "usd": 0.5}), costs_types.Recorded),
        "POST /api/costs/reserve": (c.post("/api/costs/reserve", json=reserve_body), costs_types.Reservation),
        "POST /api/costs/reserve (throttle)": (
            c.post("/api/costs/reserve", json={"model": "o3", "estimate_usd": 10**6}),
            costs_types.Reservation,
        ),
        "POST /api/costs/release": (
            c.post("/api/costs/release", json={"reservation": costs.reserve("o3", estimate_usd=0.1).reservation}),
            costs_types.Released,
        ),
        "GET /api/scale/status": (c.get("/api/scale/status"), scale_types.ScaleStatus),
        "POST /api/scale/apply": (c.post("/api/scale/apply", json={}), scale_types.ScaleApplied),
    }
    for name, (response, tp) in over_http.items():
        assert response.status_code == 200, (name, response.text)
        assert problems(response.json(), tp) == [], name
    health = c.get("/healthz").json()
    assert problems({k: health[k] for k in ("instance", "leader", "is_leader")}, scheduler_types.Leadership) == []

    from_cli = {
        "slo status": (("slo", "status", "--json"), slo_types.SloStatus),
        "slo tick": (("slo", "tick", "--json"), slo_types.SloTick),
        "page raise": (("page", "raise", "--severity", "INFO", "--msg", "m", "--source", "s", "--json"), None),
        "page run": (("page", "run", "--json"), pager_types.PageRun),
        "page summarize": (("page", "summarize", "--json"), pager_types.Summary),
        "page ack": (("page", "ack", "app:payments", "--json"), pager_types.IncidentAction),
        "page resolve": (("page", "resolve", "app:payments", "--json"), pager_types.IncidentAction),
        "page silence": (
            ("page", "silence", "--match", "source=x", "--for", "1h", "--reason", "r", "--json"),
            pager_types.Silence,
        ),
        "page silences": (("page", "silences", "--json"), pager_types.Silences),
        "portal receipts": (("portal", "receipts", "qa@echopilot.ai", "--json"), portal_types.Receipts),
        "costs status": (("costs", "status", "--json"), costs_types.CostsStatus),
        "costs check": (("costs", "check", "gpt-4o", "--json"), costs_types.Decision),
        "costs tick": (("costs", "tick", "--json"), costs_types.CostsTick),
        "costs record": (("costs", "record", "gpt-4o", "--usd", "0.01", "--json"), costs_types.Recorded),
        "scale status": (("scale", "status", "--json"), scale_types.ScaleStatus),
        "scale apply": (("scale", "apply", "--json"), scale_types.ScaleApplied),
        "slo ingest": (("slo", "ingest", "--json"), slo_types.RequestIngest),
        "page run --logs-only": (("page", "run", "--logs-only", "--json"), pager_types.LogIngest),
    }
    for name, (args, tp) in from_cli.items():
        assert problems(_cli_json(cli, *args), tp or pager_types.Raised) == [], name
    assert _cli_json(cli, "slo", "status", "--json") == c.get("/api/slo/status").json() == slo_status(s=s)
