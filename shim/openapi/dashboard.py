"""The dashboard shell: public, holds no data."""

from shim.openapi import ERROR, Operation

OPERATIONS = (
    Operation("GET", "/", "The dashboard page", "public", {200: ("text/html", {"type": "string"})}, "dashboard"),
    Operation(
        "GET",
        "/static/{filepath}",
        "Dashboard scripts, styles and images",
        "public",
        {200: ("*/*", {"type": "string"}), 403: ERROR, 404: ERROR},
        "dashboard",
    ),
)
