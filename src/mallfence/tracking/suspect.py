"""Spoofing heuristics: fixes that look faked are flagged, and flagged fixes never trigger a marketing push. PURE.

- ``mock_location``: the app says the OS marked the location as mocked (Android's mock provider, iOS's
  simulated location).
- ``speed``: getting here from the device's last trusted fix would take more than ``max_speed_m_s``, after
  allowing both fixes their accuracy (a 12 m/s default is a sprint, indoors; an escalator is 0.5 m/s).
- ``far_from_beacons``: a GPS fix far from where beacons or a QR code placed the device moments ago (the
  phone is in the building; the GPS says otherwise).

Flags mark, they do not drop: presence still follows (a shopper with a flaky GPS still enters stores), but
engagement treats the events as unproven. A flagged fix never becomes the "last trusted" one, so a spoofer
who jumps once stays flagged until real time has passed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MOCK, SPEED, FAR = "mock_location", "speed", "far_from_beacons"


@dataclass(frozen=True, slots=True)
class Checks:
    max_speed_m_s: float = 12.0
    truth_radius_m: float = 50.0  # a GPS fix further than this (or 3x its accuracy) from fresh beacon/QR truth


def flags(*, x: float, y: float, ts: float, accuracy_m: float, source: str, mocked: bool | None,
          last: tuple[float, float, float, float] | None, truth: tuple[float, float, float] | None,
          checks: Checks) -> list[str]:
    """Why this fix looks spoofed (empty: nothing). ``last`` = (x, y, ts, accuracy) of the last trusted fix;
    ``truth`` = (x, y, valid until) of the latest beacon or QR position."""
    out = []
    if mocked:
        out.append(MOCK)
    if last is not None and ts > last[2]:
        gap = math.hypot(x - last[0], y - last[1]) - accuracy_m - last[3]
        if gap > 0 and gap / (ts - last[2]) > checks.max_speed_m_s:
            out.append(SPEED)
    if (source == "gps" and truth is not None and ts <= truth[2]
            and math.hypot(x - truth[0], y - truth[1]) > max(checks.truth_radius_m, 3 * accuracy_m)):
        out.append(FAR)
    return out
