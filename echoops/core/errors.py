"""Named domain errors. The CLI maps them to exit codes, the shim to HTTP statuses, each in one place."""

from __future__ import annotations


class EchoopsError(Exception):
    """Base of every error echoops reports to a user.

    `code` is the short machine name (the JSON `error` field), `status` the HTTP status
    the shim answers with, `exit_code` what the CLI exits with.
    """

    code = "error"
    status = 400
    exit_code = 1

    def __init__(self, detail: str, *, field: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field


class ValidationError(EchoopsError):
    """A value a user or a log line gave is not acceptable (names the field)."""

    code = "invalid"
    status = 400
    exit_code = 2


class ConfigError(EchoopsError):
    """The environment holds an invalid value, or a needed one is missing."""

    code = "config"
    status = 503
    exit_code = 2


class NotConfigured(EchoopsError):
    """A feature needs configuration that is absent (a secret, a command)."""

    code = "not_configured"
    status = 503
    exit_code = 2


class NotFound(EchoopsError):
    code = "not_found"
    status = 404
    exit_code = 1


class Forbidden(EchoopsError):
    """A signed token is invalid, expired, tampered with or for another purpose."""

    code = "forbidden"
    status = 403
    exit_code = 1


class Conflict(EchoopsError):
    code = "conflict"
    status = 409
    exit_code = 1
