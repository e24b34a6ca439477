"""A loopback HTTP server speaking the Telegram Bot API's sendMessage shapes, for any test
that pages through Telegram.

    with FakeTelegram() as tg:
        tg.configure(monkeypatch)   # TELEGRAM_API_BASE, _BOT_TOKEN, _CHAT_ID point here
        tg.script(too_many(1), server_error(), ok())   # answers for the next requests
        ...
        tg.delivered   # payloads answered with ok: true (what a chat would show)
        tg.requests    # every request: {"path", "json", "status"}

- `POST /bot<token>/sendMessage` with JSON (or form) `chat_id`, `text`, optional `parse_mode`.
- A wrong token answers 401 `{"ok":false,"error_code":401,"description":"Unauthorized"}`;
  an empty or over-4096-character text answers 400 as Telegram does.
- Scripted answers are consumed in order; when none is left the answer is ok with a
  `result` Message. `on_request(payload)`, when set, runs before each answer (in the
  server's thread), e.g. to make the sender's next database write fail. `hang()` holds the
  request open until `release()` (or close) and then drops it: such a request is never
  counted as delivered. `hold()` holds it the same way, then answers ok (a slow Telegram).
  `hanging` is set while a request is held.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

DEFAULT_TOKEN = "123456789:AAFakeTokenForTests_0123456789abcdefXYZ"
DEFAULT_CHAT = "-1001234567890"

HANG = object()
HOLD = object()


def ok() -> tuple[int, None]:
    """Success: the server fills in the Message."""
    return (200, None)


def too_many(retry_after: int = 1) -> tuple[int, dict]:
    return (
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        },
    )


def server_error(status: int = 500) -> tuple[int, dict]:
    return (status, {"ok": False, "error_code": status, "description": "Internal Server Error"})


def cant_parse() -> tuple[int, dict]:
    return (
        400,
        {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 12",
        },
    )


def blocked() -> tuple[int, dict]:
    return (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})


def hang() -> object:
    return HANG


def hold() -> object:
    return HOLD


class FakeTelegram:
    def __init__(self, token: str = DEFAULT_TOKEN, chat_id: str = DEFAULT_CHAT):
        self.token = token
        self.chat_id = chat_id
        self._script: deque = deque()
        self.requests: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []
        self.hanging = threading.Event()  # set while a hung request is held
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._next_id = 1
        self.on_request = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def configure(self, monkeypatch) -> None:
        """Point the pager's TELEGRAM_* settings at this server."""
        monkeypatch.setenv("TELEGRAM_API_BASE", self.url)
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", self.token)
        monkeypatch.setenv("TELEGRAM_CHAT_ID", self.chat_id)

    def script(self, *answers) -> None:
        with self._lock:
            self._script.extend(answers)

    def release(self) -> None:
        self._release.set()

    def __enter__(self) -> FakeTelegram:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def wait_delivered(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.delivered) >= n:
                return True
            time.sleep(0.05)
        return len(self.delivered) >= n

    def _answer(self, path: str, payload: dict[str, Any]) -> tuple[int, dict] | object:
        if path != f"/bot{self.token}/sendMessage":
            if path.endswith("/sendMessage"):
                return (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return (404, {"ok": False, "error_code": 404, "description": "Not Found"})
        with self._lock:
            scripted = self._script.popleft() if self._script else ok()
        if scripted is HANG:
            return HANG
        if scripted is HOLD:
            self.hanging.set()
            self._release.wait(30)
            scripted = ok()
        status, body = scripted
        text = payload.get("text")
        if status == 200 and (not isinstance(text, str) or not text):
            return (400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"})
        if status == 200 and len(text.encode("utf-16-le")) // 2 > 4096:
            return (400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"})
        if status == 200 and str(payload.get("chat_id")) != self.chat_id:
            return (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        if body is None:
            with self._lock:
                message_id, self._next_id = self._next_id, self._next_id + 1
                self.delivered.append(payload)
            body = {
                "ok": True,
                "result": {
                    "message_id": message_id,
                    "from": {"id": 123456789, "is_bot": True, "first_name": "echoops"},
                    "chat": {"id": int(self.chat_id), "type": "supergroup", "title": "oncall"},
                    "date": int(time.time()),
                    "text": text,
                },
            }
        return (status, body)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "json" in (self.headers.get("Content-Type") or ""):
                    try:
                        payload = json.loads(raw or b"{}")
                    except ValueError:
                        payload = {}
                else:
                    payload = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                if fake.on_request is not None:
                    fake.on_request(payload)
                record = {"path": self.path, "json": payload, "status": None}
                fake.requests.append(record)  # before answering: a held request is already counted
                answer = fake._answer(self.path, payload)
                if answer is HANG:
                    record["status"] = "hung"
                    fake.hanging.set()
                    fake._release.wait(30)
                    self.close_connection = True
                    return  # dropped: no answer, never delivered
                status, body = answer
                record["status"] = status
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
