"""Email delivery with smtplib: one attempt per call, certificates verified, timeouts set.

TLS per Settings.smtp_tls_mode: `ssl` (SMTPS, implicit TLS), `starttls` (upgrade required:
a server that does not offer it is an error, never a silent plain-text fallback) or `none`.
Done only when the DATA reply is 250. Timeouts, disconnects and 4xx replies retry;
5xx replies, refused logins, certificate failures and a header value that cannot be encoded
(a CR, LF or U+2028 in the subject or fingerprint) do not: another try builds the same message.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from echoops.core.config import Settings
from echoops.core.pager.channels import MARKS, Outcome, Page
from echoops.core.redact import redact

MAX_SUBJECT = 180


def compose(page: Page, s: Settings) -> EmailMessage:
    """The page as a plain-text email (Message-ID from the incident, so receivers can dedup)."""
    msg = EmailMessage()
    subject = page.headline
    msg["Subject"] = subject if len(subject) <= MAX_SUBJECT else subject[: MAX_SUBJECT - 1] + "…"
    msg["From"] = s.smtp_from
    msg["To"] = ", ".join(s.smtp_to)
    msg["Date"] = formatdate(usegmt=True)
    kind = "test" if page.test else "page"
    msg["Message-ID"] = f"<{page.incident_id}.{kind}@echoops>"
    msg["X-Echoops-Fingerprint"] = page.fingerprint
    msg.set_content(f"{page.severity} from {page.source}\n\n{page.msg}\n\n{meta_lines(page)}{page.details()}\n")
    return msg


def meta_lines(page: Page) -> str:
    """The raise's `meta` as `key: value` lines and a blank line ("" without meta)."""
    pairs = page.meta_pairs()
    return "".join(f"{key}: {value}\n" for key, value in pairs) + "\n" if pairs else ""


def tls_context(s: Settings) -> ssl.SSLContext:
    """Verifying TLS context: the system's CAs plus SMTP_CA_FILE's (a private CA's bundle)."""
    context = ssl.create_default_context()
    if s.smtp_ca_file is not None:
        context.load_verify_locations(cafile=str(s.smtp_ca_file))
    return context


def _open(s: Settings, context: ssl.SSLContext) -> smtplib.SMTP:
    mode, host = s.smtp_tls_mode, s.smtp_host
    if not host:  # the outbox skips email without it; a direct call gets a clear failure
        raise smtplib.SMTPException("SMTP_HOST is not set")
    if mode == "ssl":
        return smtplib.SMTP_SSL(host, s.smtp_port, timeout=s.smtp_timeout_s, context=context)
    conn = smtplib.SMTP(host, s.smtp_port, timeout=s.smtp_timeout_s)
    try:
        conn.ehlo()
        if mode == "starttls":
            if not conn.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError("server does not offer STARTTLS (set SMTP_TLS=none to allow plain)")
            conn.starttls(context=context)
            conn.ehlo()
    except BaseException:
        conn.close()
        raise
    return conn


def _reply(code: int, text: bytes | str, s: Settings) -> str:
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return redact(f"{code} {raw}"[:300], s)


def send(page: Page, s: Settings) -> list[Outcome]:
    """One delivery attempt of `page` to SMTP_TO through SMTP_HOST."""
    recipients = page.to or s.smtp_to
    try:
        message = compose_for(page, s)
        message.as_bytes()  # the headers are encoded here: fail before connecting
    except (ValueError, UnicodeError) as exc:
        return [Outcome(False, "header_unencodable", False, detail=redact(f"cannot build the email: {exc}", s))]
    try:
        context = tls_context(s)
    except (OSError, ssl.SSLError) as exc:  # checked as PEM at start-up; unusable as a CA bundle
        return [Outcome(False, "SMTP_CA_FILE", False, detail=redact(f"SMTP_CA_FILE cannot be loaded: {exc}", s))]
    conn = None
    try:
        conn = _open(s, context)
        if s.smtp_user and s.smtp_pass:
            conn.login(s.smtp_user, s.smtp_pass)
        code, text = conn.mail(s.smtp_from or "")  # configured: the outbox skips email without it
        if code != 250:
            return [Outcome(False, code, 400 <= code < 500, detail=_reply(code, text, s))]
        accepted = 0
        last = (0, b"")
        for rcpt in recipients:
            code, text = conn.rcpt(rcpt)
            last = (code, text)
            accepted += code in (250, 251)
        if not accepted:
            conn.rset()
            return [Outcome(False, last[0], 400 <= last[0] < 500, detail=_reply(*last, s))]
        # CRLF line ends (RFC 5321 2.3.8): smtplib fixes them only in str messages, and servers refuse bare
        # LFs (Postfix's smtpd_forbid_bare_newline) or read the whole message as one over-long line.
        code, text = conn.data(
            message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        )  # SMTPDataError unless 250
        detail = _reply(code, text, s)
        if accepted < len(recipients):
            detail += f" ({len(recipients) - accepted} recipient(s) refused)"
        return [Outcome(code == 250, code, 400 <= code < 500, detail=detail)]
    except smtplib.SMTPResponseException as exc:  # data/login/helo errors carry a code
        code = exc.smtp_code
        return [Outcome(False, code, 400 <= code < 500, detail=_reply(code, exc.smtp_error, s))]
    except (smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError) as exc:
        # No STARTTLS on offer or an untrusted certificate: another try meets the same server.
        return [Outcome(False, type(exc).__name__, False, detail=redact(exc, s))]
    except (smtplib.SMTPServerDisconnected, TimeoutError, OSError, smtplib.SMTPException) as exc:
        # Timeouts, resets, refused connections, TLS handshakes cut short: worth another try.
        return [Outcome(False, type(exc).__name__, True, detail=redact(exc, s))]
    finally:
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


# --- answerable pages (issue 15): escalations, resolved notices, ack/resolve links ---------


def message_id(page: Page) -> str:
    """The Message-ID of `page`'s email: one per incident and kind (and escalation target), so a
    re-sent copy folds into the first and a resolved notice can thread under its page."""
    if page.test:
        return f"<{page.incident_id}.test@echoops>"
    if page.kind == "escalate":
        dest = "escalate" if page.to else "main"
        return f"<{page.incident_id}.escalate.{dest}@echoops>"
    return f"<{page.incident_id}.{page.kind}@echoops>"


def compose_for(page: Page, s: Settings) -> EmailMessage:
    """compose() for any kind of message: its own Message-ID, the escalation recipients when
    `page.to` names them, a resolved notice threaded under the page (In-Reply-To), the
    incident's state line, and the signed ack/resolve links (`page.links`) below the details."""
    msg = compose(page, s)
    del msg["Message-ID"]
    msg["Message-ID"] = message_id(page)
    if page.to:
        del msg["To"]
        msg["To"] = ", ".join(page.to)
    if page.ref:
        msg["In-Reply-To"] = page.ref
        msg["References"] = page.ref
    body = msg.get_content()
    if page.kind in MARKS:
        body = f"{MARKS[page.kind].strip(' []')}\n\n{body}"
    if page.status:
        body += f"\n{page.status}\n"
    if page.links:
        body += "\n" + "".join(f"{label}: {url}\n" for label, url in page.links)
    msg.set_content(body)
    return msg
