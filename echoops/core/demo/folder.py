"""What `echoops up --demo` sets up in the working dir, so every later command there reads the demo.

- Settings: the log dir (./logs/demo unless ECHOOPS_LOG_DIR is set), host, port, schedule and
  the generated secrets (a dashboard key, a portal signing secret) go into ./echoops.env
  (core/envfile.py), mode 600. A second terminal's `echoops slo status` reads the demo, and a
  second `up --demo` reuses the same key and secret. A value set in the environment wins, and
  secrets that came from the environment are never copied into the file.
- The log dir: seeded with the history once (when it holds none of the demo's inputs), and
  given the demo's schedule (every job every minute) when it has none.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from echoops.core import config, envfile, files
from echoops.core.config import Settings
from echoops.core.demo import history
from echoops.core.scheduler import crontab

LOG_DIR = Path("logs") / "demo"
SCHEDULE = "schedule.cron"  # in the demo log dir
HEADER = (
    "echoops settings for this folder, written by `echoops up --demo`: every echoops command run\n"
    "here reads them (a variable set in the environment wins). It holds the demo's dashboard key\n"
    "and signing secret: keep it private (mode 600, git-ignored). Delete it to go back to ./logs.\n"
    "In a shell (for curl): set -a; . ./echoops.env; set +a"
)


@dataclass
class DemoSettings:
    """What the demo adds to the children's environment and writes into echoops.env."""

    env: dict[str, str] = field(default_factory=dict)  # for the child processes (absolute paths)
    file: dict[str, str] = field(default_factory=dict)  # for ./echoops.env (paths as given)
    key: str | None = None  # a key echoops may print: generated now, or the demo's own from echoops.env


def settings(
    environ: Mapping[str, str],
    merged: Mapping[str, str],
    *,
    host: str,
    port: int,
    url: str,
    mint: Callable[[int], str] | None = None,
) -> DemoSettings:
    """The demo's settings given the real environment and the environment over echoops.env.

    `host`, `port` and `url` are the effective ones (`up --host/--port` or the settings).
    """
    mint = mint or secrets.token_urlsafe
    out = DemoSettings()

    def given(name: str, where: Mapping[str, str]) -> str | None:
        value = (where.get(name) or "").strip()
        return value or None

    log_dir = given("ECHOOPS_LOG_DIR", merged)
    if log_dir is None:
        out.env["ECHOOPS_LOG_DIR"] = str(LOG_DIR.absolute())
        log_dir = str(LOG_DIR)
    out.file["ECHOOPS_LOG_DIR"] = log_dir
    out.file["ECHOOPS_HOST"], out.file["ECHOOPS_PORT"] = host, str(port)
    out.env["ECHOOPS_HOST"], out.env["ECHOOPS_PORT"] = host, str(port)
    if given("ECHOOPS_SCHEDULE", environ) is None:
        out.file["ECHOOPS_SCHEDULE"] = str(Path(log_dir) / SCHEDULE)
        out.env["ECHOOPS_SCHEDULE"] = str((Path(log_dir) / SCHEDULE).absolute())
    for name, size in (("DASHBOARD_KEY", 24), ("PORTAL_SIGNING_SECRET", 48)):
        if given(name, environ) is not None:
            continue  # the operator's own secret: used, never copied into a file or printed
        value = given(name, merged) or mint(size)  # the demo's, from echoops.env, or a new one
        out.env[name] = out.file[name] = value
        if name == "DASHBOARD_KEY":
            out.key = value
    if given("PORTAL_BASE_URL", environ) is None:
        out.env["PORTAL_BASE_URL"] = out.file["PORTAL_BASE_URL"] = url.rstrip("/")  # links point here
    return out


def write_settings(values: Mapping[str, str]) -> Path:
    """Set `values` in ./echoops.env (or ECHOOPS_ENV_FILE), keeping every other line of it."""
    path = config.env_file_path()
    envfile.update(path, values, header=HEADER)
    return path


def prepare(s: Settings, *, say: Callable[[str], None]) -> bool:
    """Seed the log dir when it holds no demo inputs, give it the demo schedule when it has none;
    True when it is a demo log dir (the live traffic may write there)."""
    s.log_dir.mkdir(parents=True, exist_ok=True)
    if history.is_empty(s=s):
        counts = history.seed(s=s)["counts"]
        say(f"Seeded demo data in {s.log_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    elif s.log_dir.absolute() == LOG_DIR.absolute() and not history.is_demo(s=s):
        # seeded by an echoops from before the marker, at the demo's own default path
        files.write_json(s.log_path(history.MARKER), {"seeded_at": None, "by": "echoops up --demo"})
    schedule = s.log_dir / SCHEDULE
    if Path(s.schedule_file).absolute() == schedule.absolute() and not schedule.exists():
        files.write_bytes(schedule, crontab.demo_text().encode())
    return history.is_demo(s=s)
