"""QR codes scanned by the app: verified, stored as ``qr_scan`` events, and ground truth for presence."""

from __future__ import annotations

from datetime import UTC, datetime

from mallfence.devices.models import Device
from mallfence.errors import Invalid, Issue
from mallfence.runtime import Runtime
from mallfence.tracking import checks, service
from mallfence.tracking.models import Event
from mallfence.tracking.schemas import QrScanIn, QrScanOut, QrTarget, ZoneRef
from mallfence.venues import qr_service
from mallfence.venues.models import Venue


def scan_qr(rt: Runtime, *, device: Device, data: QrScanIn) -> QrScanOut:
    """Verify the payload (validity by the server's clock: a device clock is not trusted with expiry), store
    the scan, and put the device in the code's zone now."""
    checks.check_consent(device)
    now = datetime.now(UTC)
    issues = checks.check_times(rt, [data.ts], "scans") if data.ts is not None else []
    if issues:
        raise Invalid([Issue(("ts",), i.msg) for i in issues])
    with rt.sessions() as session:
        venue = session.get(Venue, device.venue_id)
        assert venue is not None, "device of a deleted venue"
        scanned = qr_service.verify(session, venue=venue, text=data.payload, at=now)
        code, zone, store = scanned.code, scanned.zone, scanned.store
        point = (scanned.point.x, scanned.point.y) if scanned.point is not None else None
        target = QrTarget(
            code=code.code, label=code.label, sku=code.sku, store_id=store.id if store else None,
            store_name=store.name if store else None,
            zone=ZoneRef(id=zone.id, external_id=zone.external_id, name=zone.name, kind=zone.kind,
                         level=zone.level.ordinal if zone.level is not None else None) if zone else None,
        )
    kept = point if checks.location_consent(device) is True else None  # the code's spot is the shopper's
    scan = Event(
        venue_id=device.venue_id, device_id=device.id, zone_id=zone.id if zone else None, kind="qr_scan",
        occurred_at=data.ts or now, source="qr", fix_id=f"qr:{code.code}", lon=kept[0] if kept else None,
        lat=kept[1] if kept else None, accuracy_m=service.GROUND_TRUTH_ACCURACY_M, floor=scanned.level,
        data={k: v for k, v in (("code", code.code), ("label", code.label), ("sku", code.sku),
                                ("store_id", target.store_id), ("store_name", target.store_name)) if v is not None},
    )
    events = service.pin(rt, device=device, zone_id=zone.id if zone else None, point=point, level=scanned.level,
                         at=data.ts, source="qr", scan=scan, floor_hint_s=rt.settings.floor_hint_qr_s)
    return QrScanOut(target=target, floor=scanned.level, events=events)
