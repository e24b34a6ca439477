"""One scheduler leader among the instances sharing a store: a lease row, renewed by its holder.

Every `scheduler run` (each `echoops up`) that is not `--local-only` tries, at each step, to
take or renew the row `scheduler_lease` ('leader'): one conditional UPDATE, which succeeds
for the holder (same `token`) or for anyone once `until` has passed. The holder renews it
every LEASE_S/3, so it stays leader while alive; when it dies (SIGKILL, a lost network, a
frozen host) nobody renews, and the first other instance to step after `until` takes it:
within one lease period (ECHOOPS_LEASE_S, default 30 s) of the last renewal.

The lease is judged by each instance's clock (`now`), so the hosts' clocks must agree to a
small part of the lease (NTP). A leader that loses the lease (it was frozen past `until`)
learns so at its next renewal and starts nothing more; a slot it had started runs to its
end. That a job never runs twice for one slot does not rest on the lease alone: the leader
claims each slot in `scheduler_slots` (job, slot) before starting it, in the same store,
and a slot claimed once is never started again, by any instance.

`epoch` counts the hand-overs (a fencing number for the events); `token` tells two
processes with the same ECHOOPS_INSTANCE apart. On SQLite (one box, one scheduler per log
dir) the single scheduler is always the leader, through the same row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from echoops.core import clock, store
from echoops.core.scheduler.types import Leadership

ROW = "leader"
RENEW_FRACTION = 3  # the holder renews when a third of the lease has passed


@dataclass
class Lease:
    """This process's bid for the leader lease (drive with `hold(now)`)."""

    conn: store.Conn
    instance: str
    lease_s: float
    token: str = ""
    held_until: float = 0.0  # the end of the lease this process holds (0: not the leader)
    renewed_at: float = 0.0
    epoch: int = 0

    def __post_init__(self) -> None:
        self.token = self.token or uuid.uuid4().hex

    def leading(self, now: float) -> bool:
        """True while this process holds an unexpired lease (as of its last renewal)."""
        return now < self.held_until

    def hold(self, now: float, *, force: bool = False) -> tuple[bool, bool]:
        """Take or renew the lease when due: (leading now, leadership changed at this call).
        `force` takes it whoever holds it (SQLite: the log dir's one scheduler)."""
        was = self.held_until > 0  # it led at its last call (a lease it let run out is lost now)
        if self.leading(now) and now - self.renewed_at < self.lease_s / RENEW_FRACTION:
            return True, False
        until = now + self.lease_s
        with store.transaction(self.conn):
            self.conn.execute(
                "INSERT INTO scheduler_lease(name, holder, token, until, epoch, acquired_at, renewed_at) "
                "VALUES(?, '', '', 0, 0, 0, 0) ON CONFLICT(name) DO NOTHING",
                (ROW,),
            )
            taken = self.conn.execute(
                "UPDATE scheduler_lease SET holder=?, until=?, renewed_at=?, "
                "epoch = CASE WHEN token=? THEN epoch ELSE epoch + 1 END, "
                "acquired_at = CASE WHEN token=? THEN acquired_at ELSE ? END, token=? "
                "WHERE name=? AND (token=? OR until <= ? OR ? = 1)",
                (self.instance, until, now, self.token, self.token, now, self.token, ROW, self.token, now, force),
            ).rowcount
            if taken:
                row = self.conn.execute("SELECT epoch FROM scheduler_lease WHERE name=?", (ROW,)).fetchone()
                self.epoch = row[0]
        if taken:
            self.held_until, self.renewed_at = until, now
        else:
            self.held_until = 0.0
        return bool(taken), bool(taken) != was

    def release(self, now: float) -> None:
        """Give the lease up at a clean stop (another instance takes it at its next step)."""
        if not self.held_until:
            return
        with store.transaction(self.conn):
            self.conn.execute(
                "UPDATE scheduler_lease SET until=? WHERE name=? AND token=?",
                (min(now, self.held_until), ROW, self.token),
            )
        self.held_until = 0.0


def claim_slot(conn: store.Conn, job: str, slot: float, instance: str, now: float) -> bool:
    """Record that `instance` starts `job`'s `slot`: False when it was claimed before (by anyone)."""
    with store.transaction(conn):
        return bool(
            conn.execute(
                "INSERT INTO scheduler_slots(job, slot, instance, claimed_at) VALUES(?,?,?,?) "
                "ON CONFLICT(job, slot) DO NOTHING",
                (job, slot, instance, now),
            ).rowcount
        )


def prune_slots(conn: store.Conn, before: float) -> None:
    """Forget slot claims older than `before` (a job's `last_slot` already says they ran)."""
    with store.transaction(conn):
        conn.execute("DELETE FROM scheduler_slots WHERE slot < ?", (before,))


def leader(conn: store.Conn, instance: str, now: float) -> Leadership:
    """Who leads now: {"instance", "leader": {"instance", "until", "since", "epoch"} | None,
    "is_leader"}; `is_leader` says whether `instance` (this ECHOOPS_INSTANCE) holds the lease."""
    row = conn.execute("SELECT holder, until, acquired_at, epoch FROM scheduler_lease WHERE name=?", (ROW,)).fetchone()
    if row is None or not row["holder"] or row["until"] <= now:
        return {"instance": instance, "leader": None, "is_leader": False}
    return {
        "instance": instance,
        "leader": {
            "instance": row["holder"],
            "until": clock.iso(row["until"]),
            "since": clock.iso(row["acquired_at"]),
            "epoch": row["epoch"],
        },
        "is_leader": row["holder"] == instance,
    }
