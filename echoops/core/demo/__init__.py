"""Demo data. `history`: three days of synthetic inputs written at once (`echoops demo seed`).
`story` and `traffic`: the live demo app that goes on appending to them in real time, along a
15-minute scripted loop (`echoops demo traffic`, the third process of `echoops up --demo`).

Interface: `seed`, `is_empty`, `is_demo`, `INPUT_FILES`, `MARKER`, `Traffic`, `run_traffic`.
"""

from echoops.core.demo.history import INPUT_FILES, MARKER, is_demo, is_empty, seed, seed_purchases
from echoops.core.demo.traffic import Traffic
from echoops.core.demo.traffic import run as run_traffic

__all__ = ["INPUT_FILES", "MARKER", "Traffic", "is_demo", "is_empty", "run_traffic", "seed", "seed_purchases"]
