"""A loopback server speaking the two OpenAI endpoints `guard_openai` wraps, for the real
`openai` client pointed at it with `base_url` (nothing real can answer without a paid key).

Shaped from OpenAI's published API reference (platform.openai.com/docs/api-reference):
- `POST /v1/chat/completions` ("Create chat completion", `chat/create`): answers the
  `chat.completion` object (`chat/object`): `choices[].message`, `usage.prompt_tokens`,
  `completion_tokens`, `total_tokens` (+ `_details`). With `"stream": true`, server-sent
  `chat.completion.chunk` objects (`chat-streaming/streaming`), `data: [DONE]` last; with
  `stream_options: {"include_usage": true}` every chunk carries `"usage": null` and one more
  chunk, before `[DONE]`, has `"choices": []` and the whole request's `usage`.
- `POST /v1/responses` ("Create a model response", `responses/create`): answers the `response`
  object (`responses/object`): `output[]` messages of `output_text`, `usage.input_tokens`,
  `output_tokens`, `total_tokens` (+ `_details`). With `"stream": true`, the streaming events
  (`responses-streaming`): `response.created`, `response.output_text.delta`...,
  `response.completed` carrying the full response with its usage; `sequence_number` on each.
- Errors as the reference shows them: `{"error": {"message", "type", "param", "code"}}`; the
  model `no-such-model` answers 404 `model_not_found`, as the API does for an unknown model.

Token counts are made deterministic so a test can price them: prompt tokens = the words of the
prompt's text (message contents, or `input` and `instructions`); completion tokens =
`max_tokens`/`max_completion_tokens`/`max_output_tokens` when given, else 7. The reply is that
many words. `requests` lists every request body (`{"path", "json"}`) for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_COMPLETION_TOKENS = 7
API_KEY = "sk-test-0123456789abcdef"


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(_words(v) for k, v in value.items() if k in ("content", "text", "input", "instructions"))
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    return 0


def counts(path: str, body: dict) -> tuple[int, int]:
    """(prompt tokens, completion tokens) the fake reports for a request."""
    if path.endswith("/chat/completions"):
        prompt = _words(body.get("messages", []))
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
    else:
        prompt = _words(body.get("input", "")) + _words(body.get("instructions") or "")
        limit = body.get("max_output_tokens")
    return prompt, limit or DEFAULT_COMPLETION_TOKENS


class FakeOpenAI:
    """`with FakeOpenAI() as api: OpenAI(base_url=api.base_url, api_key=API_KEY, max_retries=0)`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                with fake._lock:
                    fake.requests.append({"path": self.path, "json": body})
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    return self._json(
                        401, _error("Incorrect API key provided", "invalid_request_error", "invalid_api_key")
                    )
                if self.path not in ("/v1/chat/completions", "/v1/responses"):
                    return self._json(404, _error(f"Invalid URL (POST {self.path})", "invalid_request_error", None))
                model = body.get("model")
                if model == "no-such-model":
                    message = f"The model `{model}` does not exist or you do not have access to it."
                    return self._json(404, _error(message, "invalid_request_error", "model_not_found"))
                prompt, completion = counts(self.path, body)
                if self.path == "/v1/chat/completions":
                    if body.get("stream"):
                        return self._sse(_chat_chunks(body, prompt, completion))
                    return self._json(200, _chat(body, prompt, completion))
                if body.get("stream"):
                    return self._sse(_response_events(body, prompt, completion))
                return self._json(200, _response(body, prompt, completion, "completed"))

            def _json(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events: list[tuple[str | None, str]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for event, data in events:
                    head = f"event: {event}\n" if event else ""
                    self.wfile.write(f"{head}data: {data}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def models_called(self) -> list[str]:
        with self._lock:
            return [r["json"].get("model") for r in self.requests]

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _error(message: str, kind: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _reply(completion: int) -> str:
    return " ".join(["ok"] * completion)


def _chat(body: dict, prompt: int, completion: int) -> dict:
    return {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _reply(completion), "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "length" if body.get("max_tokens") or body.get("max_completion_tokens") else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def _chat_chunks(body: dict, prompt: int, completion: int) -> list[tuple[str | None, str]]:
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {"id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": int(time.time())}
    base |= {"model": body["model"], "system_fingerprint": "fp_fake"}
    extra = {"usage": None} if with_usage else {}
    deltas = [{"role": "assistant", "content": ""}] + [{"content": "ok "} for _ in range(completion)]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}], **extra}
        for d in deltas
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], **extra})
    if with_usage:
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        chunks.append({**base, "choices": [], "usage": usage})
    return [(None, json.dumps(c)) for c in chunks] + [(None, "[DONE]")]


def _response(body: dict, prompt: int, completion: int, status: str) -> dict:
    done = status == "completed"
    return {
        "id": "resp_fake123",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": [
            {
                "type": "message",
                "id": "msg_fake123",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": _reply(completion), "annotations": []}],
            }
        ]
        if done
        else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        }
        if done
        else None,
        "user": None,
        "metadata": {},
    }


def _response_events(body: dict, prompt: int, completion: int) -> list[tuple[str | None, str]]:
    events = [{"type": "response.created", "response": _response(body, prompt, completion, "in_progress")}]
    for _ in range(completion):
        delta = {"type": "response.output_text.delta", "item_id": "msg_fake123", "output_index": 0}
        events.append({**delta, "content_index": 0, "delta": "ok ", "logprobs": []})
    events.append({"type": "response.completed", "response": _response(body, prompt, completion, "completed")})
    return [(e["type"], json.dumps({**e, "sequence_number": i})) for i, e in enumerate(events)]
