"""Request parsing and JSON responses shared by every route module."""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson
from bottle import HTTPError, HTTPResponse, http_date, parse_date, request, response

from echoops.core import auth, config
from echoops.core.errors import EchoopsError, ValidationError
from echoops.core.files import dumps

MAX_BODY = 64 * 1024


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    """A JSON HTTPResponse (use for non-200 answers or lists; routes may also return dicts)."""
    resp = HTTPResponse(dumps(obj), status=status, headers=headers)
    resp.content_type = "application/json"
    return resp


def json_answer(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> bytes:
    """Like json_response for a route's return value, set on Bottle's own response (a route
    that answers a flood of requests, /healthz, builds no second response to copy)."""
    response.status = status
    for name, value in (headers or {}).items():
        response.set_header(name, value)
    response.set_header("Content-Type", "application/json")
    return dumps(obj)


def etag_of(body: bytes) -> str:
    """A strong ETag for a response body (quoted): the same bytes give the same tag in every worker."""
    return f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'


def _matches(header: str, etag: str) -> bool:
    """If-None-Match against `etag`, with the weak comparison RFC 9110 asks for on GET."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


@functools.lru_cache(maxsize=64)
def _http_date(ts: float) -> str:
    return http_date(ts)


def conditional(body: bytes, etag: str, modified: float | None = None) -> bytes:
    """A JSON body with its ETag (and Last-Modified when `modified` is known), or `304 Not
    Modified` (no body) when the request's If-None-Match names it, or, without If-None-Match,
    when If-Modified-Since is not before `modified`. Sets the status and headers on Bottle's
    response and returns the body to send: no second response object to build and copy on the
    status routes, which every dashboard refresh asks for."""
    set_header = response.set_header
    set_header("ETag", etag)
    if modified:
        set_header("Last-Modified", _http_date(modified))
    environ = request.environ
    none_match = environ.get("HTTP_IF_NONE_MATCH")
    if none_match is not None:
        fresh = _matches(none_match, etag)
    else:
        header = environ.get("HTTP_IF_MODIFIED_SINCE") if modified else None
        since = parse_date(header) if header else None
        fresh = since is not None and int(modified or 0) <= since
    if fresh:
        response.status = 304
        return b""
    set_header("Content-Type", "application/json")
    return body


def json_error(status: int, code: str, detail: str) -> HTTPResponse:
    """The one error shape: `{"error": code, "detail": text}`."""
    return json_response({"error": code, "detail": detail}, status)


def from_domain(exc: EchoopsError) -> HTTPResponse:
    body = {"error": exc.code, "detail": exc.detail}
    if exc.field:
        body["field"] = exc.field
    return json_response(body, exc.status)


def json_body(required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object; ValidationError (400) on anything else.

    Bodies over 64 KiB never get here: the shim answers 413 before routing.
    """
    raw = request.body.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise HTTPTooLarge()
    if not raw.strip():
        if required:
            raise ValidationError("request body must be a JSON object", field="body")
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError("request body is not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object", field="body")
    return data


class HTTPTooLarge(EchoopsError):
    code = "too_large"
    status = 413
    exit_code = 2

    def __init__(self) -> None:
        super().__init__(f"request body is larger than {MAX_BODY} bytes")


def query(name: str, default: str | None = None) -> str | None:
    """A query parameter (decoded as UTF-8), or `default`."""
    value = request.query.getunicode(name)
    return default if value is None else value


def settings() -> config.Settings:
    """This request's settings, read once per request: the auth hook, the client's address and a
    route share them (config.settings() checks the environment on each call, ~3 us, unless a
    served worker pinned them)."""
    env = request.environ
    s = env.get("echoops.settings")
    if s is None:
        s = env["echoops.settings"] = config.settings()
    return s


def client_ip() -> str | None:
    """The client's address: the socket peer, or what a trusted proxy says (ECHOOPS_TRUSTED_PROXIES)."""
    env = request.environ
    return auth.client_address(env.get("REMOTE_ADDR"), env.get("HTTP_X_FORWARDED_FOR"), settings())


def form_value(name: str) -> str | None:
    """A field of a urlencoded or multipart form body (UTF-8), or None; 400 when the body cannot be parsed.

    Bottle parses the form on first access and raises ValueError on, e.g., a multipart part
    header with control characters: that is the client's mistake, not a 500.
    """
    try:
        return request.forms.getunicode(name)
    except HTTPError:
        raise
    except (ValueError, UnicodeError, IndexError, KeyError):
        raise ValidationError("the form body could not be parsed", field="body") from None
