"""Purchase rows: the one table of per-field rules, and the two paths that apply it.

`FIELDS` says, for every field of a purchase, whether it is required, its limits and the
message a bad value gets. `checked_row` (the careful path) applies it field by field and
raises the first problem by name; `purchase_row` (the fast path, what 1M-row imports run)
takes the common shapes with the same limits read from the same table and hands anything
else to `checked_row`. A property test (tests/test_portal_ledger.py, marked `invariant` so it
cannot be deselected) holds the two to the same answers.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from echoops.core import clock, parsers
from echoops.core.errors import ValidationError

MIN_TS, MAX_TS = 946684800.0, 7258118400.0  # clock.parse_ts's range: 2000..2200


@dataclass(frozen=True)
class Field:
    """The rule for one purchase field."""

    required: bool = False
    max_chars: int | None = None  # text: length after trimming (id: before)
    max_value: int | None = None  # minor units
    max_digits: int | None = None  # minor units given as text: longer is refused before parsing
    message: str = ""  # what is wrong with a value that is not of the field's kind


MAX_TEXT = 1000
MAX_CENTS = 10**15
_CENTS = "must be a whole number of minor units"

FIELDS: dict[str, Field] = {
    "id": Field(required=True, max_chars=200, message="must be a non-empty string of at most 200 characters"),
    "email": Field(required=True),  # the message comes from normalize_email
    "created": Field(required=True, message="must be ISO-8601 or epoch seconds (2000..2200)"),
    "amount_cents": Field(required=True, max_value=MAX_CENTS, max_digits=20, message=_CENTS),
    "currency": Field(required=True, max_chars=3, message="must be a 3-letter ISO code"),
    "description": Field(required=True, max_chars=MAX_TEXT),  # the key must be there; it may be empty
    "invoice_number": Field(max_chars=MAX_TEXT),
    "fee_cents": Field(max_value=MAX_CENTS, max_digits=20, message=_CENTS),
    "document": Field(max_chars=MAX_TEXT),
    "invoice_document": Field(max_chars=MAX_TEXT),
    "status": Field(max_chars=MAX_TEXT),
}
REQUIRED = tuple(name for name, f in FIELDS.items() if f.required)
OPTIONAL = tuple(name for name, f in FIELDS.items() if not f.required)


def _limit(value: int | None) -> int:
    if value is None:
        raise TypeError("FIELDS lacks a limit the fast path reads")
    return value


# The table's limits as plain module constants for the hot loop.
_ID_MAX = _limit(FIELDS["id"].max_chars)
_CURRENCY_CHARS = _limit(FIELDS["currency"].max_chars)
_AMOUNT_MAX = _limit(FIELDS["amount_cents"].max_value)
_FEE_MAX = _limit(FIELDS["fee_cents"].max_value)
_AMOUNT_DIGITS = len(str(_AMOUNT_MAX))  # longer digit strings go the careful way (leading zeros)
_FEE_DIGITS = len(str(_FEE_MAX))
_DESCRIPTION_MAX = _limit(FIELDS["description"].max_chars)
_NUMBER_MAX = _limit(FIELDS["invoice_number"].max_chars)
_STATUS_MAX = _limit(FIELDS["status"].max_chars)


def problem(field: str, what: str | None = None) -> ValueError:
    """The error for a bad `field`: `"<field>: <what>"`, by default the table's message."""
    return ValueError(f"{field}: {FIELDS[field].message if what is None else what}")


# --- field checks (the careful path) ------------------------------------------------------


def normalize_email(value: object, *, field: str = "email") -> str:
    """Trimmed, lower-cased email; ValidationError naming `field` when it is not an address."""
    if not isinstance(value, str):
        raise ValidationError("email must be a string", field=field)
    email = value.strip().lower()
    if not parsers.is_email(email):
        raise ValidationError(f"{value[:80]!r} is not a valid email address", field=field)
    return email


def check_document(value: str) -> str:
    """A document reference: an http(s) URL, or a relative path inside logs/receipts/ (normalised).

    Neither may hold a control character or line break: a URL is answered as a `Location`
    header, a path's suffix names the download in `Content-Disposition`."""
    found = parsers.control_char(value)
    if found is not None:
        raise ValueError(f"must not contain control characters or line breaks ({found})")
    if value.startswith(("https://", "http://")):
        if any(c.isspace() for c in value) or len(value) > 2000:
            raise ValueError("URL contains whitespace or is too long")
        return value
    if "\x00" in value or "\\" in value or value.startswith("/") or ":" in value.split("/", 1)[0]:
        raise ValueError("must be a path relative to logs/receipts/ or an http(s) URL")
    norm = posixpath.normpath(value)
    if norm.startswith("..") or norm in (".", "") or "/../" in f"/{norm}/":
        raise ValueError("path escapes logs/receipts/")
    return norm


def _cents(value: Any, field: str) -> int:
    rule = FIELDS[field]
    max_value, max_digits = _limit(rule.max_value), _limit(rule.max_digits)
    if type(value) is int:
        cents = value
    elif type(value) is float and value.is_integer():
        cents = int(value)
    elif type(value) is str and value.strip().lstrip("-").isdigit() and value.strip().isascii():
        if len(value.strip()) > max_digits:
            raise problem(field, "is absurdly large")
        cents = int(value.strip(), 10)  # ASCII digits only: no "1_000", "+5" or other scripts' digits
    else:
        raise problem(field)
    if cents < 0:
        raise problem(field, "must be >= 0")
    if cents > max_value:
        raise problem(field, "is absurdly large")
    return cents


def _created(value: Any, now: float) -> float:
    """A purchase's `created`: ISO-8601 or epoch seconds (a number or digits), by clock.line_ts's
    rule: within 2000..2200 and not after now + clock.MAX_SKEW_S."""
    if type(value) is str:
        v = value.strip()
        if v[:1].isdigit() and "-" not in v and ":" not in v:
            try:
                value = float(v)
            except ValueError:
                pass
        else:
            value = v
    ts = clock.line_ts(value, now)
    if ts == "future":
        raise problem("created", f"is in the future (more than {clock.MAX_SKEW_S:.0f} s after now)")
    if isinstance(ts, str):
        raise problem("created")
    return ts


def _text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise problem(field, "must be a string")
    v = value.strip()
    limit = FIELDS[field].max_chars
    if limit is not None and len(v) > limit:
        raise problem(field, f"is longer than {limit} characters")
    return v or None


def checked_row(rec: dict[str, Any], *, source: str, now: float) -> tuple:
    """The careful path: every field checked in order, the first problem raised by name
    (ValueError `"<field>: <what>"`); a tuple in ledger.COLUMNS order otherwise."""
    for name in REQUIRED:
        value = rec.get(name)
        # description must be present as a column/key but may be empty
        if (value is None or value == "") and (name != "description" or name not in rec):
            raise problem(name, "missing")
    pid = rec["id"]
    if type(pid) is int:
        pid = str(pid)
    if type(pid) is not str or not pid.strip() or len(pid) > _ID_MAX:
        raise problem("id")
    try:
        email = normalize_email(rec["email"])
    except ValidationError as exc:
        raise problem("email", exc.detail) from None
    created = _created(rec["created"], now)
    amount = _cents(rec["amount_cents"], "amount_cents")
    currency = rec["currency"]
    if type(currency) is not str or len(currency.strip()) != _CURRENCY_CHARS:
        raise problem("currency")
    currency = currency.strip().lower()
    if not (currency.isalpha() and currency.isascii()):
        raise problem("currency")
    description = _text(rec.get("description"), "description") or ""
    fee = rec.get("fee_cents")
    fee = None if fee is None or fee == "" else _cents(fee, "fee_cents")
    docs = []
    for name in ("document", "invoice_document"):
        doc = _text(rec.get(name), name)
        if doc is not None:
            try:
                doc = check_document(doc)
            except ValueError as exc:
                raise problem(name, str(exc)) from None
        docs.append(doc)
    status = _text(rec.get("status"), "status") or "paid"
    invoice_number = _text(rec.get("invoice_number"), "invoice_number")
    return (pid.strip(), email, created, amount, currency, description, status.lower(), invoice_number, fee,
            docs[0], docs[1], source, now)  # fmt: skip


# --- the fast path -------------------------------------------------------------------------


def purchase_row(rec: dict[str, Any], *, source: str, now: float) -> tuple:
    """One validated ledger row (tuple in ledger.COLUMNS order) from a record; ValueError naming the field.

    Takes the common shapes (what 1M-row imports are made of) with FIELDS' limits; anything
    else goes through `checked_row`, which gives the same row or the precise error.
    """
    try:
        pid = rec["id"]
        email = rec["email"]
        created = rec["created"]
        amount = rec["amount_cents"]
        currency = rec["currency"]
        description = rec["description"]
    except KeyError:
        return checked_row(rec, source=source, now=now)
    get = rec.get
    fee = get("fee_cents")
    number = get("invoice_number")
    status = get("status")
    if (
        type(pid) is not str
        or len(pid) > _ID_MAX
        or type(email) is not str
        or type(currency) is not str
        or type(description) is not str
        or get("document") not in (None, "")
        or get("invoice_document") not in (None, "")
        or (number is not None and type(number) is not str)
        or (status is not None and type(status) is not str)
    ):
        return checked_row(rec, source=source, now=now)
    pid = pid.strip()
    email = email.strip().lower()
    currency = currency.strip().lower()
    description = description.strip()
    t = type(created)
    if t is int or t is float:
        ok_ts = MIN_TS <= created <= MAX_TS and created <= now + clock.MAX_SKEW_S
    elif t is str:
        try:
            created, ok_ts = _created(created, now), True
        except ValueError:
            ok_ts = False
    else:
        ok_ts = False
    if type(amount) is str and len(amount) <= _AMOUNT_DIGITS and amount.isdigit() and amount.isascii():
        amount = int(amount)
    if type(fee) is str:
        fee = int(fee) if len(fee) <= _FEE_DIGITS and fee.isdigit() and fee.isascii() else (None if fee == "" else -1)
    if (
        pid
        and ok_ts
        and type(amount) is int
        and 0 <= amount <= _AMOUNT_MAX
        and (fee is None or (type(fee) is int and 0 <= fee <= _FEE_MAX))
        and len(currency) == _CURRENCY_CHARS
        and currency.isalpha()
        and currency.isascii()
        and len(description) <= _DESCRIPTION_MAX
        and parsers.is_email(email)
    ):
        if number is not None:
            number = number.strip() or None
            if number is not None and len(number) > _NUMBER_MAX:
                return checked_row(rec, source=source, now=now)
        if status is not None:
            status = status.strip().lower() or None
            if status is not None and len(status) > _STATUS_MAX:
                return checked_row(rec, source=source, now=now)
        return (pid, email, float(created), amount, currency, description, status or "paid", number, fee,
                None, None, source, now)  # fmt: skip
    return checked_row(rec, source=source, now=now)
