"""AI model prices and exact money units for the cost guardrails.

Units (integers end to end, never accumulated floats):
- prices are micro-dollars per million tokens (`150_000` = $0.15/Mtok);
- so `tokens * price` is an exact amount in pico-dollars (1e-12 USD): µ$/Mtok == p$/token;
- caps are micro-dollars; spend is pico-dollars. Floats appear only at the JSON edge.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

PICO_PER_USD = 10**12
MICRO_PER_USD = 10**6
PICO_PER_MICRO = 10**6
CENTS_PER_USD = 100
# SQLite INTEGER is signed 64-bit: a day's spend per model saturates at ~$9.2M (a cap is hit long before).
MAX_PICO = 2**63 - 1

# List prices in USD per million tokens (input, output): OpenAI's pricing page
# (platform.openai.com/docs/pricing) as of June 2026 (copies of the page dated 2026-05/06,
# looked up 2026-11-27). Prices change: override or extend with
# MODEL_PRICES_JSON; a model missing here is priced at UNPRICED_DEFAULT and reported.
_LIST_PRICES_USD_PER_MTOK: dict[str, tuple[str, str]] = {
    "gpt-4o": ("2.50", "10.00"),
    "gpt-4o-mini": ("0.15", "0.60"),
    "gpt-4.1": ("2.00", "8.00"),
    "gpt-4.1-mini": ("0.40", "1.60"),
    "gpt-4.1-nano": ("0.10", "0.40"),
    "gpt-5": ("1.25", "10.00"),
    "gpt-5-mini": ("0.25", "2.00"),
    "gpt-5-nano": ("0.05", "0.40"),
    "o1": ("15.00", "60.00"),
    "o3": ("2.00", "8.00"),
    "o3-mini": ("1.10", "4.40"),
    "o4-mini": ("1.10", "4.40"),
    "gpt-3.5-turbo": ("0.50", "1.50"),
    "text-embedding-3-small": ("0.02", "0"),
    "text-embedding-3-large": ("0.13", "0"),
    "text-embedding-ada-002": ("0.10", "0"),
    # The brief's caps name "embeddings": an app may log that name; priced as the default embedding model.
    "embeddings": ("0.02", "0"),
}

# Cap groups: a cap named by the key also covers every model the predicate accepts (unless
# that model has a cap of its own), so `{"embeddings": 2}` caps text-embedding-3-small too.
CAP_GROUPS = {"embeddings": "embed"}

_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def _units(usd: float | int | str | Decimal, per_usd: int) -> int:
    try:
        value = Decimal(usd if isinstance(usd, (str, Decimal)) else repr(usd))
    except InvalidOperation:
        raise ValueError(f"not an amount: {usd!r}") from None
    return int((value * per_usd).to_integral_value(ROUND_HALF_EVEN))


def usd_to_micro(usd: float | int | str | Decimal) -> int:
    """A USD amount -> integer micro-dollars (half-even), via its decimal text so 0.15 stays 0.15."""
    return _units(usd, MICRO_PER_USD)


def usd_to_cents(usd: float | int | str | Decimal) -> int:
    """A USD amount -> integer cents (half-even), via its decimal text: 19.99 is 1999, never the
    1998 that int(19.99 * 100) gives."""
    return _units(usd, CENTS_PER_USD)


def usd_to_pico(usd: float | int) -> int:
    """A USD amount from a log line -> integer pico-dollars.

    Below $1000 `round(usd * 1e12)` is the exact pico value of the decimal the JSON held
    (error < 0.3 p$); above, go through Decimal. Callers bound `usd` first.
    """
    if usd < 1000:
        return round(usd * PICO_PER_USD)
    return int((Decimal(repr(usd)) * PICO_PER_USD).to_integral_value(ROUND_HALF_EVEN))


def pico_to_usd(pico: int) -> float:
    """Pico-dollars -> USD float rounded half-up to the micro-dollar in integers (the JSON edge only)."""
    return ((pico + PICO_PER_MICRO // 2) // PICO_PER_MICRO) / MICRO_PER_USD


def usd_text(usd: float) -> str:
    """A USD amount for people (messages, reasons): `$150.83`, `$1,204.00`; a non-zero amount under
    a cent keeps four decimals (`$0.0042`), one under $0.0001 reads `<$0.0001`. Events and JSON
    bodies keep the exact figure; only the words a person reads are rounded."""
    amount = abs(usd)
    sign = "-" if usd < 0 else ""
    if amount == 0 or amount >= 0.01:
        return f"{sign}${amount:,.2f}"
    return f"{sign}${amount:.4f}" if amount >= 0.0001 else f"{sign}<$0.0001"


def micro_to_usd(micro: int) -> float:
    """Micro-dollars (a cap) -> USD float (the JSON edge only)."""
    return micro / MICRO_PER_USD


def _table() -> dict[str, tuple[int, int]]:
    return {m: (usd_to_micro(i), usd_to_micro(o)) for m, (i, o) in _LIST_PRICES_USD_PER_MTOK.items()}


BUILTIN: dict[str, tuple[int, int]] = _table()
# Conservative default for a model we cannot price: the dearest input and output rates in the
# table, so an unknown model hits its caps early rather than being free.
UNPRICED_DEFAULT: tuple[int, int] = (max(p[0] for p in BUILTIN.values()), max(p[1] for p in BUILTIN.values()))


def price_table(overrides: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, tuple[int, int]]:
    """Built-in prices merged with MODEL_PRICES_JSON: model -> (input, output) in µ$/Mtok."""
    table = dict(BUILTIN)
    for model, prices in (overrides or {}).items():
        base_in, base_out = table.get(model, (0, 0))
        table[model] = (
            usd_to_micro(prices["input"]) if "input" in prices else base_in,
            usd_to_micro(prices["output"]) if "output" in prices else base_out,
        )
    return table


def canonical(model: str, known: Container[str]) -> str:
    """The name spend is recorded under: `gpt-4o-mini-2024-07-18` -> `gpt-4o-mini` when only the base is known."""
    if model in known:
        return model
    base = _DATE_SUFFIX.sub("", model)
    return base if base in known else model


def price_of(model: str, table: Mapping[str, tuple[int, int]]) -> tuple[int, int, bool]:
    """(input, output) µ$/Mtok for a canonical model name, and whether it was priced."""
    found = table.get(model)
    if found is None:
        return UNPRICED_DEFAULT[0], UNPRICED_DEFAULT[1], False
    return found[0], found[1], True


def cap_scope(model: str, cap_keys: Container[str]) -> str:
    """The cap a canonical model spends against: its own, a group's (`embeddings`), else itself (uncapped)."""
    if model in cap_keys:
        return model
    lowered = model.lower()
    for group, marker in CAP_GROUPS.items():
        if group in cap_keys and marker in lowered:
            return group
    return model
