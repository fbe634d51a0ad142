"""IMDF features checked and indexed: ids, types, geometries and the references mallfence follows.

Every feature of a type mallfence imports is checked before anything is planned, and every problem
is collected, so one 422 names all of them (file, feature id, what is wrong). A reference that does
not resolve (unit -> level, anchor -> unit, occupant -> anchor, ...) is such a problem: an archive
with dangling references is inconsistent, and importing around the hole would silently lose a store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mallfence.errors import Invalid, Issue
from mallfence.spatial.geometry import GeometryProblems, parse_zone_geometry
from mallfence.venues.imdf_archive import FEATURE_TYPES, ImdfArchive

# What mallfence reads, and the geometry IMDF gives each (None: an unlocated feature).
GEOMETRY = {"venue": "polygonal", "level": "polygonal", "unit": "polygonal", "kiosk": "polygonal",
            "geofence": "polygonal", "opening": "LineString", "anchor": "Point", "amenity": "Point",
            "occupant": None, "address": None}
# property -> (type it points at, a list of ids?, may be null?)
REFERENCES = {
    "venue": {"address_id": ("address", False, True)},
    "unit": {"level_id": ("level", False, False)},
    "kiosk": {"level_id": ("level", False, False), "anchor_id": ("anchor", False, True)},
    "opening": {"level_id": ("level", False, False)},
    "anchor": {"unit_id": ("unit", False, False)},
    "occupant": {"anchor_id": ("anchor", False, False)},
    "amenity": {"unit_ids": ("unit", True, False)},
    "geofence": {"level_ids": ("level", True, True)},
}
MAX_ID_LENGTH = 128  # ids become zone external_ids


@dataclass
class Feature:
    type: str
    id: str
    props: dict[str, Any]
    geometry: dict[str, Any] | None
    index: int  # position in its file

    @property
    def file(self) -> str:
        return f"{self.type}.geojson"


@dataclass
class Features:
    manifest: dict[str, Any]
    by_type: dict[str, list[Feature]]
    by_id: dict[str, Feature]
    counts: dict[str, int]  # features per IMDF type in the archive, imported or not
    unknown_files: list[str] = field(default_factory=list)  # .geojson files of no IMDF feature type
    other_files: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[Feature]:
        return self.by_type.get(kind, [])

    def ref(self, feature: Feature, prop: str) -> Feature | None:
        value = feature.props.get(prop)
        return self.by_id.get(value) if isinstance(value, str) else None


def _issue(file: str, fid: str | None, where: tuple[str | int, ...], msg: str) -> Issue:
    name = f"{file} feature {fid}" if fid is not None else file
    return Issue((file, fid if fid is not None else "?", *where), f"{name}: {msg}")


def read_features(archive: ImdfArchive) -> Features:
    """Check and index the features mallfence uses; raises Invalid naming every problem."""
    issues: list[Issue] = []
    by_type: dict[str, list[Feature]] = {}
    by_id: dict[str, Feature] = {}
    rejected: set[str] = set()  # ids of features with problems: references to them are not piled on
    counts = {kind: len(items) for kind, items in archive.features.items()}
    for kind, items in sorted(archive.features.items()):
        if kind not in GEOMETRY:
            continue  # read and counted, never imported: its contents are not mallfence's business
        for i, raw in enumerate(items):
            feature = _feature(kind, i, raw, issues)
            if feature is None:
                if isinstance(raw, dict) and isinstance(raw.get("id"), str):
                    rejected.add(raw["id"])
                continue
            if feature.id in by_id:
                other = by_id[feature.id]
                issues.append(_issue(feature.file, feature.id, ("id",), f"id also used by {other.file} feature "
                                     f"{other.index}: ids must be unique in the archive"))
                continue
            by_id[feature.id] = feature
            by_type.setdefault(kind, []).append(feature)
    venues = by_type.get("venue", [])
    if len(venues) != 1:
        issues.append(Issue(("venue.geojson",), f"venue.geojson: an archive must hold exactly one venue, found "
                                                f"{len(venues)}"))
    if not by_type.get("level"):
        issues.append(Issue(("level.geojson",), "level.geojson: no levels; every unit lies on a level"))
    features = Features(archive.manifest, by_type, by_id, counts,
                        unknown_files=[f for f in archive.ignored_files if f.endswith(".geojson")],
                        other_files=[f for f in archive.ignored_files if not f.endswith(".geojson")])
    for kind, refs in REFERENCES.items():
        for feature in features.of(kind):
            issues += _check_refs(feature, refs, by_id, rejected)
    if issues:
        raise Invalid(issues)
    return features


def _feature(kind: str, i: int, raw: Any, issues: list[Issue]) -> Feature | None:
    file = f"{kind}.geojson"
    fid = raw.get("id") if isinstance(raw, dict) else None
    label = fid if isinstance(fid, str) and fid else f"#{i}"
    if not isinstance(raw, dict) or raw.get("type") != "Feature":
        issues.append(_issue(file, label, (), "must be a GeoJSON Feature object"))
        return None
    if not isinstance(fid, str) or not fid.strip() or len(fid) > MAX_ID_LENGTH:
        issues.append(_issue(file, label, ("id",), f"needs an id (a UUID; a string of 1-{MAX_ID_LENGTH} characters)"))
        return None
    declared = raw.get("feature_type", kind)
    if declared != kind:
        what = "an unknown feature type" if declared not in FEATURE_TYPES else "another feature type"
        issues.append(_issue(file, fid, ("feature_type",), f"feature_type {declared!r} is {what}; "
                             f"{file} holds {kind!r} features only"))
        return None
    props = raw.get("properties")
    if not isinstance(props, dict):
        issues.append(_issue(file, fid, ("properties",), "properties must be an object"))
        return None
    before = len(issues)
    geometry = raw.get("geometry")
    _check_geometry(file, fid, GEOMETRY[kind], geometry, issues)
    if kind == "level":
        ordinal = props.get("ordinal")
        if isinstance(ordinal, bool) or not isinstance(ordinal, int) or not -20 <= ordinal <= 200:
            issues.append(_issue(file, fid, ("properties", "ordinal"), f"ordinal must be an integer from -20 to "
                                 f"200, got {ordinal!r}"))
    for prop in ("name", "alt_name", "short_name"):
        value = props.get(prop)
        if value is not None and not _labels_ok(value):
            issues.append(_issue(file, fid, ("properties", prop), f"{prop} must be a LABELS object such as "
                                 '{"en": "..."}'))
    if len(issues) > before:
        return None
    return Feature(kind, fid, props, geometry if isinstance(geometry, dict) else None, i)


def _labels_ok(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())  # lenient: a bare string is a label in the archive's language
    return (isinstance(value, dict) and bool(value)
            and all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items()))


def _check_geometry(file: str, fid: str, want: str | None, geometry: Any, issues: list[Issue]) -> None:
    if want is None:
        return  # unlocated: IMDF says null; whatever is there is not used
    got = geometry.get("type") if isinstance(geometry, dict) else None
    allowed = ("Polygon", "MultiPolygon") if want == "polygonal" else (want,)
    if got not in allowed:
        issues.append(_issue(file, fid, ("geometry",), f"geometry must be {' or '.join(allowed)}, got "
                             f"{got or ('null' if geometry is None else type(geometry).__name__)}"))
        return
    if want == "polygonal":
        try:
            parse_zone_geometry(geometry)
        except GeometryProblems as exc:
            for p in exc.problems:
                issues.append(_issue(file, fid, ("geometry", *p.path), p.message))
        return
    coords = geometry.get("coordinates")
    points = [coords] if want == "Point" else coords if isinstance(coords, list) else None
    if want == "LineString" and (points is None or len(points) < 2):
        issues.append(_issue(file, fid, ("geometry", "coordinates"), "a LineString needs at least 2 positions"))
        return
    for k, p in enumerate(points or []):
        if not (isinstance(p, list) and len(p) in (2, 3)
                and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in p)
                and -180 <= p[0] <= 180 and -90 <= p[1] <= 90):
            issues.append(_issue(file, fid, ("geometry", "coordinates", k),
                                 f"position {p!r} is not a finite [longitude, latitude]"))
            return


def _check_refs(
    feature: Feature, refs: dict[str, tuple[str, bool, bool]], by_id: dict[str, Feature], rejected: set[str]
) -> list[Issue]:
    issues = []
    for prop, (target, many, nullable) in refs.items():
        value = feature.props.get(prop)
        if value is None:
            if not nullable:
                issues.append(_issue(feature.file, feature.id, ("properties", prop),
                                     f"{prop} is required (the id of a {target})"))
            continue
        ids = value if many else [value]
        if many and not isinstance(value, list):
            issues.append(_issue(feature.file, feature.id, ("properties", prop), f"{prop} must be an array of ids"))
            continue
        for ref in ids:
            if isinstance(ref, str) and ref in rejected:
                continue  # its own problem is reported already
            hit = by_id.get(ref) if isinstance(ref, str) else None
            if hit is None or hit.type != target:
                found = "" if hit is None else f" (it names a {hit.type})"
                issues.append(_issue(feature.file, feature.id, ("properties", prop),
                                     f"{prop} {ref!r} is not the id of any {target} in {target}.geojson{found}"))
    return issues


def label(labels: Any, lang: str) -> str | None:
    """The label in ``lang``, else one in the same language, else the first (by tag)."""
    if labels is None:
        return None
    if isinstance(labels, str):
        return labels.strip()
    if lang in labels:
        return labels[lang].strip()
    primary = lang.split("-")[0].lower()
    same = sorted(k for k in labels if k.split("-")[0].lower() == primary)
    return labels[(same or sorted(labels))[0]].strip()


def names_of(labels: Any, lang: str) -> dict[str, str]:
    """Every translation of a LABELS value (a bare string counts as ``lang``)."""
    return {lang: labels} if isinstance(labels, str) else dict(labels or {})
