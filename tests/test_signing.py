"""core/signing: HMAC tokens with purpose, expiry, key id; rotation; tamper detection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from echoops.core import config, signing
from echoops.core.errors import NotConfigured

KEY_A = "a" * 16 + "-first-signing-key-0123456789"
KEY_B = "b" * 16 + "-second-signing-key-012345678"
T0 = 1_800_000_000.0


def _s(*keys: str, ttl: int = 24) -> config.Settings:
    return config.load_settings({"PORTAL_SIGNING_SECRET": ",".join(keys), "PORTAL_LINK_TTL_HRS": str(ttl)})


def test_round_trip_and_claims():
    s = _s(KEY_A)
    token, expires = signing.sign("portal.download", "receipt:ch_1", "qa@echopilot.ai", s=s, now=T0)
    assert expires == int(T0) + 24 * 3600
    claims = signing.verify(token, "portal.download", s=s, now=T0 + 1)
    assert claims == signing.Claims("portal.download", "receipt:ch_1", "qa@echopilot.ai", expires, signing.kid(KEY_A))
    assert token.startswith("v1.") and token.count(".") == 2
    assert all(c.isalnum() or c in "-_." for c in token)  # URL-safe as is
    assert KEY_A not in token


def test_valid_at_23h59m_forbidden_at_24h01m():
    s = _s(KEY_A)
    token, _ = signing.sign("portal.download", "receipt:ch_1", "qa@echopilot.ai", s=s, now=T0)
    assert signing.verify(token, "portal.download", s=s, now=T0 + 23 * 3600 + 59 * 60).email == "qa@echopilot.ai"
    with pytest.raises(signing.BadToken) as info:
        signing.verify(token, "portal.download", s=s, now=T0 + 24 * 3600 + 60)
    assert info.value.reason == "expired at 2027-01-16T08:00:00.000Z"
    assert info.value.detail == signing.GENERIC_DETAIL  # the public never sees the reason
    assert info.value.status == 403


def test_ttl_follows_setting():
    s = _s(KEY_A, ttl=1)
    token, expires = signing.sign("p", "r", "e@x.io", s=s, now=T0)
    assert expires == int(T0) + 3600
    with pytest.raises(signing.BadToken, match="invalid"):
        signing.verify(token, "p", s=s, now=T0 + 3600)


def test_purpose_is_bound():
    s = _s(KEY_A)
    token, _ = signing.sign("portal.download", "receipt:ch_1", "qa@echopilot.ai", s=s, now=T0)
    with pytest.raises(signing.BadToken) as info:
        signing.verify(token, "portal.unsubscribe", s=s, now=T0)
    assert info.value.reason == "wrong purpose: token is for 'portal.download', not 'portal.unsubscribe'"


def test_rotation_old_links_verify_new_ones_use_the_new_key():
    old = _s(KEY_A)
    old_token, _ = signing.sign("p", "r", "e@x.io", s=old, now=T0)
    rotated = _s(KEY_B, KEY_A)  # new key prepended
    assert signing.verify(old_token, "p", s=rotated, now=T0).kid == signing.kid(KEY_A)
    new_token, _ = signing.sign("p", "r", "e@x.io", s=rotated, now=T0)
    assert signing.verify(new_token, "p", s=rotated, now=T0).kid == signing.kid(KEY_B)
    with pytest.raises(signing.BadToken):
        signing.verify(new_token, "p", s=old, now=T0)  # an old server cannot know the new key
    retired = _s(KEY_B)  # old key dropped after the TTL
    with pytest.raises(signing.BadToken) as info:
        signing.verify(old_token, "p", s=retired, now=T0)
    assert info.value.reason.startswith(f"unknown key id '{signing.kid(KEY_A)}'")


def test_forged_token_with_another_key_is_tampered():
    token, _ = signing.sign("p", "r", "e@x.io", s=_s(KEY_A), now=T0)
    head, payload, _sig = token.split(".")
    forged_sig = signing._mac(KEY_B.encode(), payload)
    with pytest.raises(signing.BadToken, match="invalid") as info:
        signing.verify(f"{head}.{payload}.{forged_sig}", "p", s=_s(KEY_A), now=T0)
    assert info.value.reason == "tampered: signature does not match"


@pytest.mark.parametrize(
    "keys, message",
    [((), "is not set"), (("short-key",), "key #1 is 9 bytes"), ((KEY_A, "x" * 31), "key #2 is 31 bytes")],
)
def test_missing_or_weak_secret_is_not_configured(keys, message):
    s = _s(*keys)
    with pytest.raises(NotConfigured, match=message):
        signing.sign("p", "r", "e@x.io", s=s, now=T0)
    with pytest.raises(NotConfigured):
        signing.verify("v1.x.y", "p", s=s, now=T0)


@pytest.mark.parametrize(
    "token, reason",
    [
        ("", "malformed: empty or too long"),
        ("v2.abc.def", "malformed: not a v1 token"),
        ("v1.abc", "malformed: not a v1 token"),
        ("v1.!!!.sig", "tampered: payload does not decode"),
        ("v1." + "A" * 3000, "malformed: empty or too long"),
    ],
)
def test_malformed_tokens_have_precise_reasons(token, reason):
    with pytest.raises(signing.BadToken) as info:
        signing.verify(token, "p", s=_s(KEY_A), now=T0)
    assert info.value.reason == reason


_S = _s(KEY_A)
_TOKEN, _ = signing.sign("portal.download", "invoice:in_42", "qa@echopilot.ai", s=_S, now=T0)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%+= /"


@settings(max_examples=400, deadline=None)
@given(pos=st.integers(0, len(_TOKEN) - 1), char=st.sampled_from(_ALPHABET))
def test_any_single_character_change_is_refused(pos, char):
    if _TOKEN[pos] == char:
        char = "A" if char != "A" else "B"
    mutated = _TOKEN[:pos] + char + _TOKEN[pos + 1 :]
    with pytest.raises(signing.BadToken):
        signing.verify(mutated, "portal.download", s=_S, now=T0)


def test_every_position_of_the_signature_and_padding_bits_matter():
    # exhaustive over the last char, whose low bits are base64 padding: text is compared, not bytes
    head = _TOKEN[:-1]
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_":
        if c == _TOKEN[-1]:
            continue
        with pytest.raises(signing.BadToken):
            signing.verify(head + c, "portal.download", s=_S, now=T0)


def test_inspect_for_support_staff():
    s = _s(KEY_A)
    token, _ = signing.sign("portal.unsubscribe", "unsubscribe", "qa@echopilot.ai", s=s, now=T0)
    ok = signing.inspect(token, s=s, now=T0)
    assert ok["valid"] is True and ok["purpose"] == "portal.unsubscribe" and ok["email"] == "qa@echopilot.ai"
    late = signing.inspect(token, s=s, now=T0 + 90000)
    assert late["valid"] is False and late["reason"].startswith("expired at ") and late["email"] == "qa@echopilot.ai"
    bad = signing.inspect(token[:-2] + "zz", s=s, now=T0)
    assert bad == {"valid": False, "reason": "tampered: signature does not match"}
