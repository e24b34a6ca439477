"""Baseline for the /healthz benchmark: one Bottle route, nothing else.

Served by bench/foundation_healthz.py through the same Bottle gunicorn adapter and the same
`shim.server.gunicorn_options` as `echoops serve`.
"""

from bottle import Bottle

app = Bottle()
app.route("/", "GET", lambda: "ok")
