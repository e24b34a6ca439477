"""core/client.iter_list against the loopback Stripe imitation (tests/fakes_stripe.py)."""

from __future__ import annotations

import pytest

from echoops.core import config
from echoops.core.errors import NotConfigured, ValidationError
from echoops.core.portal.stripe import client
from tests.fakes_stripe import FakeStripe, balance_transaction, charge


@pytest.fixture
def fake(monkeypatch):
    charges = [charge(f"ch_{i:03d}", f"u{i % 3}@example.com", 1000 + i, 1_700_000_000 + i) for i in range(25)]
    with FakeStripe({"charges": charges, "balance_transactions": []}) as fake:
        monkeypatch.setenv("STRIPE_API_BASE", fake.url)
        monkeypatch.setenv("STRIPE_API_KEY", fake.key)
        yield fake


def _list(path, params=None, **kw):
    waits: list[float] = []
    out = list(client.iter_list(path, params, s=config.settings(), sleep=waits.append, **kw))
    return out, waits


def test_pages_through_every_object_newest_first(fake):
    objs, waits = _list("/v1/charges", page_size=10)
    assert [o["id"] for o in objs] == [f"ch_{i:03d}" for i in range(24, -1, -1)]
    assert waits == []
    # three pages: no cursor, then the last id of each previous page
    cursors = [p.get("starting_after") for _, p, _ in fake.requests]
    assert cursors == [None, ["ch_015"], ["ch_005"]]
    assert all(p["limit"] == ["10"] for _, p, _ in fake.requests)
    assert {auth for _, _, auth in fake.requests} == {f"Bearer {fake.key}"}


def test_params_are_passed_through(fake):
    objs, _ = _list("/v1/charges", {"created[gte]": 1_700_000_020})
    assert [o["id"] for o in objs] == ["ch_024", "ch_023", "ch_022", "ch_021", "ch_020"]


def test_429_is_backed_off_honouring_retry_after(fake):
    fake.fail_next(2, status=429, retry_after="1.5")
    objs, waits = _list("/v1/charges")
    assert len(objs) == 25
    assert waits == [1.5, 1.5]


def test_retry_after_is_capped(fake):
    fake.fail_next(1, status=429, retry_after="3600")
    _, waits = _list("/v1/charges")
    assert waits == [client.MAX_WAIT_S]


def test_5xx_is_retried_with_backoff_then_gives_up(fake):
    fake.fail_next(2, status=503, retry_after=None)
    objs, waits = _list("/v1/charges")
    assert len(objs) == 25
    assert len(waits) == 2 and 0 < waits[0] <= client.BACKOFF_BASE_S and waits[1] <= 2 * client.BACKOFF_BASE_S

    fake.fail_next(client.MAX_ATTEMPTS, status=500, retry_after="0")
    with pytest.raises(client.StripeError, match=r"500.*gave up after 6 attempts"):
        _list("/v1/charges")


def test_rate_limit_in_the_middle_of_paging_loses_nothing(fake):
    fake.rate_limit_every(2)
    objs, waits = _list("/v1/charges", page_size=7)
    assert [o["id"] for o in objs] == [f"ch_{i:03d}" for i in range(24, -1, -1)]
    assert waits and all(w == 0 for w in waits)


def test_bad_key_fails_at_once_without_leaking_the_key(fake, monkeypatch):
    wrong = "sk_live_wrongwrongwrongwrongwrong1234"
    monkeypatch.setenv("STRIPE_API_KEY", wrong)
    with pytest.raises(client.StripeError) as info:
        _list("/v1/charges")
    assert "401" in info.value.detail
    assert wrong not in str(info.value) and wrong[-12:] not in str(info.value)
    assert len(fake.requests) == 1  # 4xx is not retried


def test_unreachable_stripe_is_a_clear_error(monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_secret_value_that_must_not_leak")
    with pytest.raises(client.StripeError, match="cannot reach Stripe") as info:
        _list("/v1/charges")
    assert "sk_test_secret" not in str(info.value)


def test_no_key_is_not_configured():
    with pytest.raises(NotConfigured, match="STRIPE_API_KEY"):
        list(client.iter_list("/v1/charges", s=config.settings()))


@pytest.mark.parametrize("path", ["charges", "/v2/charges", "/v1/charges?limit=1", "/v1/../x"])
def test_path_is_validated(path, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_x")
    with pytest.raises(ValidationError):
        list(client.iter_list(path, s=config.settings()))


def test_fake_serves_balance_transactions_with_filters(fake):
    fake.add(
        "balance_transactions",
        balance_transaction("txn_1", 1000, 59, 1_700_000_000),
        balance_transaction("txn_2", -1000, 0, 1_700_000_100, type="refund"),
    )
    objs, _ = _list("/v1/balance_transactions", {"type": "charge"})
    assert [(o["id"], o["fee"]) for o in objs] == [("txn_1", 59)]


def test_every_request_pins_the_api_version(fake):
    _list("/v1/charges", page_size=10)
    client.retrieve("/v1/charges/ch_003", s=config.settings())
    assert len(fake.headers) == 4
    assert {h["Stripe-Version"] for h in fake.headers} == {client.API_VERSION} == {"2026-10-28.endive"}


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/v1/charges", {"email": "a@example.com"}, "'email' is not a filter Stripe documents for /v1/charges"),
        ("/v1/invoices/in_1/lines", {"status": "paid"}, "'status' is not a filter Stripe documents"),
        ("/v1/customers", {}, "'/v1/customers' is not a Stripe list endpoint echoops reads"),
    ],
)
def test_only_documented_filters_are_sent(fake, path, params, message):
    with pytest.raises(ValidationError, match=message.replace("[", "\\[").replace("]", "\\]")):
        _list(path, params)
    assert fake.requests == []  # refused before any request


def test_retrieve_reads_one_object_and_names_a_404(fake):
    obj = client.retrieve("/v1/charges/ch_007", {"expand[]": ["customer"]}, s=config.settings())
    assert (obj["id"], obj["amount"]) == ("ch_007", 1007)
    with pytest.raises(client.StripeError) as info:
        client.retrieve("/v1/charges/ch_nope", s=config.settings())
    assert info.value.http_status == 404 and info.value.status == 502
    assert info.value.detail == "Stripe answered 404 to /v1/charges/ch_nope: No such charge: 'ch_nope'"
    with pytest.raises(ValidationError, match="only expand"):
        client.retrieve("/v1/charges/ch_007", {"limit": 1}, s=config.settings())
