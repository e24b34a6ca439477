#!/usr/bin/env python3
"""Print the README's env-var table from echoops.core.config.VARS (the one source of truth).

Usage: python scripts/env_table.py            # print the table
       python scripts/env_table.py --write    # replace it in README.md between the markers
"""

from __future__ import annotations

import sys
from pathlib import Path

START = "<!-- env-table:start -->"
END = "<!-- env-table:end -->"
FEATURES = {
    "core": "core",
    "slo": "SLO (76)",
    "pager": "pager (77)",
    "portal": "portal (78)",
    "costs": "costs (79)",
    "scale": "scale (80)",
}


def table() -> str:
    from echoops.core.config import VARS

    rows = ["| variable | default | unit | feature | meaning |", "|---|---|---|---|---|"]
    for var in VARS:
        default = "(unset)" if var.default == "" else f"`{var.default}`"
        doc = var.doc.replace("|", "\\|")
        rows.append(f"| `{var.env}` | {default} | {var.unit} | {FEATURES[var.feature]} | {doc} |")
    return "\n".join(rows)


def main() -> int:
    text = table()
    if "--write" not in sys.argv:
        print(text)
        return 0
    readme = Path(__file__).resolve().parent.parent / "README.md"
    body = readme.read_text()
    head, _, rest = body.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
