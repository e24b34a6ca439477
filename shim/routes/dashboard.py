"""The dashboard shell (public, holds no data): `/` and `/static/<file>` from echoops/dashboard."""

from __future__ import annotations

from pathlib import Path

from bottle import static_file

import echoops


def _root() -> str:
    return str(Path(echoops.__file__).resolve().parent / "dashboard")


def index():
    resp = static_file("index.html", root=_root(), mimetype="text/html", charset="utf-8")
    resp.set_header("Cache-Control", "no-cache")
    return resp


def asset(filepath: str):
    resp = static_file(filepath, root=_root())
    resp.set_header("Cache-Control", "no-cache")
    return resp


def install(app) -> None:
    app.route("/", "GET", index)
    app.route("/static/<filepath:path>", "GET", asset)
