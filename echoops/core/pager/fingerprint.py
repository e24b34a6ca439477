"""Incident fingerprints: one stable key per kind of problem, whatever its volatile details."""

from __future__ import annotations

import hashlib
import re

# Order matters: UUIDs and hex ids before bare numbers, so "a1b2c3d4e5" is one token.
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_HEX_PREFIXED = re.compile(r"\b0[xX][0-9a-fA-F]+\b")
# A hex run of 6+ chars that holds at least one digit (a commit, request or object id),
# so ordinary words such as "deadline" or "facade" stay words.
_HEX_ID = re.compile(r"\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{6,}\b")
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*")
_SPACE = re.compile(r"\s+")


def normalize(msg: str) -> str:
    """`msg` lower-cased, with UUIDs, hex ids and numbers replaced by `#`, spaces collapsed.

    One placeholder for all three: an id that happens to be all digits ("000123") and one
    with letters ("0f3a21") are the same kind of volatile part.
    """
    text = _UUID.sub("#", msg)
    text = _HEX_PREFIXED.sub("#", text)
    text = _HEX_ID.sub("#", text)
    text = _NUMBER.sub("#", text)
    return _SPACE.sub(" ", text).strip().lower()


def fingerprint(source: str, msg: str) -> str:
    """sha256 hex of `source` and the normalised message: "timeout after 31s" == "… 29s"."""
    key = source.strip().lower() + "\n" + normalize(msg)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
