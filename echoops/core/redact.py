"""Secret redaction for any text leaving echoops: logs, exception messages, CLI and HTTP output.

Telegram puts the bot token in the URL path (`/bot<token>/sendMessage`), so any exception
that quotes a URL would leak it; every secret in Settings (and any extra given) is masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from echoops.core.config import Settings

# A bot token wherever it sits in a URL, even one this process was not configured with.
# Bot tokens are `<bot id>:<secret>`; the colon may arrive percent-encoded.
_BOT_PATH = re.compile(r"/bot[0-9]+(?::|%3[aA])[A-Za-z0-9_-]+")
MASK = "<redacted>"


def redact(text: object, s: Settings | None = None, extra: Iterable[str | None] = ()) -> str:
    """`text` as a string with every secret of `s` (and of `extra`) and any `/bot<token>` masked."""
    out = _BOT_PATH.sub("/bot" + MASK, str(text))
    secrets: list[str] = [x for x in extra if x]
    if s is not None:
        secrets.extend(s.secrets())
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= 4:
            out = out.replace(secret, MASK)
    return out
