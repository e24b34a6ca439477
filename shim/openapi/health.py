"""Health, key check and this document."""

from shim.openapi import BOOL, ERROR, STR, Operation, obj

LEADER = obj(
    {"instance": STR, "until": STR, "since": STR, "epoch": {"type": "integer"}},
    closed=True,
)
HEALTH = obj(
    {"ok": BOOL, "version": STR, "log_dir_writable": BOOL, "db_ok": BOOL},
    {
        "detail": {"type": "string", "description": "why not ok (disk full, read-only, ...)"},
        "instance": {"type": "string", "description": "this instance's ECHOOPS_INSTANCE"},
        "leader": {
            "anyOf": [LEADER, {"type": "null"}],
            "description": "the instance holding the scheduler lease; null when none does",
        },
        "is_leader": {"type": "boolean", "description": "whether this instance leads the schedule"},
    },
    closed=True,
)

OPERATIONS = (
    Operation(
        "GET",
        "/healthz",
        "Liveness: the log dir is writable and the store takes a write",
        "public",
        {200: HEALTH, 503: HEALTH},
        "server",
        description="A real write to the store's health table each call; 503 with `detail` when it fails.",
    ),
    Operation("GET", "/api/ping", "Check a key", "key", {200: obj({"ok": {"const": True}}, closed=True)}, "server"),
    Operation(
        "GET",
        "/api/openapi.json",
        "This document (OpenAPI 3.1)",
        "key",
        {200: obj({"openapi": STR, "info": {"type": "object"}, "paths": {"type": "object"}})},
        "server",
    ),
)

__all__ = ["ERROR", "HEALTH", "OPERATIONS"]
