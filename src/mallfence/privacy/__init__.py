"""Personal data: export, erasure, retention."""

from __future__ import annotations

import hashlib


def pseudonym(value: str) -> str:
    """A one-way stand-in for a shopper or device id where a record must outlive the id (the audit log)."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
