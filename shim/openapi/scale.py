"""Predictive autoscale (phase 80)."""

from shim.openapi import BOOL, ERROR, INT, NUM, STR, TS, Operation, nullable, obj

PROJECTION = obj({"in_min": INT, "ts": TS, "backlog_at_actual": NUM, "backlog_at_desired": NUM})

STATUS = obj(
    {"desired": nullable(INT), "actual": nullable(INT), "reason": STR, "dry_run": BOOL},
    {
        "forecast": nullable({"type": "object"}),
        "cooldown_remaining_s": {"type": "number", "minimum": 0},
        "gate": {"type": "object"},
        "history": {"type": "array", "items": {"type": "object"}},
        "p95_window_min": INT,
        "projection": {"type": "array", "items": PROJECTION},
    },
)

OPERATIONS = (
    Operation(
        "GET",
        "/api/scale/status",
        "Desired and actual workers, forecast",
        "key",
        {200: STATUS},
        "scale",
        conditional=True,
    ),
    Operation(
        "POST",
        "/api/scale/apply",
        "Decide now (and apply unless dry run)",
        "key",
        {200: {"type": "object"}, 400: ERROR, 502: ERROR},
        "scale",
        description="`dry_run: false` needs SCALE_CMD (400 without it); absent means SCALE_DRY_RUN.",
        body=obj({}, {"dry_run": nullable(BOOL)}, closed=True),
        body_required=False,
    ),
)
