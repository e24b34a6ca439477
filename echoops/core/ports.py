"""Can `echoops serve` listen on host:port, and if not, who holds it: checked before gunicorn starts.

gunicorn meets a port in use with five bind retries a second apart and then exits 1 with its
own traceback-like lines; checking first answers in milliseconds with exit 2 and what to do.
The owner is found on Linux from /proc (the listening socket's inode in /proc/net/tcp{,6},
then the process holding it among /proc/*/fd); processes of other users are not readable,
so it may stay unknown.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from echoops.core.errors import ConfigError

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column


class PortInUse(ConfigError):
    """Another process listens on the port (exit 2, like any bad setting)."""

    code = "port_in_use"


def ensure_free(host: str, port: int) -> None:
    """Bind `host:port` as gunicorn will (SO_REUSEADDR) and let go; PortInUse or ConfigError if it cannot."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host {host!r} ({exc.strerror}): pass --host or set ECHOOPS_HOST") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                found = owner(port)
                by = f" (by PID {found[0]}, {found[1]})" if found else ""
                raise PortInUse(f"port {port} is in use{by}: pass --port or set ECHOOPS_PORT") from None
            if exc.errno == errno.EACCES:
                raise ConfigError(
                    f"cannot listen on port {port}: permission denied (ports below 1024 need root): "
                    "pass --port or set ECHOOPS_PORT"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(
                    f"cannot listen on {host}: not an address of this machine: pass --host or set ECHOOPS_HOST"
                ) from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def url(host: str, port: int) -> str:
    """The URL a browser on this machine opens for a server bound to `host:port`."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def owner(port: int, *, proc: Path = Path("/proc")) -> tuple[int, str] | None:
    """(pid, command name) of a process listening on TCP `port`, when /proc says (None otherwise)."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        pids = [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return None
    for pid_dir in sorted(pids, key=lambda p: int(p.name)):
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:  # another user's process, or it exited meanwhile
            continue
        if wanted.intersection(_links(fds)):
            try:
                name = (pid_dir / "comm").read_text().strip()
            except OSError:
                name = "?"
            return int(pid_dir.name), name
    return None


def _links(fds: list[Path]) -> set[str]:
    found = set()
    for fd in fds:
        try:
            found.add(os.readlink(fd))
        except OSError:  # closed meanwhile (the listing's own fd, for one)
            continue
    return found


def _listening_inodes(port: int, proc: Path) -> set[str]:
    found: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            try:
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
            except (IndexError, ValueError):
                continue
            if local_port == port and fields[9] != "0":
                found.add(fields[9])
    return found
