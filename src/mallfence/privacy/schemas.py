"""API shapes of data-subject requests."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErasureOut(BaseModel):
    shopper: str = Field(description="one-way hash of the erased shopper id, as the audit log records it")
    devices: int = Field(description="app installs erased (their tokens no longer work)")
    removed: dict[str, int] = Field(description="rows deleted (or redacted, for audit_log) per table")
