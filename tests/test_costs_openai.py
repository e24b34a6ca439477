"""`guard_openai` around the official `openai` client, pointed (base_url) at tests/fakes_openai.py:
estimates held, the model switched, throttles raised before anything is sent, spend settled
from the responses' usage (streamed too), and a failed call's hold released."""

from __future__ import annotations

import pytest

from echoops.api import CostThrottled, guard_openai
from echoops.core import config, costs
from echoops.core.costs.clients.openai import estimate_tokens
from echoops.core.errors import ValidationError
from tests.fakes_openai import API_KEY, FakeOpenAI
from tests.needs import module

openai = module("openai", module_level=True)


# $/Mtok: gpt-4o 2.50/10.00, gpt-4o-mini 0.15/0.60, so one token is p$ = µ$/Mtok
PRICE = {"gpt-4o": (2_500_000, 10_000_000), "gpt-4o-mini": (150_000, 600_000)}


def usd(model: str, tokens_in: int, tokens_out: int) -> float:
    p_in, p_out = PRICE[model]
    return (tokens_in * p_in + tokens_out * p_out) / 10**12


@pytest.fixture
def api():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def client(api):
    return guard_openai(openai.OpenAI(base_url=api.base_url, api_key=API_KEY, max_retries=0))


def spent(model: str) -> float:
    return costs.status()["models"].get(model, {}).get("spent_usd", 0.0)


def test_chat_and_responses_settle_from_the_real_clients_usage(client, api):
    chat = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello to the team"}],
        max_tokens=12,
    )
    assert isinstance(chat, openai.types.chat.ChatCompletion)
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (7, 12)
    resp = client.responses.create(
        model="gpt-4o", input="three word answer", instructions="be kind", max_output_tokens=5
    )
    assert isinstance(resp, openai.types.responses.Response)
    assert (resp.usage.input_tokens, resp.usage.output_tokens) == (5, 5)
    assert spent("gpt-4o-mini") == round(usd("gpt-4o-mini", 7, 12), 6)
    assert spent("gpt-4o") == round(usd("gpt-4o", 5, 5), 6)
    assert api.models_called() == ["gpt-4o-mini", "gpt-4o"]
    calls = costs.calls_status()
    assert (calls["in_flight"], calls["reserved_usd"], calls["recorded_5m"]) == (0, 0.0, 2)
    assert client.models is client._client.models  # everything else passes through


def test_switch_calls_the_fallback_and_holds_its_estimate(client, api, monkeypatch):
    monkeypatch.setenv("MODEL_CAPS_JSON", '{"gpt-4o": 0.0001, "gpt-4o-mini": 5}')
    monkeypatch.setenv("MODEL_FALLBACKS_JSON", '{"gpt-4o": "gpt-4o-mini"}')
    messages = [{"role": "user", "content": "x" * 400}]  # 105 tokens in, 10 out: $0.00036 on gpt-4o, over its cap
    out = client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=10)
    assert out.model == "gpt-4o-mini"
    assert api.models_called() == ["gpt-4o-mini"]
    assert spent("gpt-4o-mini") == round(usd("gpt-4o-mini", 1, 10), 6)  # the fake's count: one word
    assert spent("gpt-4o") == 0.0


def test_throttle_raises_before_anything_is_sent(client, api, monkeypatch):
    monkeypatch.setenv("COST_CAP_DAILY_USD", "0.001")
    costs.record_usage("gpt-4o-mini", usd=0.001)
    with pytest.raises(CostThrottled) as err:
        client.responses.create(model="gpt-4o-mini", input="hello")
    assert err.value.retry_after_s > 0 and err.value.model == "gpt-4o-mini"
    assert err.value.detail == "AI call throttled: global daily AI cap reached ($0.0010 of $0.0010)"
    assert api.requests == []
    assert costs.calls_status()["in_flight"] == 0


def test_an_api_error_releases_the_hold(client, api):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert len(api.requests) == 1
    status = costs.status()
    assert (status["global"]["spent_usd"], status["calls"]["in_flight"], status["calls"]["reserved_usd"]) == (0, 0, 0)


def test_a_streamed_chat_settles_when_its_usage_chunk_arrives(client, api):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "count to four please"}],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert costs.calls_status()["in_flight"] == 1  # held while the answer streams
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ok ok ok ok "
    assert chunks[-1].usage.completion_tokens == 4
    assert stream.spend.recorded == {
        "recorded_usd": usd("gpt-4o-mini", 4, 4),
        "decision": {"action": "allow", "model": "gpt-4o-mini", "reason": "within caps", "retry_after_s": 0},
    }
    assert spent("gpt-4o-mini") == round(usd("gpt-4o-mini", 4, 4), 6)
    assert costs.calls_status()["in_flight"] == 0


def test_a_streamed_response_settles_from_response_completed(client, api):
    with client.responses.create(
        model="gpt-4o", input="tell me two things", max_output_tokens=3, stream=True
    ) as stream:
        types = [event.type for event in stream]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert spent("gpt-4o") == round(usd("gpt-4o", 4, 3), 6)


def test_a_stream_without_usage_or_closed_early_settles_at_the_estimate(client, api):
    messages = [{"role": "user", "content": "abcd" * 10}]  # 40 characters: 10 tokens + 4 a message
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=8, stream=True)
    assert next(stream).choices[0].delta.role == "assistant"
    stream.close()  # the app stopped reading: the provider may have generated it all
    tin, tout = estimate_tokens("chat", {"messages": messages, "max_tokens": 8})
    assert (tin, tout) == (15, 8)  # "user" counts as prompt text too: 44 characters
    assert spent("gpt-4o-mini") == round(usd("gpt-4o-mini", 15, 8), 6)
    stream2 = client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=8, stream=True)
    list(stream2)  # no include_usage: nothing tells the real count
    assert spent("gpt-4o-mini") == round(2 * usd("gpt-4o-mini", 15, 8), 6)
    assert costs.calls_status()["in_flight"] == 0


def test_the_estimate_counts_prompt_text_media_parts_and_the_output_limit():
    chat = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "a" * 37},
                    {"type": "image_url", "image_url": {"url": "data:" + "x" * 9999}},
                ],
            },
        ],
        "max_completion_tokens": 50,
        "max_tokens": 999,
        "n": 2,
    }
    assert estimate_tokens("chat", chat) == (1000 + 12 + 4, 100)  # ceil(45/4): "user", "text", 37 a's
    assert estimate_tokens("chat", {"messages": [], "max_tokens": openai.NOT_GIVEN}) == (0, 4096)
    responses = {"input": "hello world", "instructions": "be brief", "tools": [{"type": "web_search"}]}
    assert estimate_tokens("responses", responses, 100) == (math_ceil(29 / 4) + 4, 100)
    assert estimate_tokens("responses", {"input": [{"role": "user", "content": "hi"}] * 3, "max_output_tokens": 9}) == (
        math_ceil(18 / 4) + 12,
        9,
    )


def math_ceil(x: float) -> int:
    return -int(-x // 1)


def test_guard_openai_refuses_the_async_client_and_a_bad_default():
    with pytest.raises(TypeError):
        guard_openai(openai.AsyncOpenAI(api_key=API_KEY))
    with pytest.raises(ValidationError) as err:
        guard_openai(openai.OpenAI(api_key=API_KEY), default_output_tokens=0)
    assert err.value.field == "default_output_tokens"


def test_monitoring_only_sends_the_model_asked_for_and_still_counts(client, api, monkeypatch):
    monkeypatch.setenv("COST_ENFORCE", "false")
    monkeypatch.setenv("COST_CAP_DAILY_USD", "0")
    assert not config.settings().cost_enforce
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "one two"}], max_tokens=2)
    assert api.models_called() == ["gpt-4o"]
    assert spent("gpt-4o") == round(usd("gpt-4o", 2, 2), 6)


def test_a_store_failure_after_the_call_is_logged_not_raised(client, api, log_dir, caplog):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=2
    )
    for suffix in ("", "-wal", "-shm"):  # the store is replaced while the answer streams
        (log_dir / f"echoops.db{suffix}").unlink(missing_ok=True)
    with caplog.at_level("WARNING", logger="echoops.costs"):
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ok ok "
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "echoops could not settle an AI call at its estimate"
    ]
    assert "NotFound: no open reservation" in caplog.records[0].getMessage()  # a new, empty store
