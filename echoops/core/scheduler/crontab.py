"""The scheduler's job file: crontab lines parsed into Jobs, with line-numbered errors.

Format (one job a line, times in UTC):

    */15 * * * * echoops slo tick
    # */10 * * * * echoops scale tick            <- commented out: listed as disabled
    0 3 * * *    python3 /opt/backup.py --full    # name=backup

- Five cron fields (minute hour day-of-month month day-of-week) or one macro (`@hourly`,
  `@daily`, `@weekly`, `@monthly`, `@yearly`), then the command. The command is split
  like a shell would (shlex: quotes, backslashes) but never run through a shell, so
  pipes, `&&`, `$VARS` and globs are passed as plain arguments.
- A command starting with `echoops` runs as `python -m echoops …` with the scheduler's
  own interpreter, so jobs use the same install.
- `#` at the start of a line comments it out. A commented line that still reads as a job
  is a *disabled* job (the brief's rollback, "comment jobs"); any other comment is prose.
- The job's name is derived from the command: the words after `echoops` up to the first
  option (`echoops slo tick --json` -> "slo tick"), else the program's base name and its
  words (`python3 -c …` -> "python3"). A trailing `# name=NAME` sets it explicitly. Names
  of enabled jobs must be unique; a disabled line may repeat a name (an old version kept
  beside its replacement).
- `@local` before the command (`*/5 * * * * @local echoops slo ingest`) makes it a
  host-local job: every instance sharing a store runs it for its own files (request logs
  are ingested where they are written). Every other job runs only on the scheduler leader
  (`lease`); with SQLite (one box) the single scheduler always leads.
- A bad line (bad cron expression, no command, unbalanced quotes, a sixth time field) is an
  error naming the line number and its text; `load` reports every bad line at once.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from croniter import croniter

from echoops.core.config import Settings
from echoops.core.errors import ValidationError

DEFAULT_RESOURCE = "schedule.default.cron"
DEMO_RESOURCE = "schedule.demo.cron"  # every job every minute: `echoops up --demo` copies it into the demo log dir
LOCAL = "@local"  # before a command: a host-local job
MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,63}$")
_NAME_TAG = re.compile(r"\s#\s*name=(?P<name>[^#]*?)\s*$")
_LOOKS_LIKE_FIELD = re.compile(r"^[0-9*/,-]+$")


class ScheduleInvalid(ValidationError):
    """The job file has bad lines; `problems` holds one `line N: …` message per line."""

    code = "schedule_invalid"

    def __init__(self, path: Path, problems: list[str]):
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} bad line(s):\n{lines}", field="schedule")
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class Job:
    """One line of the job file."""

    name: str
    schedule: str  # the cron expression as written ("*/15 * * * *")
    command: str  # the command text as written
    argv: tuple[str, ...]  # shlex-split command (`echoops` not yet expanded)
    enabled: bool
    line: int
    local: bool = False  # `@local`: every instance runs it; otherwise only the leader

    def exec_argv(self) -> list[str]:
        """The argv to run: `echoops …` becomes `<this python> -m echoops …`."""
        if self.argv[0] == "echoops":
            return [sys.executable, "-m", "echoops", *self.argv[1:]]
        return list(self.argv)

    def next_after(self, ts: float) -> float:
        """The first slot strictly after `ts` (epoch s, UTC)."""
        return croniter(self.schedule, ts).get_next(float)

    def latest_at(self, ts: float) -> float:
        """The last slot at or before `ts` (epoch s, UTC). Slots fall on whole minutes."""
        return croniter(self.schedule, int(ts) + 0.5).get_prev(float)


@dataclass(frozen=True)
class Schedule:
    """The parsed job file and where it came from (`source`: "file" or "default")."""

    path: Path
    source: str
    jobs: tuple[Job, ...]

    @property
    def enabled(self) -> tuple[Job, ...]:
        return tuple(j for j in self.jobs if j.enabled)

    def find(self, name: str) -> Job | None:
        """The job called `name`, preferring the enabled one when a disabled line shares it."""
        matches = [j for j in self.jobs if j.name == name]
        return next((j for j in matches if j.enabled), matches[0] if matches else None)


def default_path() -> Path:
    """The default job file shipped inside the package (used when the configured one is missing)."""
    return Path(str(resources.files("echoops").joinpath(DEFAULT_RESOURCE)))


def demo_text() -> str:
    """The demo's job file as shipped (every job every minute)."""
    return resources.files("echoops").joinpath(DEMO_RESOURCE).read_text(encoding="utf-8")


def resolve(s: Settings) -> tuple[Path, str]:
    """(path, source) of the job file in use: ECHOOPS_SCHEDULE if it exists, else the packaged default."""
    configured = Path(s.schedule_file).absolute()
    if configured.exists():
        return configured, "file"
    return default_path(), "default"


def load(s: Settings) -> Schedule:
    """Parse the job file in use; ScheduleInvalid (exit 2) lists every bad line."""
    path, source = resolve(s)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScheduleInvalid(path, [f"cannot read the file: {exc}"]) from None
    return parse(text, path=path, source=source)


def parse(text: str, *, path: Path = Path("schedule.cron"), source: str = "file") -> Schedule:
    """Parse job-file text; ScheduleInvalid lists every bad line with its number and text."""
    jobs: list[Job] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            try:
                job = _parse_line(stripped.lstrip("#").strip(), number, enabled=False)
            except ValueError:
                continue  # prose comment
        else:
            try:
                job = _parse_line(stripped, number, enabled=True)
            except ValueError as exc:
                problems.append(f"line {number}: {exc}: {_shown(stripped)}")
                continue
            if job.name in seen:
                problems.append(
                    f"line {number}: job name {job.name!r} is already used on line {seen[job.name]}"
                    f" (add '# name=OTHER' to one of them): {_shown(stripped)}"
                )
                continue
            seen[job.name] = number
        jobs.append(job)
    if problems:
        raise ScheduleInvalid(path, problems)
    return Schedule(path=path, source=source, jobs=tuple(jobs))


def _shown(line: str) -> str:
    return repr(line if len(line) <= 200 else line[:200] + "…")


def _parse_line(line: str, number: int, *, enabled: bool) -> Job:
    """One job line (without a leading `#`) -> Job; ValueError with the reason otherwise."""
    name = None
    tag = _NAME_TAG.search(" " + line)
    if tag:
        name = tag.group("name")
        line = (" " + line)[: tag.start()].strip()
        if not _NAME.match(name):
            raise ValueError(f"bad job name {name!r} (letters, digits, space . _ : / -; at most 64)")
    if line.startswith("@"):
        parts = line.split(None, 1)
        if parts[0] not in MACROS:
            raise ValueError(f"unknown schedule {parts[0]!r} (use 5 fields or one of {', '.join(MACROS)})")
        expr, command = parts[0], (parts[1] if len(parts) > 1 else "")
    else:
        parts = line.split(None, 5)
        if len(parts) < 6:
            raise ValueError("expected 5 schedule fields (minute hour day month weekday) then a command")
        expr, command = " ".join(parts[:5]), parts[5]
    try:
        croniter(expr, 0.0)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"bad cron expression {expr!r} ({exc})") from None
    local = False
    words = command.split(None, 1)
    if words and words[0] == LOCAL:
        local, command = True, (words[1] if len(words) > 1 else "")
    try:
        argv = tuple(shlex.split(command, comments=True))
    except ValueError as exc:
        raise ValueError(f"cannot split the command ({exc})") from None
    if not argv:
        raise ValueError(f"missing command after the schedule{' and @local' if local else ''}")
    if _LOOKS_LIKE_FIELD.match(argv[0]):
        raise ValueError(f"command starts with {argv[0]!r}: a sixth time field? use 5 fields")
    return Job(
        name=name or derive_name(argv),
        schedule=expr,
        command=command.strip(),
        argv=argv,
        enabled=enabled,
        line=number,
        local=local,
    )


def derive_name(argv: tuple[str, ...] | list[str]) -> str:
    """Stable job name from a command: `echoops slo tick` -> "slo tick", `python3 -c …` -> "python3"."""
    words = list(argv[1:]) if argv[0] == "echoops" else [os.path.basename(argv[0]), *argv[1:]]
    kept: list[str] = []
    for word in words:
        if word.startswith("-") or not word.strip():
            break
        kept.append(word)
    name = " ".join(kept)[:64].strip()
    return name or "echoops"
