"""Draining the outbox: every due delivery, in a loop (`page run`) or a server thread.

`drain` first does the upkeep that comes with time (silences and acks that ran out, escalations
that fell due: `upkeep`), then attempts what is due, resolves attempts whose result was never
recorded, and waits for short backoffs within its time budget. `BackgroundDrain` runs it in
each gunicorn worker: woken by an enqueue in that process, and every POLL_S seconds for pages
queued by the CLI or the scheduler, retries and escalations that have come due; beside it a
`presses.ButtonPoller` reads Telegram button presses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from echoops.core import clock
from echoops.core.config import Settings
from echoops.core.pager import escalation, model, outbox, silences, states
from echoops.core.pager.types import Upkeep

if TYPE_CHECKING:
    from echoops.core.pager.presses import ButtonPoller
from echoops.core.redact import redact

POLL_S = 2.0  # enqueues from other processes (CLI, scheduler) are picked up within this
_log = logging.getLogger("echoops.pager")


def upkeep(s: Settings, *, now: float | None = None) -> Upkeep:
    """What time changes: silences that ran out, acks that ran out (re-opened), and unacked
    CRITICALs due for escalation (queued). Each is done once, whoever runs it first."""
    conn = model.db(s)
    t = clock.now_s(now)
    return {
        "silences_expired": silences.expire(conn, s, t),
        "acks_expired": states.expire_acks(conn, s, t),
        "escalated": escalation.escalate_due(conn, s, t),
    }


def drain(
    s: Settings,
    *,
    now: float | None = None,
    budget_s: float = 60.0,
    stop: threading.Event | None = None,
    wake: threading.Event | None = None,
    with_upkeep: bool = True,
) -> dict[str, int]:
    """Attempt every due delivery; wait for backoffs that fall due within `budget_s` seconds.

    `now` shifts the clock (tests, `--now`): time still advances in real seconds from it. `wake`
    cuts a backoff wait short (a new enqueue in this process goes out at once). First the
    `upkeep` (unless `with_upkeep` is False). Returns counts of attempts by resulting state
    (edits of sent messages as `edit_<state>`), counting attempts whose result was never
    recorded and that this call resolved (see `outbox`).
    """
    conn = model.db(s)
    start_wall, start_mono = clock.now_s(now), time.monotonic()

    def current() -> float:
        return start_wall + (time.monotonic() - start_mono)

    owner = outbox.owner_id()
    counts: Counter[str] = Counter()
    if with_upkeep:
        upkeep(s, now=current())
    counts.update(outbox.resolve_unrecorded(conn, s, current()))
    while not (stop is not None and stop.is_set()):
        t = current()
        claimed = outbox.claim(conn, s, t, owner)
        if claimed is not None:
            state = outbox.attempt(conn, claimed, s, t, owner)["state"]
            counts[f"edit_{state}" if claimed[0]["kind"].startswith("edit_") else state] += 1
            continue
        nxt = conn.execute(
            "SELECT min(next_attempt_at) FROM pager_outbox WHERE state='pending' AND next_attempt_at IS NOT NULL "
            "AND (claimed_until IS NULL OR claimed_until <= ?)",
            (t,),
        ).fetchone()[0]
        remaining = budget_s - (time.monotonic() - start_mono)
        if nxt is None or nxt - t > remaining:
            break
        wait = max(0.05, min(nxt - t, remaining))
        if wake is not None:
            wake.wait(wait)
            wake.clear()
        elif stop is not None:
            stop.wait(wait)
        else:
            time.sleep(wait)
    return dict(counts)


class BackgroundDrain:
    """A daemon thread that drains the outbox when woken (an enqueue in this process) or
    every POLL_S seconds, so a CRITICAL is delivered within seconds without the scheduler."""

    def __init__(self, s: Settings):
        self.s = s
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="echoops-pager-drain", daemon=True)
        self.buttons: ButtonPoller | None = None

    def start(self) -> BackgroundDrain:
        model.ENQUEUE_LISTENERS.append(self.wake.set)
        self.thread.start()
        from echoops.core.pager import presses  # lazy: ~6 ms that every CLI command would pay; the server needs it

        self.buttons = presses.start_poller(self.s)
        return self

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self.wake.set()
        if self.wake.set in model.ENQUEUE_LISTENERS:
            model.ENQUEUE_LISTENERS.remove(self.wake.set)
        if self.buttons is not None:
            self.buttons.close(timeout)
        self.thread.join(timeout)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.wake.wait(POLL_S)
            self.wake.clear()
            if self.stop.is_set():
                break
            try:
                drain(self.s, budget_s=30.0, stop=self.stop, wake=self.wake)
            except Exception as exc:  # keep draining after a store hiccup; never leak a secret
                _log.warning("pager drain failed: %s", redact(f"{type(exc).__name__}: {exc}", self.s))
                self.stop.wait(POLL_S)


def start_background_drain(s: Settings) -> BackgroundDrain:
    """Start this process's drainer (gunicorn POST_FORK hook: one per worker)."""
    return BackgroundDrain(s).start()
