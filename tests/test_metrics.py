"""GET /metrics: the exposition (names, units, values equal to the API's), its auth, the shipped
scrape config, rules and Grafana dashboard, and Debian's real Prometheus scraping a live echoops."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from echoops.core import config, costs, demo, metrics, pager, scale, scheduler, slo, store
from echoops.core.scheduler import runner
from tests import prometheus_stack as stack
from tests.conftest import wait_for
from tests.fakes_telegram import FakeTelegram, server_error

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"
T0 = 1796040000.0  # 2026-11-30T12:00:00Z
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
REQUIRED = {
    "echoops_slo_latency_p95_seconds": "gauge",
    "echoops_slo_latency_p99_seconds": "gauge",
    "echoops_slo_error_ratio": "gauge",
    "echoops_slo_error_budget_remaining_ratio": "gauge",
    "echoops_slo_burn_rate": "gauge",
    "echoops_deploy_gate": "gauge",
    "echoops_incidents": "counter",
    "echoops_pager_outbox_pending": "gauge",
    "echoops_pager_deliveries": "counter",
    "echoops_cost_spend_usd": "gauge",
    "echoops_cost_cap_usd": "gauge",
    "echoops_scale_desired_workers": "gauge",
    "echoops_scale_actual_workers": "gauge",
    "echoops_scale_forecast_arrivals_per_minute": "gauge",
    "echoops_scheduler_job_last_success_timestamp_seconds": "gauge",
}


def parse(body: bytes) -> dict[str, dict]:
    """family name -> {"type", "samples": {(sample name, sorted labels): value}}."""
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        out[fam.name] = {
            "type": fam.type,
            "samples": {(smp.name, tuple(sorted(smp.labels.items()))): smp.value for smp in fam.samples},
        }
    return out


def value(found: dict, family: str, sample: str | None = None, **labels: str) -> float:
    return found[family]["samples"][(sample or family, tuple(sorted(labels.items())))]


def seeded(settings, now: float = T0) -> None:
    """Demo inputs and one tick of every control: every metric has a value."""
    demo.seed(s=settings, now=now)
    slo.tick(s=settings, now=now)
    pager.run(s=settings, now=now)
    costs.tick(s=settings, now=now)
    scale.tick(s=settings, now=now)


def test_every_metric_the_issue_names_is_there_in_base_units_and_equal_to_the_api(settings):
    seeded(settings)
    body, content_type = metrics.exposition(None, s=settings, now=T0)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    found = parse(body)
    assert {name: found[name]["type"] for name in REQUIRED} == REQUIRED

    st = slo.status(s=settings, now=T0)
    assert value(found, "echoops_slo_latency_p95_seconds") == st["p95_ms"] / 1000
    assert value(found, "echoops_slo_latency_p99_seconds") == st["p99_ms"] / 1000
    assert value(found, "echoops_slo_error_ratio") == st["error_rate"]
    assert value(found, "echoops_slo_requests") == st["requests"]
    assert value(found, "echoops_slo_error_budget_remaining_ratio") == st["remaining_budget_pct"] / 100
    burns = {dict(k[1])["window"]: v for k, v in found["echoops_slo_burn_rate"]["samples"].items()}
    assert burns == st["burn"] and list(burns) == ["5m", "10m", "30m", "1h", "2h", "6h", "24h", "7d"]
    assert st["state"] == "red" and st["gate"]["set"] is True  # the demo's burst
    assert {dict(k[1])["state"]: v for k, v in found["echoops_slo_state"]["samples"].items()} == {
        "green": 0.0,
        "yellow": 0.0,
        "red": 1.0,
    }
    assert value(found, "echoops_deploy_gate") == 1.0 and value(found, "echoops_deploy_gate_override") == 0.0
    assert value(found, "echoops_slo_objective_latency_p95_seconds") == 0.8
    assert value(found, "echoops_slo_objective_error_ratio") == 0.01
    assert value(found, "echoops_slo_last_tick_timestamp_seconds") == T0
    assert value(found, "echoops_slo_stale") == 0.0

    cs = costs.status(s=settings, now=T0)
    assert value(found, "echoops_cost_spend_usd", scope="global", model="") == cs["global"]["spent_usd"]
    assert value(found, "echoops_cost_cap_usd", scope="global", model="") == cs["global"]["cap_usd"] == 25.0
    for name, entry in cs["models"].items():
        assert value(found, "echoops_cost_spend_usd", scope="model", model=name) == entry["spent_usd"], name
        if entry["cap_usd"] is None:
            assert ("echoops_cost_cap_usd", (("model", name), ("scope", "model"))) not in found["echoops_cost_cap_usd"][
                "samples"
            ]
        else:
            assert value(found, "echoops_cost_cap_usd", scope="model", model=name) == entry["cap_usd"], name
    assert value(found, "echoops_cost_spend_usd", scope="stripe_fees", model="") == cs["stripe_fees"]["spent_usd"]

    sc = scale.status(s=settings, now=T0)
    assert value(found, "echoops_scale_desired_workers") == sc["desired"]
    assert value(found, "echoops_scale_actual_workers") == sc["actual"]
    assert value(found, "echoops_scale_forecast_arrivals_per_minute") == sc["forecast"]["rate_in_horizon_per_min"]
    assert value(found, "echoops_scale_backlog_jobs") == sc["forecast"]["backlog"]
    assert value(found, "echoops_scale_dry_run") == 1.0
    assert value(found, "echoops_build_info", version=__import__("echoops").__version__) == 1.0
    assert {dict(k[1])["section"]: v for k, v in found["echoops_metrics_section_up"]["samples"].items()} == {
        "slo": 1.0,
        "pager": 1.0,
        "costs": 1.0,
        "scale": 1.0,
        "scheduler": 1.0,
    }


def test_pager_counters_count_incidents_by_severity_and_deliveries_by_result(settings, monkeypatch):
    with FakeTelegram() as tg:
        tg.configure(monkeypatch)
        store.close_all()
        s = config.settings()
        pager.raise_incident("CRITICAL", "db down", "db", s=s, now=T0)
        pager.raise_incident("CRITICAL", "db down", "db", s=s, now=T0 + 60)  # deduped: one incident
        pager.raise_incident("CRITICAL", "disk full", "host", s=s, now=T0 + 120)
        pager.raise_incident("WARNING", "slow", "api", s=s, now=T0)
        for name in ("alpha", "beta", "gamma"):
            pager.raise_incident("INFO", f"deployed {name}", "ci", s=s, now=T0)
        before = parse(metrics.exposition(s=s, now=T0 + 130)[0])
        assert value(before, "echoops_pager_outbox_pending") == 2  # telegram: two pages waiting
        tg.script(server_error())  # the first attempt fails and is retried later; the second is delivered
        pager.run(s=s, now=T0 + 130)
        found = parse(metrics.exposition(s=s, now=T0 + 140)[0])
    incidents = {dict(k[1])["severity"]: v for k, v in found["echoops_incidents"]["samples"].items()}
    assert incidents == {"CRITICAL": 2.0, "ERROR": 0.0, "WARNING": 1.0, "INFO": 3.0}
    assert all(name == "echoops_incidents_total" for name, _ in found["echoops_incidents"]["samples"])
    deliveries = {tuple(dict(k[1]).values()): v for k, v in found["echoops_pager_deliveries"]["samples"].items() if v}
    assert deliveries == {("email", "skipped"): 2.0, ("telegram", "ok"): 1.0}
    assert value(found, "echoops_pager_outbox_pending") == 1  # the failed one waits for its retry
    assert (
        value(found, "echoops_pager_delivery_attempts", "echoops_pager_delivery_attempts_total", channel="telegram")
        == 2
    )


def test_a_job_keeps_its_last_success_through_later_failures(settings, tmp_path):
    flag = tmp_path / "fail"
    code = f"import os, sys; sys.exit(1 if os.path.exists({str(flag)!r}) else 0)"
    py = shlex.quote(sys.executable)
    Path(settings.schedule_file).write_text(f"*/15 * * * * {py} -c {shlex.quote(code)}  # name=backup\n")
    runner.run_once("backup", s=settings, now=T0)
    flag.touch()
    assert runner.run_once("backup", s=settings, now=T0 + 900)["status"] == "failed"
    assert scheduler.last_successes(s=settings) == {"backup": pytest.approx(T0, abs=5)}
    found = parse(metrics.exposition(s=settings, now=T0 + 901)[0])
    family = found["echoops_scheduler_job_last_success_timestamp_seconds"]["samples"]
    assert list(family) == [("echoops_scheduler_job_last_success_timestamp_seconds", (("job_name", "backup"),))]
    assert list(family.values())[0] == pytest.approx(T0, abs=5)


def test_a_store_written_before_the_column_keeps_the_successes_it_knew(settings):
    conn = store.db(settings, store.Schema("scheduler", scheduler.SCHEMA.migrations[:1]))
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO scheduler_jobs(name, last_end, last_status, updated_at) VALUES "
            "('slo tick', ?, 'ok', ?), ('costs tick', ?, 'failed', ?)",
            (T0, T0, T0, T0),
        )
    store.close_all()
    assert scheduler.last_successes(s=settings) == {"slo tick": T0}


def test_a_section_that_cannot_be_read_is_left_out_and_says_so(settings):
    seeded(settings)
    conn = store.db(settings, store.Schema("scale", ()))
    with store.transaction(conn):
        conn.execute("UPDATE schema_versions SET version = 99 WHERE feature = 'scale'")  # a newer echoops wrote it
    store.close_all()
    found = parse(metrics.exposition(s=config.settings(), now=T0)[0])
    ups = {dict(k[1])["section"]: v for k, v in found["echoops_metrics_section_up"]["samples"].items()}
    assert ups == {"slo": 1.0, "pager": 1.0, "costs": 1.0, "scale": 0.0, "scheduler": 1.0}
    assert "echoops_scale_desired_workers" not in found and "echoops_deploy_gate" in found


def test_metrics_over_http_needs_the_key_as_bearer_or_header_and_speaks_openmetrics_to_prometheus(live_server):
    srv = live_server(workers=1, ECHOOPS_AUTH_FAILURES_PER_MIN="3")
    url = srv.url + "/metrics"
    r = httpx.get(url, headers={"Authorization": f"Bearer {srv.key}"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert r.headers["cache-control"] == "no-store" and "echoops_deploy_gate 0.0" in r.text
    r = httpx.get(url, headers={"X-Dash-Key": srv.key, "Accept": PROMETHEUS_ACCEPT})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.text.endswith("# EOF\n") and "# TYPE echoops_incidents counter" in r.text

    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Basic {srv.key}"}).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer wrong-key-0123456789"})
    assert wrong.status_code == 401 and wrong.json() == {
        "error": "unauthorized",
        "detail": "missing or wrong key (X-Dash-Key header or Authorization: Bearer)",
    }
    throttled = httpx.get(url, headers={"Authorization": f"Bearer {srv.key}"})
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0  # the 3rd miss throttles


# --- the shipped files ----------------------------------------------------------------------------


def shipped_prometheus_dir(tmp_path: Path, key: str) -> Path:
    """contrib/prometheus/* copied next to a key file, as an operator installs them."""
    out = tmp_path / "prometheus-conf"
    out.mkdir()
    for path in (CONTRIB / "prometheus").iterdir():
        (out / path.name).write_text(path.read_text())
    (out / "echoops_dashboard_key").write_text(key + "\n")
    return out


def test_the_shipped_scrape_config_and_rules_pass_promtool(tmp_path):
    promtool = stack.need(stack.PROMTOOL)
    conf = shipped_prometheus_dir(tmp_path, "k" * 32)
    checked = subprocess.run(
        [promtool, "check", "config", str(conf / "prometheus.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", "echoops-rules.test.yml"], capture_output=True, text=True, cwd=conf
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    (conf / "echoops_dashboard_key").unlink()  # the key file is checked for too
    assert (
        subprocess.run([promtool, "check", "config", str(conf / "prometheus.yml")], capture_output=True).returncode == 1
    )


def dashboard_exprs() -> list[str]:
    dash = json.loads((CONTRIB / "grafana" / "echoops.json").read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"]) and len(panels) >= 15
    for p in panels:
        assert p["title"] and p["targets"] and set(p["gridPos"]) == {"h", "w", "x", "y"}, p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
    return [t["expr"] for p in panels for t in p["targets"]]


def test_the_grafana_dashboard_is_json_whose_panels_use_metrics_echoops_exposes(settings):
    seeded(settings)
    Path(settings.schedule_file).write_text(f"*/15 * * * * {shlex.quote(sys.executable)} -c pass  # name=noop\n")
    runner.run_once("noop", s=settings, now=T0)
    found = parse(metrics.exposition(s=settings, now=T0)[0])
    exposed = {name for fam in found.values() for name, _ in fam["samples"]}
    used = {name for expr in dashboard_exprs() for name in re.findall(r"\b(echoops_[a-z0-9_]+)", expr)}
    assert used - exposed == set()
    assert set(REQUIRED) - {n.removesuffix("_total") for n in used} == set()  # every required metric is charted


@pytest.mark.slow
def test_a_real_prometheus_scrapes_echoops_with_the_shipped_config(live_server, tmp_path, settings):
    binary = stack.need(stack.PROMETHEUS)
    seeded(settings)
    srv = live_server(workers=1)
    conf = shipped_prometheus_dir(tmp_path, srv.key)
    text = (conf / "prometheus.yml").read_text()
    text = text.replace("127.0.0.1:5000", srv.url.removeprefix("http://")).replace("30s", "1s")
    # the config runs from another dir: its two relative paths made absolute
    text = text.replace(": echoops_dashboard_key", f": {conf / 'echoops_dashboard_key'}")
    text = text.replace("- echoops-rules.yml", f"- {conf / 'echoops-rules.yml'}")
    with stack.prometheus(binary, tmp_path / "tsdb", text) as prom:
        wait_for(lambda: stack.query(prom, 'up{job="echoops"} == 1'), timeout=60, what="a successful scrape")
        status = srv.client().get("/api/slo/status").json()
        remaining = stack.query(prom, "echoops_slo_error_budget_remaining_ratio")
        assert float(remaining[0]["value"][1]) == status["remaining_budget_pct"] / 100
        assert float(stack.query(prom, "echoops_deploy_gate")[0]["value"][1]) == float(status["gate"]["set"])
        caps = srv.client().get("/api/costs/status").json()
        cap = stack.query(prom, 'echoops_cost_cap_usd{scope="global"}')
        assert float(cap[0]["value"][1]) == caps["global"]["cap_usd"]
        # every dashboard query is valid PromQL over what was scraped
        for expr in dashboard_exprs():
            answer = httpx.get(prom + "/api/v1/query", params={"query": expr.replace("$instance", ".*")}).json()
            assert answer["status"] == "success", (expr, answer)
        rules = httpx.get(prom + "/api/v1/rules").json()["data"]["groups"]
        assert [r["name"] for r in rules[0]["rules"]][:1] == ["EchoopsDown"] and rules[0]["rules"][0]["health"] == "ok"


def test_the_server_reuses_a_read_for_at_most_its_age_per_process(settings):
    first = metrics.families(s=settings, now=T0, max_age_s=60)
    pager.raise_incident("WARNING", "disk 91%", "host", s=settings, now=T0)
    assert metrics.families(s=settings, now=T0, max_age_s=60) is first  # reused: the raise is not in it
    fresh = parse(metrics.exposition(s=settings, now=T0)[0])  # max_age_s=0: read now
    assert value(fresh, "echoops_incidents", "echoops_incidents_total", severity="WARNING") == 1
    assert metrics.families(s=settings, now=T0, max_age_s=60) is first  # an unreused read leaves the reuse be
    other = config.load_settings({"ECHOOPS_LOG_DIR": str(settings.log_dir)})
    newer = metrics.families(s=other, now=T0, max_age_s=60)  # other settings (an env change): read again
    assert newer is not first
    assert (
        value(
            parse(metrics.exposition(s=other, max_age_s=60)[0]),
            "echoops_incidents",
            "echoops_incidents_total",
            severity="WARNING",
        )
        == 1
    )
