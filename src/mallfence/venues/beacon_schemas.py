"""API shapes of the beacon registry."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from mallfence.spatial.beacon_keys import eddystone_key, eddystone_power_1m, ibeacon_key, parse_beacon_key
from mallfence.venues.schemas import Strict

DEFAULT_POWER_1M = -59.0  # typical iBeacon calibration at 1 m; survey it per beacon where you can
Power1m = Field(None, ge=-110, le=0, description="RSSI at 1 m in dBm (iBeacon 'measured power')")
TxPower0m = Field(None, ge=-100, le=20, description="Eddystone calibrated power at 0 m, dBm; converted to 1 m")


class BeaconIdentity(Strict):
    """One of: ``key`` (canonical or any accepted spelling), iBeacon ``uuid``+``major``+``minor``,
    or Eddystone-UID ``namespace``+``instance``."""

    key: str | None = Field(None, max_length=100, description="ibeacon:<uuid>:<major>:<minor> or "
                                                                "eddystone:<namespace>:<instance>")
    uuid: str | None = Field(None, max_length=40)
    major: int | None = Field(None, ge=0, le=65535)
    minor: int | None = Field(None, ge=0, le=65535)
    namespace: str | None = Field(None, max_length=20, description="Eddystone-UID namespace, 20 hex digits")
    instance: str | None = Field(None, max_length=12, description="Eddystone-UID instance, 12 hex digits")

    def canonical_key(self) -> str | None:
        """The canonical key, None when no identity field is set; ValueError when malformed or ambiguous."""
        forms = [self.key is not None, self.uuid is not None or self.major is not None or self.minor is not None,
                 self.namespace is not None or self.instance is not None]
        if sum(forms) > 1:
            raise ValueError("give one identity: key, or uuid+major+minor, or namespace+instance")
        if self.key is not None:
            return parse_beacon_key(self.key)
        if forms[1]:
            if self.uuid is None or self.major is None or self.minor is None:
                raise ValueError("an iBeacon needs uuid, major and minor")
            return ibeacon_key(self.uuid, self.major, self.minor)
        if forms[2]:
            if self.namespace is None or self.instance is None:
                raise ValueError("an Eddystone-UID beacon needs namespace and instance")
            return eddystone_key(self.namespace, self.instance)
        return None


def power_from(power_1m: float | None, tx_power_0m: float | None) -> float | None:
    if power_1m is not None and tx_power_0m is not None:
        raise ValueError("give power_1m or tx_power_0m, not both")
    return eddystone_power_1m(tx_power_0m) if tx_power_0m is not None else power_1m


class BeaconIn(BeaconIdentity):
    external_id: str | None = Field(None, min_length=1, max_length=128, description="your asset label")
    name: str | None = Field(None, max_length=200)
    position: tuple[float, float] = Field(description="[longitude, latitude] where it is mounted")
    level: int = Field(ge=-20, le=200, description="ordinal of one of the venue's levels")
    power_1m: float | None = Power1m
    tx_power_0m: float | None = TxPower0m
    zone_id: int | None = Field(None, description="the zone it serves, if any")
    active: bool = True

    @model_validator(mode="after")
    def _identity(self) -> BeaconIn:
        if self.canonical_key() is None:
            raise ValueError("a beacon needs an identity: key, or uuid+major+minor, or namespace+instance")
        power_from(self.power_1m, self.tx_power_0m)
        return self


class BeaconUpdate(Strict):
    """Fields to change; the identity of a beacon never changes (register a new one instead)."""

    external_id: str | None = Field(None, min_length=1, max_length=128)
    name: str | None = Field(None, max_length=200)
    position: tuple[float, float] | None = None
    level: int | None = Field(None, ge=-20, le=200)
    power_1m: float | None = Power1m
    tx_power_0m: float | None = TxPower0m
    zone_id: int | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _power(self) -> BeaconUpdate:
        power_from(self.power_1m, self.tx_power_0m)
        return self


class BeaconOut(BaseModel):
    id: int
    key: str
    kind: Literal["ibeacon", "eddystone"]
    uuid: str | None = None
    major: int | None = None
    minor: int | None = None
    namespace: str | None = None
    instance: str | None = None
    external_id: str | None
    name: str | None
    position: tuple[float, float]
    level: int
    power_1m: float
    zone_id: int | None
    active: bool
    created_at: datetime
    updated_at: datetime


class BeaconImportSummary(BaseModel):
    created: int
    updated: int
    unchanged: int
    deleted: int
    beacons: int = Field(description="beacons of the venue after the import")


class UnknownBeacon(BaseModel):
    key: str
    sightings: int
    last_seen: datetime
