"""The dashboard shell: public, holds no data."""

from shim.openapi import ERROR, Operation

OPERATIONS = (
    Operation("GET", "/", "The dashboard page", "public", {200: ("text/html", {"type": "string"})}, "dashboard"),
    Operation(
        "GET",
        "/static/{filepath}",
        "Dashboard scripts, styles and images (vendor/: versioned third-party files, cached for a year)",
        "public",
        {200: ("*/*", {"type": "string"}), 403: ERROR, 404: ERROR},
        "dashboard",
    ),
)
