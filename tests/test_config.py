"""core/config.py and `echoops config`: every variable parses its default, junk is rejected by name."""

from __future__ import annotations

import dataclasses
import json

import pytest

from echoops.core import config, native
from echoops.core.config import VARS, check_number, describe, load_settings
from echoops.core.errors import ConfigError

BY_ENV = {v.env: v for v in VARS}
SECRETS = {
    "DASHBOARD_KEY": "dash-secret-value-0123456789",
    "SMTP_PASS": "smtp-secret-value-9876",
    "TELEGRAM_BOT_TOKEN": "123456:telegram-secret-token",
    "PORTAL_SIGNING_SECRET": "portal-secret-value-0123456789abcdef,old-portal-secret-0123456789abcdef",
    "STRIPE_API_KEY": "sk_test_stripe_secret_value",
}
# SMTP_PASS needs its SMTP_USER (a config error alone); the user name is not a secret.
WITH_SECRETS = {**SECRETS, "SMTP_USER": "pager@example.com"}


def rejected(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    return info.value.detail


@pytest.mark.parametrize("var", VARS, ids=lambda v: v.env)
def test_every_default_parses(var):
    # The default is written as a user would write the value, and goes through the same parser.
    var.parse(var.default)
    assert var.unit and var.doc
    assert hasattr(config.Settings, "__dataclass_fields__") and var.attr in config.Settings.__dataclass_fields__


def test_defaults_from_an_empty_environment():
    s = load_settings({})
    assert s.port == 5000
    assert s.host == "127.0.0.1"
    assert str(s.log_dir) == "logs"
    assert s.slo_lat_p95_ms == 800.0
    assert s.slo_err_budget_pct == 1.0
    assert s.slo_window_days == 30
    assert s.cost_cap_daily_usd == 25.0
    assert s.model_caps == {"gpt-4o-mini": 15.0, "embeddings": 2.0}
    assert (s.scale_min, s.scale_max, s.scale_cooldown_min, s.scale_dry_run) == (1, 6, 10, True)
    assert s.portal_link_ttl_hrs == 24
    assert s.dashboard_key is None
    assert s.secrets() == []
    # unset and blank mean the same: the default
    assert load_settings({"ECHOOPS_PORT": "   "}).port == 5000


def test_every_variable_is_a_settings_field():
    fields = [f.name for f in dataclasses.fields(config.Settings) if f.name != "warnings"]
    assert sorted(v.attr for v in VARS) == sorted(fields)
    assert len({v.env for v in VARS}) == len(VARS)


@pytest.mark.parametrize(
    ("env", "value", "reason"),
    [
        ("ECHOOPS_PORT", "abc", "not a whole number"),
        ("ECHOOPS_PORT", "0", "must be >= 1"),
        ("ECHOOPS_PORT", "-5000", "must be >= 1"),
        ("ECHOOPS_PORT", "70000", "must be <= 65535"),
        ("ECHOOPS_PORT", "50.5", "not a whole number"),
        ("ECHOOPS_PORT", "1_000", "not a whole number"),
        ("ECHOOPS_PORT", "５０００", "not a whole number"),
        ("ECHOOPS_WORKERS", "0", "must be >= 1"),
        ("ECHOOPS_JOB_TIMEOUT_S", "-1", "must be >= 1"),
        ("SLO_LAT_P95_MS", "-800", "must be > 0"),
        ("SLO_LAT_P95_MS", "0", "must be > 0"),
        ("SLO_LAT_P95_MS", "nan", "must be a finite number"),
        ("SLO_LAT_P95_MS", "NaN", "must be a finite number"),
        ("SLO_LAT_P95_MS", "inf", "must be a finite number"),
        ("SLO_LAT_P95_MS", "-Infinity", "must be a finite number"),
        ("SLO_LAT_P95_MS", "1e400", "must be a finite number"),
        ("SLO_LAT_P95_MS", "800ms", "not a number"),
        ("SLO_LAT_P95_MS", "0x10", "not a number"),
        ("SLO_LAT_P95_MS", "1_0", "not a number"),
        ("SLO_ERR_BUDGET_DAILY_PCT", "101", "must be <= 100"),
        ("SLO_ERR_BUDGET_DAILY_PCT", "-1.0", "must be > 0"),
        ("SLO_WINDOW_DAYS", "91", "must be <= 90"),
        ("SLO_WINDOW_DAYS", "thirty", "not a whole number"),
        ("COST_CAP_DAILY_USD", "-25", "must be >= 0"),
        ("COST_CAP_DAILY_USD", "$25", "not a number"),
        ("COST_CAP_DAILY_USD", "inf", "must be a finite number"),
        ("STRIPE_FEES_CAP_DAILY_USD", "-1", "must be >= 0"),
        ("SCALE_MIN", "-1", "must be >= 0"),
        ("SCALE_MAX", "0", "must be >= 1"),
        ("SCALE_COOLDOWN_MIN", "-10", "must be >= 0"),
        ("SCALE_DRY_RUN", "maybe", "not a boolean"),
        ("SCALE_CMD", "kubectl scale --replicas=3", "must contain {n}"),
        ("SLO_SOURCES", "/etc/*.ndjson", "must be a pattern inside the log dir"),
        ("SLO_SOURCES", "../other/*.ndjson", "must be a pattern inside the log dir"),
        ("SCALE_CMD", "echo 'unclosed {n}", "cannot split into arguments"),
        ("SCALE_JOBS_PER_WORKER_MIN", "0", "must be > 0"),
        ("PORTAL_LINK_TTL_HRS", "0", "must be >= 1"),
        ("PORTAL_LINK_TTL_HRS", "169", "must be <= 168"),
        ("PORTAL_BASE_URL", "ftp://x", "not an http(s) URL"),
        ("TELEGRAM_API_BASE", "api.telegram.org", "not an http(s) URL"),
        ("SMTP_PORT", "smtp", "not a whole number"),
        ("SMTP_TO", "ops@example.com, not-an-email", "'not-an-email' is not an email address"),
        ("SMTP_TLS", "tls1.3", "must be starttls, ssl or none"),
        ("SMTP_TIMEOUT_S", "0", "must be > 0"),
        ("ECHOOPS_HOST", "local host", "not a host name or address"),
        ("MODEL_CAPS_JSON", '{"gpt-4o-mini": -1}', "'gpt-4o-mini': must be >= 0"),
        ("MODEL_CAPS_JSON", '{"gpt-4o-mini": "NaN"}', "'gpt-4o-mini': must be a finite number"),
        ("MODEL_CAPS_JSON", '{"gpt-4o-mini": "Infinity"}', "'gpt-4o-mini': must be a finite number"),
        ("MODEL_CAPS_JSON", '{"gpt-4o-mini": NaN}', "not valid JSON"),
        ("MODEL_CAPS_JSON", '{"gpt-4o-mini": true}', "'gpt-4o-mini': not a number"),
        ("MODEL_CAPS_JSON", '{"gpt-4o-mini": null}', "'gpt-4o-mini': not a number"),
        ("MODEL_CAPS_JSON", '{"gpt-4o-mini": [15]}', "'gpt-4o-mini': not a number"),
        ("MODEL_CAPS_JSON", "[15, 2]", "must be a JSON object"),
        ("MODEL_CAPS_JSON", "15", "must be a JSON object"),
        ("MODEL_CAPS_JSON", '"gpt-4o-mini=15"', "must be a JSON object"),
        ("MODEL_CAPS_JSON", "{gpt-4o-mini: 15}", "not valid JSON"),
        ("MODEL_CAPS_JSON", '{" ": 1}', "empty model name"),
        ("MODEL_FALLBACKS_JSON", '{"gpt-4o": 3}', "'gpt-4o': must map a model name to a model name"),
        ("MODEL_FALLBACKS_JSON", "[]", "must be a JSON object"),
        ("MODEL_PRICES_JSON", '{"m": {"input": -0.15}}', "'m': must be >= 0"),
        ("MODEL_PRICES_JSON", '{"m": {"inptu": 0.15}}', "'m': must be {"),
        ("MODEL_PRICES_JSON", '{"m": 0.15}', "'m': must be {"),
    ],
)
def test_bad_values_are_rejected_naming_variable_and_value(env, value, reason):
    detail = rejected({env: value})
    assert f"{env}={value!r}: {reason}" in detail


def test_every_bad_variable_is_listed_at_once():
    detail = rejected({"ECHOOPS_PORT": "x", "COST_CAP_DAILY_USD": "-1", "SCALE_DRY_RUN": "perhaps"})
    assert detail.startswith("invalid configuration: ")
    assert "ECHOOPS_PORT='x'" in detail
    assert "COST_CAP_DAILY_USD='-1'" in detail
    assert "SCALE_DRY_RUN='perhaps'" in detail


def test_scale_min_above_max():
    detail = rejected({"SCALE_MIN": "5", "SCALE_MAX": "2"})
    assert detail == "invalid configuration: SCALE_MIN=5 must be <= SCALE_MAX=2"
    s = load_settings({"SCALE_MIN": "3", "SCALE_MAX": "3"})
    assert (s.scale_min, s.scale_max) == (3, 3)
    assert load_settings({"SCALE_MIN": "0"}).scale_min == 0


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("1", True),
        ("on", True),
        ("false", False),
        ("False", False),
        ("no", False),
        ("0", False),
        ("off", False),
    ],
)
def test_bool_parsing(raw, value):
    assert load_settings({"SCALE_DRY_RUN": raw}).scale_dry_run is value


@pytest.mark.parametrize("raw", ["2", "-1", "y", "t", "truee", "enabled"])
def test_bool_junk(raw):
    assert f"SCALE_DRY_RUN={raw!r}: not a boolean (use true/false)" in rejected({"SCALE_DRY_RUN": raw})


def test_valid_values_are_typed():
    s = load_settings(
        {
            "ECHOOPS_PORT": " 8080 ",
            "SLO_LAT_P95_MS": "250.5",
            "COST_CAP_DAILY_USD": "0",
            "MODEL_CAPS_JSON": '{"gpt-4o-mini": 1.5, " embeddings ": "2"}',
            "MODEL_FALLBACKS_JSON": '{"gpt-4o": "gpt-4o-mini"}',
            "MODEL_PRICES_JSON": '{"m": {"input": 0.15, "output": 0.6}}',
            "SMTP_TO": "a@example.com, b@example.org",
            "SCALE_CMD": "kubectl scale deploy/worker --replicas={n}",
            "STRIPE_FEES_CAP_DAILY_USD": "1e1",
            "PORTAL_BASE_URL": "https://portal.example.com/",
        }
    )
    assert s.port == 8080
    assert s.slo_lat_p95_ms == 250.5
    assert s.cost_cap_daily_usd == 0.0
    assert s.model_caps == {"gpt-4o-mini": 1.5, "embeddings": 2.0}
    assert s.model_fallbacks == {"gpt-4o": "gpt-4o-mini"}
    assert s.model_prices == {"m": {"input": 0.15, "output": 0.6}}
    assert s.smtp_to == ("a@example.com", "b@example.org")
    assert s.scale_cmd == ("kubectl", "scale", "deploy/worker", "--replicas={n}")
    assert s.stripe_fees_cap_usd == 10.0
    assert s.portal_base_url == "https://portal.example.com"


@pytest.mark.parametrize(
    ("raw", "kwargs", "value"),
    [("0", {}, 0.0), (3, {}, 3.0), ("2.5", {"hi": 3}, 2.5), (" 1e2 ", {}, 100.0), ("-3", {"lo": -5}, -3.0)],
)
def test_check_number_accepts(raw, kwargs, value):
    assert check_number(raw, **kwargs) == value


@pytest.mark.parametrize(
    ("raw", "kwargs", "reason"),
    [
        (-1, {}, "must be >= 0"),
        (float("nan"), {}, "must be a finite number"),
        (float("inf"), {}, "must be a finite number"),
        ("nan", {}, "must be a finite number"),
        (True, {}, "not a number"),
        (None, {}, "not a number"),
        ([1], {}, "not a number"),
        ("", {}, "not a number"),
        ("12abc", {}, "not a number"),
        (0, {"lo_open": True}, "must be > 0"),
        (4, {"hi": 3}, "must be <= 3"),
    ],
)
def test_check_number_rejects(raw, kwargs, reason):
    with pytest.raises(ValueError) as info:
        check_number(raw, **kwargs)
    assert str(info.value) == reason


def test_secret_values_are_never_echoed_in_errors():
    # A key that cannot travel in an HTTP header is rejected; the message says "(secret)".
    for raw in ("kéy-with-accent-0123456789", "key\twith-tab-0123456789"):
        detail = rejected({"DASHBOARD_KEY": raw})
        assert "DASHBOARD_KEY=(secret): must be printable ASCII" in detail
        assert raw not in detail and raw[:6] not in detail
    # A weak signing secret is not an error (portal links are disabled) and is not echoed either.
    s = load_settings({"PORTAL_SIGNING_SECRET": "junk"})
    assert s.warnings == ("PORTAL_SIGNING_SECRET has a key shorter than 32 bytes: portal links are disabled",)
    assert "junk" not in " ".join(s.warnings)
    assert "junk" not in json.dumps(describe(s))


def test_describe_masks_secrets():
    s = load_settings(WITH_SECRETS)
    out = describe(s)
    assert list(out) == [v.env for v in VARS]
    assert out["DASHBOARD_KEY"] == "***"
    assert out["SMTP_PASS"] == "***"
    assert out["TELEGRAM_BOT_TOKEN"] == "***"
    assert out["STRIPE_API_KEY"] == "***"
    assert out["PORTAL_SIGNING_SECRET"] == "***(2 set)"
    assert out["SMTP_USER"] == "pager@example.com"
    text = json.dumps(out)
    for value in SECRETS.values():
        for part in value.split(","):
            assert part not in text
    assert sorted(s.secrets()) == sorted(p for v in SECRETS.values() for p in v.split(","))


def test_repr_masks_secrets():
    s = load_settings(WITH_SECRETS)
    text = repr(s) + str(s)
    assert text.startswith("Settings(log_dir=PosixPath('logs'), host='127.0.0.1', port=5000")
    assert "dashboard_key=***" in text and "smtp_pass=***" in text
    for value in SECRETS.values():
        for part in value.split(","):
            assert part not in text
    assert "smtp_pass=None" in repr(load_settings({}))


def test_settings_cache_follows_environment(monkeypatch):
    monkeypatch.setenv("ECHOOPS_PORT", "6001")
    assert config.settings().port == 6001
    monkeypatch.setenv("ECHOOPS_PORT", "6002")
    assert config.settings().port == 6002
    assert config.settings() is config.settings()


def test_pinned_settings_stand_until_unpinned(monkeypatch):
    monkeypatch.setenv("ECHOOPS_PORT", "6001")
    pinned = config.settings()
    config.pin(pinned)
    try:
        monkeypatch.setenv("ECHOOPS_PORT", "6002")
        assert config.settings() is pinned and config.settings().port == 6001
    finally:
        config.pin(None)
    assert config.settings().port == 6002


def test_a_served_worker_pins_the_settings_it_was_forked_with(monkeypatch):
    from gunicorn.workers.gthread import ThreadWorker

    from shim.worker import ReadDeadlineWorker

    started = []
    monkeypatch.setattr(ThreadWorker, "init_process", lambda _self: started.append(config.settings()))
    monkeypatch.setenv("ECHOOPS_PORT", "6003")
    try:
        ReadDeadlineWorker.init_process(object.__new__(ReadDeadlineWorker))
        monkeypatch.setenv("ECHOOPS_PORT", "6004")
        assert started[0].port == 6003 and config.settings() is started[0]
    finally:
        config.pin(None)


# --- echoops config ------------------------------------------------------------------------


def test_config_json_exact_keys_and_masking(cli, monkeypatch, log_dir):
    for env, value in WITH_SECRETS.items():
        monkeypatch.setenv(env, value)
    result = cli("config", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"settings", "warnings", "env_file", "sources", "ingest_loops"}
    assert doc["ingest_loops"] == ("compiled" if native.fold_requests else "python")
    assert doc["env_file"] is None and set(doc["sources"].values()) == {"env", "default"}
    assert list(doc["settings"]) == [v.env for v in VARS]
    assert doc["settings"]["ECHOOPS_LOG_DIR"] == str(log_dir)
    assert doc["settings"]["ECHOOPS_PORT"] == 5000
    assert doc["settings"]["SCALE_DRY_RUN"] is True
    assert doc["settings"]["MODEL_CAPS_JSON"] == {"gpt-4o-mini": 15.0, "embeddings": 2.0}
    for env in ("DASHBOARD_KEY", "SMTP_PASS", "TELEGRAM_BOT_TOKEN", "STRIPE_API_KEY"):
        assert doc["settings"][env] == "***"
    assert doc["settings"]["PORTAL_SIGNING_SECRET"] == "***(2 set)"
    assert doc["warnings"] == []
    for value in SECRETS.values():
        for part in value.split(","):
            assert part not in result.stdout
            assert part not in result.stderr


def test_config_table_masks_secrets(cli, monkeypatch):
    for env, value in WITH_SECRETS.items():
        monkeypatch.setenv(env, value)
    result = cli("config")
    assert result.exit_code == 0
    assert "ECHOOPS_LOG_DIR" in result.stdout and "SCALE_DRY_RUN" in result.stdout
    for value in SECRETS.values():
        for part in value.split(","):
            assert part not in result.output


def test_config_invalid_exits_2_with_error_on_stderr(cli, monkeypatch):
    monkeypatch.setenv("COST_CAP_DAILY_USD", "-5")
    monkeypatch.setenv("SMTP_PASS", "smtp-secret-value-9876")
    result = cli("config", "--json")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: invalid configuration: ")
    assert "COST_CAP_DAILY_USD='-5': must be >= 0" in result.stderr
    assert "smtp-secret-value-9876" not in result.stderr


def test_config_invalid_secret_shows_secret_placeholder(cli, monkeypatch):
    monkeypatch.setenv("DASHBOARD_KEY", "clé-secrète-0123456789")
    result = cli("config")
    assert result.exit_code == 2
    assert "DASHBOARD_KEY=(secret)" in result.stderr
    assert "secrète" not in result.output


def test_config_warnings_in_json(cli, monkeypatch):
    monkeypatch.setenv("DASHBOARD_KEY", "short")
    result = cli("config", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["warnings"] == [
        "PORTAL_SIGNING_SECRET is unset: portal links are disabled",
        "DASHBOARD_KEY is shorter than 16 characters",
    ]
    assert "short" not in json.dumps(json.loads(result.stdout)["settings"])


def test_the_retired_pager_retry_hours_is_ignored_with_a_warning(cli, monkeypatch):
    monkeypatch.setenv("PAGER_RETRY_HOURS", "48")
    result = cli("config", "--json")
    assert result.exit_code == 0
    body = json.loads(result.stdout)
    assert "PAGER_RETRY_HOURS" not in body["settings"]
    assert (
        "PAGER_RETRY_HOURS is no longer used: a delivery gets at most 6 attempts over about 34 minutes, "
        "then `echoops page retry` re-drives it"
    ) in body["warnings"]
    assert json.loads(cli("config", "--json").stdout)["settings"]["COST_ENFORCE"] is True
