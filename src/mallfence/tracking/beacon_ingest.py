"""Beacon scans in: each scan becomes a fix (``source=beacon``, the floor from the strongest beacons) through
``spatial.beacons.locate``, and the fixes go through the same presence, store and publish as GPS fixes.

The device's RSSI smoother lives in its presence state, so consecutive scans, over HTTP or the websocket and
on any replica, average together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mallfence.devices.models import Device
from mallfence.errors import Invalid
from mallfence.runtime import Runtime
from mallfence.spatial.beacon_keys import eddystone_power_1m
from mallfence.spatial.beacons import RssiSmoother, locate
from mallfence.tracking import checks, service
from mallfence.tracking.schemas import BeaconFixOut, BeaconIngestOut, BeaconScanIn, Dropped, FixIn

BEACON_TRUTH_S = 10.0  # how long a beacon fix is the truth later GPS fixes are measured by (tracking/suspect.py)


def _entries(scan: BeaconScanIn, known: Any, unknown: list[str]) -> list[tuple[str, float] | tuple[str, float, float]]:
    entries: list[tuple[str, float] | tuple[str, float, float]] = []
    for reading in scan.beacons:
        key = reading.canonical_key()
        assert key is not None  # BeaconReading refuses readings without identity
        if key not in known:
            unknown.append(key)
            continue
        tx = reading.tx_power
        if tx is not None and key.startswith("eddystone:"):
            tx = eddystone_power_1m(tx)  # Eddystone frames carry the 0 m figure
        entries.append((key, reading.rssi, tx) if tx is not None else (key, reading.rssi))
    return entries


def ingest_beacons(rt: Runtime, *, device: Device, scans: Sequence[BeaconScanIn]) -> BeaconIngestOut:
    """Turn a batch of beacon scans into fixes and apply them; all or nothing like ``service.ingest``. A fix also
    tells the floor, which GPS fixes without one then use for ``floor_hint_beacon_s``."""
    checks.check_consent(device)
    checks.check_size(rt, len(scans), "scans")
    issues = checks.check_times(rt, [s.ts for s in scans], "scans")
    if issues:
        raise Invalid(issues)
    snapshot = service.snapshot_of(rt, device.venue_id)
    old = checks.too_old(rt, [s.ts for s in scans])
    rt.counters.add(device.venue_id, "scans_too_old", len(old))
    order = sorted((i for i in range(len(scans)) if i not in old), key=lambda i: scans[i].ts)
    unknown: list[str] = []
    fixes: list[FixIn] = []
    located: list[BeaconFixOut] = []
    no_fix: list[int] = []
    stale: list[int] = []
    proj = snapshot.index.projection
    with rt.states.locked(device.id):
        state = rt.states.get(device.id)
        smoother = state.radio if isinstance(state.radio, RssiSmoother) else RssiSmoother()
        last = state.last_ts
        for i in order:
            scan = scans[i]
            ts = scan.ts.timestamp()
            if last is not None and ts <= last:
                stale.append(i)
                continue
            entries = _entries(scan, snapshot.beacons.index, unknown)
            fix = locate(entries, snapshot.beacons, smoother, ts, path_loss_exponent=snapshot.path_loss_exponent) \
                if entries or len(smoother) else None
            if fix is None:
                no_fix.append(i)
                continue
            last = ts
            lon, lat = proj.to_wgs84(np.array([fix.x]), np.array([fix.y]))
            fixes.append(FixIn.model_construct(id=scan.id, lat=round(float(lat[0]), 7), lon=round(float(lon[0]), 7),
                                               accuracy_m=round(fix.accuracy_m, 2), floor=fix.level, ts=scan.ts))
            located.append(BeaconFixOut(index=i, fix_id=scan.id, lat=fixes[-1].lat, lon=fixes[-1].lon,
                                        floor=fix.level, accuracy_m=fixes[-1].accuracy_m,
                                        beacons_used=fix.beacons_used, method=fix.method))  # type: ignore[arg-type]
        state.radio = smoother
        located_fixes = service.Checked(device, snapshot, fixes, set(), list(range(len(fixes))), "beacon")
        produced, _ = service.apply(rt, located_fixes, state)  # none stale: filtered above
        if fixes:
            last = fixes[-1]
            state.floor_hint = (last.floor, last.ts.timestamp() + rt.settings.floor_hint_beacon_s)  # type: ignore[arg-type]
            x, y = proj.to_local(np.array([last.lon]), np.array([last.lat]))
            state.truth = (float(x[0]), float(y[0]), last.ts.timestamp() + BEACON_TRUTH_S)
        out, batch = service.store(rt, device, snapshot, produced)
        rt.states.put(device.id, state)
    service.settle(rt, located_fixes, [], out, batch)  # the events out, the live map; its receipt is ours
    if unknown:
        rt.unknown_beacons.add(device.venue_id, unknown)
    return BeaconIngestOut(
        accepted=len(scans) - len(stale) - len(old),
        dropped=sorted([*(Dropped(index=i, reason="stale") for i in stale),
                        *(Dropped(index=i, reason="too_old") for i in old)], key=lambda d: d.index),
        no_fix=sorted(no_fix), unknown_beacons=len(unknown), fixes=sorted(located, key=lambda f: f.index),
        events=out,
    )
