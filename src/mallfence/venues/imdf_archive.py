"""Reading an IMDF archive (a .zip, or a folder) safely, before any of it is taken as features.

An archive arrives from outside, so it is checked as an archive first: members are counted and
their declared sizes, totals and compression ratios bounded before a byte is inflated, reads are
capped again while inflating (a header can lie), and names that are absolute, climb out with
``..``, use backslashes or are links are refused outright. Nothing is ever extracted to disk. The
result is the manifest and the parsed FeatureCollection of each IMDF feature type present; any
problem is an ``Invalid`` (422) or ``TooLarge`` (413) naming the file.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from mallfence.errors import Invalid, Issue

# Every feature type of IMDF 1.0.0; each lives in "<type>.geojson" next to manifest.json.
FEATURE_TYPES = ("address", "amenity", "anchor", "building", "detail", "fixture", "footprint", "geofence", "kiosk",
                 "level", "occupant", "opening", "relationship", "section", "unit", "venue")
MAX_UPLOAD_BYTES = 50 * 2**20  # a large mall's archive is a few MB zipped
MAX_MEMBERS = 100  # IMDF has 17 files; the rest is room for READMEs and extensions
MAX_MEMBER_BYTES = 32 * 2**20  # one inflated file
MAX_TOTAL_BYTES = 128 * 2**20  # all inflated files together
MAX_RATIO = 100  # GeoJSON deflates 4-10x; a bomb does 1000x and more
RATIO_FLOOR_BYTES = 2**20  # tiny files may compress absurdly well without harm
MAX_FEATURES = 100_000


class TooLarge(Invalid):
    """Over one of the archive limits; nothing was read further."""

    status_code = 413


@dataclass
class ImdfArchive:
    source: str
    manifest: dict[str, Any]
    features: dict[str, list[Any]]  # feature type -> the "features" array of its file
    ignored_files: list[str] = field(default_factory=list)  # present, but not IMDF feature files


def _refuse(name: str, msg: str, *, large: bool = False) -> Invalid:
    issue = Issue(("archive", name) if name else ("archive",), f"{name}: {msg}" if name else msg)
    return TooLarge(issue) if large else Invalid(issue)


def _unsafe(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return (name.startswith("/") or "\\" in name or "\x00" in name or ".." in parts
            or (len(name) > 1 and name[1] == ":"))  # C:/...


async def read_upload(headers: Mapping[str, str], chunks: AsyncIterator[bytes]) -> bytes:
    """An HTTP request body, refused (413) as soon as it passes MAX_UPLOAD_BYTES; never held whole beyond that."""
    if headers.get("content-type", "").startswith("multipart/"):
        raise _refuse("", "send the .zip itself as the request body (Content-Type: application/zip), "
                          "not as a multipart form upload")
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise _refuse("", f"archive is {declared} bytes, over the limit of {MAX_UPLOAD_BYTES}", large=True)
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise _refuse("", f"archive is over the limit of {MAX_UPLOAD_BYTES} bytes", large=True)
        parts.append(chunk)
    return b"".join(parts)


def read_zip(data: bytes, *, source: str = "upload") -> ImdfArchive:
    """An IMDF archive from the bytes of a .zip."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise _refuse("", f"archive is {len(data)} bytes, over the limit of {MAX_UPLOAD_BYTES}", large=True)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as exc:
        raise _refuse("", f"{source} is not a zip archive ({exc}); an IMDF archive is a .zip of .geojson "
                          "files and manifest.json") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > MAX_MEMBERS:
            raise _refuse("", f"{len(infos)} files is more than the limit of {MAX_MEMBERS}", large=True)
        seen: set[str] = set()
        total = 0
        for info in infos:
            _check_member(info, seen)
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                raise _refuse("", f"the files inflate to more than {MAX_TOTAL_BYTES} bytes", large=True)
        files = {i.filename: i for i in infos if not i.filename.startswith("__MACOSX/")}
        base, wanted, ignored = _layout(list(files))

        def read(name: str) -> bytes:
            info = files[name]
            try:
                with zf.open(info) as fh:
                    body = fh.read(MAX_MEMBER_BYTES + 1)
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError,
                    ValueError) as exc:  # a corrupted header offset makes zipfile seek before the start
                raise _refuse(name, f"cannot be read from the zip ({exc})") from None
            if len(body) > min(info.file_size, MAX_MEMBER_BYTES):
                raise _refuse(name, "inflates beyond its declared size", large=True)
            return body

        raw = {short: read(base + short) for short in wanted}
    return _assemble(source, raw, ignored)


def _check_member(info: zipfile.ZipInfo, seen: set[str]) -> None:
    name = info.filename
    if _unsafe(name):
        raise _refuse(name, "unsafe path (absolute, '..', drive letter or backslash): the archive is refused")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise _refuse(name, "is a symbolic link: the archive is refused")
    if info.flag_bits & 0x1:
        raise _refuse(name, "is encrypted: IMDF archives are not")
    if name in seen:
        raise _refuse(name, "appears twice in the zip")
    seen.add(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise _refuse(name, f"inflates to {info.file_size} bytes, over the limit of {MAX_MEMBER_BYTES}", large=True)
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise _refuse(name, f"compression ratio {info.file_size // max(info.compress_size, 1)}:1 is over "
                            f"{MAX_RATIO}:1 (a zip bomb?)", large=True)


def _layout(names: list[str]) -> tuple[str, list[str], list[str]]:
    """(folder holding manifest.json, its IMDF files, every other file), from the member names."""
    manifests = sorted(n for n in names if PurePosixPath(n).name == "manifest.json" and n.count("/") <= 1)
    if not manifests:
        raise _refuse("manifest.json", "missing: an IMDF archive has manifest.json next to its .geojson files")
    if len(manifests) > 1:
        raise _refuse(manifests[1], f"second manifest.json (also {manifests[0]}): which archive is meant?")
    base = manifests[0][: -len("manifest.json")]
    known = {"manifest.json", *(f"{t}.geojson" for t in FEATURE_TYPES)}
    wanted = sorted(n[len(base):] for n in names if n.startswith(base) and n[len(base):] in known)
    ignored = sorted(n for n in names if not (n.startswith(base) and n[len(base):] in known))
    return base, wanted, ignored


def read_folder(path: Path) -> ImdfArchive:
    """An IMDF archive unpacked in a folder (manifest.json and <type>.geojson files in it)."""
    names = []
    for entry in sorted(path.iterdir()):
        if entry.is_symlink():
            raise _refuse(entry.name, "is a symbolic link: only regular files are read")
        if entry.is_file():
            names.append(entry.name)
    _, wanted, ignored = _layout(names)
    raw: dict[str, bytes] = {}
    total = 0
    for name in wanted:
        size = (path / name).stat().st_size
        total += size
        if size > MAX_MEMBER_BYTES or total > MAX_TOTAL_BYTES:
            raise _refuse(name, f"is {size} bytes; files over {MAX_MEMBER_BYTES} bytes or together over "
                                f"{MAX_TOTAL_BYTES} are refused", large=True)
        raw[name] = (path / name).read_bytes()
    return _assemble(str(path), raw, ignored)


def read_path(path: Path) -> ImdfArchive:
    """A folder or a .zip file."""
    if path.is_dir():
        return read_folder(path)
    if path.stat().st_size > MAX_UPLOAD_BYTES:
        raise _refuse(path.name, f"is over the limit of {MAX_UPLOAD_BYTES} bytes", large=True)
    return read_zip(path.read_bytes(), source=path.name)


def _parse(name: str, body: bytes) -> Any:
    try:
        return json.loads(body)  # bytes: UTF-8 (with or without BOM), UTF-16 and UTF-32 are detected
    except json.JSONDecodeError as exc:
        raise _refuse(name, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # bad encoding, 5000-digit integers, nesting bombs
        raise _refuse(name, f"not valid JSON: {str(exc)[:200]}") from None


def _assemble(source: str, raw: dict[str, bytes], ignored: list[str]) -> ImdfArchive:
    manifest = _parse("manifest.json", raw.pop("manifest.json"))
    if not isinstance(manifest, dict):
        raise _refuse("manifest.json", "must be a JSON object with version, created and language")
    features: dict[str, list[Any]] = {}
    count = 0
    for name, body in sorted(raw.items()):
        doc = _parse(name, body)
        if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
            raise _refuse(name, "must be a GeoJSON FeatureCollection")
        items = doc.get("features")
        if not isinstance(items, list):
            raise _refuse(name, "its 'features' must be an array")
        count += len(items)
        if count > MAX_FEATURES:
            raise _refuse(name, f"more than {MAX_FEATURES} features in the archive", large=True)
        features[name[: -len(".geojson")]] = items
    return ImdfArchive(source=source, manifest=manifest, features=features, ignored_files=ignored)
