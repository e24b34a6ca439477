"""The OpenAPI 3.1 document of the HTTP shim (`GET /api/openapi.json`).

Each module of this package describes one feature's routes as `OPERATIONS`, a tuple of
`Operation`: adding an endpoint to the document is adding one `Operation` next to its
siblings (a new module is found without registering it). `document()` adds what every
operation shares, so no operation lists it by hand:

- the auth schemes (the dashboard key in the `X-Dash-Key` header or as `Authorization: Bearer`;
  the `token` query parameter on the portal's public links) and their answers: 401 and 429
  with `Retry-After` for the key, 403 for a token, 503 when DASHBOARD_KEY is unset or the
  store is unavailable;
- 400 (a header that is not UTF-8, a malformed body), and for operations with a body 408 (it
  did not arrive within ECHOOPS_REQUEST_READ_TIMEOUT_S) and 413 (over 64 KiB);
- the error schema `{"error", "detail", "field"?}` for every error status.

`tests/test_openapi.py` fails when a route has no operation or an operation no route, and
runs Schemathesis against a live server.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from typing import Any

from echoops import __version__

ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "short machine code (`invalid`, `unauthorized`, ...)"},
        "detail": {"type": "string", "description": "what went wrong, for a human"},
        "field": {"type": "string", "description": "the input field at fault (validation errors)"},
    },
    "additionalProperties": False,
}

ERROR_TEXT = {
    400: "Bad request: invalid input (`invalid`, names `field`), a header that is not UTF-8 (`bad_request`), "
    "or a malformed HTTP request (gunicorn's HTML page)",
    401: "Missing or wrong key (`X-Dash-Key`, or `Authorization: Bearer`)",
    403: "The token is invalid, expired, tampered with or for another purpose",
    404: "Not found",
    408: "The request body did not arrive within ECHOOPS_REQUEST_READ_TIMEOUT_S",
    409: "Conflict",
    413: "Request body over 64 KiB",
    414: "Request line over 4094 bytes (gunicorn's HTML page)",
    429: "Too many wrong keys from this client: wait `Retry-After` seconds",
    502: "The actuator failed",
    503: "DASHBOARD_KEY is not set or too short (`not_configured`), or the store is unavailable (`store_unavailable`)",
}

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string", "pattern": "^[0-9]+$"}}}


@dataclass(frozen=True)
class Operation:
    """One method on one path, as the route answers it.

    `path` is in OpenAPI form (`/static/{filepath}`); `auth` is "key" (X-Dash-Key or Bearer), "token"
    (the signed `token` query parameter) or "public"; `responses` maps each status the route
    itself can answer to a JSON schema (errors: `ERROR`), to `(media_type, schema)` for a
    non-JSON answer, or to a list of those when it negotiates; `body` is the JSON schema of a
    JSON request body (`form` for a form).
    """

    method: str
    path: str
    summary: str
    auth: str
    responses: dict[int, Any]
    tag: str
    description: str = ""
    query: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None
    body_required: bool = True
    form: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # A GET answered with an ETag (and `Last-Modified` when `last_modified`), and 304 to a
    # conditional request for the same document (shim.http.conditional).
    conditional: bool = False
    last_modified: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.method.upper(), self.path)


def param(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> dict[str, Any]:
    """A query parameter."""
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None, *, closed: bool = False) -> dict[str, Any]:
    """An object schema: `required` and `optional` properties; `closed` forbids others."""
    out: dict[str, Any] = {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }
    if closed:
        out["additionalProperties"] = False
    return out


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


# Text an operator or app sends: no control characters (C0, DEL, C1, U+2028/2029), at least
# one character that is not white space (the server strips it).
_PLAIN = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]"
_SOLID = r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]"
TEXT_PATTERN = f"^{_PLAIN}*{_SOLID}{_PLAIN}*$"


def text(max_chars: int, description: str = "") -> dict[str, Any]:
    """A one-line text field of at most `max_chars` characters."""
    out: dict[str, Any] = {"type": "string", "pattern": TEXT_PATTERN, "maxLength": max_chars}
    if description:
        out["description"] = description
    return out


STR = {"type": "string"}
NUM = {"type": "number"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TS = {"type": "string", "description": "ISO-8601 UTC time"}


def operations() -> list[Operation]:
    """Every Operation of every module in this package, in module then declaration order."""
    found: list[Operation] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "OPERATIONS", ()))
    return found


def _content(spec: Any) -> dict[str, Any]:
    if isinstance(spec, list):
        return {media: {"schema": _schema(schema)} for media, schema in spec}
    if isinstance(spec, tuple):
        media, schema = spec
        return {media: {"schema": schema}}
    return {"application/json": {"schema": _schema(spec)}}


def _schema(spec: Any) -> Any:
    return {"$ref": "#/components/schemas/Error"} if spec is ERROR else spec


GUNICORN_HTML = ("text/html", {"type": "string"})
KEY_SECURITY = [{"dashKey": []}, {"bearer": []}]  # either one


def _responses(op: Operation) -> dict[str, Any]:
    statuses: dict[int, Any] = dict(op.responses)
    statuses.setdefault(400, ERROR)  # a header that is not UTF-8, on any path
    # gunicorn itself answers a malformed request (400) or a request line over 4094 bytes (414),
    # in HTML, before echoops sees it
    if statuses[400] is ERROR:
        statuses[400] = [("application/json", ERROR), GUNICORN_HTML]
    statuses.setdefault(414, GUNICORN_HTML)
    if op.body is not None or op.form is not None:
        statuses.setdefault(408, ERROR)
        statuses.setdefault(413, ERROR)
    if op.auth == "key":
        statuses.setdefault(401, ERROR)
        statuses.setdefault(429, ERROR)
        statuses.setdefault(503, ERROR)
    if op.auth == "token":
        statuses.setdefault(403, ERROR)
        statuses.setdefault(503, ERROR)
    out: dict[str, Any] = {}
    for status in sorted(statuses):
        spec = statuses[status]
        entry: dict[str, Any] = {
            "description": ERROR_TEXT.get(status, "OK") if status >= 400 else "OK",
            "content": _content(spec),
        }
        if status == 429 or (status == 401 and op.auth == "key"):
            entry["headers"] = RETRY_AFTER
        if status == 200 and op.conditional:
            entry["headers"] = _validators(op)
        out[str(status)] = entry
    if op.conditional:
        out["304"] = {
            "description": "Not Modified: the document the request's validator names",
            "headers": _validators(op),
        }
    return out


def _validators(op: Operation) -> dict[str, Any]:
    out = {"ETag": {"description": "the document's version (strong, quoted)", "schema": {"type": "string"}}}
    if op.last_modified:
        out["Last-Modified"] = {"description": "when its state last changed (HTTP date)", "schema": {"type": "string"}}
    return out


CONDITIONAL_HEADERS = (
    {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "ETags the client holds: 304 when the document is one of them",
        "schema": {"type": "string"},
    },
    {
        "name": "If-Modified-Since",
        "in": "header",
        "required": False,
        "description": "HTTP date (used without If-None-Match): 304 when nothing changed since",
        "schema": {"type": "string"},
    },
)


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.method.lower() + "_" + (re.sub(r"[^a-z0-9]+", "_", op.path.lower()).strip("_") or "root"),
        "summary": op.summary,
        "tags": [op.tag],
        "responses": _responses(op),
    }
    if op.description:
        out["description"] = op.description
    params = list(op.query)
    if op.conditional:
        params += CONDITIONAL_HEADERS if op.last_modified else CONDITIONAL_HEADERS[:1]
    for name in _path_params(op.path):
        params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": {"application/json": {"schema": op.body}}}
    elif op.form is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {
                "application/x-www-form-urlencoded": {"schema": op.form},
                "multipart/form-data": {"schema": op.form},
            },
        }
    out["security"] = {"key": KEY_SECURITY, "token": [{"token": []}], "public": []}[op.auth]
    out.update(op.extra)
    return out


def _path_params(path: str) -> list[str]:
    return re.findall(r"{([^}]+)}", path)


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document: every operation, the shared answers, the auth schemes."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations():
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "echoops",
            "version": __version__,
            "description": "SLOs, incident pager, customer portal, cost guardrails and autoscale for one app. "
            "Every /api route and /metrics needs the dashboard key (`X-Dash-Key`, or `Authorization: Bearer`), "
            "except the portal's links and the pager's email links, where the signed `token` is the credential. "
            "Errors are `{error, detail, field?}`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "dashKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Dash-Key",
                    "description": "DASHBOARD_KEY (>= 16 characters); 10 wrong keys a minute from one client "
                    "give 429 with Retry-After (ECHOOPS_AUTH_FAILURES_PER_MIN)",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The same DASHBOARD_KEY as a bearer token (what Prometheus' and Alertmanager's "
                    "`authorization` settings send); same throttle",
                },
                "token": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "A signed, purpose-bound, expiring link token (HMAC-SHA256): portal links, pager "
                    "email links",
                },
            },
        },
    }
