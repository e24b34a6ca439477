"""`guard_openai(client)`: the official OpenAI Python client (`openai.OpenAI`) with per-call caps.

`client.chat.completions.create/parse` and `client.responses.create/parse` on the returned
object go through `calls.reserve` first:

1. **Estimate** (`estimate_tokens`): input tokens = the prompt's characters / 4, rounded up
   (OpenAI's rule of thumb for English; the text of `messages`, or `input` and `instructions`,
   plus `tools`, `functions`, `response_format` and `text`, which count as prompt too), + 4 per
   message, + 1,000 per image, audio or file part (their tokens cannot be counted from here);
   output tokens = `max_completion_tokens` or `max_tokens` times `n` (chat), or
   `max_output_tokens` (responses), else `default_output_tokens` (4,096). Priced at the list
   price of whichever model is called. Under-estimates (non-English text, long tool output)
   are what the overshoot bound allows; set `max_tokens` for a tight estimate.
2. **throttle**: `CostThrottled` (with `retry_after_s`) is raised and nothing is sent.
   **switch**: the `model` argument is replaced by the fallback, whose estimate is held.
3. The call raises (an API error, a timeout, a refused request): the hold is released.
4. A response: settled from `response.usage` (chat: `prompt_tokens`/`completion_tokens`;
   responses: `input_tokens`/`output_tokens`), at the estimate when it has none.
5. `stream=True`: a `GuardedStream` settles from the usage the stream carries as soon as it
   arrives (chat: the last chunk, with `stream_options={"include_usage": True}`; responses: the
   `response.completed`, `.incomplete` or `.failed` event). A stream that ends, is closed or
   fails without usage is settled at the estimate: the provider bills what it generated.
   A stream abandoned without `close()` is settled at its estimate after its TTL.

Cached-input discounts are not modelled (a cached token is counted at the full input price).
Every other attribute of the client passes through unguarded (`with_raw_response`,
`embeddings`, ...). The module never imports `openai` (the extra `echoops[openai]`).
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from echoops.core import store
from echoops.core.config import Settings
from echoops.core.costs import calls
from echoops.core.costs.calls import CostThrottled, Spend
from echoops.core.costs.ingest import MAX_TOKENS
from echoops.core.errors import EchoopsError, ValidationError

_log = logging.getLogger("echoops.costs")

CHARS_PER_TOKEN = 4
MESSAGE_TOKENS = 4
MEDIA_TOKENS = 1_000
DEFAULT_OUTPUT_TOKENS = 4_096
MEDIA_TYPES = frozenset({"image_url", "input_image", "image", "input_audio", "audio", "input_file", "file"})
_PROMPT_ARGS = {
    "chat": ("messages", "tools", "functions", "response_format"),
    "responses": ("input", "instructions", "tools", "text"),
}
# terminal events of a streamed Responses call; each carries the response with its usage
_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _walk(value: Any, acc: list[int]) -> None:
    """Add the characters of every string in `value` to acc[0], each media part to acc[1]."""
    if isinstance(value, str):
        acc[0] += len(value)
    elif isinstance(value, Mapping):
        if value.get("type") in MEDIA_TYPES:
            acc[1] += 1
            return
        for item in value.values():
            _walk(item, acc)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, acc)


def _count(value: object) -> int | None:
    return value if type(value) is int and value >= 0 else None


def estimate_tokens(
    kind: str, kwargs: Mapping[str, Any], default_output_tokens: int = DEFAULT_OUTPUT_TOKENS
) -> tuple[int, int]:
    """(input, output) tokens to hold for a `chat` or `responses` call with `kwargs` (module doc)."""
    acc = [0, 0]
    for arg in _PROMPT_ARGS[kind]:
        _walk(kwargs.get(arg), acc)
    prompt = kwargs.get("messages") if kind == "chat" else kwargs.get("input")
    messages = len(prompt) if isinstance(prompt, (list, tuple)) else 1
    tin = math.ceil(acc[0] / CHARS_PER_TOKEN) + MESSAGE_TOKENS * messages + MEDIA_TOKENS * acc[1]
    if kind == "chat":
        cap = _count(kwargs.get("max_completion_tokens"))
        cap = cap if cap is not None else _count(kwargs.get("max_tokens"))
        tout = (default_output_tokens if cap is None else cap) * (_count(kwargs.get("n")) or 1)
    else:
        cap = _count(kwargs.get("max_output_tokens"))
        tout = default_output_tokens if cap is None else cap
    return min(tin, MAX_TOKENS), min(tout, MAX_TOKENS)


def _quietly(what: str, fn: Callable[[], object]) -> None:
    """Settling after the call was made must not turn its answer into an error: a store failure
    is logged (the tick settles the hold at its estimate after its TTL)."""
    try:
        fn()
    except store.errors(EchoopsError, OSError) as exc:
        _log.warning("echoops could not %s: %s: %s", what, type(exc).__name__, exc)


def _settle(held: Spend, usage: Any, kind: str) -> None:
    if not held.open:
        return
    if usage is None:
        _quietly("settle an AI call at its estimate", held.settle_at_estimate)
        return
    names = ("prompt_tokens", "completion_tokens") if kind == "chat" else ("input_tokens", "output_tokens")
    tin, tout = (_count(getattr(usage, n, None)) or 0 for n in names)
    _quietly(
        "settle an AI call", lambda: held.record(input_tokens=min(tin, MAX_TOKENS), output_tokens=min(tout, MAX_TOKENS))
    )


class GuardedStream:
    """A streamed response (iterate it as the client's `Stream`): settles its reservation from the
    usage it carries, or at the estimate when it ends, fails or is closed without any."""

    def __init__(self, stream: Any, held: Spend, kind: str):
        self._stream = stream
        self._held = held
        self._kind = kind
        self._it: Iterator[Any] | None = None

    def __iter__(self) -> GuardedStream:
        return self

    def __next__(self) -> Any:
        if self._it is None:
            self._it = iter(self._stream)
        try:
            item = next(self._it)
        except BaseException:  # StopIteration (the end) included
            _settle(self._held, None, self._kind)
            raise
        if self._kind == "chat":
            usage = getattr(item, "usage", None)
        elif getattr(item, "type", None) in _FINAL_EVENTS:
            usage = getattr(getattr(item, "response", None), "usage", None)
        else:
            usage = None
        if usage is not None:
            _settle(self._held, usage, self._kind)
        return item

    def close(self) -> None:
        """Close the HTTP response; a reservation still open is settled at its estimate."""
        try:
            self._stream.close()
        finally:
            _settle(self._held, None, self._kind)

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def spend(self) -> Spend:
        """The reservation behind this stream (action, model, reason, recorded)."""
        return self._held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Options:
    def __init__(self, default_output_tokens: int, ttl_s: float | None, s: Settings | None):
        self.default_output_tokens = default_output_tokens
        self.ttl_s = ttl_s
        self.s = s


def _guarded_call(fn: Callable[..., Any], kind: str, opts: _Options, args: tuple, kwargs: dict[str, Any]) -> Any:
    model = kwargs.get("model")
    if not isinstance(model, str) or not model.strip():
        return fn(*args, **kwargs)  # the client reports its own error; nothing to reserve against
    held = calls.reserve(
        model, estimate_tokens=estimate_tokens(kind, kwargs, opts.default_output_tokens), ttl_s=opts.ttl_s, s=opts.s
    )
    if held.action == "throttle":
        raise CostThrottled(f"AI call throttled: {held.reason}", model=model, retry_after_s=held.retry_after_s)
    if held.action == "switch":
        kwargs = {**kwargs, "model": held.model}
    try:
        result = fn(*args, **kwargs)
    except BaseException:
        _quietly("release an AI call's hold", held.release)
        raise
    if kwargs.get("stream") is True:
        return GuardedStream(result, held, kind)
    _settle(held, getattr(result, "usage", None), kind)
    return result


class _Resource:
    """`chat.completions` or `responses`: `create` and `parse` guarded, the rest passed through."""

    def __init__(self, resource: Any, kind: str, opts: _Options):
        self._resource = resource
        self._kind = kind
        self._opts = opts

    def create(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded_call(self._resource.create, self._kind, self._opts, args, kwargs)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return _guarded_call(self._resource.parse, self._kind, self._opts, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resource, name)


class _Chat:
    def __init__(self, chat: Any, opts: _Options):
        self._chat = chat
        self.completions = _Resource(chat.completions, "chat", opts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chat, name)


class GuardedOpenAI:
    """An `openai.OpenAI` client whose chat completions and responses calls are cost-guarded."""

    def __init__(self, client: Any, opts: _Options):
        self._client = client
        self.chat = _Chat(client.chat, opts)
        self.responses = _Resource(client.responses, "responses", opts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def guard_openai(
    client: Any,
    *,
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    ttl_s: float | None = None,
    s: Settings | None = None,
) -> GuardedOpenAI:
    """Wrap an `openai.OpenAI` client: each chat completion or response reserves its estimate,
    switches model or raises CostThrottled, and settles from the response's usage (module doc)."""
    create = getattr(client.chat.completions, "create", None)
    if create is not None and inspect.iscoroutinefunction(inspect.unwrap(create)):
        raise TypeError("guard_openai wraps the synchronous openai.OpenAI client, not AsyncOpenAI")
    if type(default_output_tokens) is not int or not 0 < default_output_tokens <= MAX_TOKENS:
        raise ValidationError(
            f"default_output_tokens must be a whole number from 1 to {MAX_TOKENS}", field="default_output_tokens"
        )
    return GuardedOpenAI(client, _Options(default_output_tokens, ttl_s, s))
