"""Thin Typer sub-apps: parse, make one core call, render."""
