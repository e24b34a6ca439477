"""WSGI entry point for any server: `gunicorn shim.wsgi:app`."""

from shim.app import app

__all__ = ["app"]
