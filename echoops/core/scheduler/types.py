"""The scheduler's result types (what `scheduler list --json` and GET /healthz say about the leader)."""

from typing import TypedDict


class Leader(TypedDict):
    """The instance holding the scheduler lease."""

    instance: str  # its ECHOOPS_INSTANCE
    until: str  # when its lease runs out unless renewed (ISO-8601 UTC)
    since: str  # when it took the lease
    epoch: int  # hand-overs so far (1 for the first leader of a store)


class Leadership(TypedDict):
    """Who leads the schedule, and whether this instance does."""

    instance: str  # this instance's ECHOOPS_INSTANCE
    leader: Leader | None  # None: no scheduler holds the lease now
    is_leader: bool
