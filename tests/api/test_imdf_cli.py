"""`mallfence zones import` with IMDF: a .zip or a folder, the report on stdout, refusals on stderr."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from mallfence import cli
from mallfence.db import make_engine
from tests.imdf_archives import find, mall, zip_archive

SHIPPED = Path(__file__).resolve().parents[2] / "zones" / "harbourside-imdf.zip"


def run(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> tuple[int, str, str]:
    code = cli.main(["--database-url", url, "zones", "import", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_zip_then_the_same_archive_unpacked(database_url: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, database_url, str(SHIPPED), "--timezone", "Europe/Copenhagen")
    assert code == 0, err
    report = json.loads(out)
    assert (report["venue"], report["total"]["created"], report["timezone_source"]) == (
        "harbourside-centre", 100, "parameter")  # slug from the venue's name
    assert "created venue 'harbourside-centre'" in err and "100 zones created" in err
    with zipfile.ZipFile(SHIPPED) as zf:
        zf.extractall(tmp_path / "unpacked")
    code, out, err = run(capsys, database_url, str(tmp_path / "unpacked"), "--venue", "harbourside-centre")
    assert code == 0, err
    assert json.loads(out)["total"] == {"created": 0, "updated": 0, "unchanged": 100}


def test_broken_archive_is_refused_with_every_problem(database_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    files = mall()
    find(files, "occ-books")["properties"]["anchor_id"] = "anc-nope"
    find(files, "u-shop2")["properties"]["level_id"] = "lvl-9"
    path = tmp_path / "broken.zip"
    path.write_bytes(zip_archive(files))
    code, out, err = run(capsys, database_url, str(path), "--venue", "arcade")
    assert code == 2 and out == ""
    assert "import refused, nothing was stored (2 problem(s))" in err
    assert "occupant.geojson feature occ-books: anchor_id 'anc-nope'" in err
    assert "unit.geojson feature u-shop2: level_id 'lvl-9'" in err
    engine = make_engine(database_url)
    with engine.connect() as conn:  # the venue it would have created does not exist
        assert conn.scalar(sa.text("SELECT count(*) FROM venues WHERE slug = 'arcade'")) == 0
    engine.dispose()


def test_imdf_options_on_a_geojson_file_are_refused(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    mall_file = SHIPPED.with_name("harbourside-mall.geojson")
    code, _, err = run(capsys, database_url, str(mall_file), "--timezone", "Europe/Copenhagen")
    assert code == 2 and "--timezone and --language are for IMDF archives" in err
