"""Demo history: three days of realistic synthetic inputs in DESIGN.md's formats, ending at `now`.

`seed()` plays the operator's app: three days of request logs with an error burst over
the last 2h20m (long enough for the 2h deploy gate), today's AI usage close to the default
caps, six hours of queue samples with a backlog building in the last hour, and a few app log
lines (one CRITICAL). The numbers are
drawn from a random generator seeded with `now`, so the same `now` always gives the same files.

Adding an input is one `seed_<input>(s, now)` function and one line in `STEPS`. A step that
writes a file in the log dir lists it in `INPUT_FILES`, so `seed` never clobbers real logs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

from echoops.core import clock, config, files
from echoops.core.config import Settings
from echoops.core.costs import prices
from echoops.core.errors import ValidationError
from echoops.core.portal import ledger, rows

INPUT_FILES = ("requests.ndjson", "ai_usage.ndjson", "queue.ndjson", "app.ndjson")
MARKER = "demo.json"  # written by `seed`: this log dir holds demo data (the live traffic writes only there)

HISTORY_DAYS = 3
BURST_MIN = 140  # the error burst covers the last 140 minutes: over 2h, so the gate sets
BACKLOG_MIN = 60  # the queue backlog builds over the last hour
QUEUE_HOURS = 6

# (method, path, weight, latency factor): a small SaaS with an AI endpoint that is slower.
ROUTES = (
    ("GET", "/api/items", 40, 0.8),
    ("GET", "/api/items/detail", 20, 0.9),
    ("POST", "/api/generate", 15, 2.2),
    ("POST", "/api/checkout", 5, 1.4),
    ("GET", "/healthz", 10, 0.15),
    ("GET", "/static/app.js", 10, 0.25),
)

# Today's spend targets with the default caps (global 25, gpt-4o-mini 15, embeddings 2):
# gpt-4o-mini at ~92% of its cap (a WARN), embeddings at ~45%, global at ~71%.
_SPEND_TARGET_USD = {"gpt-4o-mini": 13.8, "gpt-4o": 3.0, "text-embedding-3-small": 0.9}
# Tokens per call, log-normal (mu, sigma) for input then output, and the app feature calling.
CALL_SHAPE = {
    "gpt-4o-mini": (7.7, 0.6, 5.6, 0.6, "chat"),  # ~2200 in, ~270 out
    "gpt-4o": (7.6, 0.5, 5.7, 0.5, "report"),
    "text-embedding-3-small": (9.9, 0.5, 0.0, 0.0, "search-index"),  # ~20k tokens per batch
}


def _rng(now: float, name: str) -> random.Random:
    """One generator per input, seeded by `now` (ms) and the input name: deterministic, independent."""
    return random.Random(f"echoops-demo:{name}:{round(now * 1000)}")


def _iso_minute(minute_start: float) -> str:
    """`2026-11-27T02:51:` for the minute starting at `minute_start` (the seconds are appended)."""
    return datetime.fromtimestamp(minute_start, UTC).strftime("%Y-%m-%dT%H:%M:")


def _write(path: Path, lines: list[bytes]) -> int:
    """Replace `path` with the lines in one atomic write; returns the line count."""
    files.write_bytes(path, b"".join(lines))
    return len(lines)


def diurnal(ts: float, low: float, high: float, peak_hour: float = 15.0) -> float:
    """A smooth daily cycle between `low` and `high`, highest at `peak_hour` UTC."""
    hour = (ts % 86400) / 3600
    return low + (high - low) * (1 + math.cos(2 * math.pi * (hour - peak_hour) / 24)) / 2


def seed_requests(s: Settings, now: float) -> int:
    """Three days of request lines (20-110 req/min, log-normal latency, p95 ~400 ms) with a 5xx burst."""
    rng = _rng(now, "requests")
    routes = [(m, p) for m, p, _, _ in ROUTES]
    weights = [w for _, _, w, _ in ROUTES]
    factors = {p: f for _, p, _, f in ROUTES}
    burst_start = now - BURST_MIN * 60
    start = math.floor((now - HISTORY_DAYS * 86400) / 60) * 60
    dumps = orjson.dumps
    lognorm = rng.lognormvariate
    random_ = rng.random
    lines: list[bytes] = []
    minute = start
    while minute < now:
        span = min(60.0, now - minute)
        rate = diurnal(minute, 20, 110) * rng.uniform(0.85, 1.15)
        n = int(rate * span / 60)
        in_burst = minute >= burst_start
        # The burst ramps up over its first 20 minutes: several % of 5xx, slower responses.
        ramp = min(1.0, (minute - burst_start) / 1200) if in_burst else 0.0
        p5xx = 0.002 + 0.06 * ramp
        slow = 1.0 + 1.6 * ramp
        prefix = _iso_minute(minute)
        picks = rng.choices(routes, weights, k=n)
        offsets_ms = sorted(int(random_() * span * 1000) for _ in range(n))  # truncated: never past `now`
        for ms, (method, path) in zip(offsets_ms, picks, strict=True):
            latency = lognorm(4.7, 0.72) * factors[path] * slow  # median ~120 ms, p95 ~400 ms
            r = random_()
            if r < p5xx:
                status = 503 if r < p5xx / 2 else (500 if r < p5xx * 0.8 else 504)
                if status == 504:
                    latency = 15000.0  # the proxy gave up
            elif r < p5xx + 0.02:
                status = 404 if r < p5xx + 0.012 else 401
                latency *= 0.3
            else:
                status = 201 if method == "POST" else 200
            line = {
                "ts": f"{prefix}{ms // 1000:02d}.{ms % 1000:03d}Z",
                "method": method,
                "path": path,
                "status": status,
                "latency_ms": round(latency, 1),
            }
            lines.append(dumps(line) + b"\n")
        minute += 60
    return _write(s.log_path("requests.ndjson"), lines)


def seed_ai_usage(s: Settings, now: float) -> int:
    """Today's AI calls (gpt-4o-mini, gpt-4o, text-embedding-3-small) up to set spend targets."""
    rng = _rng(now, "ai_usage")
    day0 = clock.day_start(now)
    calls: list[tuple[float, dict]] = []
    for model, target in _SPEND_TARGET_USD.items():
        price_in, price_out = prices.BUILTIN[model]  # the cost guardrails' list prices, µ$/Mtok
        spent = 0.0
        while spent < target:
            mu_in, sigma_in, mu_out, sigma_out, feature = CALL_SHAPE[model]
            tokens_in = int(rng.lognormvariate(mu_in, sigma_in))
            tokens_out = int(rng.lognormvariate(mu_out, sigma_out)) if mu_out else 0
            spent += (tokens_in * price_in + tokens_out * price_out) / prices.PICO_PER_USD
            ts = day0 + rng.random() * (now - day0)
            calls.append(
                (ts, {"model": model, "input_tokens": tokens_in, "output_tokens": tokens_out, "feature": feature})
            )
    calls.sort(key=lambda c: c[0])
    lines = [orjson.dumps({"ts": clock.iso(ts), **call}) + b"\n" for ts, call in calls]
    return _write(s.log_path("ai_usage.ndjson"), lines)


def seed_queue(s: Settings, now: float) -> int:
    """Six hours of one-minute queue samples, 2 workers, arrivals outrunning them in the last hour."""
    rng = _rng(now, "queue")
    workers = 2
    capacity = s.scale_jobs_per_worker_min * workers
    start = now - QUEUE_HOURS * 3600
    backlog_start = now - BACKLOG_MIN * 60
    depth = 3
    lines: list[bytes] = []
    n = QUEUE_HOURS * 60
    for i in range(n + 1):
        ts = start + i * 60
        # In the last hour arrivals climb to ~1.35x what two workers finish: the backlog grows.
        ramp = min(1.0, (ts - backlog_start) / 1800)
        load = 0.8 + 0.55 * ramp if ts >= backlog_start else diurnal(ts, 0.45, 0.8)
        arrivals = max(0, round(capacity * load * rng.uniform(0.85, 1.15)))
        completed = min(depth + arrivals, round(capacity * rng.uniform(0.92, 1.0)))
        depth = depth + arrivals - completed
        sample = {"ts": clock.iso(ts), "depth": depth, "workers": workers, "arrivals": arrivals, "completed": completed}
        lines.append(orjson.dumps(sample) + b"\n")
    return _write(s.log_path("queue.ndjson"), lines)


_APP_LINES = (
    (-170, "INFO", "web", "deploy v2.14.0 finished"),
    (-150, "INFO", "worker", "worker pool started with 2 workers"),
    (-95, "WARNING", "web", "upstream latency rising on /api/generate"),
    (-80, "WARNING", "db", "connection pool 85% used"),
    (-55, "INFO", "billing", "stripe webhook processed"),
    (-42, "WARNING", "worker", "queue depth above 100 jobs"),
    (-25, "CRITICAL", "db", "primary database connection pool exhausted: requests failing"),
    (-10, "INFO", "web", "retry storm subsided on /api/items"),
)


def seed_app_log(s: Settings, now: float) -> int:
    """A few INFO/WARNING app log lines and one CRITICAL (the pager turns it into an incident)."""
    lines = [
        orjson.dumps({"ts": clock.iso(now + minutes * 60), "level": level, "source": source, "msg": msg}) + b"\n"
        for minutes, level, source, msg in _APP_LINES
    ]
    return _write(s.log_path("app.ndjson"), lines)


# (id suffix, days ago, amount cents, description, invoice number or None, with a stored PDF)
_PURCHASES = (
    ("001", 58, 4900, "Team plan, monthly", "EP-2026-0041", False),
    ("002", 28, 4900, "Team plan, monthly", "EP-2026-0077", True),
    ("003", 12, 1500, "Extra seats x3", None, False),
    ("004", 2, 900, "AI credits pack", None, False),
)


def _receipt_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with `lines` of text (no dependency; offsets computed for a valid xref)."""
    text = (
        "BT /F1 12 Tf 72 760 Td 16 TL "
        + " ".join("(" + ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*" for ln in lines)
        + " ET"
    )
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text.encode("latin-1") + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def card_fee_cents(cents: int) -> int:
    """Stripe's standard card fee on a charge of `cents`: 2.9% + 30 cents."""
    return round(cents * 0.029) + 30


def seed_purchases(s: Settings, now: float) -> int:
    """Purchases for qa@echopilot.ai (receipts, two invoices, one stored PDF under logs/receipts/) and a few others."""
    records = []
    for suffix, days, cents, desc, number, stored in _PURCHASES:
        rec = {
            "id": f"demo_qa_{suffix}",
            "email": "qa@echopilot.ai",
            "created": now - days * 86400 - 3600,
            "amount_cents": cents,
            "currency": "usd",
            "description": desc,
            "invoice_number": number,
            "fee_cents": card_fee_cents(cents),
        }
        if stored:
            rel = f"demo/{rec['id']}.pdf"
            amount = f"USD {cents // 100}.{cents % 100:02d}"
            pdf = _receipt_pdf([f"Invoice {number}", "Billed to qa@echopilot.ai", desc, f"Total {amount}", "Paid"])
            files.write_bytes(ledger.receipts_dir(s) / rel, pdf)
            rec["invoice_document"] = rel
        records.append(rec)
    rng = _rng(now, "purchases")
    for i in range(12):
        cents = rng.choice((900, 1500, 4900, 9900))
        records.append(
            {
                "id": f"demo_cust_{i:03d}",
                "email": f"customer{i % 5}@example.com",
                "created": now - rng.uniform(0, 30) * 86400,
                "amount_cents": cents,
                "currency": "usd",
                "description": "Team plan, monthly" if cents == 4900 else "Usage",
                "fee_cents": card_fee_cents(cents),
            }
        )
    return ledger.upsert([rows.purchase_row(r, source="demo", now=now) for r in records], s=s)


# (name in the counts, step): called in this order by `seed`.
STEPS: list[tuple[str, Callable[[Settings, float], int]]] = [
    ("requests", seed_requests),
    ("ai_usage", seed_ai_usage),
    ("queue", seed_queue),
    ("app", seed_app_log),
    ("purchases", seed_purchases),
]


def _existing(s: Settings) -> list[Path]:
    return [p for p in (s.log_path(name) for name in INPUT_FILES) if p.exists() and p.stat().st_size > 0]


def is_empty(*, s: Settings | None = None) -> bool:
    """True when the log dir holds none of the demo's input files yet (safe to seed)."""
    s = s or config.settings()
    return not _existing(s)


def seed(*, s: Settings | None = None, now: float | None = None, force: bool = False) -> dict:
    """Write every demo input ending at `now`; {"now", "log_dir", "counts": {input: lines}}.

    Refuses (ValidationError naming the file) when an input already exists, unless `force`.
    """
    s = s or config.settings()
    t = clock.now_s(now)
    if not force:
        existing = _existing(s)
        if existing:
            raise ValidationError(
                f"{existing[0]} already exists; demo seed never overwrites logs (use --force to replace them)",
                field="force",
            )
    s.log_dir.mkdir(parents=True, exist_ok=True)
    counts = {name: step(s, t) for name, step in STEPS}
    files.write_json(
        s.log_path(MARKER), {"seeded_at": clock.iso(t), "by": "echoops demo seed", "note": "synthetic demo data"}
    )
    return {"now": clock.iso(t), "log_dir": str(s.log_dir), "counts": counts}


def is_demo(*, s: Settings | None = None) -> bool:
    """True when `demo seed` wrote this log dir (its `demo.json` marker is there)."""
    s = s or config.settings()
    return s.log_path(MARKER).exists()
