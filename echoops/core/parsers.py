"""Value parsers for settings and edge validation: raw text -> typed value, ValueError with a reason.

`check_number` is what every edge (env, HTTP bodies, CLI options) uses for money, rates and
durations, so they all refuse the same junk: booleans, NaN, infinity, negatives, "1_000".
"""

from __future__ import annotations

import math
import re
import shlex
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import orjson

# Plain ASCII decimal only: Python's int()/float() also take "1_000", "٥" and " 0x" forms
# nobody means in an env var.
_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_NON_FINITE_TEXT = re.compile(r"[+-]?(nan|inf|infinity)\Z", re.IGNORECASE)


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        text = raw.strip()
        if not _INT_TEXT.match(text):
            raise ValueError("not a whole number")
        value = int(text, 10)
        if lo is not None and value < lo:
            raise ValueError(f"must be >= {lo}")
        if hi is not None and value > hi:
            raise ValueError(f"must be <= {hi}")
        return value

    return parse


def number(lo: float = 0.0, hi: float | None = None, *, lo_open: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        return check_number(raw, lo=lo, hi=hi, lo_open=lo_open)

    return parse


def check_number(raw: object, *, lo: float = 0.0, hi: float | None = None, lo_open: bool = False) -> float:
    """A finite number within bounds (negatives rejected by default); ValueError otherwise.

    Shared by env parsing and HTTP/CLI validation so every edge rejects the same junk.
    """
    if isinstance(raw, bool):
        raise ValueError("not a number")
    if isinstance(raw, str):
        text = raw.strip()
        if _NON_FINITE_TEXT.match(text):
            raise ValueError("must be a finite number")
        if not _NUMBER_TEXT.match(text):
            raise ValueError("not a number")
        value = float(text)
    elif isinstance(raw, (int, float)):
        value = float(raw)
    else:
        raise ValueError("not a number")
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    if value < lo or (lo_open and value == lo):
        raise ValueError(f"must be > {lo:g}" if lo_open else f"must be >= {lo:g}")
    if hi is not None and value > hi:
        raise ValueError(f"must be <= {hi:g}")
    return value


_DURATION_TEXT = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d)\Z", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(raw: str, *, lo: float = 1.0, hi: float | None = None) -> float:
    """A duration such as `90s`, `30m`, `6h` or `2d` (a bare number is seconds) -> seconds; ValueError otherwise."""
    text = raw.strip() if isinstance(raw, str) else ""
    m = _DURATION_TEXT.match(text)
    if m:
        value = float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()]
    else:
        try:
            value = check_number(text)
        except ValueError:
            raise ValueError("not a duration (e.g. 30m, 6h, 2d)") from None
    if value < lo:
        raise ValueError(f"must be at least {lo:g} s")
    if hi is not None and value > hi:
        raise ValueError(f"must be at most {hi / 86400:g} days" if hi >= 86400 else f"must be at most {hi:g} s")
    return value


def whole_count(value: object) -> int | None:
    """A count from a JSON line: a non-negative int, or a float with no fraction (2.0 -> 2); else None.

    Booleans, strings, fractions, NaN and infinity are None (`float("inf").is_integer()` is False).
    Returns instead of raising: log readers call it per field on hot paths.
    """
    if type(value) is int:
        return value if value >= 0 else None
    if type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    return None


# Characters no one-line value may hold (a source, a fingerprint, anything that can end up in
# an email header or subject, a URL or a terminal line): C0 controls (CR and LF among them),
# DEL, C1 controls (NEL U+0085 among them) and the Unicode line and paragraph separators,
# which email header folding and str.splitlines() also break lines at.
CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# In multi-line text (an incident message) tab, LF, CR and U+2028/U+2029 are allowed.
CONTROL_CHARS_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_char(text: str, *, multiline: bool = False) -> str | None:
    """The first character of `text` a one-line (or, with `multiline`, a multi-line) value may
    not hold, as `U+000A at position 3`; None when there is none."""
    found = (CONTROL_CHARS_MULTILINE if multiline else CONTROL_CHARS).search(text)
    if found is None:
        return None
    return f"U+{ord(found.group()):04X} at position {found.start()}"


def without_controls(text: str, *, multiline: bool = False) -> str:
    """`text` with every character `control_char` objects to replaced by U+FFFD (for log lines:
    the line is kept, visibly marked, rather than refused)."""
    return (CONTROL_CHARS_MULTILINE if multiline else CONTROL_CHARS).sub("\ufffd", text)


def boolean(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean (use true/false)")


def text(raw: str) -> str:
    return raw.strip()


def choice(*options: str) -> Callable[[str], str]:
    """One of `options` (case-insensitive), returned lower-case."""

    def parse(raw: str) -> str:
        v = raw.strip().lower()
        if v not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return v

    return parse


def opt_plain_url(raw: str) -> str | None:
    """An http(s) URL without credentials in it (they would show in `echoops config`), or None when empty."""
    if not raw.strip():
        return None
    v = url(raw)
    if "@" in v.split("://", 1)[1].split("/", 1)[0]:
        raise ValueError("must not hold credentials (user:password@): use the variable meant for them")
    return v


def user_password(raw: str) -> str | None:
    """`user:password` (printable ASCII, a colon after a non-empty user), or None when empty."""
    v = raw.strip()
    if not v:
        return None
    if ":" not in v or v.startswith(":") or any(not (32 <= ord(c) < 127) for c in v):
        raise ValueError("must be user:password (printable ASCII)")
    return v


def header_token(raw: str) -> str | None:
    """A token sent in an HTTP header: printable ASCII without spaces, or None when empty."""
    v = raw.strip()
    if any(not (33 <= ord(c) < 127) for c in v):
        raise ValueError("must be printable ASCII without spaces (it is sent in an Authorization header)")
    return v or None


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# PromQL label matchers: name, operator, double-quoted value (backslash escapes), comma-separated.
_MATCHER = r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\\n]|\\.)*"\s*'
_MATCHERS = re.compile(rf"(?:{_MATCHER}(?:,{_MATCHER})*,?\s*)?\Z")


def metric_name(raw: str) -> str:
    """A Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`)."""
    v = raw.strip()
    if not _METRIC_NAME.match(v):
        raise ValueError("not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
    return v


def label_name(raw: str) -> str:
    """A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`)."""
    v = raw.strip()
    if not _LABEL_NAME.match(v):
        raise ValueError("not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    return v


def label_matchers(raw: str) -> str:
    """PromQL label matchers such as `job="app", env=~"prod|eu"` (braces optional), without the braces."""
    v = raw.strip()
    if v.startswith("{") and v.endswith("}"):
        v = v[1:-1].strip()
    if not _MATCHERS.match(v):
        raise ValueError('not PromQL label matchers (e.g. job="app",env=~"prod.*")')
    return v.rstrip().rstrip(",").strip()


def opt_text(raw: str) -> str | None:
    return raw.strip() or None


def header_secret(raw: str) -> str | None:
    # The key travels in an HTTP header (latin-1 on the wire): anything but printable ASCII
    # could never match, and every request would fail with 401.
    v = raw.strip()
    if any(not (32 <= ord(c) < 127) for c in v):
        raise ValueError("must be printable ASCII (it is sent in the X-Dash-Key header)")
    return v or None


def log_glob(raw: str) -> str:
    """A glob of files inside the log dir: relative, no `..` (it must not reach outside)."""
    value = raw.strip()
    if not value:
        raise ValueError("empty pattern")
    if value.startswith(("/", "~")) or ".." in Path(value).parts:
        raise ValueError("must be a pattern inside the log dir (relative, no '..')")
    return value


def path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("empty path")
    return Path(raw.strip()).expanduser()


def pem_file(raw: str) -> Path | None:
    """An existing, readable file holding at least one PEM certificate (None when empty)."""
    if not raw.strip():
        return None
    found = Path(raw.strip()).expanduser()
    try:
        text = found.read_bytes()
    except IsADirectoryError:
        raise ValueError("is a directory, not a PEM file") from None
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    if b"-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    return found


def url(raw: str) -> str:
    v = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", v):
        raise ValueError("not an http(s) URL")
    return v


def opt_url(raw: str) -> str | None:
    return url(raw) if raw.strip() else None


def host(raw: str) -> str:
    v = raw.strip()
    if not v or any(c.isspace() for c in v):
        raise ValueError("not a host name or address")
    return v


def json_object(raw: str) -> dict:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError("not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


def usd_map(raw: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in json_object(raw).items():
        if not key.strip():
            raise ValueError("empty model name")
        try:
            out[key.strip()] = check_number(value)
        except ValueError as exc:
            raise ValueError(f"{key!r}: {exc}") from None
    return out


def name_map(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in json_object(raw).items():
        if not isinstance(value, str) or not value.strip() or not key.strip():
            raise ValueError(f"{key!r}: must map a model name to a model name")
        out[key.strip()] = value.strip()
    return out


def price_map(raw: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, value in json_object(raw).items():
        if not isinstance(value, dict) or not set(value) <= {"input", "output"} or not value:
            raise ValueError(f'{key!r}: must be {{"input": usd_per_mtok, "output": usd_per_mtok}}')
        try:
            out[key.strip()] = {k: check_number(v) for k, v in value.items()}
        except ValueError as exc:
            raise ValueError(f"{key!r}: {exc}") from None
    return out


def csv_list(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def networks(raw: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks (`127.0.0.1, 10.0.0.0/8, ::1`), normalised."""
    import ipaddress  # lazy: ~3 ms, only when ECHOOPS_TRUSTED_PROXIES is set

    out = []
    for item in csv_list(raw):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(out)


_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
# Lower-case only: callers lower-case first (the ledger stores addresses lower-cased,
# SMTP_TO keeps the case it was given).
EMAIL_RE = re.compile(rf"[a-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+\Z")
MAX_EMAIL_CHARS = 254


def is_email(text: str) -> bool:
    """The one email check: lower-case `text` is `local@label.label…` (DNS labels), at most 254 chars."""
    return len(text) <= MAX_EMAIL_CHARS and EMAIL_RE.match(text) is not None


def emails(raw: str) -> tuple[str, ...]:
    items = csv_list(raw)
    for item in items:
        if not is_email(item.lower()):
            raise ValueError(f"{item!r} is not an email address")
    return items


def tls_mode(raw: str) -> str | None:
    v = raw.strip().lower()
    if not v:
        return None
    if v not in ("starttls", "ssl", "none"):
        raise ValueError("must be starttls, ssl or none")
    return v


def one_of(*choices: str) -> Callable[[str], str]:
    """One of `choices` (case-insensitive); the error lists them."""

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {'|'.join(choices)}")
        return value

    return parse


def redis_url(raw: str) -> str | None:
    """A redis-py connection URL: redis://, rediss:// (TLS) or unix:// (a socket path)."""
    value = raw.strip()
    if not value:
        return None
    if not re.match(r"^(rediss?://[^\s/]*|unix:///?[^\s]+)", value):
        raise ValueError("not a Redis URL (redis://[:password@]host:port/db, rediss://..., unix:///path)")
    return value


def db_url(raw: str) -> str | None:
    """A PostgreSQL URL for psycopg (`postgresql://user:pass@host:port/db?sslmode=...`); never echoed."""
    value = raw.strip()
    if not value:
        return None
    if not re.match(r"^postgres(ql)?://[^\s]*$", value):
        raise ValueError("not a PostgreSQL URL (postgresql://user:password@host:5432/dbname?sslmode=require)")
    return value


def db_url_passwords(url: str) -> list[str]:
    """The passwords in a PostgreSQL URL (in the authority and/or a `password=` option), as
    written and decoded: what redaction must mask."""
    parts = urlsplit(url)
    found = [parts.password or ""] + [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == "password"]
    out: list[str] = []
    for value in found:
        for form in (value, unquote(value), quote(unquote(value), safe="")):
            if form and form not in out:
                out.append(form)
    return out


def shown_db_url(url: str) -> str:
    """`url` with its password as `***` (user, host, database and TLS options stay readable)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = "&".join(
        f"{k}=***" if k == "password" else f"{k}={quote(v, safe='/:.,-_~')}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def instance(raw: str) -> str:
    """This instance's name in a shared store (letters, digits, . _ -; at most 64); default: the hostname."""
    value = raw.strip() or socket.gethostname()
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", value):
        raise ValueError("letters, digits, '.', '_' and '-' only, at most 64 characters")
    return value


def argv_template(raw: str) -> tuple[str, ...] | None:
    if not raw.strip():
        return None
    try:
        argv = tuple(shlex.split(raw))
    except ValueError as exc:
        raise ValueError(f"cannot split into arguments ({exc})") from None
    if not any("{n}" in a for a in argv):
        raise ValueError("must contain {n} (the worker count)")
    return argv
