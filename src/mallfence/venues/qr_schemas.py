"""API shapes of QR codes and signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from mallfence.venues.schemas import Strict

CODE = r"^[A-Za-z0-9_-]{1,64}$"
Sku = Field(None, min_length=1, max_length=64, pattern=r"^\S+$", description="product at this shelf")


class QrCodeIn(Strict):
    """A code bound to a zone (``zone_id``), a store (``store_id``) or a shelf (``store_id`` + ``sku``)."""

    code: str | None = Field(None, pattern=CODE, description="public id printed in the code; generated if omitted")
    label: str | None = Field(None, max_length=200)
    zone_id: int | None = None
    store_id: int | None = None
    sku: str | None = Sku
    position: tuple[float, float] | None = Field(None, description="[lon, lat] where it hangs; default: a point "
                                                 "inside its zone")
    level: int | None = Field(None, ge=-20, le=200, description="level of position; default: its zone's level")
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    active: bool = True

    @model_validator(mode="after")
    def _binding(self) -> QrCodeIn:
        if (self.zone_id is None) == (self.store_id is None):
            raise ValueError("bind the code to exactly one of zone_id or store_id (with sku for a shelf)")
        if self.sku is not None and self.store_id is None:
            raise ValueError("sku needs store_id: a shelf is in a store")
        _window(self.valid_from, self.valid_until)
        return self


def _window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise ValueError("valid_until must be after valid_from")


class QrCodeUpdate(Strict):
    """Fields to change. A printed code keeps its payload: rebinding it moves what scanning it means."""

    label: str | None = Field(None, max_length=200)
    zone_id: int | None = None
    store_id: int | None = None
    sku: str | None = Sku
    position: tuple[float, float] | None = None
    level: int | None = Field(None, ge=-20, le=200)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _binding(self) -> QrCodeUpdate:
        if self.zone_id is not None and self.store_id is not None:
            raise ValueError("bind the code to one of zone_id or store_id, not both")
        _window(self.valid_from, self.valid_until)
        return self


class QrCodeOut(BaseModel):
    id: int
    code: str
    label: str | None
    target: Literal["zone", "store", "shelf"]
    zone_id: int | None
    store_id: int | None
    sku: str | None
    position: tuple[float, float] | None
    level: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    active: bool
    payload: str = Field(description="the text to print as a QR code, signed with the venue's current key")
    kid: str


class QrImportSummary(BaseModel):
    created: int
    updated: int
    unchanged: int
    codes: int


class SigningKeyOut(BaseModel):
    purpose: Literal["qr", "identity", "commerce"]
    kid: str
    created_at: datetime
    retired_at: datetime | None
    signing: bool = Field(description="the key new codes are signed with")


class SigningKeyCreated(SigningKeyOut):
    secret: str | None = Field(None, description="commerce keys only: the HMAC secret your POS / ERP / commerce "
                                                 "system signs its webhooks with; shown once, store it")


class QrFile(BaseModel):
    """``zones/*-qr.json``: codes bound by external ids, portable between installations."""

    venue: str | None = None
    codes: list[dict[str, Any]] = Field(max_length=10_000)
