"""`echoops.env`: a folder's echoops settings, read by every `echoops` command run there.

`echoops up --demo` writes one in the working dir (the demo's log dir, host, port, schedule
and generated secrets), so a second terminal in the same folder reads the demo too. Anyone
may write one by hand. The environment beats the file: a variable set (non-empty) in the
environment is used as is, whatever the file says; delete the file to go back to the defaults
(`./logs`).

Syntax, a subset of what a POSIX shell reads, so `set -a; . ./echoops.env; set +a` loads the
same values into a shell (for curl): one `NAME=value` a line (`export NAME=value` too), `#`
starts a comment line, blank lines are skipped, a value may be quoted ('…' or "…", as the
shell would read it). A line that is none of these is an error naming the file and line.
The file holds secrets: it is written with mode 600, and git-ignored in the echoops checkout.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from echoops.core import files
from echoops.core.errors import ConfigError

NAME = "echoops.env"
_LINE = re.compile(r"^(?:export\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_PLAIN = re.compile(r"^[A-Za-z0-9_./:@,+=-]*$")  # written unquoted; anything else is shell-quoted


def parse(text: str, *, path: Path) -> dict[str, str]:
    """NAME -> value from the file's text; ConfigError naming the file and line on a bad line."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            # the text is not echoed: a line pasted without its NAME= may be a bare secret
            raise ConfigError(f"{path} line {number}: expected NAME=value")
        name = match["name"]
        try:
            values[name] = _value(match["value"])
        except ValueError as exc:
            raise ConfigError(f"{path} line {number}: {name}: {exc}") from None
    return values


def _value(text: str) -> str:
    """One shell word (quotes and backslashes as `sh` reads them), then only a `# comment`."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n and not text[i].isspace():
        c = text[i]
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ValueError("unterminated ' quote")
            out.append(text[i + 1 : end])
            i = end + 1
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$`':
                    i += 1
                out.append(text[i])
                i += 1
            if i >= n:
                raise ValueError('unterminated " quote')
            i += 1
        elif c == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    rest = text[i:].strip()
    if rest and not rest.startswith("#"):
        raise ValueError("quote a value that has spaces")
    return "".join(out)


def read(path: Path) -> dict[str, str] | None:
    """The file's settings, or None when it does not exist."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    return parse(text, path=Path(path))


def quote(value: str) -> str:
    """`value` as the file stores it: bare when plain, else quoted as a shell would read it."""
    return value if _PLAIN.match(value) else shlex.quote(value)


def update(path: Path, values: Mapping[str, str], *, header: str) -> None:
    """Set `values` in the file at `path` (created with `header`), keeping every other line.

    A line for one of `values` is replaced in place; the others are appended. The file is
    replaced atomically and is readable by its owner only (mode 600).
    """
    path = Path(path)
    try:
        old = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        old = [f"# {line}" if line else "#" for line in header.splitlines()]
    pending = dict(values)
    lines: list[str] = []
    for raw in old:
        match = _LINE.match(raw.strip())
        if match and match["name"] in values:
            if match["name"] in pending:
                lines.append(f"{match['name']}={quote(pending.pop(match['name']))}")
            continue  # a repeated line for a name we set: dropped (the last one would win anyway)
        lines.append(raw)
    lines.extend(f"{name}={quote(value)}" for name, value in pending.items())
    files.write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o600)
