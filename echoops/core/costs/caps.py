"""Cost guardrails: AI spend and Stripe fees per UTC day against caps; degrade AI calls, never admin.

- `tick()` ingests new AI usage lines and today's Stripe fees, recomputes the decisions,
  writes `logs/cost_state.json` atomically, raises incidents once per scope per day and
  appends a `cost_tick` event to `logs/costs.ndjson`.
- `status()` is the `/api/costs/status` document; `set_cap()` stores a cap that overrides
  the environment value it was set over until that value changes, or it is set again
  (`cap_sources`: the newest setting wins), and recomputes the decisions at once.
- COST_ENFORCE=false is monitoring-only mode: spend, utilisation, states, WARN/over events
  and incidents go on, every decision is `allow` (saying what it would have been).
- `guard(model)` (from `guardrail`) is the live decision in front of an AI call.

States per scope (global and each capped model): ok < 90% <= warn < 100% <= throttle.
Stripe fees have their own optional cap and only warn/page (state ok|warn|over): throttling
AI because sales grew would punish success. Money is integers: spend in pico-dollars, caps
in micro-dollars (see prices.py); floats appear only in the returned JSON.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

from echoops.core import clock, config, files, ndjson, store
from echoops.core.config import Settings
from echoops.core.costs import admission, cap_sources, prices, reservations, series
from echoops.core.costs import fees as stripe_fees
from echoops.core.costs.cap_sources import effective_caps, model_name, validate_cap
from echoops.core.costs.guardrail import STATE_FILE, decide, guard, known_models
from echoops.core.costs.ingest import ingest_usage
from echoops.core.errors import EchoopsError

if TYPE_CHECKING:  # annotations only: `costs check` and guard() start-up skip building the TypedDicts
    from echoops.core.costs.types import (
        Alert,
        Calls,
        CapChange,
        CapSet,
        CostsStatus,
        CostsTick,
        Decision,
        Scope,
        SpendPoint,
    )

__all__ = ["SCHEMA", "calls_status", "check", "guard", "republish", "set_cap", "status", "tick", "state_document"]

EVENTS_LOG = "costs.ndjson"
MIN_FORECAST_S = 3600  # extrapolate from at least an hour, so 00:05's first call is not x288

SCHEMA = store.Schema(
    "costs",
    (
        """
        CREATE TABLE costs_spend (
            day TEXT NOT NULL,
            model TEXT NOT NULL,
            calls INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost_p INTEGER NOT NULL,
            unpriced_calls INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, model)
        );
        CREATE TABLE costs_caps (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            cap_micro INTEGER NOT NULL,
            set_at REAL NOT NULL,
            PRIMARY KEY (scope, key)
        );
        CREATE TABLE costs_fees (
            day TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            fee_cents INTEGER NOT NULL,
            count INTEGER NOT NULL,
            detail TEXT,
            updated_at REAL NOT NULL
        );
        CREATE TABLE costs_alerts (
            day TEXT NOT NULL,
            scope TEXT NOT NULL,
            kind TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            incident_id TEXT,
            at REAL NOT NULL,
            PRIMARY KEY (day, scope, kind)
        );
        CREATE TABLE costs_meta (k TEXT PRIMARY KEY, v REAL NOT NULL);
        """,
        reservations.MIGRATION,  # v2: per-call reservations and records
    ),
)


def db(s: Settings) -> store.Conn:
    """The store connection with the costs tables (migrated on first use)."""
    return store.db(s, SCHEMA)


# --- caps ----------------------------------------------------------------------------------


def set_cap(
    scope: object, key: object, usd_cap: object, *, s: Settings | None = None, now: float | None = None
) -> CapSet:
    """Store a cap (`daily` or per `model`) overriding the environment value it is set over (until
    that value changes, see `cap_sources`); logs `cap_set` with the old value.

    Returns `{"cap": {scope, key, usd_cap, old_usd_cap, old_source}, "status": <status document>}`.
    """
    s = s or config.settings()
    now = clock.now_s(now)
    scope, key, usd = validate_cap(scope, key, usd_cap)
    micro = prices.usd_to_micro(usd)
    conn = db(s)
    cap_sources.observe(conn, s, now)  # the environment it is set over, as of now
    with store.transaction(conn):
        daily, models = effective_caps(conn, s)
        old = daily if scope == "daily" else models.get(key)
        conn.execute(
            "INSERT INTO costs_caps(scope, key, cap_micro, set_at) VALUES(?,?,?,?) "
            "ON CONFLICT(scope, key) DO UPDATE SET cap_micro=excluded.cap_micro, set_at=excluded.set_at",
            (scope, key, micro, now),
        )
        cap_sources.bump_version(conn)
    cap: CapChange = {
        "scope": scope,
        "key": key or None,
        "usd_cap": prices.micro_to_usd(micro),
        "old_usd_cap": None if old is None else prices.micro_to_usd(old[0]),
        "old_source": None if old is None else old[1],
    }
    ndjson.append(s.log_path(EVENTS_LOG), "cap_set", now=now, **cap)
    doc = _publish(conn, s, now)
    _alert(conn, s, doc, now)
    resolve_cleared(conn, s, doc, now)
    return {"cap": cap, "status": _public(doc, series.points(conn, now))}


# --- the status document -----------------------------------------------------------------


def _entry(spent_p: int, held_p: int, cap_micro: int | None, elapsed: float) -> dict[str, Any]:
    forecast_p = spent_p * 86400 // max(int(elapsed), MIN_FORECAST_S)
    out: dict[str, Any] = {
        "spent_usd": prices.pico_to_usd(spent_p),
        "reserved_usd": prices.pico_to_usd(held_p),
        "cap_usd": None,
        "pct": None,
        "state": "ok",
    }
    if cap_micro is not None:
        cap_p = cap_micro * prices.PICO_PER_MICRO
        out["cap_usd"] = prices.micro_to_usd(cap_micro)
        out["pct"] = round(spent_p * 100 / cap_p, 2) if cap_p else None
        out["state"] = admission.state_of(spent_p, cap_p)
        out["forecast_over"] = bool(cap_p) and forecast_p >= cap_p
    out["forecast_usd"] = prices.pico_to_usd(min(forecast_p, prices.MAX_PICO))
    return out


def state_document(
    conn: store.Conn, s: Settings, now: float, env_caps: dict[tuple[str, str], int] | None = None
) -> dict[str, Any]:
    """The full state (status plus caps, fallbacks, prices and decisions): what cost_state.json
    holds. `env_caps`: the environment's caps to use instead of `s`'s (see `republish`)."""
    day = clock.day_iso(now)
    elapsed = now - clock.day_start(now)
    daily, caps = effective_caps(conn, s, env_caps)
    rows = conn.execute(
        "SELECT model, cost_p, unpriced_calls FROM costs_spend WHERE day=? ORDER BY model", (day,)
    ).fetchall()
    spent: dict[str, int] = {key: 0 for key in caps}
    members: dict[str, list[str]] = {}
    for row in rows:
        scope = prices.cap_scope(row["model"], caps)
        spent[scope] = spent.get(scope, 0) + row["cost_p"]
        if scope != row["model"]:
            members.setdefault(scope, []).append(row["model"])
    held: dict[str, int] = {}
    held_models = reservations.held_by_model(conn, day)
    for model, amount in held_models.items():
        scope = prices.cap_scope(model, caps)
        held[scope] = held.get(scope, 0) + amount
        spent.setdefault(scope, 0)
    models: dict[str, Any] = {}
    for scope in sorted(spent):
        entry = _entry(spent[scope], held.get(scope, 0), caps[scope][0] if scope in caps else None, elapsed)
        if scope in caps:
            entry.update(cap_sources.describe(caps[scope]))
        if scope in members:
            entry["members"] = members[scope]
        models[scope] = entry
    meta = dict(conn.execute("SELECT k, v FROM costs_meta").fetchall())
    doc: dict[str, Any] = {
        "day": day,
        "global": {
            **_entry(sum(row["cost_p"] for row in rows), sum(held_models.values()), daily[0], elapsed),
            **cap_sources.describe(daily),
        },
        "models": models,
        "stripe_fees": stripe_fees.status_entry(conn, s, day),
        "unpriced": sorted(row["model"] for row in rows if row["unpriced_calls"]),
        "updated_at": clock.iso(meta["last_tick"]) if "last_tick" in meta else None,
        "calls": reservations.calls_summary(conn, now, s.cost_reservation_ttl_s),
        "caps": {
            "daily_usd": prices.micro_to_usd(daily[0]),
            "daily_source": daily[1],
            "models": {k: prices.micro_to_usd(v[0]) for k, v in sorted(caps.items())},
            "sources": {k: v[1] for k, v in sorted(caps.items())},
        },
        "fallbacks": dict(s.model_fallbacks),
        "prices": dict(s.model_prices),
        "enforce": s.cost_enforce,
        "mode": "enforce" if s.cost_enforce else "monitor",
    }
    names = set(prices.price_table(s.model_prices)) | set(models) | set(caps)
    names |= set(s.model_fallbacks) | set(s.model_fallbacks.values())
    names |= {row["model"] for row in rows}
    known = known_models(doc)
    decisions = {name: decide(name, doc, known) for name in sorted(names)}
    for scope, entry in models.items():
        entry["action"] = decisions[scope]["action"]
    doc["decisions"] = decisions
    return doc


def check(model: object, *, s: Settings | None = None, now: float | None = None) -> Decision:
    """guard() for a model name from outside (`costs check`, `/api/costs/check`): the name is
    validated first (ValidationError naming `model`); in-process callers use guard() directly."""
    return guard(model_name(model, "model"), s=s, now=now)


def _public(doc: dict[str, Any], spend_today: list[SpendPoint]) -> CostsStatus:
    """The /api/costs/status body: the state document without its lookup tables, and today's points."""

    def scope(entry: dict[str, Any]) -> Scope:
        return cast("Scope", {k: v for k, v in entry.items() if k != "forecast_over"})

    return {
        "day": doc["day"],
        "mode": doc["mode"],
        "global": scope(doc["global"]),
        "models": {name: scope(entry) for name, entry in doc["models"].items()},
        "stripe_fees": doc["stripe_fees"],
        "unpriced": doc["unpriced"],
        "updated_at": doc["updated_at"],
        "calls": doc["calls"],
        "spend_today": spend_today,
    }


def status(*, s: Settings | None = None, now: float | None = None) -> CostsStatus:
    """Today's spend, caps, utilisation, states and forecast (the `/api/costs/status` document)."""
    s = s or config.settings()
    conn, t = db(s), clock.now_s(now)
    cap_sources.observe(conn, s, t)
    return _public(state_document(conn, s, t), series.points(conn, t))


def calls_status(*, s: Settings | None = None, now: float | None = None) -> Calls:
    """Per-call enforcement now: reservations in flight (and expired, awaiting the tick), USD
    held, and calls recorded one by one in the last 5 minutes (the Costs card, /metrics)."""
    s = s or config.settings()
    return reservations.calls_summary(db(s), clock.now_s(now), s.cost_reservation_ttl_s)


def _publish(
    conn: store.Conn, s: Settings, now: float, env_caps: dict[tuple[str, str], int] | None = None
) -> dict[str, Any]:
    """Recompute the decisions and write cost_state.json, under the store's write lock so the
    last writer always holds the newest data. Notes `s`'s environment first, unless `env_caps`
    stands in for it (a per-call republish from an app's process)."""
    if env_caps is None:
        cap_sources.observe(conn, s, now)
    with store.transaction(conn):
        doc = state_document(conn, s, now, env_caps)
        row = conn.execute("SELECT v FROM costs_meta WHERE k='version'").fetchone()
        version = int(row[0]) + 1 if row else 1
        conn.execute(
            "INSERT INTO costs_meta(k, v) VALUES('version', ?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", (version,)
        )
        files.write_json(s.log_path(STATE_FILE), {**doc, "version": version, "written_at": clock.iso(now)})
    return doc


def republish(*, s: Settings, now: float) -> None:
    """A call recorded one at a time moved a scope across 90% or 100% of its cap (or back):
    rewrite cost_state.json now, so every process's guard() sees the new decision within
    milliseconds, and alert as the tick would (once per scope, kind and day).

    It runs in whatever process recorded the call (an app's), so it keeps the configuration
    the server and scheduler published: `s` carries the published fallbacks, prices and mode
    (`calls.published_settings`), and the caps are the environment's as last noted in the store;
    this process's own environment is never noted."""
    conn = db(s)
    _alert(conn, s, _publish(conn, s, now, cap_sources.noted_env(conn)), now)


# --- alerts --------------------------------------------------------------------------------


def _candidates(doc: dict[str, Any]) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(scope, kind, severity, event, entry) for each alert the document calls for."""
    out = []
    scopes = [("global", doc["global"])] + [(k, v) for k, v in doc["models"].items() if v.get("cap_usd") is not None]
    for scope, entry in scopes:
        if entry["state"] == "throttle" and entry["spent_usd"] > 0:
            out.append((scope, "throttle", "CRITICAL", "cost_throttle", entry))
        elif entry["state"] == "warn":
            out.append((scope, "warn", "WARNING", "cost_warn", entry))
        elif entry.get("forecast_over") and entry["spent_usd"] > 0:
            out.append((scope, "forecast", "WARNING", "cost_forecast", entry))
    out.extend(stripe_fees.alert_candidates(doc["stripe_fees"]))
    for model in doc["unpriced"]:
        out.append((model, "unpriced", "", "cost_unpriced", {}))
    return out


def _message(scope: str, kind: str, entry: dict[str, Any], day: str, enforce: bool = True) -> str:
    what = "global AI spend" if scope == "global" else ("Stripe fees" if scope == "stripe_fees" else f"{scope} spend")
    if kind == "forecast":
        forecast, cap = prices.usd_text(entry["forecast_usd"]), prices.usd_text(entry["cap_usd"])
        return f"{what} forecast {forecast} exceeds the {cap} daily cap ({day})"
    if kind == "unpriced":
        return f"model {scope} has no price: counted at the conservative default ({day})"
    if kind == "fee_error":
        return stripe_fees.error_message(entry, day)
    throttle = "cap reached: AI calls throttled" if enforce else "cap reached (monitoring only: AI calls not throttled)"
    action = {"throttle": throttle, "fee_over": "cap reached (no throttling)"}.get(kind, "near its daily cap")
    spent, cap = prices.usd_text(entry["spent_usd"]), prices.usd_text(entry["cap_usd"])
    return f"{what} {spent} of {cap} ({entry['pct']}%): {action} ({day})"


def _alert(conn: store.Conn, s: Settings, doc: dict[str, Any], now: float) -> list[Alert]:
    """Fire each alert at most once per scope, kind and UTC day (recorded before paging)."""
    day = doc["day"]
    fresh = []
    with store.transaction(conn):
        for scope, kind, severity, event, entry in _candidates(doc):
            fp = f"costs:{kind}:{scope}:{day}"
            cur = conn.execute(
                "INSERT INTO costs_alerts(day, scope, kind, fingerprint, at) VALUES(?,?,?,?,?) ON CONFLICT DO NOTHING",
                (day, scope, kind, fp, now),
            )
            if kind == "throttle":  # a warn after the page would be noise
                conn.execute(
                    "INSERT INTO costs_alerts(day, scope, kind, fingerprint, at) VALUES(?,?,?,?,?) "
                    "ON CONFLICT DO NOTHING",
                    (day, scope, "warn", f"costs:warn:{scope}:{day}", now),
                )
            if cur.rowcount == 1:
                fresh.append((scope, kind, severity, event, entry, fp))
    fired: list[Alert] = []
    log = s.log_path(EVENTS_LOG)
    for scope, kind, severity, event, entry, fp in fresh:
        msg = _message(scope, kind, entry, day, doc.get("enforce", True))
        fields = {"scope": scope, "day": day, "level": "WARN" if severity != "CRITICAL" else "ERROR", "msg": msg}
        if kind == "throttle":
            fields["enforced"] = doc.get("enforce", True)
        fields.update({k: entry[k] for k in ("spent_usd", "cap_usd", "pct", "forecast_usd") if k in entry})
        incident = None
        if severity:
            from echoops.core.pager import raise_incident  # lazy: ~25 ms; `costs check` never pages

            try:
                incident = raise_incident(severity, msg, "costs", {"scope": scope, "day": day}, fp, now=now, s=s)
            except store.errors(EchoopsError) as exc:
                # Forget the record so the next tick tries again; say why in the log.
                with store.transaction(conn):
                    conn.execute("DELETE FROM costs_alerts WHERE day=? AND scope=? AND kind=?", (day, scope, kind))
                ndjson.append(log, "cost_alert_failed", now=now, kind=kind, scope=scope, error=str(exc)[:300])
                continue
            with store.transaction(conn):
                conn.execute(
                    "UPDATE costs_alerts SET incident_id=? WHERE day=? AND scope=? AND kind=?",
                    (incident["id"], day, scope, kind),
                )
            fields["incident"] = incident["id"]
            fields["severity"] = severity
        ndjson.append(log, event, now=now, fingerprint=fp, **fields)
        fired.append({"kind": kind, "scope": scope, "fingerprint": fp, "incident": fields.get("incident")})
    return fired


RESOLVE_LOOKBACK_S = 7 * 86400  # throttle incidents of this many past days are still checked


def resolve_cleared(conn: store.Conn, s: Settings, doc: dict[str, Any], now: float) -> list[str]:
    """Resolve the cap-reached (throttle) incidents that are over, through the pager's
    auto-resolve: an earlier UTC day's (spend starts again at midnight: the first tick or cap
    change of the new day resolves it), and today's whose scope is back under its cap (the cap was
    raised above spend). Today's alert record is then dropped, so crossing the new cap pages again.
    Returns the ids of the incidents resolved."""
    rows = conn.execute(
        "SELECT day, scope, fingerprint FROM costs_alerts WHERE kind='throttle' AND incident_id IS NOT NULL "
        "AND day >= ?",
        (clock.iso(now - RESOLVE_LOOKBACK_S)[:10],),
    ).fetchall()
    if not rows:
        return []
    from echoops.core.pager import auto_resolve  # lazy: ~25 ms; only when a throttle incident was raised

    entries = {"global": doc["global"], **doc["models"]}
    done: list[str] = []
    for r in rows:
        if r["day"] == doc["day"]:
            entry = entries.get(r["scope"])
            if entry is None or entry["state"] == "throttle":
                continue
            if entry.get("cap_usd") is None:
                note = f"{r['scope']} no longer has a cap"
            else:
                spent, cap = prices.usd_text(entry["spent_usd"]), prices.usd_text(entry["cap_usd"])
                note = f"{r['scope']} cap raised above spend ({spent} of {cap})"
        elif r["day"] > doc["day"]:
            continue
        else:
            note = f"a new UTC day ({doc['day']}): spend starts again from zero"
        incident = auto_resolve(r["fingerprint"], by="auto:costs", note=note, s=s, now=now)
        if incident is not None:
            done.append(incident["id"])
        if r["day"] == doc["day"]:
            with store.transaction(conn):
                conn.execute(
                    "DELETE FROM costs_alerts WHERE day=? AND scope=? AND kind='throttle'", (r["day"], r["scope"])
                )
    return done


# --- the tick ------------------------------------------------------------------------------


def tick(*, s: Settings | None = None, now: float | None = None) -> CostsTick:
    """Ingest new usage and today's fees, recompute decisions, write cost_state.json, alert, log `cost_tick`."""
    s = s or config.settings()
    now = clock.now_s(now)
    started = time.perf_counter()
    conn = db(s)
    expired = reservations.expire(conn, now)
    usage = ingest_usage(conn, s, now)
    fees = stripe_fees.sync_fees(conn, s, now)
    with store.transaction(conn):
        conn.execute(
            "INSERT INTO costs_meta(k, v) VALUES('last_tick', ?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", (now,)
        )
        series.record(conn, now)
    doc = _publish(conn, s, now)
    alerts = _alert(conn, s, doc, now)
    resolve_cleared(conn, s, doc, now)
    summary: CostsTick = {
        "day": doc["day"],
        "lines": usage["lines"],
        "calls": usage["calls"],
        "bad": usage["bad"],
        "log_events": usage["events"],  # "rotated", "copytruncated", "truncated"...: ai_usage.ndjson was rotated
        "input_errors": usage["errors"],  # ai_usage.ndjson could not be read: {"source", "error", "detail"}
        "unpriced": doc["unpriced"],
        "global": {k: doc["global"][k] for k in ("spent_usd", "cap_usd", "pct", "state", "forecast_usd")},
        "mode": doc["mode"],
        "throttled": sorted(k for k, v in doc["models"].items() if v["state"] == "throttle" and doc["enforce"]),
        "over_cap": sorted(k for k, v in doc["models"].items() if v["state"] == "throttle"),
        "stripe_fees": {"spent_usd": doc["stripe_fees"]["spent_usd"], **fees},
        "alerts": alerts,
        "expired_reservations": expired,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    ndjson.append(s.log_path(EVENTS_LOG), "cost_tick", now=now, **summary)
    return summary
