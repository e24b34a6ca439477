"""The dashboard key's guard: who the client is, and how fast it may get the key wrong.

- `client_address(remote_addr, forwarded_for, s)`: the socket peer, or, when that peer is one
  of ECHOOPS_TRUSTED_PROXIES, the right-most address in X-Forwarded-For that is not a trusted
  proxy (the left part of the header is whatever the client wrote, so it is never believed).
- `retry_after(client)` / `record_failure(client)`: each wrong or missing key counts against
  the client in the store (`auth_failures`, shared by every gunicorn worker). At
  ECHOOPS_AUTH_FAILURES_PER_MIN failures (default 10) inside WINDOW_S the client gets 429 with
  Retry-After until the window ends, whatever key it sends: answering a right key from it would tell a guesser it
  hit. Other clients are unaffected. IPv6 clients count per /64, the block one host is given.
  If the store cannot be used, the count lives in this process's memory instead (per worker:
  at most the limit x workers guesses a window), never "no limit".
"""

from __future__ import annotations

import functools
import ipaddress
import math
import threading
import time

from echoops.core import store
from echoops.core.config import Settings

WINDOW_S = 60.0

SCHEMA = store.Schema(
    "auth",
    (
        """
        CREATE TABLE auth_failures (
            client TEXT PRIMARY KEY,
            window_start REAL NOT NULL,
            failures INTEGER NOT NULL
        );
        """,
    ),
)

_memory: dict[str, tuple[float, int]] = {}  # fallback when the store fails: client -> (start, failures)
_memory_lock = threading.Lock()


def _trusted(address: str, s: Settings) -> bool:
    if not s.trusted_proxies:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net) for net in s.trusted_proxies)


def client_address(remote_addr: str | None, forwarded_for: str | None, s: Settings) -> str | None:
    """The client's address: the peer, or the nearest untrusted hop of X-Forwarded-For behind a trusted proxy."""
    if not remote_addr or not forwarded_for or not _trusted(remote_addr, s):
        return remote_addr
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote_addr  # a malformed hop: believe only the socket
        if not _trusted(hop, s):
            return hop
    return hops[0] if hops else remote_addr


@functools.lru_cache(maxsize=4096)
def client_key(address: str | None) -> str:
    """What failures count against: the IPv4 address, the IPv6 /64, or the raw text (memoised:
    every /api request asks, for the few addresses a dashboard is used from)."""
    if not address:
        return "?"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _wait(start: float, failures: int, now: float, limit: int) -> int:
    if failures < limit or now >= start + WINDOW_S:
        return 0
    return max(1, math.ceil(start + WINDOW_S - now))


# client -> (store.change_stamp before the read, its auth_failures row): every admin request
# asks, and a query a request cost ~30% of a cached route's throughput (bench/slo_status_http.py).
# The stamp names the store's file (device, inode), so another store never matches it.
_seen: dict[str, tuple[tuple, tuple | None]] = {}
_SEEN_MAX = 10_000


def retry_after(address: str | None, *, s: Settings, now: float | None = None) -> int:
    """Seconds `address` must wait before its key is looked at again (0: go ahead). The row is
    read again only when something was committed to the store since it was last read."""
    t = time.time() if now is None else now
    key = client_key(address)
    try:
        conn = store.db(s, SCHEMA)
        stamp = store.change_stamp(conn)
        seen = _seen.get(key) if stamp is not None else None
        if seen is not None and seen[0] == stamp:
            row = seen[1]
        else:
            found = conn.execute("SELECT window_start, failures FROM auth_failures WHERE client=?", (key,)).fetchone()
            row = None if found is None else (found[0], found[1])
            if stamp is not None:
                if len(_seen) >= _SEEN_MAX:
                    _seen.clear()
                _seen[key] = (stamp, row)
    except Exception as exc:
        if store.unavailable(exc) is None:
            raise
        row = _memory.get(key)
    return _wait(row[0], row[1], t, s.auth_failures_per_min) if row else 0


def record_failure(address: str | None, *, s: Settings, now: float | None = None) -> int:
    """Count one wrong or missing key from `address`; returns the seconds it must now wait (0: none)."""
    t = time.time() if now is None else now
    key = client_key(address)
    try:
        conn = store.db(s, SCHEMA)
        with store.transaction(conn):
            # a window that ended starts again at 1; expired rows of other clients are swept
            conn.execute(
                "INSERT INTO auth_failures(client, window_start, failures) VALUES (?, ?, 1) "
                "ON CONFLICT(client) DO UPDATE SET "
                "failures = CASE WHEN auth_failures.window_start <= ? THEN 1 ELSE auth_failures.failures + 1 END, "
                "window_start = CASE WHEN auth_failures.window_start <= ? THEN excluded.window_start "
                "ELSE auth_failures.window_start END",
                (key, t, t - WINDOW_S, t - WINDOW_S),
            )
            conn.execute("DELETE FROM auth_failures WHERE window_start <= ? AND client != ?", (t - WINDOW_S, key))
            row = conn.execute("SELECT window_start, failures FROM auth_failures WHERE client=?", (key,)).fetchone()
        return _wait(row[0], row[1], t, s.auth_failures_per_min)
    except Exception as exc:
        if store.unavailable(exc) is None:
            raise
    with _memory_lock:
        start, failures = _memory.get(key, (t, 0))
        if start <= t - WINDOW_S:
            start, failures = t, 0
        _memory[key] = (start, failures + 1)
        for other in [k for k, (st, _) in _memory.items() if st <= t - WINDOW_S]:
            del _memory[other]
        return _wait(start, failures + 1, t, s.auth_failures_per_min)
