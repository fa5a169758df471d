"""Checks on an Office Open XML package (.docx, .xlsx) before python-docx or openpyxl
opens it: a zip whose index, sizes and XML are within the limits (dispatch.limits).

- The entry count and the central directory's size are read from the zip's end record
  before ``zipfile`` builds its index (one Python object per entry).
- Declared uncompressed sizes are summed and each entry's compression ratio checked.
  The declared sizes can be trusted as upper bounds: ``zipfile`` never returns more
  than an entry declares (it stops there, then fails the CRC check). Only stored and
  deflated entries are accepted: zipfile inflates bzip2/LZMA without an output bound.
- Every part a library parses as XML (the ``.rels`` parts, ``[Content_Types].xml``, and
  parts whose content type is XML, images aside) is read through expat up to its root
  element, and refused if it declares a DOCTYPE or entities (billion laughs, external
  entities), which XML allows only there. One that a library reads whole may not be
  larger than ``part_bytes``.
  python-docx and openpyxl parse with lxml without resolving entities, openpyxl's
  streaming reader through defusedxml; this check comes first for both.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import NoReturn
from xml.parsers import expat

from dispatch.limits import ZipLimits, size_text

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
# The smallest central directory record (46 bytes) plus a name of 200 bytes on average:
# a directory larger than this for the allowed entries is hiding more of them.
_CD_BYTES_PER_ENTRY = 246
_CHUNK = 1 << 16

StartHandler = Callable[[str, dict[str, str]], None]


class PackageRefused(Exception):
    """A package over a limit or unsafe to parse; ``reason`` is for the user (Chinese)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _end_record(data: bytes) -> tuple[int, int] | None:
    """(entries, central directory bytes) from the zip's end record, or None if none."""
    at = data.rfind(_EOCD, max(0, len(data) - 22 - 65535))
    if at < 0 or len(data) < at + 22:
        return None
    entries, cd_size = struct.unpack_from("<xxxxxxxxxxHI", data, at)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        loc = at - 20
        if loc >= 0 and data[loc:loc + 4] == _EOCD64_LOCATOR:
            (rec,) = struct.unpack_from("<Q", data, loc + 8)
            if data[rec:rec + 4] == _EOCD64 and len(data) >= rec + 56:
                entries, cd_size = struct.unpack_from("<QQ", data, rec + 32)
    return entries, cd_size


def open_index(data: bytes, limits: ZipLimits, what: str = "文件") -> zipfile.ZipFile:
    """The zip's index, once its end record says it has no more entries than allowed.

    Raises PackageRefused, or zipfile.BadZipFile for bytes that are no zip at all.
    """
    end = _end_record(data)
    if end is None:
        raise zipfile.BadZipFile("no end of central directory record")
    entries, cd_size = end
    if entries > limits.entries or cd_size > limits.entries * _CD_BYTES_PER_ENTRY:
        raise PackageRefused(_too_many(entries, limits, what))
    archive = zipfile.ZipFile(io.BytesIO(data))
    if len(archive.infolist()) > limits.entries:
        raise PackageRefused(_too_many(len(archive.infolist()), limits, what))
    return archive


def _too_many(entries: int, limits: ZipLimits, what: str) -> str:
    return f"{what}中的文件条目过多（{entries} 个，最多 {limits.entries} 个）：不像正常的 {what}"


def open_package(data: bytes, limits: ZipLimits, what: str,
                 start: StartHandler | None = None) -> zipfile.ZipFile:
    """The package as a ZipFile, after the checks in the module docstring.

    ``what`` names the kind of file in messages (Word 文件, Excel 工作簿); ``start`` sees
    every element of every XML part (see ``scan_xml``). Raises PackageRefused, or
    zipfile.BadZipFile for bytes that are no zip at all.
    """
    archive = open_index(data, limits, what)
    infos = archive.infolist()
    total = 0
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise PackageRefused(
                f"{what}中的 {info.filename} 使用了 Office 不用的压缩方式（{info.compress_type}）"
            )
        total += info.file_size
        if total > limits.total_bytes:
            raise PackageRefused(
                f"{what}解压后过大（超过 {size_text(limits.total_bytes)}）：不像正常的 {what}，"
                "可能是“压缩炸弹”"
            )
        if info.file_size >= limits.ratio_floor and (
            info.file_size > limits.ratio * max(1, info.compress_size)
        ):
            ratio = info.file_size // max(1, info.compress_size)
            raise PackageRefused(
                f"{what}中的 {info.filename} 压缩比异常（{ratio} 倍，最多 {limits.ratio} 倍；"
                f"解压后 {size_text(info.file_size)}）：可能是“压缩炸弹”"
            )
    types = _content_types(archive, what)
    for info in infos:
        if info.file_size > limits.part_bytes and (
            not limits.streamed or _content_type(info.filename, types) != limits.streamed
        ):
            raise PackageRefused(
                f"{what}中的 {info.filename} 解压后过大（{size_text(info.file_size)}，"
                f"最多 {size_text(limits.part_bytes)}）：不像正常的 {what}"
            )
    for name in _xml_parts(archive, types):
        scan_xml(archive, name, what, start)
    return archive


ContentTypes = tuple[dict[str, str], dict[str, str]]


def _content_type(name: str, types: ContentTypes) -> str:
    defaults, overrides = types
    ext = PurePosixPath(name.lower()).suffix.lstrip(".")
    return overrides.get(name.lower(), defaults.get(ext, "")).lower()


def _content_types(archive: zipfile.ZipFile, what: str) -> ContentTypes:
    """(content type by extension, content type by part name) from [Content_Types].xml."""
    defaults: dict[str, str] = {}
    overrides: dict[str, str] = {}

    def start(name: str, attrs: dict[str, str]) -> None:
        local = name.rsplit(" ", 1)[-1]
        if local == "Default" and "Extension" in attrs:
            defaults[attrs["Extension"].lower()] = attrs.get("ContentType", "")
        elif local == "Override" and "PartName" in attrs:
            overrides[attrs["PartName"].lstrip("/").lower()] = attrs.get("ContentType", "")

    if "[Content_Types].xml" in archive.namelist():
        scan_xml(archive, "[Content_Types].xml", what, start)
    return defaults, overrides


def _xml_parts(archive: zipfile.ZipFile, types: ContentTypes) -> Iterator[str]:
    """The parts a library parses as XML ([Content_Types].xml was scanned already)."""
    for info in archive.infolist():
        name = info.filename
        if info.is_dir() or name == "[Content_Types].xml":
            continue
        content_type = _content_type(name, types)
        if content_type.startswith("image/"):
            continue  # SVG images may carry a DOCTYPE; no library parses them
        if PurePosixPath(name.lower()).suffix in (".rels", ".xml") or content_type.endswith("xml"):
            yield name


def count_elements(archive: zipfile.ZipFile, name: str, stop_after: int) -> int:
    """How many elements a part has at most, counted at the speed of bytes.count (tags
    open with "<"; end tags, comments, declarations and CDATA text are subtracted or only
    add): stops early once over ``stop_after``."""
    count = 0
    last = b""
    with archive.open(name) as f:
        while chunk := f.read(_CHUNK * 16):
            pair = last + chunk  # "</" split between chunks
            count += chunk.count(b"<") - pair.count(b"</") - pair.count(b"<?") - pair.count(b"<!")
            if count > stop_after:
                break
            last = chunk[-1:]
    return count


class _RootReached(Exception):
    pass


def _stop(name: str, attrs: dict[str, str]) -> None:
    raise _RootReached


@contextmanager
def _refusing_dtd(what: str, name: str) -> Iterator[expat.XMLParserType]:
    parser = expat.ParserCreate(namespace_separator=" ")

    def forbid(*_: object) -> NoReturn:
        raise PackageRefused(
            f"{what}中的 {name} 含有 DOCTYPE 或实体声明（正常的 Office 文件没有）：可能是恶意构造的文件"
        )

    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    parser.ExternalEntityRefHandler = forbid
    yield parser


def scan_xml(archive: zipfile.ZipFile, name: str, what: str,
             start: StartHandler | None = None) -> None:
    """Stream one XML part through expat, refusing a DOCTYPE or entity declaration.

    ``start(name, attrs)`` sees each element as it opens (names are "namespace local");
    it may raise PackageRefused to stop early.
    """
    with _refusing_dtd(what, name) as parser:
        # A DOCTYPE (and the entities it declares) can only come before the root element:
        # without a handler to feed, the scan stops there.
        parser.StartElementHandler = start or _stop
        try:
            with archive.open(name) as f:
                while chunk := f.read(_CHUNK):
                    parser.Parse(chunk, False)
            parser.Parse(b"", True)
        except _RootReached:
            pass
        except expat.ExpatError as e:
            raise PackageRefused(
                f"{what}已损坏：其中的 {name} 不是有效的 XML（第 {e.lineno} 行）"
            ) from None
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError):
            raise PackageRefused(f"{what}已损坏：无法解压其中的 {name}") from None
