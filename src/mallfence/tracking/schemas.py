"""API shapes of fixes in and events out (HTTP and websocket)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from mallfence.venues.beacon_schemas import BeaconIdentity


class FixIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str | None = Field(None, max_length=64, description="client id of the fix, echoed in the events it causes")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float = Field(gt=0, le=10_000, description="radius of 68 % confidence, metres")
    floor: int | None = Field(None, ge=-20, le=200, description="level ordinal if the OS knows it")
    ts: AwareDatetime = Field(description="device time of the fix, ISO 8601 with a UTC offset")
    mocked: bool | None = Field(None, description="the OS marked this location as mocked or simulated")


class PositionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fixes: list[FixIn] = Field(min_length=1)


class Dropped(BaseModel):
    index: int
    reason: Literal["stale", "too_old"] = Field(description="stale: not newer than the device's last fix; "
                                                "too_old: older than the replay window (max_fix_age_s)")


class ZoneRef(BaseModel):
    id: int
    external_id: str | None = None
    name: str | None = None
    kind: str | None = None
    level: int | None = None


EventKind = Literal["enter", "exit", "dwell", "qr_scan", "staff_scan"]


class EventOut(BaseModel):
    id: int
    kind: EventKind
    zone: ZoneRef | None = Field(description="null only for a scan in a store without a zone")
    at: datetime
    duration_s: float | None
    reason: str | None
    fix_id: str | None
    source: str = Field(description="gps, beacon, qr, staff (scans) or server (timeouts)")
    data: dict[str, Any] | None = Field(None, description="scans: what was scanned (code, sku, store, staff)")
    flags: list[str] | None = Field(None, description="why the fix behind it looks spoofed (mock_location, speed, "
                                    "far_from_beacons): it triggers no marketing push")


class IngestOut(BaseModel):
    accepted: int
    dropped: list[Dropped]
    events: list[EventOut]


class IngestStats(BaseModel):
    replica: str
    since: datetime
    counters: dict[str, int]


# -- beacon scans -----------------------------------------------------------------------------------
class BeaconReading(BeaconIdentity):
    """One beacon heard: its identity, the RSSI, and the calibration the frame advertised (optional)."""

    rssi: float = Field(ge=-120, le=0, description="dBm; 0 is iOS for 'unknown' and is ignored")
    tx_power: float | None = Field(None, ge=-100, le=20, description="advertised calibration: iBeacon measured "
                                   "power at 1 m, or Eddystone power at 0 m (converted); default: the registry's")

    @model_validator(mode="after")
    def _identity(self) -> BeaconReading:
        if self.canonical_key() is None:
            raise ValueError("a reading needs the beacon: key, or uuid+major+minor, or namespace+instance")
        return self


class BeaconScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str | None = Field(None, max_length=64, description="client id of the scan, echoed as the fix id")
    ts: AwareDatetime = Field(description="device time of the scan, ISO 8601 with a UTC offset")
    beacons: list[BeaconReading] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _distinct(self) -> BeaconScanIn:
        seen: dict[str, int] = {}
        for j, reading in enumerate(self.beacons):
            key = reading.canonical_key()
            if key in seen:
                raise ValueError(f"beacon {key} is listed twice (readings {seen[key]} and {j}): "
                                 "merge readings of one beacon before sending")
            seen[key] = j  # type: ignore[index]
        return self


class BeaconScansIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scans: list[BeaconScanIn] = Field(min_length=1)


class BeaconFixOut(BaseModel):
    """Where a scan put the device: the app's blue dot."""

    index: int
    fix_id: str | None
    lat: float
    lon: float
    floor: int
    accuracy_m: float
    beacons_used: int
    method: Literal["lsq", "centroid"]


class BeaconIngestOut(BaseModel):
    accepted: int
    dropped: list[Dropped]
    no_fix: list[int] = Field(description="scans that heard no registered beacon (indexes)")
    unknown_beacons: int = Field(description="readings of beacons this venue has not registered")
    fixes: list[BeaconFixOut]
    events: list[EventOut]


# -- QR codes -----------------------------------------------------------------------------------------
class QrScanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: str = Field(min_length=1, max_length=512, description="the text of the scanned QR code")
    ts: AwareDatetime | None = Field(None, description="device time of the scan (default: now)")


class QrTarget(BaseModel):
    code: str
    label: str | None
    zone: ZoneRef | None
    store_id: int | None
    store_name: str | None
    sku: str | None


class QrScanOut(BaseModel):
    target: QrTarget
    floor: int | None
    events: list[EventOut] = Field(description="the qr_scan event and the presence events it caused")


# -- websocket, client to server ------------------------------------------------------------------
class WsFix(FixIn):
    type: Literal["fix"]


class WsFixes(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["fixes"]
    fixes: list[FixIn] = Field(min_length=1)


class WsPing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["ping"]


class WsAck(BaseModel):
    """The app has shown these notifications."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["ack"]
    ids: list[int] = Field(min_length=1, max_length=1000)


class WsBeacons(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["beacons"]
    scans: list[BeaconScanIn] = Field(min_length=1)


class WsQr(QrScanIn):
    type: Literal["qr"]


WsClientMessage = Annotated[WsFix | WsFixes | WsPing | WsAck | WsBeacons | WsQr, Field(discriminator="type")]


def ws_message(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **fields}
