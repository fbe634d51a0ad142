"""zones/harbourside-imdf.zip is what zones/imdf_export.py makes from the mall, and it is valid IMDF-shaped."""

from __future__ import annotations

import importlib.util
import io
import json
import uuid
import zipfile
from pathlib import Path

from mallfence.venues.imdf_archive import read_path

ZONES = Path(__file__).resolve().parents[2] / "zones"


def _generator():
    spec = importlib.util.spec_from_file_location("imdf_export", ZONES / "imdf_export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_archive_is_current_and_deterministic() -> None:
    gen = _generator()
    fc = json.loads((ZONES / "harbourside-mall.geojson").read_text())
    made = [gen.archive(gen.build(fc)) for _ in range(2)]
    assert made[0] == made[1]  # byte for byte, run to run
    with zipfile.ZipFile(ZONES / "harbourside-imdf.zip") as shipped, zipfile.ZipFile(io.BytesIO(made[0])) as fresh:
        assert shipped.namelist() == fresh.namelist()
        for name in shipped.namelist():  # contents, not bytes: another zlib may deflate differently
            assert shipped.read(name) == fresh.read(name), f"{name} is stale: run zones/imdf_export.py"
    assert gen.check(fc, made[0]) == []


def test_the_archive_looks_like_imdf() -> None:
    with zipfile.ZipFile(ZONES / "harbourside-imdf.zip") as zf:
        manifest = json.loads(zf.read("manifest.json"))
        docs = {n[:-8]: json.loads(zf.read(n)) for n in zf.namelist() if n.endswith(".geojson")}
    assert manifest["version"] == "1.0.0" and manifest["language"] == "en"
    ids = [f["id"] for doc in docs.values() for f in doc["features"]]
    assert len(ids) == len(set(ids)) and all(uuid.UUID(i).version == 5 for i in ids)
    for kind, doc in docs.items():
        assert all(f["feature_type"] == kind and f["type"] == "Feature" for f in doc["features"])
    units = {f["properties"]["category"] for f in docs["unit"]["features"]}
    assert units == {"walkway", "lobby", "room", "movietheater", "foodservice", "parking", "escalator", "elevator",
                     "restroom.female", "restroom.male", "restroom.unisex.wheelchair"}
    names = [f["properties"]["name"] for f in docs["level"]["features"]]
    assert all(set(n) == {"en", "da"} for n in names)
    hours = [f["properties"]["hours"] for f in docs["occupant"]["features"]]
    assert "Mo-Fr 09:00-13:00,14:00-18:00; Sa 10:00-16:00; Su off" in hours  # the lunch break survives


def test_the_shipped_archive_reads_as_zip_and_unpacked(tmp_path: Path) -> None:
    archive = read_path(ZONES / "harbourside-imdf.zip")
    with zipfile.ZipFile(ZONES / "harbourside-imdf.zip") as zf:
        zf.extractall(tmp_path)
    assert read_path(tmp_path).features == archive.features
    assert archive.manifest["version"] == "1.0.0" and archive.ignored_files == []
    assert len(archive.features["occupant"]) == 78
