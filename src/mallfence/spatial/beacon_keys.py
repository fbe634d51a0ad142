"""Beacon identities: canonical keys for iBeacon (UUID, major, minor) and Eddystone-UID (namespace, instance).

One string per beacon lets scans, the registry and the positioning maths agree on identity whatever
case or dashes an app reports.
"""

from __future__ import annotations

import re

EDDYSTONE_LOSS_0_TO_1M_DB = 41.0  # Eddystone calibrates at 0 m; free-space loss to 1 m at 2.4 GHz
_HEX = re.compile(r"[0-9a-f]+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")
_REAL = (int, float)  # numpy floats subclass float; bool is excluded separately


def ibeacon_key(uuid: str, major: int, minor: int) -> str:
    """``ibeacon:<uuid lowercase, dashed>:<major>:<minor>``; the UUID may come with or without dashes."""
    if not isinstance(uuid, str) or not _UUID.fullmatch(uuid.strip().lower()):
        raise ValueError(f"iBeacon UUID must be 32 hex digits, dashed 8-4-4-4-12 or plain; got {uuid!r}")
    h = uuid.strip().lower().replace("-", "")
    for name, v in (("major", major), ("minor", minor)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFF:
            raise ValueError(f"iBeacon {name} must be an integer in 0..65535; got {v!r}")
    return f"ibeacon:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}:{major}:{minor}"


def _hex(value: str, n_bytes: int, what: str) -> str:
    v = value.strip().lower() if isinstance(value, str) else ""
    if len(v) != 2 * n_bytes or not _HEX.fullmatch(v):
        raise ValueError(f"Eddystone {what} must be {n_bytes} bytes = {2 * n_bytes} hex digits; got {value!r}")
    return v


def eddystone_key(namespace: str, instance: str) -> str:
    """``eddystone:<namespace, 20 hex>:<instance, 12 hex>``, lowercase."""
    return f"eddystone:{_hex(namespace, 10, 'namespace')}:{_hex(instance, 6, 'instance')}"


def eddystone_power_1m(tx_power_0m: float) -> float:
    """Eddystone frames carry the power measured at 0 m; the path-loss model wants it at 1 m."""
    if isinstance(tx_power_0m, bool) or not isinstance(tx_power_0m, _REAL) or not -100 <= tx_power_0m <= 20:
        raise ValueError(f"Eddystone tx power at 0 m must be a number in -100..20 dBm; got {tx_power_0m!r}")
    return float(tx_power_0m) - EDDYSTONE_LOSS_0_TO_1M_DB


def parse_beacon_key(text: str) -> str:
    """Canonical form of a beacon key (case, UUID dashes, leading zeros); ValueError when malformed."""
    parts = text.strip().split(":") if isinstance(text, str) else [""]
    kind = parts[0].lower()
    if kind == "ibeacon" and len(parts) == 4:
        major, minor = parts[2].strip(), parts[3].strip()
        if not (major.isascii() and major.isdigit() and minor.isascii() and minor.isdigit()):
            raise ValueError(f"iBeacon major/minor must be decimal integers: {text!r}")
        return ibeacon_key(parts[1], int(major), int(minor))
    if kind == "eddystone" and len(parts) == 3:
        return eddystone_key(parts[1], parts[2])
    raise ValueError(f"not a beacon key (ibeacon:<uuid>:<major>:<minor> or eddystone:<ns>:<inst>): {text!r}")
