"""Signed, expiring, purpose-bound tokens (HMAC-SHA256): every signed thing in echoops goes through here.

Token: `v1.<payload>.<signature>`, both parts unpadded URL-safe base64.
- payload: compact JSON `{"p": purpose, "r": resource, "e": email, "x": expiry epoch s, "k": kid}`
- signature: HMAC-SHA256(key, "v1." + payload text), where key is the one whose kid
  (first 8 hex of sha256(key)) the payload names.

The MAC covers the exact transmitted text and the check compares the encoded signature text
(hmac.compare_digest), so changing any character of a token, even a base64 padding bit,
fails. PORTAL_SIGNING_SECRET holds comma-separated keys: the first signs, every listed key
verifies, so rotating is "prepend the new key, drop the old one after the link TTL". The pager
signs with PAGER_SIGNING_SECRET, else the portal's keys (`KEYRINGS`); `short_mac` is the same
HMAC cut short, for Telegram's 64-byte button data.
A missing key or one shorter than 32 bytes is NotConfigured: echoops never signs with a weak key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from dataclasses import asdict, dataclass

import orjson

from echoops.core import clock, config
from echoops.core.config import Settings
from echoops.core.errors import Forbidden, NotConfigured, ValidationError

VERSION = "v1"
MIN_KEY_BYTES = 32
MAX_TOKEN_CHARS = 2048
GENERIC_DETAIL = "this link is invalid or has expired"


@dataclass(frozen=True)
class Claims:
    """What a verified token says: purpose, resource, email, expiry (epoch s) and the signing key id."""

    purpose: str
    resource: str
    email: str
    expires: int
    kid: str

    def to_dict(self) -> dict:
        return {**asdict(self), "expires_at": clock.iso(self.expires)}


class BadToken(Forbidden):
    """A token that does not verify. `detail` stays generic (it goes to the public); `reason` is precise."""

    def __init__(self, reason: str, claims: Claims | None = None):
        super().__init__(GENERIC_DETAIL)
        self.reason = reason
        self.claims = claims  # set only when the signature checked out (expired, wrong purpose)


def kid(key: str) -> str:
    """Key id: first 8 hex chars of sha256(key) (names a key without revealing it)."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


# Keyrings: which settings hold the keys of each signer, first set one wins. The pager's
# buttons and email links use PAGER_SIGNING_SECRET, else the portal's secret (one secret is
# enough for a small install; tokens are purpose-bound, so a portal link never acks a page).
KEYRINGS = {
    "portal": ("PORTAL_SIGNING_SECRET",),
    "pager": ("PAGER_SIGNING_SECRET", "PORTAL_SIGNING_SECRET"),
}
_KEY_ATTRS = {"PORTAL_SIGNING_SECRET": "portal_signing_keys", "PAGER_SIGNING_SECRET": "pager_signing_keys"}
_DISABLED = {"portal": "signed portal links are disabled", "pager": "pager buttons and email links are disabled"}


def keys(s: Settings | None = None, *, ring: str = "portal") -> dict[str, bytes]:
    """kid -> key bytes of keyring `ring`, signing key first. NotConfigured when unset or any key is under 32 bytes."""
    s = s or config.settings()
    names = KEYRINGS[ring]
    name = next((n for n in names if getattr(s, _KEY_ATTRS[n])), None)
    if name is None:
        shown = names[0] + "".join(f" (or {n})" for n in names[1:])
        raise NotConfigured(f"{shown} is not set: {_DISABLED[ring]}")
    out: dict[str, bytes] = {}
    for i, key in enumerate(getattr(s, _KEY_ATTRS[name]), start=1):
        raw = key.encode()
        if len(raw) < MIN_KEY_BYTES:
            raise NotConfigured(
                f"{name} key #{i} is {len(raw)} bytes; every key needs >= {MIN_KEY_BYTES} ({_DISABLED[ring]})"
            )
        out.setdefault(kid(key), raw)
    return out


def short_mac(message: str, *, ring: str, chars: int, s: Settings | None = None) -> str:
    """The first `chars` characters of the URL-safe HMAC-SHA256 of `message` under the signing key
    (for identifiers that must stay short, e.g. Telegram's 64-byte callback data)."""
    key = next(iter(keys(s, ring=ring).values()))
    return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())[:chars]


def check_short_mac(message: str, mac: str, *, ring: str, s: Settings | None = None) -> bool:
    """True when `mac` is short_mac(message) under any key of `ring` (constant-time compare)."""
    good = False
    for key in keys(s, ring=ring).values():
        want = _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())[: len(mac)]
        good |= bool(mac) and hmac.compare_digest(want.encode(), mac.encode("ascii", "replace"))
    return good


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload_text: str) -> str:
    return _b64(hmac.new(key, f"{VERSION}.{payload_text}".encode("ascii"), hashlib.sha256).digest())


def sign(
    purpose: str,
    resource: str,
    email: str,
    *,
    ttl_s: float | None = None,
    s: Settings | None = None,
    now: float | None = None,
    ring: str = "portal",
) -> tuple[str, int]:
    """(token, expiry epoch s) for (purpose, resource, email), valid `ttl_s` (default PORTAL_LINK_TTL_HRS)."""
    s = s or config.settings()
    if not purpose or not isinstance(purpose, str):
        raise ValidationError("purpose must be a non-empty string", field="purpose")
    signing_kid, key = next(iter(keys(s, ring=ring).items()))
    ttl = s.portal_link_ttl_hrs * 3600 if ttl_s is None else ttl_s
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValidationError("ttl must be a positive number of seconds", field="ttl_s")
    expires = int(clock.now_s(now) + ttl)
    payload = _b64(orjson.dumps({"p": purpose, "r": resource, "e": email, "x": expires, "k": signing_kid}))
    return f"{VERSION}.{payload}.{_mac(key, payload)}", expires


def _decode(token: str) -> tuple[str, str, dict]:
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise BadToken("malformed: empty or too long")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise BadToken("malformed: not a v1 token")
    _, payload_text, sig = parts
    try:
        payload = orjson.loads(_unb64(payload_text))
    except (ValueError, orjson.JSONDecodeError):
        raise BadToken("tampered: payload does not decode") from None
    if not isinstance(payload, dict):
        raise BadToken("tampered: payload is not an object")
    return payload_text, sig, payload


def verify(
    token: str, purpose: str, *, s: Settings | None = None, now: float | None = None, ring: str = "portal"
) -> Claims:
    """Claims of a valid, unexpired token for `purpose`; BadToken (403, precise `reason`) otherwise."""
    known = keys(s, ring=ring)  # NotConfigured first: without keys nothing can be judged
    payload_text, sig, payload = _decode(token)
    kid = payload.get("k")
    key = known.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise BadToken(f"unknown key id {str(payload.get('k'))[:16]!r} (rotated out, or tampered)")
    if not hmac.compare_digest(_mac(key, payload_text).encode(), sig.encode("ascii", "replace")):
        raise BadToken("tampered: signature does not match")
    try:
        claims = Claims(
            purpose=str(payload["p"]),
            resource=str(payload["r"]),
            email=str(payload["e"]),
            expires=int(payload["x"]),
            kid=payload["k"],
        )
    except (KeyError, TypeError, ValueError):
        raise BadToken("malformed: signed payload lacks a field") from None
    if claims.purpose != purpose:
        raise BadToken(f"wrong purpose: token is for {claims.purpose!r}, not {purpose!r}", claims)
    if clock.now_s(now) >= claims.expires:
        raise BadToken(f"expired at {clock.iso(claims.expires)}", claims)
    return claims


def inspect(token: str, *, s: Settings | None = None, now: float | None = None) -> dict:
    """For support staff: `{"valid", "reason", ...claims}` whatever the purpose (never raises BadToken)."""
    try:
        _, _, payload = _decode(token)
        purpose = payload.get("p")
        claims = verify(token, purpose if isinstance(purpose, str) else "", s=s, now=now)
    except BadToken as exc:
        out = {"valid": False, "reason": exc.reason}
        if exc.claims is not None:
            out.update(exc.claims.to_dict())
        return out
    return {"valid": True, "reason": "valid", **claims.to_dict()}
