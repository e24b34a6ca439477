"""A loopback HTTP server speaking the Telegram Bot API's sendMessage shapes, for any test
that pages through Telegram, and the methods that make pages answerable: getUpdates (offsets,
long polling), answerCallbackQuery and editMessageText, with inline keyboards.

Shaped from the published reference (https://core.telegram.org/bots/api, Bot API 10.1; read
through the machine-readable scrape github.com/PaulSonOfLars/telegram-bot-api-spec, api.json):
sendMessage/editMessageText text is 1-4096 characters; InlineKeyboardButton.callback_data is
1-64 bytes; an Update has `update_id` and at most one of its optional fields (`callback_query`
here); getUpdates returns the updates with update_id >= `offset` (confirming the earlier ones;
a negative offset counts from the end), at most `limit` (1-100, default 100), holding the
request up to `timeout` seconds while there are none, and filters by `allowed_updates`; a second
getUpdates while one is held ends the first with 409 "Conflict: terminated by other getUpdates
request; make sure that only one bot instance is running", and a set webhook makes it 409 too;
a CallbackQuery has `id`, `from` (a User), `message` (the bot's message with the button),
`chat_instance` and `data`; answerCallbackQuery takes `callback_query_id` and `text` (0-200
characters) and refuses an unknown or already answered query ("query is too old and response
timeout expired or query ID is invalid"); editMessageText of a message that shows the same
text and keyboard is 400 "message is not modified: ...", of an unknown one "message to edit not
found". The error strings are the ones Telegram answers (as quoted in bot libraries' issues).

    with FakeTelegram() as tg:
        tg.configure(monkeypatch)
        ...                               # a page is delivered with buttons
        query_id = tg.press("Ack", user=ALICE)   # a person presses a button: a callback_query update
        tg.answers[query_id]              # what echoops answered (answerCallbackQuery)
        tg.messages[(chat, message_id)]   # a message as the chat shows it now (after edits)

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
ALICE = {"id": 1001, "is_bot": False, "first_name": "Alice", "username": "alice"}
BOB = {"id": 1002, "is_bot": False, "first_name": "Bob", "last_name": "Builder"}
CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"

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
        self.chats = {chat_id}  # chats the bot is a member of
        self.messages: dict[tuple[str, int], dict[str, Any]] = {}  # (chat, message_id) -> what it shows now
        self.updates: list[dict[str, Any]] = []  # not yet confirmed
        self._next_update = 500_000_001
        self._updates_changed = threading.Condition(self._lock)
        self._poll_generation = 0  # a new getUpdates ends the one held before it (409)
        self.answers: dict[str, str] = {}  # callback_query_id -> the text echoops answered
        self._queries: set[str] = set()  # query ids not answered yet
        self.conflicts = 0  # getUpdates answered 409
        self.webhook = False
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
        with self._lock:
            self._poll_generation += 1
            self._updates_changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def wait_delivered(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.delivered) >= n:
                return True
            time.sleep(0.05)
        return len(self.delivered) >= n

    # --- what a person does in the chat ------------------------------------------------------

    def add_chat(self, chat_id: str) -> None:
        """The bot joins another chat (an escalation chat)."""
        with self._lock:
            self.chats.add(chat_id)

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        """The payloads of every `method` request answered ok."""
        suffix = "/" + method
        return [r["json"] for r in self.requests if r["path"].endswith(suffix) and r["status"] == 200]

    def buttons(self, message: dict[str, Any]) -> dict[str, str]:
        """label -> callback_data of a message's inline keyboard."""
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        return {b["text"]: b.get("callback_data") for row in rows for b in row}

    def last_message(self, chat_id: str | None = None) -> tuple[tuple[str, int], dict[str, Any]]:
        """((chat, message_id), message) of the newest message the bot sent (to `chat_id`)."""
        keys = [k for k in self.messages if chat_id is None or k[0] == chat_id]
        key = max(keys, key=lambda k: self.messages[k]["sent_order"])
        return key, self.messages[key]

    def press(
        self,
        label: str | None = None,
        *,
        message: tuple[str, int] | None = None,
        user: dict | None = None,
        data: str | None = None,
        from_chat: str | None = None,
    ) -> str:
        """A person presses the button `label` under `message` (default: the newest one): queue a
        callback_query update as Telegram would. `data` replaces the button's data (a forged
        client), `from_chat` the chat the message appears in. Returns the query id."""
        key = message or self.last_message()[0]
        shown = self.messages[key]
        if data is None:
            data = self.buttons(shown)[label]
        with self._lock:
            query_id = str(4_000_000_000_000_000 + self._next_update)
            chat = from_chat or key[0]
            update = {
                "update_id": self._next_update,
                "callback_query": {
                    "id": query_id,
                    "from": user or ALICE,
                    "message": {
                        "message_id": key[1],
                        "from": {"id": 123456789, "is_bot": True, "first_name": "echoops"},
                        "chat": {"id": int(chat), "type": "supergroup", "title": "oncall"},
                        "date": int(time.time()),
                        "text": shown["text"],
                        "reply_markup": shown.get("reply_markup"),
                    },
                    "chat_instance": str(abs(hash(chat))),
                    "data": data,
                },
            }
            self._next_update += 1
            self.updates.append(update)
            self._queries.add(query_id)
            self._updates_changed.notify_all()
        return query_id

    def wait_answered(self, query_id: str, timeout: float = 10.0) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and query_id not in self.answers:
            time.sleep(0.02)
        return self.answers.get(query_id)

    # --- the Bot API -----------------------------------------------------------------------

    @staticmethod
    def _error(status: int, description: str) -> tuple[int, dict]:
        return (status, {"ok": False, "error_code": status, "description": description})

    def _keyboard_error(self, markup: Any) -> str | None:
        if markup is None:
            return None
        rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            return "Bad Request: can't parse inline keyboard button: InlineKeyboardButtons must be an array of arrays"
        for button in (b for r in rows for b in r):
            if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
                return (
                    "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                return "Bad Request: BUTTON_DATA_INVALID"
        return None

    def _message(self, chat: str, message_id: int, text: str) -> dict:
        return {
            "message_id": message_id,
            "from": {"id": 123456789, "is_bot": True, "first_name": "echoops"},
            "chat": {"id": int(chat), "type": "supergroup", "title": "oncall"},
            "date": int(time.time()),
            "text": text,
        }

    def _get_updates(self, payload: dict[str, Any]) -> tuple[int, dict]:
        if self.webhook:
            return self._error(409, WEBHOOK_ACTIVE)
        offset, limit, timeout = payload.get("offset", 0), payload.get("limit", 100), payload.get("timeout", 0)
        allowed = payload.get("allowed_updates")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, limit, timeout)):
            return self._error(400, "Bad Request: wrong parameter type")
        if not 1 <= limit <= 100 or timeout < 0:
            return self._error(400, "Bad Request: wrong parameter value")
        deadline = time.monotonic() + min(timeout, 50)
        with self._lock:
            self._poll_generation += 1
            generation = self._poll_generation
            self._updates_changed.notify_all()  # a held getUpdates is ended by this one
            while True:
                if offset < 0:
                    self.updates = self.updates[offset:]
                else:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]  # confirmed: forgotten
                ready = [u for u in self.updates if not allowed or any(k in u for k in allowed)][:limit]
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    return (200, {"ok": True, "result": ready})
                self._updates_changed.wait(left)
                if self._poll_generation != generation:
                    self.conflicts += 1
                    return self._error(409, CONFLICT)

    def _answer_callback(self, payload: dict[str, Any]) -> tuple[int, dict]:
        query_id, text = payload.get("callback_query_id"), payload.get("text", "")
        if not isinstance(text, str) or len(text) > 200:
            return self._error(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._lock:
            if query_id not in self._queries:
                return self._error(400, QUERY_INVALID)
            self._queries.discard(query_id)
            self.answers[query_id] = text
        return (200, {"ok": True, "result": True})

    def _edit(self, payload: dict[str, Any]) -> tuple[int, dict]:
        key = (str(payload.get("chat_id")), payload.get("message_id"))
        text, markup = payload.get("text"), payload.get("reply_markup")
        if not isinstance(text, str) or not text:
            return self._error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return self._error(400, "Bad Request: MESSAGE_TOO_LONG")
        problem = self._keyboard_error(markup)
        if problem:
            return self._error(400, problem)
        with self._lock:
            shown = self.messages.get(key)
            if shown is None:
                return self._error(400, "Bad Request: message to edit not found")
            new_markup = markup if markup and markup.get("inline_keyboard") else None
            if (shown["text"], shown.get("reply_markup")) == (text, new_markup):
                return self._error(400, NOT_MODIFIED)
            shown.update(
                text=text, parse_mode=payload.get("parse_mode"), reply_markup=new_markup, edits=shown["edits"] + 1
            )
        return (200, {"ok": True, "result": self._message(key[0], key[1], text)})

    def _answer(self, path: str, payload: dict[str, Any]) -> tuple[int, dict] | object:
        prefix = f"/bot{self.token}/"
        method = path.rsplit("/", 1)[-1]
        if not path.startswith(prefix):
            if method in ("sendMessage", "getUpdates", "answerCallbackQuery", "editMessageText"):
                return (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return (404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if method == "getUpdates":
            return self._get_updates(payload)
        if method == "answerCallbackQuery":
            return self._answer_callback(payload)
        if method == "editMessageText":
            return self._edit(payload)
        if method != "sendMessage":
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
        if status == 200 and str(payload.get("chat_id")) not in self.chats:
            return (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"})
        problem = self._keyboard_error(payload.get("reply_markup")) if status == 200 else None
        if problem:
            return (400, {"ok": False, "error_code": 400, "description": problem})
        if body is None:
            with self._lock:
                message_id, self._next_id = self._next_id, self._next_id + 1
                self.delivered.append(payload)
                markup = payload.get("reply_markup")
                self.messages[(str(payload["chat_id"]), message_id)] = {
                    "text": text,
                    "parse_mode": payload.get("parse_mode"),
                    "reply_markup": markup if markup and markup.get("inline_keyboard") else None,
                    "reply_to": (payload.get("reply_parameters") or {}).get("message_id"),
                    "sent_order": message_id,
                    "edits": 0,
                }
            body = {
                "ok": True,
                "result": {
                    "message_id": message_id,
                    "from": {"id": 123456789, "is_bot": True, "first_name": "echoops"},
                    "chat": {"id": int(payload["chat_id"]), "type": "supergroup", "title": "oncall"},
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
