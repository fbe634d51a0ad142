"""Reading IMDF archives: zip or folder, and every way an archive can be hostile or broken."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mallfence.errors import Invalid
from mallfence.venues import imdf_archive
from mallfence.venues.imdf_archive import TooLarge, read_folder, read_path, read_upload, read_zip
from tests.imdf_archives import MANIFEST, mall, write_folder, zip_archive


def raw_zip(members: list[tuple[str | zipfile.ZipInfo, bytes]], *, with_manifest: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if with_manifest:
            zf.writestr("manifest.json", json.dumps(MANIFEST))
        for name, body in members:
            zf.writestr(name, body)
    return buf.getvalue()


def refused(data: bytes, *, kind: type[Invalid] = Invalid) -> str:
    with pytest.raises(kind) as info:
        read_zip(data, source="test.zip")
    return info.value.message


def test_zip_and_folder_read_the_same(tmp_path: Path) -> None:
    files = mall()
    from_zip = read_zip(zip_archive(files))
    from_folder = read_folder(write_folder(tmp_path / "imdf", files))
    assert from_zip.features == from_folder.features and from_zip.manifest == from_folder.manifest == MANIFEST
    assert sorted(from_zip.features) == sorted(files)


def test_archive_zipped_with_its_folder_is_found() -> None:
    archive = read_zip(zip_archive(mall(), folder="harbourside/"))
    assert "unit" in archive.features


def test_other_files_are_listed_not_read() -> None:
    archive = read_zip(zip_archive(mall(), extra={"README.md": b"x", "notes/unit.geojson": b"not json",
                                                  "__MACOSX/._unit.geojson": b"\x00"}))
    assert archive.ignored_files == ["README.md", "notes/unit.geojson"]


@pytest.mark.parametrize(("body", "words"), [
    (b"", "is not a zip archive"),
    (b"PK\x03\x04 truncated", "is not a zip archive"),
    (b'{"type": "FeatureCollection", "features": []}', "is not a zip archive"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "is not a zip archive"),
])
def test_not_a_zip(body: bytes, words: str) -> None:
    assert words in refused(body)


def test_missing_manifest() -> None:
    assert "manifest.json: missing" in refused(zip_archive(mall(), manifest=None))


def test_two_manifests() -> None:
    data = zip_archive(mall(), extra={"other/manifest.json": b"{}"})
    assert "second manifest.json" in refused(data)


@pytest.mark.parametrize(("name", "body", "words"), [
    ("unit.geojson", b'{"type": "FeatureCollection", "features": [', "unit.geojson: not valid JSON"),
    ("unit.geojson", b'{"type": "FeatureCollection",\n "features": [}]}', "at line 2 column"),
    ("unit.geojson", b"\xff\xfe\x00garbage", "unit.geojson: not valid JSON"),
    ("unit.geojson", b"[" * 100_000 + b"]" * 100_000, "unit.geojson: not valid JSON"),  # nesting bomb
    ("unit.geojson", b'{"type": "FeatureCollection", "features": [' + b"9" * 5000 + b"]}", "not valid JSON"),
    ("unit.geojson", b'{"type": "Feature"}', "unit.geojson: must be a GeoJSON FeatureCollection"),
    ("unit.geojson", b'{"type": "FeatureCollection", "features": {}}', "'features' must be an array"),
    ("manifest.json", b"[1, 2]", "manifest.json: must be a JSON object"),
    ("manifest.json", b"{version: 1}", "manifest.json: not valid JSON"),
])
def test_malformed_files_are_named(name: str, body: bytes, words: str) -> None:
    files = mall()
    if name == "unit.geojson":
        del files["unit"]
    data = zip_archive(files, manifest=None if name == "manifest.json" else MANIFEST, extra={name: body})
    assert words in refused(data)


def _zip_with_raw_name(name: str) -> bytes:
    """A zip whose member carries ``name`` verbatim (zipfile would normalise it on the way in)."""
    safe = "x" * len(name.encode())
    data = raw_zip([(safe, b"payload")])
    return data.replace(safe.encode(), name.encode())


@pytest.mark.parametrize("name", ["../unit.geojson", "/etc/passwd", "a/../../b.geojson", "..\\evil.geojson",
                                  "dir\\unit.geojson", "C:/x.geojson", "/manifest.json"])
def test_traversal_names_are_named_in_the_refusal(name: str) -> None:
    message = refused(_zip_with_raw_name(name))
    assert f"{name}: unsafe path" in message


def test_symlink_members_are_refused() -> None:
    info = zipfile.ZipInfo("unit.geojson")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    assert "unit.geojson: is a symbolic link" in refused(raw_zip([(info, b"/etc/passwd")]))


def test_duplicate_members_are_refused() -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = raw_zip([("unit.geojson", b"{}"), ("unit.geojson", b"{}")])
    assert "unit.geojson: appears twice" in refused(data)


def test_folder_with_a_symlink_is_refused(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "imdf", mall())
    (folder / "unit.geojson").unlink()
    (folder / "unit.geojson").symlink_to(tmp_path / "elsewhere.geojson")
    with pytest.raises(Invalid, match=r"unit\.geojson: is a symbolic link"):
        read_folder(folder)


# -- zip bombs: each limit, made small so the test archive stays small ------------------------------
def test_member_that_inflates_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imdf_archive, "MAX_MEMBER_BYTES", 10_000)
    data = raw_zip([("unit.geojson", b" " * 20_000)])
    assert "unit.geojson: inflates to 20000 bytes, over the limit of 10000" in refused(data, kind=TooLarge)


def test_members_that_together_inflate_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imdf_archive, "MAX_TOTAL_BYTES", 50_000)
    data = raw_zip([(f"{k}.geojson", b" " * 20_000) for k in ("unit", "level", "venue")])
    assert "inflate to more than 50000 bytes" in refused(data, kind=TooLarge)


def test_compression_ratio_of_a_bomb() -> None:
    data = raw_zip([("unit.geojson", b"\x00" * (4 * 2**20))])  # 4 MiB of zeros deflate about 1000:1
    assert len(data) < 20_000
    assert "unit.geojson: compression ratio" in refused(data, kind=TooLarge)


def test_too_many_members() -> None:
    data = raw_zip([(f"junk/{i}.txt", b"") for i in range(imdf_archive.MAX_MEMBERS + 1)])
    assert f"more than the limit of {imdf_archive.MAX_MEMBERS}" in refused(data, kind=TooLarge)


def test_too_many_features(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imdf_archive, "MAX_FEATURES", 10)
    assert "more than 10 features" in refused(zip_archive(mall()), kind=TooLarge)


def test_member_whose_header_understates_its_size() -> None:
    """A central directory that lies: zipfile stops at the declared size and the CRC no longer matches."""
    data = raw_zip([("unit.geojson", b'{"type": "FeatureCollection", "features": []}' + b" " * 1000)])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        lie = zf.getinfo("unit.geojson").file_size.to_bytes(4, "little")
    patched = data.replace(lie, (10).to_bytes(4, "little"))
    assert "unit.geojson: cannot be read from the zip" in refused(patched)


def test_oversized_archive_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(imdf_archive, "MAX_UPLOAD_BYTES", 1_000)
    path = tmp_path / "big.zip"
    path.write_bytes(zip_archive(mall()))
    with pytest.raises(TooLarge, match=r"big\.zip: is over the limit of 1000 bytes"):
        read_path(path)


# -- HTTP bodies ------------------------------------------------------------------------------------
async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _upload(headers: dict[str, str], parts: list[bytes]) -> bytes:
    return asyncio.run(read_upload(headers, _chunks(parts)))


def test_upload_is_read_whole_under_the_limit() -> None:
    assert _upload({"content-type": "application/zip"}, [b"ab", b"cd"]) == b"abcd"


def test_upload_declared_over_the_limit_is_refused_before_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imdf_archive, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(TooLarge, match="archive is 101 bytes"):
        _upload({"content-length": "101"}, [])


def test_upload_streamed_over_the_limit_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imdf_archive, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(TooLarge, match="over the limit of 100 bytes"):
        _upload({}, [b"x" * 60, b"x" * 60])  # no content-length: chunked


def test_multipart_upload_gets_a_hint() -> None:
    with pytest.raises(Invalid, match="not as a multipart form upload"):
        _upload({"content-type": "multipart/form-data; boundary=x"}, [b"--x"])
