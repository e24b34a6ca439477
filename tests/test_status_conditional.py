"""GET /api/costs/status and /api/scale/status answer conditional requests (issue 20): they are
computed for the current time, and an unchanged body gets 304 against its ETag."""

from __future__ import annotations

import orjson

from echoops.core import clock, costs


def test_costs_and_scale_status_answer_304_for_an_unchanged_body(server, log_dir, settings):
    with server.client() as http:
        for path in ("/api/scale/status", "/api/costs/status"):  # no data yet: nothing moves with the clock
            first = http.get(path)
            etag = first.headers["etag"]
            assert first.status_code == 200 and "last-modified" not in first.headers
            again = http.get(path, headers={"If-None-Match": etag})
            assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
            assert http.get(path, headers={"If-None-Match": '"nope"'}).content == first.content
        now = clock.now_s()
        usage = {"ts": clock.iso(now - 60), "model": "gpt-4o", "usd": 1.5}
        (log_dir / "ai_usage.ndjson").write_bytes(orjson.dumps(usage) + b"\n")
        costs.tick(s=settings, now=now)
        changed = http.get("/api/costs/status", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert changed.json()["global"]["spent_usd"] == 1.5
