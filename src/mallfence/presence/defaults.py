"""Presence settings per zone kind, chosen from how people move through each kind of space.

Margins must exceed typical indoor fix noise (3-8 m) for big spaces, and stay small for narrow ones
or the zone could never be entered. Debounces follow iOS/Android practice (a crossing must persist
for tens of seconds outdoors); dwell is when lingering starts to mean interest.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from mallfence.presence.machine import PresenceSettings

ZONE_KINDS = (
    "venue", "entrance", "corridor", "store", "department", "pickup", "food_court", "parking", "custom",
)

DEFAULTS: dict[str, PresenceSettings] = {
    # whole mall outline: GPS-grade fixes at the doors, so wide margins and a patient exit
    "venue": PresenceSettings(5.0, 15.0, 10.0, 120.0, 900.0, 50.0),
    "entrance": PresenceSettings(1.0, 3.0, 0.0, 5.0, 60.0, 15.0),
    "corridor": PresenceSettings(1.0, 3.0, 5.0, 10.0, 300.0, 15.0),
    "store": PresenceSettings(1.5, 3.0, 5.0, 20.0, 120.0, 15.0),
    "department": PresenceSettings(1.0, 2.0, 5.0, 15.0, 60.0, 10.0),
    "pickup": PresenceSettings(1.0, 3.0, 3.0, 15.0, 60.0, 15.0),
    "food_court": PresenceSettings(2.0, 4.0, 10.0, 30.0, 300.0, 20.0),
    "parking": PresenceSettings(5.0, 10.0, 15.0, 60.0, 600.0, 50.0),
    "custom": PresenceSettings(1.5, 3.0, 5.0, 15.0, 120.0, 20.0),
}

SETTING_NAMES = tuple(f.name for f in fields(PresenceSettings))


def settings_for(kind: str, overrides: dict[str, Any] | None = None) -> PresenceSettings:
    """The defaults of ``kind`` with a zone's own overrides applied."""
    base = DEFAULTS[kind]
    return replace(base, **overrides) if overrides else base
