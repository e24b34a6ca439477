"""GET /api/openapi.json: the OpenAPI 3.1 document of every route (X-Dash-Key, like every /api route)."""

from __future__ import annotations

from functools import cache

from shim.http import json_response
from shim.openapi import document


@cache
def _document() -> dict:
    return document()


def openapi_json():
    return json_response(_document())


def install(app) -> None:
    app.route("/api/openapi.json", "GET", openapi_json)
