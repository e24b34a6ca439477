"""PromQL over Prometheus' HTTP API: instant (`/api/v1/query`) and range (`/api/v1/query_range`)
queries with a timeout, retries and errors that say what failed.

Each request is a form POST (long queries fit; Prometheus documents both GET and POST), with
Prometheus' own `timeout` parameter set to the same budget as the client's, so a query that
would run long is cancelled on the server too. A connection failure, a timeout, a 429 or a
5xx is retried (ATTEMPTS in all, BACKOFF_S between them); a 400/422 (`bad_data`, `execution`:
the query is wrong, e.g. a bad SLO_PROM_SELECTOR) is not. Either way the error is a
`SourceUnavailable` naming the URL (without any credentials in it) and Prometheus' own
error text; the bearer token never appears in it.
"""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from echoops import __version__
from echoops.core.config import Settings
from echoops.core.slo.document import SourceUnavailable

ATTEMPTS = 3
BACKOFF_S = (0.25, 0.75)  # before the 2nd and the 3rd attempt
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ERROR_CHARS = 300


def shown_url(url: str) -> str:
    """`url` without user:password (for messages and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def number(text: object) -> float | None:
    """A sample value as Prometheus sends it ("12.5", "NaN", "+Inf") -> a finite float, or None."""
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class Client:
    """One Prometheus server; `queries` counts the queries answered (for the tick's report)."""

    def __init__(
        self,
        s: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        attempts: int = ATTEMPTS,
        timeout_s: float | None = None,
    ):
        if not s.prometheus_url:
            raise SourceUnavailable("SLO_SOURCE=prometheus needs PROMETHEUS_URL")
        self.base = s.prometheus_url
        self.shown = shown_url(self.base)
        self.timeout_s = s.prometheus_timeout_s if timeout_s is None else timeout_s
        self.attempts = attempts
        headers = {"User-Agent": f"echoops/{__version__}", "Accept": "application/json"}
        auth: tuple[str, str] | None = None
        if s.prometheus_bearer_token:
            headers["Authorization"] = f"Bearer {s.prometheus_bearer_token}"
        elif s.prometheus_basic_auth:
            user, _, password = s.prometheus_basic_auth.partition(":")
            auth = (user, password)
        self.http = httpx.Client(
            headers=headers, auth=auth, timeout=self.timeout_s, transport=transport, follow_redirects=False
        )
        self.queries = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, expr: str, *, at: float) -> list[dict[str, Any]]:
        """An instant query evaluated at `at` (epoch s): the vector's `[{metric, value: [ts, "v"]}]`."""
        return self._call("/api/v1/query", {"query": expr, "time": _ts(at)}, "vector")

    def query_range(self, expr: str, *, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
        """A range query: the matrix's `[{metric, values: [[ts, "v"], ...]}]`."""
        params = {"query": expr, "start": _ts(start), "end": _ts(end), "step": f"{step_s:g}s"}
        return self._call("/api/v1/query_range", params, "matrix")

    def _call(self, path: str, params: dict[str, str], kind: str) -> list[dict[str, Any]]:
        url = self.base + path
        form = {**params, "timeout": f"{self.timeout_s:g}s"}
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1])
            try:
                resp = self.http.post(url, data=form)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout_s:g} s"
                continue
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code in RETRY_STATUSES:
                last = f"HTTP {resp.status_code}{_error_text(resp)}"
                continue
            if resp.status_code != 200:
                raise SourceUnavailable(
                    f"Prometheus at {self.shown} refused the query (HTTP {resp.status_code}{_error_text(resp)}); "
                    "check SLO_PROM_HISTOGRAM, SLO_PROM_SELECTOR and SLO_PROM_CODE_LABEL"
                )
            return self._result(resp, kind)
        raise SourceUnavailable(f"Prometheus at {self.shown} is unavailable after {self.attempts} attempts: {last}")

    def _result(self, resp: httpx.Response, kind: str) -> list[dict[str, Any]]:
        try:
            body = resp.json()
            data = body["data"]
            if body.get("status") != "success" or data["resultType"] != kind or not isinstance(data["result"], list):
                raise ValueError(kind)
        except (ValueError, KeyError, TypeError):
            raise SourceUnavailable(
                f"Prometheus at {self.shown} answered something that is not a {kind} query result"
            ) from None
        self.queries += 1
        return data["result"]


def _ts(t: float) -> str:
    return f"{t:.3f}"


def _error_text(resp: httpx.Response) -> str:
    """`: <errorType>: <error>` from a Prometheus error body, else nothing."""
    try:
        body = resp.json()
        text = f"{body.get('errorType', 'error')}: {body['error']}"
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
    return ": " + text[:MAX_ERROR_CHARS]
