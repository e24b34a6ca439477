"""The OpenAPI 3.1 document (`GET /api/openapi.json`) matches the routes, and Schemathesis finds
no server error, no answer outside the schema and no route that ignores its credential.

Schemathesis budget: at most FUZZ_EXAMPLES generated cases per operation (coverage and fuzzing
phases, 2 workers, a fixed seed so a failure reproduces), about 20 s on 2 cores for ~20
operations. Checks: all of Schemathesis's, except `negative_data_rejection`: the schema
documents the canonical subset of each input (message limits in characters where the server
counts UTF-8 bytes, upper-case severities where any case is accepted, ASCII model names where
any printable name is), so a request outside it may rightly succeed. Every request inside it
must (`positive_data_acceptance`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from echoops.core import config, demo
from shim import app as shim_app
from shim.openapi import document, operations
from tests.conftest import TEST_KEY, start_server, stop_server
from tests.needs import need
from tests.test_shim import _base_env

FUZZ_EXAMPLES = 30
FUZZ_SEED = 20261130
FUZZ_TIMEOUT_S = 600


def _route_keys() -> set[tuple[str, str]]:
    out = set()
    for route in shim_app.bottle_app.routes:
        path = re.sub(r"<([^:>]+)(?::[^>]*)?>", r"{\1}", route.rule)
        out.add((route.method, path))
    return out


def test_every_route_has_an_operation_and_every_operation_a_route():
    documented = [op.key for op in operations()]
    assert len(documented) == len(set(documented)), "an operation is described twice"
    routes = _route_keys()
    assert routes - set(documented) == set(), "routes without an operation in shim/openapi/"
    assert set(documented) - routes == set(), "operations without a route"


def test_document_lists_every_status_with_a_schema_and_the_auth_schemes():
    doc = document()
    assert doc["openapi"] == "3.1.0"
    schemes = doc["components"]["securitySchemes"]
    assert schemes["dashKey"] == {**schemes["dashKey"], "type": "apiKey", "in": "header", "name": "X-Dash-Key"}
    assert schemes["token"] == {**schemes["token"], "type": "apiKey", "in": "query", "name": "token"}
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            where = f"{method.upper()} {path}"
            assert op["responses"], where
            for status, response in op["responses"].items():
                if status == "304":  # Not Modified has no body: the validator it matched is its header
                    assert "content" not in response and "ETag" in response["headers"], where
                    continue
                assert response["content"], (where, status)
                for media, body in response["content"].items():
                    assert body["schema"], (where, status, media)
            key = [{"dashKey": []}, {"bearer": []}]
            if path.startswith("/api/") or path in shim_app.KEYED:
                expected = [{"token": []}] if path in shim_app.PUBLIC_API else key
                assert op["security"] == expected, where
                statuses = set(op["responses"])
                assert ({"401", "429", "503"} if expected == key else {"403"}) <= statuses, where
            else:
                assert op["security"] == [], where


def test_openapi_json_needs_the_key_and_serves_the_document(server):
    assert server.client(None).get("/api/openapi.json").status_code == 401
    r = server.client().get("/api/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == orjson.loads(orjson.dumps(document()))


def _schemathesis() -> str:
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        need("schemathesis is not installed (pip install -e '.[test]')")
    return str(exe)


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_schema_violation_or_ignored_auth(tmp_path, log_dir):
    exe = _schemathesis()
    env = {
        **_base_env(log_dir),
        "DASHBOARD_KEY": TEST_KEY,
        "PORTAL_SIGNING_SECRET": "fuzz-signing-secret-0123456789abcdefghij",
        "SCALE_CMD": "true {n}",  # so `dry_run: false` is a valid request (a no-op actuator)
        # the fuzzer sends thousands of requests without the key on purpose (ignored_auth)
        "ECHOOPS_AUTH_FAILURES_PER_MIN": "1000000",
    }
    demo.seed(s=config.load_settings(env))  # real data behind every status route
    srv = start_server(env, 2)
    try:
        spec = tmp_path / "openapi.json"
        spec.write_bytes(srv.client().get("/api/openapi.json").content)
        run = subprocess.run(
            [
                exe,
                "run",
                str(spec),
                "--url",
                srv.url,
                "-H",
                f"X-Dash-Key: {TEST_KEY}",
                "--checks",
                "all",
                "--exclude-checks",
                "negative_data_rejection",
                "--max-examples",
                str(FUZZ_EXAMPLES),
                "--seed",
                str(FUZZ_SEED),
                "--workers",
                "2",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=FUZZ_TIMEOUT_S,
            env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
            cwd=tmp_path,
        )
    finally:
        stop_server(srv.proc)
    server_log = srv.proc.stderr.read().decode(errors="replace")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Traceback" not in server_log, server_log[-3000:]


# --- what Schemathesis found, kept as plain regression tests ----------------------------------------------


def test_a_multipart_part_header_with_control_characters_is_400_not_500(live_server):
    srv = live_server(workers=1, PORTAL_SIGNING_SECRET="fuzz-signing-secret-0123456789abcdefghij")
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="a\x00\tb"\r\n\r\nx\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n'
        f"--{boundary}--\r\n"
    ).encode("latin-1")
    r = srv.client(None).post(
        "/api/portal/unsubscribe?token=v1.x.y",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert (r.status_code, r.json()) == (
        400,
        {"error": "invalid", "detail": "the form body could not be parsed", "field": "body"},
    )
