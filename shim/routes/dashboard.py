"""The dashboard shell (public, holds no data): `/` and `/static/<file>` from echoops/dashboard.

The shell's own files are revalidated on every load (`no-cache`: an upgrade shows at once).
Third-party files under `vendor/` carry their version in their name (chart-4.6.1.umd.js), so a
browser may keep them for a year without asking (`immutable`); an upgrade is a new name.
"""

from __future__ import annotations

from pathlib import Path

from bottle import static_file

import echoops

VENDOR_CACHE = "public, max-age=31536000, immutable"


def _root() -> str:
    return str(Path(echoops.__file__).resolve().parent / "dashboard")


def index():
    resp = static_file("index.html", root=_root(), mimetype="text/html", charset="utf-8")
    resp.set_header("Cache-Control", "no-cache")
    return resp


def asset(filepath: str):
    # RFC 9239: JavaScript is text/javascript (the system's mime.types may say otherwise)
    mimetype: str | bool = "text/javascript" if filepath.endswith(".js") else True
    resp = static_file(filepath, root=_root(), mimetype=mimetype, charset="utf-8")
    resp.set_header("Cache-Control", VENDOR_CACHE if filepath.startswith("vendor/") else "no-cache")
    return resp


def install(app) -> None:
    app.route("/", "GET", index)
    app.route("/static/<filepath:path>", "GET", asset)
