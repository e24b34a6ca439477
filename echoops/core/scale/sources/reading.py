"""What a queue source returns (`Reading`), the error when it cannot be read, and URL redaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from echoops.core.errors import EchoopsError


class SourceUnavailable(EchoopsError):
    """The queue source could not be read (Redis down, refused, timed out, wrong key type);
    the sample is skipped and the autoscaler holds its workers."""

    code = "queue_source_unavailable"
    status = 503
    exit_code = 1


@dataclass
class Reading:
    depth: int  # jobs waiting
    workers: int | None  # None: the source cannot see the workers
    completed: int | None = None  # jobs finished since the previous reading (None: unknown)
    arrivals: int | None = None  # jobs enqueued since the previous reading (None: unknown)
    extra: dict[str, Any] = field(default_factory=dict)  # what else the source saw (busy, idle, notes)


def safe_url(url: str) -> str:
    """`url` without its user and password (for errors, events and status)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
