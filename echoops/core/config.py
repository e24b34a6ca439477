"""Environment -> one typed, validated Settings. The only place echoops reads its env vars.

Every variable has a parser (the unit lives there, see core/parsers.py), a default and a line
of docs in VARS; `echoops config` and the README's env table are built from the same table.

Precedence, highest first: the environment (a non-empty value), the folder's `echoops.env`
when the process chose to read one (`use_env_file`; the `echoops` command does, from its
working dir: see core/envfile.py), then the VARS default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echoops.core import envfile, parsers
from echoops.core.errors import ConfigError
from echoops.core.parsers import check_number  # re-exported: features validate with config.check_number

# --- the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    env: str
    attr: str
    parse: Callable[[str], Any]
    default: str  # as a string, parsed like a user value ("" means unset/None)
    unit: str
    doc: str
    secret: bool = False
    feature: str = "core"


VARS: tuple[Var, ...] = (
    # core
    Var("ECHOOPS_LOG_DIR", "log_dir", parsers.path, "./logs", "path", "Data dir: inputs, outputs, echoops.db"),
    Var("ECHOOPS_HOST", "host", parsers.host, "127.0.0.1", "host", "Address `echoops serve` binds"),
    Var("ECHOOPS_PORT", "port", parsers.int_range(1, 65535), "5000", "port", "Port `echoops serve` binds"),
    Var("ECHOOPS_WORKERS", "workers", parsers.int_range(1, 64), "2", "count", "gunicorn worker processes"),
    Var("ECHOOPS_THREADS", "threads", parsers.int_range(1, 64), "4", "count", "Request threads per worker"),
    Var(
        "ECHOOPS_REQUEST_READ_TIMEOUT_S",
        "request_read_timeout_s",
        parsers.number(0, 300, lo_open=True),
        "10",
        "s",
        "Longest wait for a request's headers and body",
    ),
    Var(
        "ECHOOPS_SCHEDULE",
        "schedule_file",
        parsers.path,
        "schedule.cron",
        "path",
        "Scheduler job file (crontab syntax)",
    ),
    Var(
        "ECHOOPS_JOB_TIMEOUT_S",
        "job_timeout_s",
        parsers.int_range(1, 86400),
        "600",
        "s",
        "Per-job timeout of the scheduler",
    ),
    Var(
        "DASHBOARD_KEY",
        "dashboard_key",
        parsers.header_secret,
        "",
        "secret",
        "Key every /api route needs in X-Dash-Key (>= 16 characters)",
        True,
    ),
    Var(
        "ECHOOPS_AUTH_FAILURES_PER_MIN",
        "auth_failures_per_min",
        parsers.int_range(1, 1_000_000),
        "10",
        "count",
        "Wrong X-Dash-Key answers per client a minute before 429",
    ),
    Var(
        "ECHOOPS_TRUSTED_PROXIES",
        "trusted_proxies",
        parsers.networks,
        "",
        "cidrs",
        "Proxies whose X-Forwarded-For names the client (audit ip, 401 throttle)",
    ),
    Var(
        "ECHOOPS_ENV_FILE",
        "env_file",
        parsers.path,
        "echoops.env",
        "path",
        "Folder settings the echoops command reads, under the environment (`up --demo` writes it)",
    ),
    # the store beyond one box (issue 19)
    Var(
        "ECHOOPS_DB_URL",
        "db_url",
        parsers.db_url,
        "",
        "secret",
        "PostgreSQL URL for all state (TLS options in it); unset: SQLite echoops.db in the log dir",
        True,
    ),
    Var(
        "ECHOOPS_INSTANCE",
        "instance",
        parsers.instance,
        "",
        "name",
        "This instance's name: its log cursors, per-host SLO minutes, the scheduler lease (default: hostname)",
    ),
    Var(
        "ECHOOPS_DB_POOL_MAX",
        "db_pool_max",
        parsers.int_range(1, 100),
        "10",
        "count",
        "PostgreSQL connections per process at most",
    ),
    Var(
        "ECHOOPS_DB_TIMEOUT_MS",
        "db_timeout_ms",
        parsers.int_range(100, 600_000),
        "15000",
        "ms",
        "PostgreSQL statement timeout (lock waits too), connect and pool wait",
    ),
    Var(
        "ECHOOPS_LEASE_S",
        "lease_s",
        parsers.int_range(5, 600),
        "30",
        "s",
        "Scheduler leader lease: another instance takes over within this after the leader dies",
    ),
    Var(
        "ECHOOPS_INGEST_BULK_MB",
        "ingest_bulk_mb",
        parsers.number(0, 1_000_000, lo_open=True),
        "32",
        "MiB",
        "New input per tick above which the SLO/costs ingest parses in parallel processes",
    ),
    Var(
        "ECHOOPS_INGEST_PROCESSES",
        "ingest_processes",
        parsers.int_range(0, 256),
        "0",
        "count",
        "Processes for a bulk ingest (0: every CPU available; 1: never fork)",
    ),
    # 76 SLO
    Var(
        "SLO_LAT_P95_MS",
        "slo_lat_p95_ms",
        parsers.number(0, 3_600_000, lo_open=True),
        "800",
        "ms",
        "p95 latency objective",
        feature="slo",
    ),
    Var(
        "SLO_ERR_BUDGET_DAILY_PCT",
        "slo_err_budget_pct",
        parsers.number(0, 100, lo_open=True),
        "1.0",
        "pct",
        "Share of requests allowed to fail",
        feature="slo",
    ),
    Var(
        "SLO_WINDOW_DAYS",
        "slo_window_days",
        parsers.int_range(1, 90),
        "30",
        "days",
        "Error-budget window",
        feature="slo",
    ),
    Var(
        "SLO_SOURCES",
        "slo_sources",
        parsers.log_glob,
        "requests*.ndjson",
        "glob",
        "Request logs (glob in the log dir)",
        feature="slo",
    ),
    Var(
        "SLO_MIN_REQUESTS",
        "slo_min_requests",
        parsers.int_range(1, 10**9),
        "100",
        "count",
        "Fewest requests a window needs to alarm",
        feature="slo",
    ),
    Var(
        "SLO_SOURCE",
        "slo_source",
        parsers.choice("files", "prometheus"),
        "files",
        "mode",
        "files (request logs in the log dir) | prometheus (PromQL over PROMETHEUS_URL)",
        feature="slo",
    ),
    Var(
        "PROMETHEUS_URL",
        "prometheus_url",
        parsers.opt_plain_url,
        "",
        "url",
        "Prometheus base URL (SLO_SOURCE=prometheus)",
        feature="slo",
    ),
    Var(
        "PROMETHEUS_BEARER_TOKEN",
        "prometheus_bearer_token",
        parsers.header_token,
        "",
        "secret",
        "Sent as Authorization: Bearer to PROMETHEUS_URL (optional)",
        True,
        "slo",
    ),
    Var(
        "PROMETHEUS_BASIC_AUTH",
        "prometheus_basic_auth",
        parsers.user_password,
        "",
        "secret",
        "user:password for Prometheus' basic auth (instead of a bearer token)",
        True,
        "slo",
    ),
    Var(
        "PROMETHEUS_TIMEOUT_S",
        "prometheus_timeout_s",
        parsers.number(0, 120, lo_open=True),
        "10",
        "s",
        "Per-query timeout against Prometheus (3 attempts)",
        feature="slo",
    ),
    Var(
        "SLO_PROM_HISTOGRAM",
        "slo_prom_histogram",
        parsers.metric_name,
        "http_request_duration_seconds",
        "metric",
        "Request latency histogram (seconds; _bucket, _count)",
        feature="slo",
    ),
    Var(
        "SLO_PROM_SELECTOR",
        "slo_prom_selector",
        parsers.label_matchers,
        "",
        "matchers",
        'Label matchers for the app\'s series, e.g. job="app"',
        feature="slo",
    ),
    Var(
        "SLO_PROM_CODE_LABEL",
        "slo_prom_code_label",
        parsers.label_name,
        "code",
        "label",
        "Label holding the HTTP status (5xx = errors)",
        feature="slo",
    ),
    # 77 pager
    Var(
        "TELEGRAM_BOT_TOKEN", "telegram_bot_token", parsers.opt_text, "", "secret", "Telegram bot token", True, "pager"
    ),
    Var("TELEGRAM_CHAT_ID", "telegram_chat_id", parsers.opt_text, "", "id", "Telegram chat to page", feature="pager"),
    Var(
        "TELEGRAM_API_BASE",
        "telegram_api_base",
        parsers.url,
        "https://api.telegram.org",
        "url",
        "Bot API base (proxies, tests)",
        feature="pager",
    ),
    Var("SMTP_HOST", "smtp_host", parsers.opt_text, "", "host", "SMTP server for email pages", feature="pager"),
    Var("SMTP_PORT", "smtp_port", parsers.int_range(1, 65535), "587", "port", "SMTP port", feature="pager"),
    Var(
        "SMTP_USER",
        "smtp_user",
        parsers.opt_text,
        "",
        "user",
        "SMTP login (optional; needs SMTP_PASS)",
        feature="pager",
    ),
    Var("SMTP_PASS", "smtp_pass", parsers.opt_text, "", "secret", "SMTP password (with SMTP_USER)", True, "pager"),
    Var("SMTP_FROM", "smtp_from", parsers.opt_text, "", "email", "Sender address", feature="pager"),
    Var("SMTP_TO", "smtp_to", parsers.emails, "", "emails", "Recipients, comma-separated", feature="pager"),
    Var(
        "SMTP_TLS",
        "smtp_tls",
        parsers.tls_mode,
        "",
        "mode",
        "starttls|ssl|none (default: ssl on 465, else starttls)",
        feature="pager",
    ),
    Var(
        "SMTP_CA_FILE",
        "smtp_ca_file",
        parsers.pem_file,
        "",
        "path",
        "PEM bundle of CAs trusted for SMTP TLS, in addition to the system's",
        feature="pager",
    ),
    Var(
        "SMTP_TIMEOUT_S",
        "smtp_timeout_s",
        parsers.number(0, 300, lo_open=True),
        "10",
        "s",
        "SMTP connect/command timeout",
        feature="pager",
    ),
    Var(
        "PAGER_REPEAT_MIN",
        "pager_repeat_min",
        parsers.int_range(1, 10080),
        "60",
        "min",
        "Page a fingerprint at most once per this",
        feature="pager",
    ),
    Var(
        "PAGER_ACK_HOURS",
        "pager_ack_hours",
        parsers.number(0, 720, lo_open=True),
        "4",
        "h",
        "An ack holds repeat pages and escalation this long (then the incident re-opens)",
        feature="pager",
    ),
    Var(
        "PAGER_ESCALATE_MIN",
        "pager_escalate_min",
        parsers.int_range(0, 10080),
        "15",
        "min",
        "Page an unacked CRITICAL again, marked ESCALATED, after this (0 = off)",
        feature="pager",
    ),
    Var(
        "TELEGRAM_ESCALATE_CHAT_ID",
        "telegram_escalate_chat_id",
        parsers.opt_text,
        "",
        "id",
        "Extra Telegram chat that gets escalations",
        feature="pager",
    ),
    Var(
        "SMTP_ESCALATE_TO",
        "smtp_escalate_to",
        parsers.emails,
        "",
        "emails",
        "Extra recipients of escalations, comma-separated",
        feature="pager",
    ),
    Var(
        "PAGER_SIGNING_SECRET",
        "pager_signing_keys",
        parsers.csv_list,
        "",
        "secret",
        "HMAC keys of Telegram buttons and email ack links (default: PORTAL_SIGNING_SECRET)",
        True,
        "pager",
    ),
    Var(
        "PAGER_LINK_TTL_HRS",
        "pager_link_ttl_hrs",
        parsers.int_range(1, 168),
        "24",
        "h",
        "Lifetime of the ack/resolve links in a page's email",
        feature="pager",
    ),
    Var(
        "PAGER_BASE_URL",
        "pager_base_url",
        parsers.opt_url,
        "",
        "url",
        "Base of the email ack/resolve links (default: PORTAL_BASE_URL)",
        feature="pager",
    ),
    # 78 portal
    Var(
        "PORTAL_SIGNING_SECRET",
        "portal_signing_keys",
        parsers.csv_list,
        "",
        "secret",
        "HMAC keys, comma-separated; first signs, all verify (>= 32 bytes each)",
        True,
        "portal",
    ),
    Var(
        "PORTAL_LINK_TTL_HRS",
        "portal_link_ttl_hrs",
        parsers.int_range(1, 168),
        "24",
        "h",
        "Signed link lifetime",
        feature="portal",
    ),
    Var(
        "PORTAL_BASE_URL",
        "portal_base_url",
        parsers.url,
        "http://localhost:5000",
        "url",
        "Base of signed links",
        feature="portal",
    ),
    Var(
        "PORTAL_SELLER_NAME",
        "portal_seller_name",
        parsers.text,
        "echoops",
        "text",
        "Seller shown on rendered receipts",
        feature="portal",
    ),
    Var(
        "STRIPE_API_KEY",
        "stripe_api_key",
        parsers.opt_text,
        "",
        "secret",
        "Stripe secret key (sync, fees)",
        True,
        "portal",
    ),
    Var(
        "STRIPE_API_BASE",
        "stripe_api_base",
        parsers.url,
        "https://api.stripe.com",
        "url",
        "Stripe API base (tests)",
        feature="portal",
    ),
    # 79 costs
    Var(
        "COST_CAP_DAILY_USD",
        "cost_cap_daily_usd",
        parsers.number(),
        "25",
        "usd",
        "Global AI spend cap per UTC day",
        feature="costs",
    ),
    Var(
        "COST_ENFORCE",
        "cost_enforce",
        parsers.boolean,
        "true",
        "bool",
        "false = monitoring only: spend and alerts go on, AI calls are never throttled",
        feature="costs",
    ),
    Var(
        "COST_RESERVATION_TTL_S",
        "cost_reservation_ttl_s",
        parsers.int_range(1, 86400),
        "600",
        "s",
        "An unsettled per-call reservation (spend(), POST /api/costs/reserve) is settled at its estimate after this",
        feature="costs",
    ),
    Var(
        "MODEL_CAPS_JSON",
        "model_caps",
        parsers.usd_map,
        '{"gpt-4o-mini":15,"embeddings":2}',
        "json usd",
        "Per-model daily caps",
        feature="costs",
    ),
    Var(
        "MODEL_FALLBACKS_JSON",
        "model_fallbacks",
        parsers.name_map,
        "{}",
        "json",
        "Cheaper model to switch to, per model",
        feature="costs",
    ),
    Var(
        "MODEL_PRICES_JSON",
        "model_prices",
        parsers.price_map,
        "{}",
        "json usd/Mtok",
        'Price overrides: {"model":{"input":0.15,"output":0.6}}',
        feature="costs",
    ),
    Var(
        "STRIPE_FEES_CAP_DAILY_USD",
        "stripe_fees_cap_usd",
        lambda r: check_number(r) if r.strip() else None,
        "",
        "usd",
        "Daily Stripe fee cap (warns and pages only)",
        feature="costs",
    ),
    # 80 scale
    Var("SCALE_MIN", "scale_min", parsers.int_range(0, 10000), "1", "workers", "Fewest workers", feature="scale"),
    Var("SCALE_MAX", "scale_max", parsers.int_range(1, 10000), "6", "workers", "Most workers", feature="scale"),
    Var(
        "SCALE_COOLDOWN_MIN",
        "scale_cooldown_min",
        parsers.int_range(0, 1440),
        "10",
        "min",
        "Minimum time between applied changes",
        feature="scale",
    ),
    Var(
        "SCALE_DRY_RUN",
        "scale_dry_run",
        parsers.boolean,
        "true",
        "bool",
        "Decide and log only; apply nothing",
        feature="scale",
    ),
    Var(
        "SCALE_CMD",
        "scale_cmd",
        parsers.argv_template,
        "",
        "argv",
        "Actuator, {n} = workers (no shell)",
        feature="scale",
    ),
    Var(
        "SCALE_CMD_TIMEOUT_S",
        "scale_cmd_timeout_s",
        parsers.int_range(1, 3600),
        "60",
        "s",
        "Actuator timeout",
        feature="scale",
    ),
    Var(
        "SCALE_JOBS_PER_WORKER_MIN",
        "scale_jobs_per_worker_min",
        parsers.number(0, 10**6, lo_open=True),
        "20",
        "jobs/min",
        "Throughput per worker when there is no history",
        feature="scale",
    ),
    Var(
        "SCALE_HORIZON_MIN",
        "scale_horizon_min",
        parsers.int_range(1, 1440),
        "30",
        "min",
        "Forecast horizon",
        feature="scale",
    ),
    Var(
        "SCALE_FORECAST",
        "scale_forecast",
        parsers.one_of("damped+seasonal", "damped", "holt"),
        "damped+seasonal",
        "method",
        "Arrival forecast: damped trend + daily/weekly profile once 3 days are sampled, damped, or holt",
        feature="scale",
    ),
    Var(
        "SCALE_QUEUE_SOURCE",
        "scale_queue_source",
        parsers.one_of("file", "redis", "rq", "celery"),
        "file",
        "source",
        "Where `scale sample` reads the queue (file = the app writes queue.ndjson itself)",
        feature="scale",
    ),
    Var(
        "SCALE_REDIS_URL",
        "scale_redis_url",
        parsers.redis_url,
        "",
        "secret",
        "Redis (or Celery broker) URL for the redis, rq and celery sources",
        True,
        "scale",
    ),
    Var(
        "SCALE_REDIS_KEYS",
        "scale_redis_keys",
        parsers.csv_list,
        "",
        "keys",
        "redis source: list keys, comma-separated; depth = sum of LLEN",
        feature="scale",
    ),
    Var(
        "SCALE_QUEUES",
        "scale_queues",
        parsers.csv_list,
        "",
        "names",
        "rq/celery source: queue names, comma-separated (default: default / celery)",
        feature="scale",
    ),
    Var(
        "SCALE_SOURCE_TIMEOUT_S",
        "scale_source_timeout_s",
        parsers.number(0, 60, lo_open=True),
        "2",
        "s",
        "Connect/read timeout of a queue source (Redis); Celery's inspect waits this long for replies",
        feature="scale",
    ),
)


@dataclass(frozen=True, repr=False)
class Settings:
    log_dir: Path
    host: str
    port: int
    workers: int
    threads: int
    request_read_timeout_s: float
    schedule_file: Path
    job_timeout_s: int
    dashboard_key: str | None
    auth_failures_per_min: int
    trusted_proxies: tuple[str, ...]
    env_file: Path
    db_url: str | None
    instance: str
    db_pool_max: int
    db_timeout_ms: int
    lease_s: int
    ingest_bulk_mb: float
    ingest_processes: int
    slo_lat_p95_ms: float
    slo_err_budget_pct: float
    slo_window_days: int
    slo_sources: str
    slo_min_requests: int
    slo_source: str
    prometheus_url: str | None
    prometheus_bearer_token: str | None
    prometheus_basic_auth: str | None
    prometheus_timeout_s: float
    slo_prom_histogram: str
    slo_prom_selector: str
    slo_prom_code_label: str
    telegram_bot_token: str | None
    telegram_chat_id: str | None
    telegram_api_base: str
    smtp_host: str | None
    smtp_port: int
    smtp_user: str | None
    smtp_pass: str | None
    smtp_from: str | None
    smtp_to: tuple[str, ...]
    smtp_tls: str | None
    smtp_ca_file: Path | None
    smtp_timeout_s: float
    pager_repeat_min: int
    pager_ack_hours: float
    pager_escalate_min: int
    telegram_escalate_chat_id: str | None
    smtp_escalate_to: tuple[str, ...]
    pager_signing_keys: tuple[str, ...]
    pager_link_ttl_hrs: int
    pager_base_url: str | None
    portal_signing_keys: tuple[str, ...]
    portal_link_ttl_hrs: int
    portal_base_url: str
    portal_seller_name: str
    stripe_api_key: str | None
    stripe_api_base: str
    cost_cap_daily_usd: float
    cost_enforce: bool
    cost_reservation_ttl_s: int
    model_caps: dict[str, float]
    model_fallbacks: dict[str, str]
    model_prices: dict[str, dict[str, float]]
    stripe_fees_cap_usd: float | None
    scale_min: int
    scale_max: int
    scale_cooldown_min: int
    scale_dry_run: bool
    scale_cmd: tuple[str, ...] | None
    scale_cmd_timeout_s: int
    scale_jobs_per_worker_min: float
    scale_horizon_min: int
    scale_forecast: str
    scale_queue_source: str
    scale_redis_url: str | None
    scale_redis_keys: tuple[str, ...]
    scale_queues: tuple[str, ...]
    scale_source_timeout_s: float
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __repr__(self) -> str:
        # Secrets masked: a Settings in a traceback, a log line or a test failure must not
        # print the dashboard key, SMTP password or bot token.
        parts = []
        for var in VARS:
            value = getattr(self, var.attr)
            parts.append(f"{var.attr}=***" if var.secret and value else f"{var.attr}={value!r}")
        return f"Settings({', '.join(parts)})"

    @property
    def smtp_tls_mode(self) -> str:
        """Effective SMTP TLS mode: the configured one, else ssl on port 465, else starttls."""
        return self.smtp_tls or ("ssl" if self.smtp_port == 465 else "starttls")

    @property
    def ingest_bulk_bytes(self) -> int:
        """ECHOOPS_INGEST_BULK_MB in bytes."""
        return int(self.ingest_bulk_mb * 1024 * 1024)

    def log_path(self, name: str) -> Path:
        """A file in the log dir (outputs and inputs by their DESIGN.md names)."""
        return self.log_dir / name

    @property
    def db_path(self) -> Path:
        return self.log_dir / "echoops.db"

    def secrets(self) -> list[str]:
        """Every secret value currently set (for redaction and for tests that grep outputs)."""
        out: list[str] = []
        for var in VARS:
            if not var.secret:
                continue
            value = getattr(self, var.attr)
            if isinstance(value, tuple):
                out.extend(v for v in value if v)
            elif value:
                out.append(value)
        if self.db_url:  # libpq quotes neither, but a message may hold the password alone
            out.extend(parsers.db_url_passwords(self.db_url))
        return out


# --- the folder's echoops.env: a layer under the environment ---------------------------------

# (the file, its echoops settings, the names in it that are ignored)
_ENV_FILE: tuple[Path | None, dict[str, str], tuple[str, ...]] = (None, {}, ())


def env_file_path() -> Path:
    """The folder settings file this process reads: ECHOOPS_ENV_FILE (from the environment
    only: the file cannot name itself), else ./echoops.env."""
    return Path((os.environ.get("ECHOOPS_ENV_FILE") or "").strip() or envfile.NAME).expanduser()


def use_env_file(path: Path | str | None = None) -> Path | None:
    """Read `path` (default `env_file_path()`) as the settings layer under the environment, for
    this process and the processes it starts with `environment()`. Returns the path when the
    file exists; None (and no layer) when it does not. ConfigError on a bad line."""
    global _ENV_FILE
    _ENV_FILE = (None, {}, ())
    path = env_file_path() if path is None else path
    found = envfile.read(Path(path))
    if found is None:
        return None
    # only echoops' own settings (not ECHOOPS_ENV_FILE: the file cannot name itself); the rest
    # is reported by `load_settings` and never passed on to the processes echoops starts
    known = {v.env for v in VARS} - {"ECHOOPS_ENV_FILE"}
    ignored = tuple(name for name in found if name not in known)
    _ENV_FILE = (Path(path), {k: v for k, v in found.items() if k in known}, ignored)
    return Path(path)


def env_file() -> Path | None:
    """The echoops.env this process reads (None without one)."""
    return _ENV_FILE[0]


def environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) over the echoops.env layer: what settings are read from.

    A name set to an empty value in `base` counts as unset, as it does everywhere else."""
    merged = dict(_ENV_FILE[1])
    for name, value in (os.environ if base is None else base).items():
        if value.strip() or name not in merged:
            merged[name] = value
    return merged


def source(name: str, base: Mapping[str, str] | None = None) -> str:
    """Where the value of `name` comes from: "env", "file" (echoops.env) or "default"."""
    if ((os.environ if base is None else base).get(name) or "").strip():
        return "env"
    if (_ENV_FILE[1].get(name) or "").strip():
        return "file"
    return "default"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `env` (default: the environment over echoops.env); ConfigError lists
    every bad variable."""
    file_warnings: list[str] = []
    if env is None:
        env = environment()
        path, _, ignored = _ENV_FILE
        file_warnings = [
            f"{path}: ECHOOPS_ENV_FILE is read from the environment only (ignored here)"
            if name == "ECHOOPS_ENV_FILE"
            else f"{path}: {name} is not an echoops setting (ignored)"
            for name in ignored
        ]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for var in VARS:
        raw = env.get(var.env)
        given = raw is not None and raw.strip() != ""
        text = raw if given and raw is not None else var.default
        try:
            values[var.attr] = var.parse(text)
        except ValueError as exc:
            shown = "(secret)" if var.secret else repr(raw)
            problems.append(f"{var.env}={shown}: {exc}")
    if not problems and values["scale_min"] > values["scale_max"]:
        problems.append(f"SCALE_MIN={values['scale_min']} must be <= SCALE_MAX={values['scale_max']}")
    if not problems and values["slo_source"] == "prometheus" and not values["prometheus_url"]:
        problems.append("SLO_SOURCE=prometheus needs PROMETHEUS_URL (e.g. http://127.0.0.1:9090)")
    if not problems and values["prometheus_bearer_token"] and values["prometheus_basic_auth"]:
        problems.append("PROMETHEUS_BEARER_TOKEN and PROMETHEUS_BASIC_AUTH are both set: Prometheus takes one")
    problems.extend(_smtp_login_problems(values))
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    warnings = file_warnings
    weak = [k for k in values["portal_signing_keys"] if len(k.encode()) < 32]
    if not values["portal_signing_keys"]:
        warnings.append("PORTAL_SIGNING_SECRET is unset: portal links are disabled")
    elif weak:
        warnings.append("PORTAL_SIGNING_SECRET has a key shorter than 32 bytes: portal links are disabled")
    if (env.get("PAGER_RETRY_HOURS") or "").strip():
        warnings.append(
            "PAGER_RETRY_HOURS is no longer used: a delivery gets at most 6 attempts over about 34 minutes, "
            "then `echoops page retry` re-drives it"
        )
    pager_keys = values["pager_signing_keys"] or values["portal_signing_keys"]
    pages_go_out = (values["telegram_bot_token"] and values["telegram_chat_id"]) or values["smtp_host"]
    if pages_go_out and (not pager_keys or any(len(k.encode()) < 32 for k in pager_keys)):
        warnings.append(
            "PAGER_SIGNING_SECRET (or PORTAL_SIGNING_SECRET) is unset or has a key shorter than 32 bytes: "
            "pages carry no Ack/Resolve buttons or email links"
        )
    weak_key = weak_dashboard_key(values["dashboard_key"])
    if weak_key:
        warnings.append(weak_key)
    return Settings(**values, warnings=tuple(warnings))


def _smtp_login_problems(values: Mapping[str, Any]) -> list[str]:
    """SMTP_USER and SMTP_PASS go together: one alone would send unauthenticated mail the
    server refuses (or log in with an empty password), found only when a page fails."""
    user, password = values.get("smtp_user"), values.get("smtp_pass")
    if user and not password:
        return ["SMTP_PASS is not set but SMTP_USER is: set both to log in to SMTP_HOST, or neither"]
    if password and not user:
        return ["SMTP_USER is not set but SMTP_PASS is: set both to log in to SMTP_HOST, or neither"]
    return []


MIN_DASHBOARD_KEY_CHARS = 16


def weak_dashboard_key(key: str | None) -> str | None:
    """Why `key` is too weak to guard the API (None when it is fine or unset).

    `serve` and `up` refuse to start with such a key (exit 2) and the shim answers 503 on admin
    routes: a short key falls to guessing even at the throttled rate.
    """
    if key and len(key) < MIN_DASHBOARD_KEY_CHARS:
        return f"DASHBOARD_KEY is shorter than {MIN_DASHBOARD_KEY_CHARS} characters"
    return None


_cache: tuple[tuple, Settings, object] | None = None
_ENV_NAMES = tuple(v.env for v in VARS)
_ENV_KEYS = tuple(os.fsencode(name) for name in _ENV_NAMES)


def _env_snapshot() -> tuple:
    # Called on every request (the auth hook, /healthz): os.environ.get encodes each name and
    # decodes each value, ~45 x 0.7 us. os.environ._data is the bytes dict os.environ wraps
    # (CPython on POSIX), so one C-level map over it gives the same answer in ~2 us.
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict) and os.name == "posix":
        return tuple(map(data.get, _ENV_KEYS))
    return tuple(map(os.environ.get, _ENV_NAMES))


_pinned: Settings | None = None


def pin(s: Settings | None) -> None:
    """Make settings() return `s` without looking at the environment again (None: look again).

    For a served worker, after fork: nothing outside a running process changes its environment,
    and the look at every variable on each request was a tenth of a cached status route's cost
    (bench/slo_status_http.py). Tests and the CLI never pin: they set variables and read again."""
    global _pinned
    _pinned = s


def settings() -> Settings:
    """Settings for the current process environment, re-read when a relevant variable changes
    (or the settings a served worker pinned)."""
    global _cache
    if _pinned is not None:
        return _pinned
    key = _env_snapshot()
    if _cache is None or _cache[0] != key or _cache[2] is not _ENV_FILE:
        _cache = (key, load_settings(), _ENV_FILE)
    return _cache[1]


def describe(s: Settings) -> dict[str, Any]:
    """Effective settings for `echoops config --json`: env name -> value, secrets masked."""
    out: dict[str, Any] = {}
    for var in VARS:
        value = getattr(s, var.attr)
        if var.attr == "db_url" and value:
            value = parsers.shown_db_url(value)  # where the state is, without the password
        elif var.secret:
            count = len(value) if isinstance(value, tuple) else (1 if value else 0)
            value = f"***({count} set)" if isinstance(value, tuple) and count else ("***" if count else None)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[var.env] = value
    return out
