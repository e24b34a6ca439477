"""Where each cost cap comes from (the environment or the API, the newest setting wins), and the
validation of caps and model names from outside.

A cap set through `/api/costs/set-cap` (or `echoops costs set-cap`) overrides the environment
value it was set over, and holds until that environment value changes (or it is set again):
raising COST_CAP_DAILY_USD after an API cap takes effect, as the brief's rollback expects.

echoops cannot know when an environment variable was edited, so it notes each cap's
environment value and when it first saw it (`costs_cap_env`; a value seen before this
bookkeeping existed, or at the first run, counts as older than any API cap). When the
environment value of a scope differs from the one noted, it is newer than every API cap of
that scope: the API cap is dropped (`cap_superseded` in costs.ndjson) and the environment
applies. Money is micro-dollars here (see prices.py).
"""

from __future__ import annotations

from typing import Any

from echoops.core import clock, config, ndjson, store
from echoops.core.config import Settings
from echoops.core.costs import prices
from echoops.core.errors import ValidationError

EVENTS_LOG = "costs.ndjson"
MAX_API_CAP_USD = 1e9
MAX_KEY_CHARS = 200

# Its own schema (not the costs one): its tables version apart from the spend and cap tables.
SCHEMA = store.Schema(
    "costs_cap_sources",
    (
        """
        CREATE TABLE costs_cap_env (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            cap_micro INTEGER,
            seen_at REAL NOT NULL,
            PRIMARY KEY (scope, key)
        );
        """,
    ),
)

Cap = tuple[int, str, float | None]  # (µ$, "env" | "api", since: epoch s or None when unknown)


# --- caps from outside (HTTP, CLI) -----------------------------------------------------------


def model_name(value: object, field: str, when: str = "") -> str:
    """A model name from outside (HTTP, CLI), stripped; ValidationError naming `field` when it is
    missing, blank, longer than MAX_KEY_CHARS or unprintable."""
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise ValidationError(f"{field} is required {when} (a printable model name)".replace("  ", " "), field=field)
    if len(name) > MAX_KEY_CHARS or not name.isprintable():
        raise ValidationError(f"{field} must be a printable model name of at most {MAX_KEY_CHARS} chars", field=field)
    return name


def validate_cap(scope: object, key: object, usd_cap: object) -> tuple[str, str, float]:
    """Check a set-cap request; ValidationError names the field (scope, key or usd_cap)."""
    if scope not in ("daily", "model"):
        raise ValidationError('scope must be "daily" or "model"', field="scope")
    if usd_cap is None:
        raise ValidationError("usd_cap is required", field="usd_cap")
    try:
        usd = config.check_number(usd_cap, hi=MAX_API_CAP_USD)
    except ValueError as exc:
        raise ValidationError(f"usd_cap {exc}", field="usd_cap") from None
    if scope == "model":
        key = model_name(key, "key", "for scope model")
    else:
        if key not in (None, ""):
            raise ValidationError("key is only allowed with scope model", field="key")
        key = ""
    return scope, key, usd


# --- the environment and the API ------------------------------------------------------------


def _env_caps(s: Settings) -> dict[tuple[str, str], int]:
    caps = {("daily", ""): prices.usd_to_micro(s.cost_cap_daily_usd)}
    caps.update({("model", k): prices.usd_to_micro(v) for k, v in s.model_caps.items()})
    return caps


def bump_version(conn: store.Conn) -> None:
    """Note that a cap changed (inside the writing transaction): per-call decisions cache the
    caps per version (`reservations.load_caps`). `costs_meta` belongs to the costs schema,
    which every caller of this module has ensured."""
    conn.execute(
        "INSERT INTO costs_meta(k, v) VALUES('caps_version', 1) ON CONFLICT(k) DO UPDATE SET v = costs_meta.v + 1"
    )


def _noted(conn: store.Conn) -> dict[tuple[str, str], store.Row]:
    return {(r["scope"], r["key"]): r for r in conn.execute("SELECT scope, key, cap_micro, seen_at FROM costs_cap_env")}


def observe(conn: store.Conn, s: Settings, now: float) -> list[dict[str, Any]]:
    """Note the environment's caps; drop API caps an environment change has superseded.

    Writes only when something changed. Returns the `cap_superseded` events it logged."""
    store.ensure(conn, SCHEMA)
    env = _env_caps(s)
    keys = set(env) | {(r["scope"], r["key"]) for r in conn.execute("SELECT scope, key FROM costs_caps")}
    seen = _noted(conn)
    if all(k in seen and seen[k]["cap_micro"] == env.get(k) for k in keys):
        return []  # the common case: nothing new, no write lock
    superseded: list[dict[str, Any]] = []
    with store.transaction(conn):
        bump_version(conn)
        seen = _noted(conn)
        api = {(r["scope"], r["key"]): r for r in conn.execute("SELECT scope, key, cap_micro, set_at FROM costs_caps")}
        for key in set(env) | set(api):
            value = env.get(key)
            if key not in seen:
                # first sight: when it was set is unknown; next to an API cap it counts as older
                first = 0.0 if key in api else now
                conn.execute(
                    "INSERT INTO costs_cap_env(scope, key, cap_micro, seen_at) VALUES(?,?,?,?)", (*key, value, first)
                )
                continue
            if seen[key]["cap_micro"] == value:
                continue
            conn.execute("UPDATE costs_cap_env SET cap_micro=?, seen_at=? WHERE scope=? AND key=?", (value, now, *key))
            row = api.get(key)
            if row is not None:  # set_cap notes the environment first: any API cap here is older
                conn.execute("DELETE FROM costs_caps WHERE scope=? AND key=?", key)
                superseded.append(
                    {
                        "scope": key[0],
                        "key": key[1] or None,
                        "api_usd_cap": prices.micro_to_usd(row["cap_micro"]),
                        "api_set_at": clock.iso(row["set_at"]),
                        "env_usd_cap": None if value is None else prices.micro_to_usd(value),
                    }
                )
    for event in superseded:
        ndjson.append(s.log_path(EVENTS_LOG), "cap_superseded", now=now, **event)
    return superseded


def noted_env(conn: store.Conn) -> dict[tuple[str, str], int] | None:
    """The environment's caps as `observe` last noted them (from the server, the scheduler or the
    CLI), or None when nothing was noted yet. Per-call decisions use these, so an app process
    that calls `spend()` needs none of the cost variables and never notes an environment of its own."""
    store.ensure(conn, SCHEMA)
    noted = _noted(conn)
    if ("daily", "") not in noted:
        return None
    return {k: r["cap_micro"] for k, r in noted.items() if r["cap_micro"] is not None}


def effective_caps(
    conn: store.Conn, s: Settings, env: dict[tuple[str, str], int] | None = None
) -> tuple[Cap, dict[str, Cap]]:
    """(daily, {model: cap}), each cap `(µ$, source, since)`: an API cap (not superseded, see
    `observe`) overrides the environment (`s`'s, or `env`: see `noted_env`); `since` is when it
    was set or first seen."""
    store.ensure(conn, SCHEMA)
    env = _env_caps(s) if env is None else env
    seen = _noted(conn)

    def changed(key: tuple[str, str]) -> bool:
        """The environment differs from what was noted: newer than every cap of that scope."""
        return key in seen and seen[key]["cap_micro"] != env.get(key)

    caps: dict[tuple[str, str], Cap] = {
        k: (v, "env", None if k not in seen or changed(k) else (seen[k]["seen_at"] or None)) for k, v in env.items()
    }
    for row in conn.execute("SELECT scope, key, cap_micro, set_at FROM costs_caps"):
        key = (row["scope"], row["key"])
        if not changed(key):
            caps[key] = (row["cap_micro"], "api", row["set_at"])
    daily = caps.pop(("daily", ""))
    return daily, {k[1]: v for k, v in caps.items()}


def describe(cap: Cap) -> dict[str, Any]:
    """`{cap_source, cap_since}` for a status entry."""
    return {"cap_source": cap[1], "cap_since": None if cap[2] is None else clock.iso(cap[2])}
