"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, parsed.

    with FakeSMTP() as smtp:                       # plain; FakeSMTP(tls="starttls"|"ssl", cert=...)
        monkeypatch.setenv("SMTP_HOST", "127.0.0.1"); monkeypatch.setenv("SMTP_PORT", str(smtp.port))
        smtp.script_data("451 4.3.0 try later", "250")  # DATA replies for the next messages
        ...
        smtp.messages   # [email.message.EmailMessage], what was accepted with 250
        smtp.logins     # [(user, password)] accepted AUTH LOGIN/PLAIN

`script_data` replies are consumed in order ("250" = accept normally); `delay_data(s)`
makes the next DATA reply wait (client timeouts); `on_data(envelope)`, when set, runs before
each DATA reply (in the server's thread). `make_cert(dir)` writes a throwaway CA
and a 127.0.0.1 server certificate with the openssl CLI (the CA goes in SSL_CERT_FILE for
clients that must verify it).
"""

from __future__ import annotations

import ssl
import subprocess
import time
from collections import deque
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port

USER = "pager@example.com"
PASSWORD = "smtp-pass-Secret-0123456789"


class _Handler:
    def __init__(self, fake: FakeSMTP):
        self.fake = fake

    async def handle_DATA(self, server, session, envelope):
        import asyncio

        delay = self.fake._delays.popleft() if self.fake._delays else 0
        if delay:
            await asyncio.sleep(delay)
        reply = self.fake._data.popleft() if self.fake._data else "250"
        self.fake.attempts += 1
        if self.fake.on_data is not None:
            self.fake.on_data(envelope)
        if reply == "250":
            msg = message_from_bytes(envelope.content, policy=policy.default)
            self.fake.messages.append(msg)
            self.fake.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 2.0.0 OK queued"
        return reply


class FakeSMTP:
    def __init__(self, *, tls: str = "none", cert: tuple[Path, Path] | None = None, auth: bool = False):
        self.messages: list = []
        self.envelopes: list = []
        self.logins: list = []
        self.attempts = 0
        self.on_data = None
        self._data: deque[str] = deque()
        self._delays: deque[float] = deque()
        self.port = free_port()
        kwargs: dict = {}
        ctx = None
        if cert is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        if tls == "starttls":
            kwargs["tls_context"] = ctx
        elif tls == "ssl":
            kwargs["ssl_context"] = ctx
        if auth:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = False
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if (user, password) == (USER, PASSWORD):
                self.logins.append((user, password))
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def configure(self, monkeypatch, tls: str = "none") -> None:
        """Point the pager's SMTP_* settings at this server (two recipients, 2 s timeout)."""
        monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("SMTP_PORT", str(self.port))
        monkeypatch.setenv("SMTP_FROM", "echoops@example.com")
        monkeypatch.setenv("SMTP_TO", "oncall@example.com,backup@example.com")
        monkeypatch.setenv("SMTP_TLS", tls)
        monkeypatch.setenv("SMTP_TIMEOUT_S", "2")

    def script_data(self, *replies: str) -> None:
        self._data.extend(replies)

    def delay_data(self, *seconds: float) -> None:
        self._delays.extend(seconds)

    def __enter__(self) -> FakeSMTP:
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()

    def wait_messages(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < n:
            time.sleep(0.05)
        return len(self.messages) >= n


def make_cert(directory: Path) -> tuple[Path, Path, Path]:
    """(server cert, server key, CA cert) for 127.0.0.1, signed by a throwaway CA."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=echoops test CA")  # fmt: skip
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")  # fmt: skip
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return d / "server.pem", d / "server.key", d / "ca.pem"
