"""Types of the compiled ingest loops (_ingest.c)."""

from collections.abc import Callable
from typing import Any

def fold_requests(
    batch: list[Any],
    per: dict[int, list[int]],
    bcache: dict[Any, int],
    minutes: dict[str, int],
    oldest: int,
    epoch_lo: float,
    epoch_hi: float,
    key: Callable[[Any], int],
    careful: Callable[[Any, Any, Any], None],
    consts: tuple[int, int, int],
    /,
) -> None: ...
def fold_usage(
    batch: list[Any],
    per_day: dict[int, dict[str, list[int]]],
    minutes: dict[str, int],
    epoch_lo: float,
    epoch_hi: float,
    bad_model: list[int],
    to_pico: Callable[[float], int],
    careful: Callable[[Any], None],
    consts: tuple[int, int],
    /,
) -> int: ...
