"""Generate the sample venues in zones/: Harbourside Centre (3-level mall) and Nordvik (megastore).

Run from the repository root:  .venv/bin/python zones/generate.py

Layouts are fictional and drawn in local metres (x east, y north, origin at the building's
south-west corner), then projected to WGS84 around the building centre. Buildings are axis-aligned
on purpose: every point on a shared wall has the same x or y, so it rounds to the same lon or lat
and neighbouring zones still share edges exactly after rounding to 7 decimals (a rotated plan would
leave cm slivers at T-junctions).
Deterministic: no randomness, fixed iteration order. Each file is validated as rendered (rounded)
before it is written; on any problem the old file is kept and the exit status is 1.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import Point, box, mapping
from shapely.geometry.polygon import orient
from shapely.ops import unary_union

from mallfence.presence.defaults import DEFAULTS
from mallfence.spatial.geometry import parse_zone_geometry, zone_polygon
from mallfence.spatial.index import VenueIndex, ZoneShape
from mallfence.spatial.projection import LocalProjection

HERE = Path(__file__).resolve().parent
TOL_M2 = 0.01  # overlaps below this (1 cm²-scale rounding) are not overlaps
MIN_SHRINK = {"store": 1.5, "corridor": 1.0, "entrance": 1.0, "pickup": 1.0, "custom": 1.0}
NARROW = {"enter_margin_m": 1.0}  # 3 m escalators would have no core at the custom default of 1.5 m

# --- opening hours ----------------------------------------------------------------------
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def hours(week: str, sat: str | None = None, sun: str | None = None) -> dict[str, list[list[str]]]:
    """"09:00-13:00,14:00-18:00" -> [["09:00","13:00"],["14:00","18:00"]]; "" means closed."""
    def parse(s: str) -> list[list[str]]:
        return [part.split("-") for part in s.split(",")] if s else []
    spec = dict.fromkeys(DAYS[:5], week) | {"sat": week if sat is None else sat,
                                            "sun": week if sun is None else sun}
    return {d: parse(spec[d]) for d in DAYS}


MALL_HOURS = hours("09:00-20:00", sun="11:00-18:00")
HOURS = {  # by category; anything else keeps mall hours
    "restaurant": hours("10:00-21:00", sun="11:00-19:00"),
    "cafe": hours("08:00-20:00", sun="10:00-18:00"),
    "supermarket": hours("07:00-22:00", sun="08:00-22:00"),
    "cinema": hours("11:00-23:30"),
    "bank": hours("10:00-17:00", sat="10:00-14:00", sun=""),  # closed Sunday: empty list
    "services": hours("09:00-13:00,14:00-18:00", sat="10:00-16:00", sun=""),  # lunch break
    "health": hours("08:30-17:00", sat="", sun=""),
}

# --- fictional tenants ------------------------------------------------------------------
SHOPS = [  # (name, category), handed out in order to the regular units of both levels
    ("Tideline Books", "books"), ("Saltmarsh & Co", "fashion"), ("Pier Nine Denim", "fashion"),
    ("Brass Anchor Café", "cafe"), ("Greenleaf Pharmacy", "pharmacy"),
    ("Circuit Cove", "electronics"), ("Harbour Lights Opticians", "optician"),
    ("Kittiwake Kids", "kids"), ("Driftwood Interiors", "home"), ("Stride & Sole", "shoes"),
    ("Lantern Jewellers", "jewellery"), ("Bloom Street Florist", "florist"),
    ("Quayside Bakehouse", "cafe"), ("Northwind Outdoor", "outdoor"),
    ("Velvet Rook Beauty", "beauty"), ("Paperkite Stationery", "stationery"),
    ("Copperpot Cookshop", "home"), ("Signal Mobile", "phones"), ("Fjordline Travel", "travel"),
    ("Marlin Swim & Surf", "sports"), ("Linden Tea Merchants", "food"),
    ("Mainsail Menswear", "fashion"), ("Cobble & Thread Alterations", "services"),
    ("Ferris Toys", "toys"), ("Silverfin Watches", "jewellery"), ("Hollow Oak Gifts", "gifts"),
    ("Pawprint Pets", "pets"), ("Gull & Gannet", "fashion"), ("Keystone Keys & Heels", "services"),
    ("Vinyl Tide Records", "music"), ("Evergreen Health Foods", "food"),
    ("Ropewalk Leather", "accessories"), ("Coral Nails", "beauty"),
    ("Highwater Hair Studio", "hairdresser"), ("Pebble & Pine", "kids"),
    ("Seaglass Boutique", "fashion"), ("Tinker Tech Repairs", "services"), ("Morrow Bank", "bank"),
    ("Lighthouse Games", "electronics"), ("Larkspur Lingerie", "fashion"),
    ("Brine & Barrel Deli", "food"), ("Ironbridge Fitness", "sports"),
    ("Sable Fragrances", "beauty"), ("Rainshadow Accessories", "accessories"),
    ("Nimbus Audio", "electronics"), ("Quill & Ink Art Supplies", "stationery"),
    ("Spinnaker Sports", "sports"), ("Cove Chocolatier", "food"), ("Glint Eyewear", "optician"),
    ("Thimble Crafts & Yarn", "crafts"), ("Ember Candle Co", "home"),
    ("Foghorn Streetwear", "fashion"), ("Dockside Barbers", "hairdresser"),
    ("Wavecrest Mobile", "phones"), ("Meridian Luggage", "travel"), ("Little Harbour Baby", "kids"),
    ("Cormorant Cycles", "sports"), ("Nettle & Moss Apothecary", "beauty"),
    ("Tern Photo Lab", "electronics"), ("Ballast Shoes", "shoes"), ("Shoreline Dental", "health"),
    ("Moorings Coffee", "cafe"),
]
FOOD = [("Saffron Lane", "restaurant"), ("Noodle Harbour", "restaurant"),
        ("Crustworks Pizza", "restaurant"), ("Grill Deck Burgers", "restaurant"),
        ("Green Bowl Salads", "restaurant"), ("Taco Tide", "restaurant")]


# --- venue model ------------------------------------------------------------------------
class Venue:
    """Zones of one venue in drawing metres; ``feature_collection`` projects and rounds them."""

    def __init__(self, slug, name, timezone, anchor, centre, levels):
        self.slug, self.name, self.timezone, self.anchor = slug, name, timezone, anchor
        self.centre = centre  # drawing coordinates of the anchor point
        self.levels = levels  # [(ordinal, name, short_name)]
        self.short = {o: s for o, _, s in levels}
        self.zones: list[dict] = []
        self.units: Counter = Counter()

    def add(self, eid, name, kind, level, geom, *, tags=(), metadata=None, presence=None,
            store=None, radius_m=None):
        self.zones.append(dict(external_id=eid, name=name, kind=kind, level=level, geom=geom,
                               tags=list(tags), metadata=metadata or {}, presence=presence or {},
                               store=store, radius_m=radius_m))

    def store(self, level, geom, name, category, *, tags=(), opening=None, brand=None):
        """A tenant unit, numbered per level (L0-U001...); its zone name is the tenant name."""
        self.units[level] += 1
        eid = f"{self.short[level]}-U{self.units[level]:03d}"
        opening = opening or HOURS.get(category, MALL_HOURS)
        self.add(eid, name, "store", level, geom, tags=[category, *tags],
                 metadata={"unit": eid, "area_m2": round(geom.area)},
                 store={"name": brand or name, "category": category, "opening_hours": opening})

    def feature_collection(self) -> dict:
        proj = LocalProjection(*self.anchor)
        cx, cy = self.centre
        features = []
        for z in self.zones:
            local = shapely.transform(z["geom"], lambda c: c - (cx, cy))
            if z["radius_m"] is not None:  # circle: Point + radius
                lon, lat = proj.to_wgs84(np.array([local.x]), np.array([local.y]))
                geometry = {"type": "Point", "coordinates": [float(lon[0]), float(lat[0])]}
            else:  # RFC 7946: exterior ring counter-clockwise, holes clockwise
                geometry = mapping(orient(proj.geometry_to_wgs84(local), 1.0))
            props = {k: z[k] for k in ("external_id", "name", "kind", "level", "tags", "metadata")}
            for k in ("presence", "radius_m", "store"):
                if z[k]:
                    props[k] = z[k]
            features.append(
                {"type": "Feature", "geometry": _rounded(geometry), "properties": props})
        return {"type": "FeatureCollection",
                "venue": {"slug": self.slug, "name": self.name, "timezone": self.timezone,
                          "anchor": list(self.anchor)},
                "levels": [{"ordinal": o, "name": n, "short_name": s} for o, n, s in self.levels],
                "features": features}


def _rounded(geometry: dict) -> dict:
    def walk(c):
        return round(float(c), 7) if isinstance(c, int | float) else [walk(x) for x in c]
    return {"type": geometry["type"], "coordinates": walk(geometry["coordinates"])}


# --- layout helpers ---------------------------------------------------------------------
DEPTH = {8: 14, 10: 18, 12: 22, 14: 26}  # unit depth by frontage: narrow units are shallow


def row(x0, widths, y_front, side, depth=None):
    """Units side by side along a horizontal corridor wall at y_front; side +1 north, -1 south."""
    out = []
    for w in widths:
        y1 = y_front + side * (depth or DEPTH[w])
        out.append(box(x0, min(y_front, y1), x0 + w, max(y_front, y1)))
        x0 += w
    return out


def column(y0, heights, x_front, side, depth=24):
    """Units stacked along a vertical corridor wall at x_front; side +1 east, -1 west."""
    out = []
    for h in heights:
        x1 = x_front + side * depth
        out.append(box(min(x_front, x1), y0, max(x_front, x1), y0 + h))
        y0 += h
    return out


# --- Harbourside Centre -----------------------------------------------------------------
# 220 m x 120 m. Spine y 60..70 runs the full width (doors at both ends); a 12 m stem x 104..116
# runs south from the spine to the main doors. Anchors take the north corners, junior anchors the
# south corners. Unzoned space is back-of-house: a 20 m service yard behind the north row, and
# toilets, management, plant and service corridors behind the shallow south units.
W, H = 220.0, 120.0
SPINE = box(0, 60, W, 70)
STEM = box(104, 0, 116, 60)
ESCALATORS = {"ESC-W": box(40, 63.5, 52, 66.5), "ESC-E": box(168, 63.5, 180, 66.5)}  # L0 <-> L1
ESC_PARKING = box(106, 12, 109, 24)  # P1 <-> L0, in the stem above the parking lobby
LIFT = box(111.5, 20, 115.5, 24)  # P1, L0, L1


def harbourside() -> Venue:
    v = Venue("harbourside", "Harbourside Centre", "Europe/Copenhagen", (10.159, 56.124),
              (W / 2, H / 2), [(-1, "Parking", "P1"), (0, "Ground floor", "L0"),
                               (1, "First floor", "L1")])
    v.add("VENUE", "Harbourside Centre", "venue", None, box(0, 0, W, H),
          metadata={"levels": 3, "footprint_m2": int(W * H)})
    shops = iter(SHOPS)
    parking_level(v)
    ground_floor(v, shops)
    first_floor(v, shops)
    vertical_transport(v)
    assert next(shops, None) is None, "every fictional tenant should be placed once"
    return v


def parking_level(v: Venue) -> None:
    # The lobby under the main doors is the pedestrian part of P1; the rest is car park.
    lobby = box(100, 0, 120, 30)
    v.add("P1-COR", "Parking lobby", "corridor", -1, lobby, tags=["lobby"])
    v.add("P1-PARK", "Car park P1", "parking", -1, box(0, 0, W, H).difference(lobby),
          metadata={"spaces": 780, "height_limit_m": 2.1})
    v.add("P1-PU-C", "Pickup point C", "pickup", -1, box(101, 2, 105, 6),
          tags=["click-and-collect", "drive-up"], metadata={"desk": "C"})


def ground_floor(v: Venue, shops) -> None:
    v.add("L0-COR", "Mall spine (ground floor)", "corridor", 0, unary_union([SPINE, STEM]),
          tags=["spine"])
    for eid, name, geom, main in [("L0-ENT-W", "West entrance", box(0, 62, 4, 68), False),
                                  ("L0-ENT-E", "East entrance", box(216, 62, 220, 68), False),
                                  ("L0-ENT-S", "Main entrance", box(107, 0, 113, 4), True)]:
        v.add(eid, name, "entrance", 0, geom, tags=["main"] if main else [],
              metadata={"doors": "automatic sliding"})
    v.add("L0-PU-A", "Pickup point A", "pickup", 0, box(111, 30, 115, 34),
          tags=["click-and-collect"], metadata={"desk": "A"})
    v.add("L0-FOUNTAIN", "Fountain court", "custom", 0, Point(110, 65), radius_m=4.0,
          tags=["fountain", "promo"], presence={"dwell_s": 60})
    # North: department store and supermarket in the corners, a row of shops between them.
    v.store(0, box(0, 70, 50, H), "Halvard & Co (ground floor)", "department_store",
            tags=["anchor"], brand="Halvard & Co")
    v.store(0, box(170, 70, W, H), "Quayside Fresh Market", "supermarket", tags=["anchor"])
    units = row(50, [12, 8, 8, 12, 10, 8, 8, 14, 8, 8, 12, 12], 70, +1, depth=30)
    # South-west: electronics junior anchor, shops along the spine, then along the stem.
    v.store(0, box(0, 0, 36, 60), "Voltline Electronics", "electronics", tags=["junior-anchor"])
    units += row(36, [12, 8, 8, 12, 8, 8, 12], 60, -1) + column(0, [10, 8, 8, 12], 104, -1)
    # South-east: the mirror image, with a sports junior anchor in the corner.
    units += row(116, [12, 8, 8, 12, 8, 8, 12], 60, -1) + column(0, [12, 8, 8, 10], 116, +1)
    v.store(0, box(184, 0, W, 60), "Summit Outfitters", "sports", tags=["junior-anchor"])
    for geom in units:
        v.store(0, geom, *next(shops))


def first_floor(v: Venue, shops) -> None:
    # Same spine and stem as below (the stem ends at a glazed wall over the main doors).
    v.add("L1-COR", "Mall spine (first floor)", "corridor", 1, unary_union([SPINE, STEM]),
          tags=["spine"])
    v.add("L1-PU-B", "Pickup point B", "pickup", 1, box(150, 61, 154, 65),
          tags=["click-and-collect"], metadata={"desk": "B"})
    v.store(1, box(0, 70, 50, H), "Halvard & Co (first floor)", "department_store",
            tags=["anchor"], brand="Halvard & Co")
    v.store(1, box(170, 70, W, H), "Lumen Cinemas", "cinema", tags=["anchor", "leisure"])
    # Food court opens onto the spine; six counters along its back wall, two kiosks inside it.
    court = box(80, 70, 140, 98)
    v.add("L1-FOOD", "Food court", "food_court", 1, court, tags=["seating"],
          metadata={"seats": 520})
    for (name, cat), geom in zip(FOOD, row(80, [10] * 6, 98, +1), strict=True):
        v.store(1, geom, name, cat, tags=["food-court"])
    v.store(1, box(100, 84, 105, 89), "Brew Cart Coffee", "cafe", tags=["food-court", "kiosk"])
    v.store(1, box(115, 84, 120, 89), "Squeeze Juice Bar", "cafe", tags=["food-court", "kiosk"])
    units = row(50, [10, 8, 12], 70, +1, depth=30) + row(140, [12, 8, 10], 70, +1, depth=30)
    v.store(1, box(0, 0, 36, 60), "Brightwater Home", "home", tags=["junior-anchor"])
    units += row(36, [8, 8, 12, 8, 8, 12, 12], 60, -1) + column(0, [12, 8, 8, 10], 104, -1)
    units += row(116, [12, 12, 8, 8, 12, 8, 8], 60, -1) + column(0, [10, 8, 8, 12], 116, +1)
    v.store(1, box(184, 0, W, 60), "Pixelport Toys & Games", "toys", tags=["junior-anchor"])
    for geom in units:
        v.store(1, geom, *next(shops))


def vertical_transport(v: Venue) -> None:
    # One zone per level served, same footprint on each, so a fix on either floor finds it.
    banks = [(bank, geom, (0, 1)) for bank, geom in ESCALATORS.items()]
    banks.append(("ESC-P", ESC_PARKING, (-1, 0)))
    for bank, geom, connects in banks:
        for level in connects:
            v.add(f"{v.short[level]}-{bank}", f"Escalators {bank[-1]} ({v.short[level]})", "custom",
                  level, geom, tags=["escalator"], presence=NARROW,
                  metadata={"connects": list(connects), "bank": bank})
    for level in (-1, 0, 1):
        v.add(f"{v.short[level]}-LIFT", f"Lift ({v.short[level]})", "custom", level, LIFT,
              tags=["lift"], presence=NARROW, metadata={"connects": [-1, 0, 1], "bank": "LIFT"})


# --- Nordvik Home & Living --------------------------------------------------------------
# One 100 m x 80 m hall, doors and tills on the south wall, car park across a 6 m forecourt.
DEPARTMENTS = [  # (id, name, (x0, y0, x1, y1), tags); together they tile the hall
    ("ENTR", "Entrance & returns", (0, 0, 36, 12), ["entrance", "returns", "customer-service"]),
    ("CHK", "Checkout", (36, 0, 80, 12), ["checkout", "tills", "self-checkout"]),
    ("COLL", "Collect & delivery", (80, 0, 100, 12), ["click-and-collect", "delivery"]),
    ("LIGHT", "Lighting", (0, 12, 25, 40), ["lighting", "lamps", "bulbs"]),
    ("TEXT", "Textiles & rugs", (25, 12, 50, 40), ["textiles", "rugs", "curtains", "bedding"]),
    ("KITCH", "Kitchen & dining", (50, 12, 80, 40), ["kitchen", "dining", "appliances"]),
    ("BATH", "Bathroom", (80, 12, 100, 40), ["bathroom", "towels"]),
    ("BED", "Bedroom", (0, 40, 30, 60), ["bedroom", "beds", "mattresses"]),
    ("STOR", "Storage & organisation", (30, 40, 55, 60), ["storage", "shelving", "boxes"]),
    ("KIDS", "Children's room", (55, 40, 75, 60), ["kids", "toys", "nursery"]),
    ("OFFICE", "Home office", (75, 40, 100, 60), ["office", "desks", "chairs"]),
    ("LIVING", "Living room", (0, 60, 35, 80), ["living-room", "sofas", "armchairs"]),
    ("GARDEN", "Garden & outdoor", (35, 60, 60, 80), ["garden", "outdoor", "plants"]),
    ("WARE", "Self-serve warehouse", (60, 60, 100, 80), ["warehouse", "flat-pack", "bulky"]),
]


def nordvik() -> Venue:
    v = Venue("nordvik", "Nordvik Home & Living", "Europe/Stockholm", (15.245, 59.256), (50, 40),
              [(0, "Ground floor", "L0")])
    hall = box(0, 0, 100, 80)
    v.add("VENUE", "Nordvik Home & Living", "venue", None, hall, metadata={"footprint_m2": 8000})
    v.add("L0-STORE", "Nordvik Home & Living", "store", 0, hall, tags=["home", "furniture"],
          metadata={"area_m2": 8000},
          store={"name": "Nordvik Home & Living", "category": "home",
                 "opening_hours": hours("10:00-20:00", sat="10:00-19:00", sun="11:00-18:00")})
    for did, name, (x0, y0, x1, y1), tags in DEPARTMENTS:
        v.add(f"L0-D-{did}", name, "department", 0, box(x0, y0, x1, y1), tags=tags)
    v.add("L0-ENT", "Main entrance", "entrance", 0, box(12, 0, 18, 4), tags=["main"],
          metadata={"doors": "revolving + sliding"})
    v.add("L0-PU", "Pickup point", "pickup", 0, box(88, 4, 92, 8),
          tags=["click-and-collect"], metadata={"desk": "A"})
    v.add("PARK", "Customer car park", "parking", None, box(-10, -66, 110, -6),
          tags=["outdoor"], metadata={"spaces": 290})  # outdoors: no floor, so level null
    return v


# --- validation -------------------------------------------------------------------------
def validate(fc: dict, min_stores: int = 0) -> list[str]:
    """Checks a file as it will be written (rounded); returns the problems found."""
    lon0, lat0 = fc["venue"]["anchor"]
    proj = LocalProjection(lon0, lat0)
    ordinals = {lv["ordinal"] for lv in fc["levels"]} | {None}
    ids = Counter(f["properties"]["external_id"] for f in fc["features"])
    problems = [f"duplicate external_id {i}" for i, n in ids.items() if n > 1]
    zones = []  # (properties, WGS84 polygon, local polygon)
    for f in fc["features"]:
        p, r = f["properties"], f["properties"].get("radius_m")
        poly = zone_polygon(parse_zone_geometry(f["geometry"], r), r)  # raises GeometryProblems
        zones.append((p, poly, proj.geometry_to_local(poly)))
        if p["level"] not in ordinals:
            problems.append(f"{p['external_id']}: unknown level {p['level']}")
        if f["geometry"]["type"] == "Polygon" and not poly.exterior.is_ccw:
            problems.append(f"{p['external_id']}: exterior ring is not counter-clockwise")
        # at least the brief's minimum, and never less than the margin the zone will run with
        margin = max(MIN_SHRINK.get(p["kind"], 0.0), (p.get("presence") or {}).get(
            "enter_margin_m", DEFAULTS[p["kind"]].enter_margin_m))
        if zones[-1][2].buffer(-margin).is_empty:
            problems.append(f"{p['external_id']}: nothing left after shrinking by {margin} m")
    venue = next(z[2] for z in zones if z[0]["kind"] == "venue")
    for p, _, local in zones:
        if p["kind"] not in ("venue", "parking") and local.difference(venue).area > TOL_M2:
            problems.append(f"{p['external_id']}: outside the venue outline")
    stores = sum(p["kind"] == "store" for p, _, _ in zones)
    if stores < min_stores:
        problems.append(f"only {stores} stores, expected at least {min_stores}")
    for level in ordinals:
        group = [z for z in zones if z[0]["level"] == level]
        problems += check_overlaps(group) + check_walkable(group)
    return problems + check_index(lon0, lat0, zones)


def check_overlaps(group: list) -> list[str]:
    """Zones of one level either share edges only or nest (the smaller inside the larger)."""
    out = []
    tree = shapely.STRtree([z[2] for z in group])
    for i, j in zip(*tree.query([z[2] for z in group], predicate="intersects"), strict=True):
        (pa, _, a), (pb, _, b) = group[i], group[j]
        if i < j and a.intersection(b).area > TOL_M2 and min(
                a.difference(b).area, b.difference(a).area) > TOL_M2:
            out.append(f"{pa['external_id']} overlaps {pb['external_id']} without nesting")
    return out


def check_walkable(group: list) -> list[str]:
    """Stores have a front wall (>= 3 m) on a corridor or food court; escalators and lifts lie
    inside one. Only for levels that map corridors (the megastore has none)."""
    walk = [z[2] for z in group if z[0]["kind"] in ("corridor", "food_court")]
    if not walk:
        return []
    walkable, out = unary_union(walk).buffer(0.05), []
    for p, _, local in group:
        if p["kind"] == "store" and local.exterior.intersection(walkable).length < 3.0:
            out.append(f"{p['external_id']}: no front wall on a corridor")
        if {"escalator", "lift"} & set(p["tags"]) and not walkable.contains(local):
            out.append(f"{p['external_id']}: not reachable from a corridor")
    return out


def check_index(lon0: float, lat0: float, zones: list) -> list[str]:
    """The runtime index must put each store's and department's representative point in it."""
    vi = VenueIndex(lon0, lat0, [ZoneShape(i, p["level"], poly, 1.5, 3.0)
                                 for i, (p, poly, _) in enumerate(zones)])
    out = []
    for i, (p, poly, _) in enumerate(zones):
        if p["kind"] in ("store", "department"):
            rp = poly.representative_point()
            hits = vi.match(np.array([rp.x]), np.array([rp.y]), np.array([float(p["level"])]))
            if i not in hits.zone.tolist():
                out.append(f"{p['external_id']}: index does not match its own point")
    return out


def render(fc: dict) -> str:
    text = json.dumps(fc, indent=1, ensure_ascii=False)
    # Flat arrays (positions, tags, hours) on one line, and a day's hours on one line:
    # one position per line keeps diffs reviewable at a third of the size.
    flat = re.compile(r"\[\s+([^\[\]{}]*?)\s+\]", re.S)
    text = flat.sub(lambda m: "[" + re.sub(r",\s+", ", ", m[1].strip()) + "]", text)
    text = re.sub(r'\[\s+((?:\["[^\]]*"\],?\s*)+?)\s+\]',
                  lambda m: "[" + re.sub(r",\s+", ", ", m[1].strip()) + "]", text)
    return text + "\n"


def summary(fc: dict) -> str:
    counts = Counter((f["properties"]["kind"], f["properties"]["level"]) for f in fc["features"])
    levels = [None, *sorted(lv["ordinal"] for lv in fc["levels"])]
    lines = [f"{fc['venue']['name']} ({fc['venue']['slug']}): {len(fc['features'])} zones, "
             f"anchor {fc['venue']['anchor']}",
             "  kind        " + "".join(f"{'null' if lv is None else lv:>6}" for lv in levels)]
    for kind in sorted({k for k, _ in counts}):
        lines.append(f"  {kind:<12}" + "".join(f"{counts.get((kind, lv), 0):>6}" for lv in levels))
    return "\n".join(lines)


def main() -> int:
    failed = False
    for venue, filename, min_stores in [(harbourside(), "harbourside-mall.geojson", 60),
                                        (nordvik(), "megastore.geojson", 1)]:
        text = render(venue.feature_collection())
        written = json.loads(text)  # validate exactly what goes to disk
        problems = validate(written, min_stores)
        print(summary(written))
        for problem in problems:
            print("  PROBLEM:", problem)
        if problems:  # keep the previous file rather than write a broken one
            failed = True
            print(f"  -> {filename}: FAILED, not written")
        else:
            (HERE / filename).write_text(text, encoding="utf-8")
            print(f"  -> {filename}: ok, written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
