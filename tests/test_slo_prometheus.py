"""SLO_SOURCE=prometheus against Debian's real Prometheus 2.42.

Three days of a known request mix (a daily cycle, a 30-minute burst 26h ago, a sustained 6%
burn over the last 2h20m, and another job failing half its requests on the same metric) are
written once as the app's request log and once as OpenMetrics, backfilled with `promtool tsdb
create-blocks-from openmetrics` and served by `prometheus --storage.tsdb.path=...`. The
Prometheus source must give the same status document as the request logs (every count, burn,
slice, tier, state and the gate) and p95/p99 inside the bucket that holds the exact quantile.
"""

from __future__ import annotations

import base64
import http.server
import shutil
import threading
from pathlib import Path

import orjson
import pytest

from echoops.core import config, files, slo, store
from echoops.core.slo import promql, rules
from echoops.core.slo import types as slo_types
from echoops.core.slo.document import SourceUnavailable
from tests import prometheus_stack as stack
from tests import request_mix as mix
from tests.test_api import problems

END = 1796040000  # 2026-11-30T12:00:00Z, the tick's `now`
APP = 'job="app"'


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> dict:
    """The three days as minutes, as requests.ndjson and as a backfilled TSDB (built once)."""
    promtool = stack.need(stack.PROMTOOL)
    root = tmp_path_factory.mktemp("prom-history")
    m = mix.Mix(end=END)
    app = list(m.minutes())
    other = list(mix.other_job(m))
    mix.write_openmetrics({"app": app, "other": other}, root / "history.om")
    mix.write_ndjson(app, root / "requests.ndjson")
    stack.backfill(promtool, root / "history.om", root / "tsdb")
    return {"root": root, "app": app, "other": other}


@pytest.fixture(scope="module")
def prom(history) -> str:
    """A Prometheus serving the backfilled history (shared by the module's tests; read-only use)."""
    binary = stack.need(stack.PROMETHEUS)
    with stack.prometheus(binary, history["root"] / "tsdb") as url:
        yield url


def prom_env(monkeypatch, url: str, **extra: str) -> config.Settings:
    monkeypatch.setenv("SLO_SOURCE", "prometheus")
    monkeypatch.setenv("PROMETHEUS_URL", url)
    monkeypatch.setenv("SLO_PROM_SELECTOR", APP)
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
    store.close_all()
    return config.settings()


def files_doc(tmp_path: Path, history: dict, now: float = END) -> dict:
    """The status document of the same history read from requests.ndjson (the default source)."""
    log_dir = tmp_path / "files-source"
    log_dir.mkdir()
    shutil.copy(history["root"] / "requests.ndjson", log_dir / "requests.ndjson")
    s = config.load_settings({"ECHOOPS_LOG_DIR": str(log_dir)})
    doc = slo.tick(s=s, now=now)["status"]
    store.close_all()
    return doc


SAME = (
    "state",
    "reasons",
    "error_rate",
    "period",
    "requests",
    "errors",
    "remaining_budget_pct",
    "budget",
    "burn_alert",
    "alerts",
    "burn",
    "windows",
    "gate_condition",
    "gate_slices_burning",
    "gate_slices",
    "target",
    "rebaseline_at",
    "updated_at",
)


@pytest.mark.slow
def test_prometheus_gives_the_same_document_as_the_request_logs_and_the_exact_figures(
    monkeypatch, tmp_path, history, prom, log_dir
):
    expected = files_doc(tmp_path, history)
    s = prom_env(monkeypatch, prom)
    result = slo.tick(s=s, now=END)
    doc = result["status"]
    assert result["source"]["name"] == "prometheus" and result["source"]["queries"] == 4
    assert problems(result, slo_types.SloTick) == []
    assert doc["source"] == "prometheus" and "stale" not in doc
    assert {k: doc[k] for k in SAME} == {k: expected[k] for k in SAME}

    # ... and both equal the mix computed exactly
    app = history["app"]
    for name, minutes in rules.WINDOWS.items():
        t, e, _ = mix.exact(app, END - minutes * 60, END)
        assert (doc["windows"][name]["requests"], doc["windows"][name]["errors"]) == (t, e), name
        assert doc["burn"][name] == round(e / t / 0.01, 4), name
    t, e, lats = mix.exact(app, END - 86400, END)
    assert doc["error_rate"] == round(e / t, 6) and doc["requests"] == t == 86400
    assert doc["windows"]["24h"]["slow"] == sum(x > 0.8 for x in lats)
    for q, key in ((0.95, "p95_ms"), (0.99, "p99_ms")):
        lower, upper = mix.bucket_of(mix.quantile(lats, q))
        assert lower * 1000 < doc[key] <= upper * 1000, (key, doc[key], lower, upper)
        assert lower * 1000 < expected[key] <= upper * 1000  # the sketch agrees to the bucket
    bt, be, _ = mix.exact(app, END - 30 * 86400, END)
    assert doc["budget"]["requests"] == bt and doc["budget"]["errors"] == be
    assert doc["remaining_budget_pct"] == round(100 * (1 - be / (0.01 * bt)), 3)
    slices = [mix.exact(app, END - (12 - i) * 600, END - (11 - i) * 600)[:2] for i in range(12)]
    assert doc["gate_slices"]["burns"] == [round(e / t / 0.01, 4) for t, e in slices]

    # the sustained burn sets the gate, the burst (26h ago) is in the 7d window only
    assert doc["gate_condition"] is True and doc["burn_alert"] == "gate" and doc["state"] == "red"
    assert result["gate_set"] is True and doc["gate"]["set"] is True
    assert files.read_flag(log_dir / "deploy_gate.flag")["burn_2h"] == doc["burn"]["2h"]
    assert result["incident"]["fingerprint"] == "slo:deploy_gate"
    assert doc["notes"][0] == f"source: Prometheus at {prom}, http_request_duration_seconds {{{APP}}}"
    event = [orjson.loads(x) for x in (log_dir / "slo_budget.ndjson").read_bytes().splitlines()][-1]
    assert (event["event"], event["source"], event["queries"], event["gate_set"]) == ("slo_tick", "prometheus", 4, True)


@pytest.mark.slow
def test_the_selector_keeps_other_jobs_out(monkeypatch, history, prom):
    s = prom_env(monkeypatch, prom, SLO_PROM_SELECTOR="")
    doc = slo.tick(s=s, now=END)["status"]
    t, e, _ = mix.exact(history["app"], END - 86400, END)
    ot, oe, _ = mix.exact(history["other"], END - 86400, END)
    assert (doc["requests"], doc["errors"]) == (t + ot, e + oe)
    assert doc["notes"][0].endswith("http_request_duration_seconds {}")


@pytest.mark.slow
def test_rebaseline_clips_the_windows_like_the_request_logs(monkeypatch, tmp_path, history, prom, log_dir):
    at = END - 30 * 60  # on a slice boundary: the slices before it are empty in both sources
    files_dir = tmp_path / "files-source"
    files_dir.mkdir()
    fs = config.load_settings({"ECHOOPS_LOG_DIR": str(files_dir)})
    slo.rebaseline("deploy v2", s=fs, now=at)
    # the log arrives after the rebaseline: a tick at `at` would count the later lines as future
    shutil.copy(history["root"] / "requests.ndjson", files_dir / "requests.ndjson")
    expected = slo.tick(s=fs, now=END)["status"]
    store.close_all()

    s = prom_env(monkeypatch, prom)
    slo.rebaseline("deploy v2", s=s, now=at)
    doc = slo.tick(s=s, now=END)["status"]
    for key in ("windows", "burn", "gate_slices", "budget", "state", "gate_condition", "rebaseline_at"):
        assert doc[key] == expected[key], key
    assert doc["windows"]["1h"]["requests"] == mix.exact(history["app"], at, END)[0]
    assert doc["gate_slices"]["thin"] == 9 and doc["gate_condition"] is False


@pytest.mark.slow
def test_the_operator_override_holds_with_the_prometheus_source(monkeypatch, cli, history, prom, log_dir):
    s = prom_env(monkeypatch, prom)
    assert slo.tick(s=s, now=END - 900)["gate_set"] is True
    result = cli("slo", "gate", "--clear", "--reason", "rolled back v42")
    assert result.exit_code == 0, result.output
    again = slo.tick(s=s, now=END)
    assert again["gate_set"] is False and again["status"]["gate_condition"] is True
    assert not (log_dir / "deploy_gate.flag").exists()
    assert again["status"]["gate"]["override"]["reason"] == "rolled back v42"


@pytest.mark.slow
def test_the_autoscaler_latency_signal_comes_from_prometheus(monkeypatch, history, prom):
    s = prom_env(monkeypatch, prom)
    p95 = slo.recent_p95_ms(s=s, now=END)
    lower, upper = mix.bucket_of(mix.quantile(mix.exact(history["app"], END - 900, END)[2], 0.95))
    assert p95 is not None and lower * 1000 < p95 <= upper * 1000
    before = END - 40 * 86400  # no data then: no signal, not zero
    assert slo.recent_p95_ms(s=s, now=before) is None


# --- when Prometheus cannot answer ----------------------------------------------------------------


@pytest.mark.slow
def test_prometheus_down_keeps_the_last_good_status_stale_and_the_gate_set(monkeypatch, cli, tmp_path, log_dir):
    promtool, binary = stack.need(stack.PROMTOOL), stack.need(stack.PROMETHEUS)
    m = mix.Mix(end=END, days=0.25)  # six hours, the last 2h20m burning
    mix.write_openmetrics({"app": list(m.minutes())}, tmp_path / "h.om")
    stack.backfill(promtool, tmp_path / "h.om", tmp_path / "tsdb")
    port = stack.free_port()
    url = f"http://127.0.0.1:{port}"
    s = prom_env(monkeypatch, url)
    with stack.prometheus(binary, tmp_path / "tsdb", port=port):
        good = slo.tick(s=s, now=END)["status"]
    assert good["gate"]["set"] is True and good["state"] == "red"

    with pytest.raises(SourceUnavailable) as failed:
        slo.tick(s=s, now=END + 900)
    assert failed.value.detail.startswith(f"Prometheus at {url} is unavailable after 3 attempts: ConnectError")
    status = slo.status(s=s, now=END + 900)
    assert problems(status, slo_types.SloStatus) == []
    assert status["stale"] == {
        "since": "2026-11-30T12:15:00.000Z",
        "error": failed.value.detail,
        "last_good_at": "2026-11-30T12:00:00.000Z",
        "failed_ticks": 1,
    }
    assert {k: status[k] for k in SAME if k != "updated_at"} == {k: good[k] for k in SAME if k != "updated_at"}
    assert status["gate"]["set"] is True and (log_dir / "deploy_gate.flag").exists()  # an outage is no recovery
    on_disk = orjson.loads((log_dir / "slo_status.json").read_bytes())
    assert on_disk["stale"]["failed_ticks"] == 1

    result = cli("slo", "tick", "--now", "2026-11-30T12:30:00Z")
    assert result.exit_code == 1
    assert f"Prometheus at {url} is unavailable" in result.stderr
    status = slo.status(s=s, now=END + 1800)
    assert status["stale"]["since"] == "2026-11-30T12:15:00.000Z" and status["stale"]["failed_ticks"] == 2
    events = [orjson.loads(x) for x in (log_dir / "slo_budget.ndjson").read_bytes().splitlines()]
    errors = [e for e in events if e["event"] == "slo_source_error"]
    assert [(e["failed_ticks"], e["gate"], e["last_good_at"]) for e in errors] == [
        (1, True, "2026-11-30T12:00:00.000Z"),
        (2, True, "2026-11-30T12:00:00.000Z"),
    ]
    from echoops.core import pager

    groups = {g["fingerprint"]: g for g in pager.summarize(s=s, now=END + 1800)["groups"]}
    assert groups["slo:source"]["severity"] == "WARNING" and groups["slo:source"]["count"] == 2

    with stack.prometheus(binary, tmp_path / "tsdb", port=port):
        fresh = slo.tick(s=s, now=END + 1800)["status"]
    assert "stale" not in fresh and fresh["updated_at"] == "2026-11-30T12:30:00.000Z"
    assert slo.status(s=s, now=END + 1800).get("stale") is None


def test_a_status_read_before_any_tick_never_queries_prometheus(monkeypatch):
    s = prom_env(monkeypatch, "http://127.0.0.1:9")  # nothing listens on the discard port
    doc = slo.status(s=s, now=END)
    assert doc["source"] == "prometheus" and doc["requests"] == 0 and doc["updated_at"] is None
    assert doc["notes"][0] == "no tick has run yet: run `echoops slo tick`"


def test_the_first_tick_failing_keeps_an_empty_stale_status(monkeypatch, cli):
    s = prom_env(monkeypatch, "http://127.0.0.1:9")
    with pytest.raises(SourceUnavailable):
        slo.tick(s=s, now=END)
    doc = slo.status(s=s, now=END)
    assert doc["stale"]["last_good_at"] is None and doc["requests"] == 0
    assert doc["notes"][0] == "no tick has succeeded yet"
    shown = cli("slo", "status")
    assert shown.exit_code == 0
    words = " ".join(shown.stdout.replace("│", " ").split())  # the panel wraps long lines
    assert "STALE since 2026-11-30 12:00 UTC (1 failed ticks): Prometheus at" in words


@pytest.mark.slow
def test_a_query_prometheus_refuses_is_not_retried_and_says_which_settings_to_check(monkeypatch, prom):
    s = prom_env(monkeypatch, prom, SLO_PROM_SELECTOR='job=~"("')  # valid matchers, invalid regex
    with pytest.raises(SourceUnavailable) as failed:
        slo.tick(s=s, now=END)
    detail = failed.value.detail
    assert detail.startswith(f"Prometheus at {prom} refused the query (HTTP 400: bad_data: ")
    assert detail.endswith("check SLO_PROM_HISTOGRAM, SLO_PROM_SELECTOR and SLO_PROM_CODE_LABEL")


@pytest.mark.slow
def test_a_histogram_prometheus_does_not_have_gives_a_note_not_an_error(monkeypatch, prom):
    s = prom_env(monkeypatch, prom, SLO_PROM_HISTOGRAM="no_such_histogram_seconds")
    doc = slo.tick(s=s, now=END)["status"]
    assert doc["requests"] == 0 and doc["state"] == "green"
    assert doc["notes"][1] == (
        f"Prometheus has no no_such_histogram_seconds_count{{{APP}}} samples in the 30d budget window: "
        "check SLO_PROM_HISTOGRAM and SLO_PROM_SELECTOR"
    )


# --- the HTTP client: what it sends, retries, redaction (a loopback server speaking Prometheus' API) ---


class _Recorder(http.server.BaseHTTPRequestHandler):
    answers: list[tuple[int, bytes]] = []
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", 0))
        type(self).seen.append(
            {"path": self.path, "auth": self.headers.get("Authorization"), "body": self.rfile.read(length)}
        )
        status, body = type(self).answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.answers, _Recorder.seen = [], []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", _Recorder
    srv.shutdown()
    srv.server_close()


VECTOR = orjson.dumps(
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "2"]}]}}
)


def test_the_client_sends_the_bearer_token_retries_5xx_and_never_shows_the_token(monkeypatch, recorder):
    url, rec = recorder
    token = "prom-token-0123456789abcdef"
    s = prom_env(monkeypatch, url + "/prom", PROMETHEUS_BEARER_TOKEN=token)
    rec.answers = [(503, b'{"status":"error","errorType":"unavailable","error":"busy"}'), (200, VECTOR)]
    with promql.Client(s) as client:
        assert client.query("up", at=END) == [{"metric": {}, "value": [1, "2"]}]
        assert client.queries == 1
    assert [x["path"] for x in rec.seen] == ["/prom/api/v1/query"] * 2
    assert {x["auth"] for x in rec.seen} == {f"Bearer {token}"}
    assert rec.seen[0]["body"] == b"query=up&time=1796040000.000&timeout=10s"

    rec.answers = [(502, b"bad gateway")] * 3
    with pytest.raises(SourceUnavailable) as failed, promql.Client(s) as client:
        client.query("up", at=END)
    assert failed.value.detail == f"Prometheus at {url}/prom is unavailable after 3 attempts: HTTP 502"
    assert token not in failed.value.detail and token not in repr(s)

    rec.answers = [(200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}')]
    with pytest.raises(SourceUnavailable) as failed, promql.Client(s) as client:
        client.query("up", at=END)
    assert failed.value.detail == f"Prometheus at {url}/prom answered something that is not a vector query result"

    monkeypatch.delenv("PROMETHEUS_BEARER_TOKEN")
    s = prom_env(monkeypatch, url, PROMETHEUS_BASIC_AUTH="admin:hunter2 with spaces")
    rec.answers, rec.seen = [(200, VECTOR)], []
    with promql.Client(s) as client:
        client.query("up", at=END)
    assert rec.seen[0]["auth"] == "Basic " + base64.b64encode(b"admin:hunter2 with spaces").decode()
    assert "hunter2" not in repr(s)


def test_prometheus_settings_are_validated_naming_the_variable(monkeypatch):
    cases = {
        ("SLO_SOURCE", "prometheus"): "SLO_SOURCE=prometheus needs PROMETHEUS_URL",
        ("SLO_SOURCE", "graphite"): "SLO_SOURCE='graphite': must be one of files, prometheus",
        ("SLO_PROM_SELECTOR", "job=app"): "SLO_PROM_SELECTOR='job=app': not PromQL label matchers",
        ("SLO_PROM_HISTOGRAM", "http-latency"): "SLO_PROM_HISTOGRAM='http-latency': not a Prometheus metric name",
        ("SLO_PROM_CODE_LABEL", "status code"): "SLO_PROM_CODE_LABEL='status code': not a Prometheus label name",
        ("PROMETHEUS_URL", "localhost:9090"): "PROMETHEUS_URL='localhost:9090': not an http(s) URL",
        ("PROMETHEUS_URL", "http://u:p@prom:9090"): "must not hold credentials (user:password@)",
        ("PROMETHEUS_BASIC_AUTH", "admin"): "PROMETHEUS_BASIC_AUTH=(secret): must be user:password",
        ("PROMETHEUS_BEARER_TOKEN", "a b"): "PROMETHEUS_BEARER_TOKEN=(secret): must be printable ASCII",
        ("PROMETHEUS_TIMEOUT_S", "0"): "PROMETHEUS_TIMEOUT_S='0': must be > 0",
    }
    for (name, value), message in cases.items():
        with pytest.raises(config.ConfigError) as err:
            config.load_settings({name: value})
        assert message in err.value.detail, (name, err.value.detail)
    with pytest.raises(config.ConfigError) as err:
        config.load_settings({"PROMETHEUS_BEARER_TOKEN": "t0ken", "PROMETHEUS_BASIC_AUTH": "u:p"})
    assert "PROMETHEUS_BEARER_TOKEN and PROMETHEUS_BASIC_AUTH are both set" in err.value.detail
    s = config.load_settings({"SLO_PROM_SELECTOR": '{job="app", env=~"prod|eu",}', "SLO_SOURCE": "Files"})
    assert (s.slo_prom_selector, s.slo_source) == ('job="app", env=~"prod|eu"', "files")
    assert (s.slo_prom_histogram, s.slo_prom_code_label, s.prometheus_timeout_s) == (
        "http_request_duration_seconds",
        "code",
        10.0,
    )


def test_sample_values_and_urls_are_read_safely():
    assert [promql.number(x) for x in ("12.5", "NaN", "+Inf", "-Inf", None, "x", "1e3")] == [
        12.5,
        None,
        None,
        None,
        None,
        None,
        1000.0,
    ]
    assert promql.shown_url("https://u:p@prom.example.com:9443/base?x=1") == "https://prom.example.com:9443/base"


def test_the_latency_signal_asks_once_briefly_and_remembers_a_failure_for_a_minute(monkeypatch, recorder):
    url, rec = recorder
    s = prom_env(monkeypatch, url)
    rec.answers = [(503, b"{}")] * 3
    assert slo.recent_p95_ms(s=s, now=END) is None
    assert len(rec.seen) == 1  # one attempt, no retry: a status read must not wait out backoffs
    assert slo.recent_p95_ms(s=s, now=END + 30) is None and len(rec.seen) == 1  # remembered
    rec.answers = [(200, VECTOR)]
    assert slo.recent_p95_ms(s=s, now=END + 61) == 2000.0 and len(rec.seen) == 2  # a minute on: asked again
