"""Does each file open? Usability checks with a well-kept library per format.

=================  ===========================================================
format             how it is opened
=================  ===========================================================
PDF                pypdf: parses (strictly, then with repairs), page count,
                   encryption (any encryption, even an empty user password)
TIFF/JPEG/PNG/     Pillow: header, then a bounded decode: JPEG at 1/8 scale
BMP/GIF/WebP       (draft mode), PNG by its chunk CRCs (``verify``), others
                   fully only below :data:`DECODE_LIMIT` pixels; TIFF strips
                   and tiles must lie inside the file; TIFF compression must
                   be a public one
JPEG 2000          Pillow with OpenJPEG (``not performed`` when Pillow lacks it)
XML                preservation.metadata.xmlsafe.xml_wellformed (streaming)
OFD / OOXML / ZIP  zipfile: central directory, required parts (``OFD.xml``,
                   ``[Content_Types].xml``), encrypted members, every member's
                   CRC (streamed; skipped above :data:`ZIP_MAX_RATIO`)
OLE2 (DOC/XLS/PPT, a small reader of the compound-file directory: encrypted
encrypted OOXML)   OOXML (``EncryptionInfo``/``EncryptedPackage``), Word's
                   ``fEncrypted`` bit, Excel's ``FilePass`` record, PowerPoint's
                   ``EncryptedSummary``
TXT / CSV          decodes as UTF-8 (BOM allowed), UTF-16 with BOM, or GB18030
anything else      ``not performed`` with the reason; never ``pass``
=================  ===========================================================

Unidentified files are opened by the checker their extension suggests (a truncated
PDF has no ``%%EOF`` for Siegfried to match), so the damage itself is reported.

Memory is bounded: files are read through seeks and bounded buffers, and images are
never decoded whole above the pixel limit. Two known limits: pypdf's repair mode
reads a damaged PDF whole (only below :data:`PDF_REPAIR_LIMIT`), and Pillow's PNG
``verify`` holds one chunk at a time (chunks are small in practice).

``check_usability`` returns per-file findings for every outcome that is not a pass,
and per-file properties (pages, pixel size, dpi, colour mode, compression) for the
statistics; :func:`usability_summary` turns all the properties into one summary
finding per check, the pass evidence.
"""

from __future__ import annotations

import codecs
import struct
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from preservation.executor import bounded_map
from preservation.ingest.findings import Finding, Result, define
from preservation.model import FileEntry, FormatInfo

DECODE_LIMIT = 24_000_000  # pixels decoded at most per image (about 96 MB in RGBA)
MAX_IMAGE_PIXELS = 1_000_000_000  # Pillow's bomb limit while we open images (header only)
MIN_SCAN_DPI = 200  # DA/T 31: digitised pages at least 200 dpi
PDF_REPAIR_LIMIT = 256 * 1024 * 1024  # pypdf's repair reads the whole file: only below this
ZIP_MAX_RATIO = 200.0  # declared uncompressed / archive size above which CRCs are not tested
BLOCK = 1024 * 1024

OPEN_OPENS = define(
    "OPEN-001", "usability", "File opens with a format library", "文件可正常打开", cost=60
)
OPEN_ENCRYPTED = define(
    "OPEN-002", "usability", "No encryption or password protection", "无加密或口令保护", cost=61
)
OPEN_COMPRESSION = define(
    "OPEN-003", "usability", "No non-public compression", "未使用非公开压缩算法", cost=62
)
OPEN_RESOLUTION = define(
    "OPEN-004",
    "usability",
    f"Scan resolution at least {MIN_SCAN_DPI} dpi (DA/T 31)",
    f"扫描分辨率不低于{MIN_SCAN_DPI}dpi(DA/T 31)",
    cost=63,
)

# TIFF compression tag (259) values: public, documented schemes.
TIFF_PUBLIC = {
    1: "none",
    2: "CCITT modified Huffman RLE",
    3: "CCITT Group 3",
    4: "CCITT Group 4",
    5: "LZW",
    7: "JPEG",
    8: "Deflate (Adobe)",
    32773: "PackBits",
    32946: "Deflate",
}
# Known but not public, not baseline, or obsolete: a warning.
TIFF_RESERVED = {
    6: "old-style JPEG (obsolete, TIFF 6.0 section 22)",
    32766: "NeXT 2-bit RLE",
    32809: "ThunderScan RLE",
    32908: "Pixar companded 10-bit log",
    32909: "Pixar companded 11-bit log",
    34661: "JBIG (ISO/IEC 11544; not TIFF baseline)",
    34676: "SGI LogLuv RLE",
    34677: "SGI LogLuv 24-bit",
    34712: "JPEG 2000 (proprietary TIFF extension)",
    34715: "JBIG2 (proprietary TIFF extension)",
    34887: "LERC",
    34925: "LZMA",
    50000: "Zstandard",
    50001: "WebP",
}

PDF_PUIDS = frozenset(
    [
        *("fmt/14", "fmt/15", "fmt/16", "fmt/17", "fmt/18", "fmt/19", "fmt/20", "fmt/276"),
        *("fmt/1129", "fmt/95", "fmt/354", "fmt/476", "fmt/477", "fmt/478", "fmt/479"),
        *("fmt/480", "fmt/481", "fmt/1910", "fmt/1911", "fmt/1912"),
    ]
)
PILLOW_MIMES = frozenset(
    ["image/tiff", "image/jpeg", "image/png", "image/bmp", "image/gif", "image/webp"]
)
JP2_MIMES = frozenset(["image/jp2", "image/jpx", "image/jpm"])
JP2_PUIDS = frozenset(["x-fmt/392", "fmt/1794", "fmt/151", "fmt/463"])
XML_MIMES = frozenset(["application/xml", "text/xml"])
CFB_PUIDS = frozenset(["fmt/40", "fmt/39", "fmt/609", "fmt/61", "fmt/62", "fmt/59", "fmt/126"])
CFB_PUIDS |= {"fmt/494", "fmt/111"}
CFB_MIMES = frozenset(
    ["application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint"]
)
TEXT_PUIDS = frozenset(["x-fmt/111", "x-fmt/18"])
TEXT_MIMES = frozenset(["text/plain", "text/csv"])
OOXML_MIME_PREFIX = "application/vnd.openxmlformats-officedocument."
OFD_MIME = "application/ofd"
ZIP_PUID = "x-fmt/263"
DIGITISED_KINDS = frozenset(["TIFF", "JPEG", "JPEG2000"])  # Pillow format names


@dataclass
class Outcome:
    """What one checker found for one file."""

    result: Result
    message: str = ""
    props: dict[str, Any] = field(default_factory=dict)
    extra: list[tuple[str, Result, str]] = field(default_factory=list)  # (code, result, msg)


Checker = Callable[[Path, str], Outcome]


# Unidentified files (a truncated PDF has no %%EOF for Siegfried to match) are opened
# by the checker their extension suggests, so that the damage itself is reported.
EXTENSION_KINDS = {
    ".pdf": "pdf",
    **dict.fromkeys((".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"), "image"),
    **dict.fromkeys((".jp2", ".j2k", ".jpx", ".jpf"), "jp2"),
    ".xml": "xml",
    ".ofd": "ofd",
    **dict.fromkeys((".docx", ".xlsx", ".pptx"), "ooxml"),
    **dict.fromkeys((".doc", ".xls", ".ppt"), "cfb"),
    ".zip": "zip",
    **dict.fromkeys((".txt", ".csv"), "text"),
}


def _kind(fmt: FormatInfo | None) -> str | None:
    if fmt is None or fmt.puid is None:
        return None
    mime = (fmt.mime or "").lower()
    puid = fmt.puid
    if mime == "application/pdf" or puid in PDF_PUIDS:
        return "pdf"
    if mime in JP2_MIMES or puid in JP2_PUIDS:
        return "jp2"
    if mime in PILLOW_MIMES:
        return "image"
    if mime in XML_MIMES or puid == "fmt/101":
        return "xml"
    if mime == OFD_MIME:
        return "ofd"
    if mime.startswith(OOXML_MIME_PREFIX):
        return "ooxml"
    if puid in CFB_PUIDS or mime in CFB_MIMES:
        return "cfb"
    if puid == ZIP_PUID:
        return "zip"
    if puid in TEXT_PUIDS or mime in TEXT_MIMES:
        return "text"
    return None


# ---------------------------------------------------------------------------- PDF


def _check_pdf(path: Path, label: str) -> Outcome:
    from pypdf import PdfReader

    props: dict[str, Any] = {}
    with path.open("rb") as fh:
        repaired: str | None = None
        try:
            reader = PdfReader(fh, strict=True)
        except Exception as e:  # any parser error means "does not parse strictly"
            strict_error = _exc(e)
            size = path.stat().st_size
            if size > PDF_REPAIR_LIMIT:
                return Outcome(
                    "fail",
                    f"{label}: PDF does not parse ({strict_error}); too large"
                    f" ({size} bytes) to attempt a repair",
                )
            fh.seek(0)
            try:
                reader = PdfReader(fh, strict=False)
            except Exception as e2:
                return Outcome("fail", f"{label}: PDF does not open ({_exc(e2)})")
            repaired = strict_error
        props["pdf_version"] = str(reader.pdf_header).removeprefix("%PDF-")
        extra: list[tuple[str, Result, str]] = []
        props["encrypted"] = bool(reader.is_encrypted)
        if reader.is_encrypted:
            try:
                opens = bool(reader.decrypt(""))
            except Exception as e:  # e.g. an unsupported algorithm or a missing crypto library
                opens = False
                props["encryption_note"] = _exc(e)
            why = "permissions password only" if opens else "a password is needed to open it"
            extra.append(
                (
                    OPEN_ENCRYPTED.code,
                    "fail",
                    f"{label}: PDF is encrypted or password-protected ({why})",
                )
            )
            if not opens:
                return Outcome(
                    "fail", f"{label}: PDF cannot be opened without its password", props, extra
                )
        try:
            props["pages"] = len(reader.pages)
        except Exception as e:
            return Outcome(
                "fail", f"{label}: PDF page tree cannot be read ({_exc(e)})", props, extra
            )
    if repaired is not None:
        return Outcome(
            "warn",
            f"{label}: PDF opens only after repairs (strict parsing: {repaired})",
            props,
            extra,
        )
    return Outcome("pass", "", props, extra)


# ------------------------------------------------------------------------- images

_COLOUR = {
    "1": "bitonal",
    "L": "greyscale",
    "LA": "greyscale",
    "I": "greyscale",
    "I;16": "greyscale",
    "I;16B": "greyscale",
    "I;16L": "greyscale",
    "F": "greyscale",
    "P": "colour",
    "PA": "colour",
    "RGB": "colour",
    "RGBA": "colour",
    "RGBX": "colour",
    "CMYK": "colour",
    "YCbCr": "colour",
    "LAB": "colour",
    "HSV": "colour",
}


def _tiff_dpi(tags: Any) -> tuple[float, float] | None:
    x, y = tags.get(282), tags.get(283)
    unit = tags.get(296, 2)
    if x is None or y is None or unit not in (2, 3):
        return None
    factor = 2.54 if unit == 3 else 1.0
    try:
        return (round(float(x) * factor, 2), round(float(y) * factor, 2))
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _info_dpi(info: Any) -> tuple[float, float] | None:
    dpi = info.get("dpi")
    if not dpi or len(dpi) != 2:
        return None
    try:
        x, y = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError):
        return None
    if x <= 1 and y <= 1:
        return None  # "1:1" is an aspect ratio, not a resolution
    return (round(x, 2), round(y, 2))


def _as_ints(v: Any) -> list[int]:
    if v is None:
        return []
    if isinstance(v, list | tuple):
        return [int(x) for x in v]
    return [int(v)]


def _tiff_frame(im: Any, size: int, label: str, page: int) -> tuple[list[str], dict[str, Any]]:
    """Problems and properties of the current TIFF frame (no decoding)."""
    tags = im.tag_v2
    problems: list[str] = []
    offsets = _as_ints(tags.get(273)) or _as_ints(tags.get(324))
    counts = _as_ints(tags.get(279)) or _as_ints(tags.get(325))
    where = f" (page {page})" if page else ""
    for off, n in zip(offsets, counts, strict=False):
        if off + n > size:
            problems.append(
                f"{label}: image data{where} ends at byte {off + n}, beyond the end of the file"
                f" ({size} bytes): truncated"
            )
            break
    comp = int(tags.get(259, 1))
    return problems, {"compression_tag": comp, "dpi": _tiff_dpi(tags)}


def _compression_finding(comp: int, label: str) -> tuple[str, Result, str] | None:
    if comp in TIFF_PUBLIC:
        return None
    if comp in TIFF_RESERVED:
        return (
            OPEN_COMPRESSION.code,
            "warn",
            f"{label}: TIFF compression {comp} ({TIFF_RESERVED[comp]}) is not a public baseline"
            " scheme",
        )
    return (
        OPEN_COMPRESSION.code,
        "fail",
        f"{label}: TIFF compression {comp} is unknown (non-public or proprietary)",
    )


def _check_image(path: Path, label: str) -> Outcome:
    from PIL import Image, UnidentifiedImageError

    _raise_bomb_limit(Image)
    props: dict[str, Any] = {}
    extra: list[tuple[str, Result, str]] = []
    try:
        with Image.open(path) as im:
            fmt = str(im.format)
            width, height = im.size
            props.update(
                image_format=fmt,
                width=width,
                height=height,
                pixel_mode=im.mode,
                colour_mode=_COLOUR.get(im.mode, im.mode),
            )
            n_frames = int(getattr(im, "n_frames", 1) or 1)
            if n_frames > 1:
                props["frames"] = n_frames
            decoded = False
            if fmt == "TIFF":
                size = path.stat().st_size
                comps: set[int] = set()
                decoded = True
                for page in range(n_frames):
                    if page:
                        im.seek(page)
                    problems, frame = _tiff_frame(im, size, label, page + 1 if n_frames > 1 else 0)
                    comp = frame["compression_tag"]
                    if page == 0:
                        props["dpi"] = frame["dpi"]
                        props["compression"] = _tiff_compression_name(comp)
                    if comp not in comps:
                        comps.add(comp)
                        finding = _compression_finding(comp, label)
                        if finding is not None:
                            extra.append(finding)
                    props["compression_public"] = all(c in TIFF_PUBLIC for c in comps)
                    if problems:
                        return Outcome("fail", problems[0], props, extra)
                    if im.size[0] * im.size[1] <= DECODE_LIMIT:
                        im.load()
                    else:
                        decoded = False
            elif fmt == "PNG":
                props["dpi"] = _info_dpi(im.info)
                im.verify()  # every chunk's CRC, no decoding
                decoded = True
            elif fmt == "JPEG":
                props["dpi"] = _info_dpi(im.info)
                props["compression"] = "JPEG"
                exif = im.getexif()
                if exif.get(0x010F) or exif.get(0x0110):  # Make / Model: a camera
                    props["camera"] = True
                im.draft(im.mode, (max(1, width // 8), max(1, height // 8)))
                im.load()
                decoded = True
            else:
                props["dpi"] = _info_dpi(im.info)
                if width * height <= DECODE_LIMIT:
                    im.load()
                    decoded = True
            props["decoded"] = decoded
    except Image.DecompressionBombError as e:
        return Outcome("warn", f"{label}: image too large to open safely ({e})", props, extra)
    except UnidentifiedImageError as e:
        comp = _tiff_compression_tag(path)
        if comp is not None:  # a TIFF Pillow refuses, typically for its compression
            props.update(
                image_format="TIFF",
                compression=_tiff_compression_name(comp),
                compression_public=comp in TIFF_PUBLIC,
            )
            finding = _compression_finding(comp, label)
            if finding is not None:
                extra.append(finding)
        return Outcome("fail", f"{label}: not a readable image ({_exc(e)})", props, extra)
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError) as e:
        return Outcome("fail", f"{label}: image does not open ({_exc(e)})", props, extra)
    if not decoded:
        return Outcome(
            "pass",
            f"{label}: structure checked, pixels not decoded (more than {DECODE_LIMIT} pixels)",
            props,
            extra,
        )
    return Outcome("pass", "", props, extra)


def _tiff_compression_tag(path: Path) -> int | None:
    """The Compression (259) value of a TIFF's first IFD, read directly, or None."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8 or head[:4] not in (b"II*\0", b"MM\0*"):
                return None
            end = "<" if head[:2] == b"II" else ">"
            (ifd,) = struct.unpack(end + "I", head[4:8])
            f.seek(ifd)
            raw = f.read(2)
            if len(raw) < 2:
                return None
            (count,) = struct.unpack(end + "H", raw)
            entries = f.read(12 * min(count, 4096))
    except OSError:
        return None
    for pos in range(0, len(entries) - 11, 12):
        tag, kind = struct.unpack_from(end + "HH", entries, pos)
        if tag == 259 and kind == 3:
            return int(struct.unpack_from(end + "H", entries, pos + 8)[0])
    return None


def _tiff_compression_name(comp: int) -> str:
    return TIFF_PUBLIC.get(comp) or TIFF_RESERVED.get(comp) or f"unknown ({comp})"


def _raise_bomb_limit(image_module: Any) -> None:
    # Process-wide Pillow setting: we open headers of very large scans (maps, plans)
    # without decoding them, so the default 89-megapixel guard is too tight here.
    if (image_module.MAX_IMAGE_PIXELS or 0) < MAX_IMAGE_PIXELS:
        image_module.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def _check_jp2(path: Path, label: str) -> Outcome:
    from PIL import features

    if not features.check("jpg_2000"):
        return Outcome(
            "not performed",
            f"{label}: JPEG 2000 not checked: this Pillow has no OpenJPEG support",
        )
    outcome = _check_image(path, label)
    if outcome.result == "pass" and "compression" not in outcome.props:
        outcome.props["compression"] = "JPEG 2000"
    return outcome


# ---------------------------------------------------------------------------- XML


def _check_xml(path: Path, label: str) -> Outcome:
    from preservation.metadata.xmlsafe import xml_wellformed

    problem = xml_wellformed(path, label=label)
    if problem:
        return Outcome("fail", f"{label}: XML is not well-formed or is refused ({problem})")
    return Outcome("pass")


# --------------------------------------------------------------------- zip-based


def _zip_problems(zf: zipfile.ZipFile, size: int, label: str) -> tuple[Outcome | None, list[str]]:
    """Encrypted members and CRC errors; returns (failing outcome, encrypted names)."""
    infos = zf.infolist()
    encrypted = [i.filename for i in infos if i.flag_bits & 0x1]
    declared = sum(i.file_size for i in infos)
    if declared > max(size, 1) * ZIP_MAX_RATIO and declared > 100 * BLOCK:
        return (
            Outcome(
                "warn",
                f"{label}: members declare {declared} bytes uncompressed from {size} bytes"
                f" (ratio above {ZIP_MAX_RATIO:g}); member CRCs not tested",
            ),
            encrypted,
        )
    for info in infos:
        if info.is_dir() or info.flag_bits & 0x1:
            continue
        try:
            with zf.open(info) as member:
                while member.read(BLOCK):
                    pass
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as e:
            return Outcome("fail", f"{label}: member {info.filename!r} is damaged ({_exc(e)})"), (
                encrypted
            )
        except RuntimeError as e:  # zipfile: encrypted without a password
            return Outcome("fail", f"{label}: member {info.filename!r}: {_exc(e)}"), encrypted
    return None, encrypted


def _check_zip_based(path: Path, label: str, required: Sequence[str], what: str) -> Outcome:
    props: dict[str, Any] = {"container": "zip"}
    try:
        size = path.stat().st_size
        with path.open("rb") as fh, zipfile.ZipFile(fh) as zf:
            names = set(zf.namelist())
            props["members"] = len(names)
            missing = [r for r in required if r not in names]
            bad, encrypted = _zip_problems(zf, size, label)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        return Outcome("fail", f"{label}: {what} does not open as a ZIP container ({_exc(e)})")
    extra: list[tuple[str, Result, str]] = []
    props["encrypted"] = bool(encrypted)
    if encrypted:
        shown = ", ".join(encrypted[:5]) + (" …" if len(encrypted) > 5 else "")
        extra.append(
            (
                OPEN_ENCRYPTED.code,
                "fail",
                f"{label}: {what} is encrypted or password-protected"
                f" ({len(encrypted)} encrypted member(s): {shown})",
            )
        )
    if missing:
        return Outcome(
            "fail",
            f"{label}: {what} lacks the required part(s) {', '.join(missing)}",
            props,
            extra,
        )
    if bad is not None:
        bad.props, bad.extra = props, extra
        return bad
    if encrypted:
        return Outcome(
            "fail", f"{label}: encrypted members cannot be read without a password", props, extra
        )
    return Outcome("pass", "", props, extra)


def _check_ofd(path: Path, label: str) -> Outcome:
    return _check_zip_based(path, label, ["OFD.xml"], "OFD")


def _check_ooxml(path: Path, label: str) -> Outcome:
    if _is_cfb(path):
        # An OOXML document saved with a password is an OLE2 file (EncryptedPackage).
        return _check_cfb(path, label)
    return _check_zip_based(path, label, ["[Content_Types].xml"], "Office Open XML document")


def _check_zip(path: Path, label: str) -> Outcome:
    return _check_zip_based(path, label, [], "ZIP archive")


# ------------------------------------------------------- OLE2 compound file (CFB)

CFB_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
_ENDOFCHAIN = 0xFFFFFFFE
_MAXREGSECT = 0xFFFFFFFA
_NOSTREAM = 0xFFFFFFFF


class CFBError(ValueError):
    """The compound file's structure is damaged."""


def _is_cfb(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(8) == CFB_MAGIC
    except OSError:
        return False


class CompoundFile:
    """A minimal, read-only reader of an OLE2 compound file's directory (MS-CFB).

    It reads sectors on demand through seeks (the FAT is never loaded whole) and
    gives the names of the storages and streams and the first bytes of a stream:
    enough to tell a Word, Excel or PowerPoint file and whether it is encrypted.
    """

    def __init__(self, f: IO[bytes], size: int) -> None:
        self.f = f
        self.size = size
        header = self._read_at(0, 512)
        if len(header) < 512 or header[:8] != CFB_MAGIC:
            raise CFBError("not an OLE2 compound file (bad signature)")
        (self.major,) = struct.unpack_from("<H", header, 0x1A)
        shift, mini_shift = struct.unpack_from("<HH", header, 0x1E)
        if (self.major, shift) not in ((3, 9), (4, 12)) or mini_shift != 6:
            raise CFBError(f"unsupported version {self.major} with sector shift {shift}")
        self.sector_size: int = 1 << int(shift)
        (
            self.n_fat,
            self.dir_start,
            _txn,
            self.mini_cutoff,
            self.minifat_start,
            self.n_minifat,
            self.difat_start,
            self.n_difat,
        ) = struct.unpack_from("<8I", header, 0x2C)
        self.difat_head = [int(x) for x in struct.unpack_from("<109I", header, 0x4C)]
        self._difat_sectors: list[int] | None = None
        self.max_sectors = max(1, size // self.sector_size)
        self.entries = self._read_directory()

    def _read_at(self, offset: int, n: int) -> bytes:
        self.f.seek(offset)
        return self.f.read(n)

    def _sector_offset(self, sector: int) -> int:
        if sector > _MAXREGSECT:
            raise CFBError(f"invalid sector number {sector:#x}")
        offset = (sector + 1) * self.sector_size
        if offset >= self.size:
            raise CFBError(f"sector {sector} lies beyond the end of the file: truncated")
        return offset

    def _fat_sector(self, index: int) -> int:
        if index < 109:
            return self.difat_head[index]
        if self._difat_sectors is None:
            self._difat_sectors = []
            sector, steps = self.difat_start, 0
            while sector <= _MAXREGSECT and steps < self.n_difat:
                self._difat_sectors.append(sector)
                raw = self._read_at(self._sector_offset(sector) + self.sector_size - 4, 4)
                (sector,) = struct.unpack("<I", raw)
                steps += 1
        per = self.sector_size // 4 - 1
        k, j = divmod(index - 109, per)
        if k >= len(self._difat_sectors):
            raise CFBError("FAT sector missing from the DIFAT")
        raw = self._read_at(self._sector_offset(self._difat_sectors[k]) + 4 * j, 4)
        return int(struct.unpack("<I", raw)[0])

    def next_sector(self, sector: int) -> int:
        per = self.sector_size // 4
        fat_index, slot = divmod(sector, per)
        if fat_index >= self.n_fat:
            raise CFBError(f"sector {sector} is outside the FAT")
        raw = self._read_at(self._sector_offset(self._fat_sector(fat_index)) + 4 * slot, 4)
        if len(raw) < 4:
            raise CFBError("FAT truncated")
        return int(struct.unpack("<I", raw)[0])

    def chain(self, start: int) -> Iterable[int]:
        sector, steps = start, 0
        while sector != _ENDOFCHAIN:
            if sector > _MAXREGSECT or steps > self.max_sectors:
                raise CFBError("broken or looping sector chain")
            yield sector
            sector = self.next_sector(sector)
            steps += 1

    def _read_directory(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for sector in self.chain(self.dir_start):
            data = self._read_at(self._sector_offset(sector), self.sector_size)
            for off in range(0, len(data) - 127, 128):
                raw = data[off : off + 128]
                name_len, kind = struct.unpack_from("<HB", raw, 0x40)
                start, size_lo, size_hi = struct.unpack_from("<III", raw, 0x74)
                if kind == 0:
                    continue
                name = raw[: max(0, min(name_len, 64) - 2)].decode("utf-16-le", "replace")
                size = size_lo if self.major == 3 else size_lo | (size_hi << 32)
                entries.append({"name": name, "type": kind, "start": start, "size": size})
        if not entries or entries[0]["type"] != 5:
            raise CFBError("no root entry in the directory")
        return entries

    def names(self) -> set[str]:
        return {e["name"].lower() for e in self.entries}

    def find(self, name: str) -> dict[str, Any] | None:
        low = name.lower()
        return next((e for e in self.entries if e["type"] == 2 and e["name"].lower() == low), None)

    def head(self, name: str, n: int) -> bytes:
        """The first ``n`` (≤ 64) bytes of a stream."""
        entry = self.find(name)
        if entry is None:
            raise CFBError(f"no stream {name!r}")
        n = min(n, 64, entry["size"])
        if entry["size"] >= self.mini_cutoff:
            return self._read_at(self._sector_offset(entry["start"]), n)
        # Small streams live in the mini stream (the root entry's chain), 64-byte sectors.
        pos = entry["start"] * 64
        index, within = divmod(pos, self.sector_size)
        root = self.entries[0]
        for i, sector in enumerate(self.chain(root["start"])):
            if i == index:
                return self._read_at(self._sector_offset(sector) + within, n)
        raise CFBError(f"stream {name!r} lies outside the mini stream")


def _word_encrypted(cf: CompoundFile) -> bool:
    fib = cf.head("WordDocument", 12)
    if len(fib) < 12:
        raise CFBError("WordDocument stream too short for its FIB")
    ident, flags = struct.unpack_from("<H", fib, 0)[0], struct.unpack_from("<H", fib, 10)[0]
    if ident != 0xA5EC:
        raise CFBError(f"WordDocument stream has a bad FIB identifier {ident:#06x}")
    return bool(flags & 0x0100)  # FibBase.fEncrypted


def _excel_encrypted(cf: CompoundFile) -> bool:
    name = "Workbook" if cf.find("Workbook") is not None else "Book"
    data = cf.head(name, 64)
    pos, first = 0, True
    while pos + 4 <= len(data):
        rec, length = struct.unpack_from("<HH", data, pos)
        if first and rec not in (0x0809, 0x0409, 0x0209, 0x0009):
            raise CFBError(f"{name} stream does not start with a BOF record")
        if rec == 0x002F:  # FilePass
            return True
        if not first and rec != 0x0086:  # only WriteProtect may come between BOF and FilePass
            return False
        first = False
        pos += 4 + length
    return False


def _check_cfb(path: Path, label: str) -> Outcome:
    props: dict[str, Any] = {"container": "ole2"}
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            cf = CompoundFile(f, size)
            names = cf.names()
            if "encryptedpackage" in names and "encryptioninfo" in names:
                kind, encrypted = "password-protected Office Open XML document", True
            elif "worddocument" in names:
                kind, encrypted = "Word document", _word_encrypted(cf)
            elif "workbook" in names or "book" in names:
                kind, encrypted = "Excel workbook", _excel_encrypted(cf)
            elif "powerpoint document" in names:
                kind, encrypted = "PowerPoint presentation", "encryptedsummary" in names
            else:
                kind, encrypted = "OLE2 compound file", False
    except (CFBError, OSError, struct.error) as e:
        return Outcome("fail", f"{label}: OLE2 compound file does not open ({_exc(e)})", props)
    props.update(ole2_content=kind, encrypted=encrypted, streams=len(cf.entries) - 1)
    if encrypted:
        return Outcome(
            "fail",
            f"{label}: {kind} cannot be opened without its password",
            props,
            [(OPEN_ENCRYPTED.code, "fail", f"{label}: {kind} is encrypted or password-protected")],
        )
    return Outcome("pass", "", props)


# ---------------------------------------------------------------------------- text


def _check_text(path: Path, label: str) -> Outcome:
    with path.open("rb") as f:
        start = f.read(4)
    if start[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8-sig", "gb18030"]
    for enc in candidates:
        decoder = codecs.getincrementaldecoder(enc)("strict")
        try:
            with path.open("rb") as f:
                while block := f.read(BLOCK):
                    decoder.decode(block)
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return Outcome("pass", "", {"encoding": "utf-8" if enc == "utf-8-sig" else enc})
    return Outcome(
        "warn", f"{label}: text is not valid {' or '.join(candidates).replace('-sig', '')}"
    )


# ------------------------------------------------------------------------ driver

CHECKERS: dict[str, Checker] = {
    "pdf": _check_pdf,
    "image": _check_image,
    "jp2": _check_jp2,
    "xml": _check_xml,
    "ofd": _check_ofd,
    "ooxml": _check_ooxml,
    "zip": _check_zip,
    "cfb": _check_cfb,
    "text": _check_text,
}


def _exc(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def check_file(entry: FileEntry) -> Outcome:
    """Open one file with the checker for its identified format."""
    label = entry.path
    if entry.source is None:
        return Outcome("not performed", f"{label}: no source to read")
    kind = _kind(entry.format)
    by_extension = False
    if kind is None and (entry.format is None or entry.format.puid is None):
        kind = EXTENSION_KINDS.get(Path(entry.path).suffix.lower())
        by_extension = kind is not None
    if kind is None:
        fmt = entry.format
        what = (
            f"{fmt.name or 'format'} ({fmt.puid})"
            if fmt is not None and fmt.puid
            else "an unidentified format"
        )
        return Outcome("not performed", f"{label}: no opening check for {what}")
    try:
        outcome = CHECKERS[kind](entry.source, label)
    except OSError as e:
        return Outcome("fail", f"{label}: cannot be read ({_exc(e)})", {"checker": kind})
    outcome.props["checker"] = kind
    if by_extension:
        outcome.props["checked_by_extension"] = True
        if outcome.message:
            outcome.message += " (format not identified; checked as its extension suggests)"
    return outcome


def _scan_like(props: Mapping[str, Any]) -> bool:
    """TIFF, JPEG 2000, or a JPEG that no camera wrote: images that may be scanned pages."""
    return props.get("image_format") in DIGITISED_KINDS and not props.get("camera")


def _dpi_finding(props: dict[str, Any], label: str, min_dpi: int) -> Finding | None:
    if not _scan_like(props):
        return None
    dpi = props.get("dpi")
    if not dpi:
        return None
    low = min(dpi)
    if low >= min_dpi:
        return None
    return Finding(
        OPEN_RESOLUTION.code,
        "warn",
        f"{label}: resolution {dpi[0]:g}x{dpi[1]:g} dpi is below the {min_dpi} dpi required"
        " for digitised pages (DA/T 31)",
        file=label,
        details={"dpi": list(dpi), "minimum": min_dpi},
    )


def check_usability(
    entries: Sequence[FileEntry], workers: int = 2, min_scan_dpi: int = MIN_SCAN_DPI
) -> tuple[list[Finding], dict[str, dict[str, Any]]]:
    """Open every file; returns (findings for every non-pass outcome, properties by path).

    The properties of each file carry ``open`` (the OPEN-001 result) and, where they
    apply, ``pages``, ``width``, ``height``, ``dpi``, ``colour_mode``, ``compression``,
    ``encrypted``, ``encoding``.
    """
    findings: list[Finding] = []
    props: dict[str, dict[str, Any]] = {}
    for entry, outcome in zip(
        entries, bounded_map(check_file, entries, workers=max(1, workers)), strict=True
    ):
        p = dict(outcome.props)
        p["open"] = outcome.result
        if "dpi" in p and p["dpi"] is not None:
            p["dpi"] = [float(p["dpi"][0]), float(p["dpi"][1])]
        props[entry.path] = p
        if outcome.result != "pass":
            findings.append(
                Finding(
                    OPEN_OPENS.code,
                    outcome.result,
                    outcome.message,
                    file=entry.path,
                    details={"checker": p.get("checker", "")} if p.get("checker") else {},
                )
            )
        elif outcome.message:
            p["note"] = outcome.message
        for code, result, message in outcome.extra:
            findings.append(Finding(code, result, message, file=entry.path))
        dpi = _dpi_finding(p, entry.path, min_scan_dpi)
        if _scan_like(p) and p.get("dpi"):
            p["dpi_below_minimum"] = dpi is not None
        if dpi is not None:
            findings.append(dpi)
    return findings, props


def usability_summary(
    props: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]],
) -> list[Finding]:
    """The pass evidence of the usability checks over all files' properties.

    One *pass* finding per check, counting the files that passed it; files that did
    not are the per-file findings of :func:`check_usability`, so nothing is counted
    twice. Call it once, after the last batch. ``props`` is read once (it may be a
    generator over a spool), so memory does not grow with the number of files.
    """
    values = props.values() if isinstance(props, Mapping) else props
    tally = UsabilityTally()
    for p in values:
        tally.add(p)
    return tally.findings()


class UsabilityTally:
    """:func:`usability_summary` counted as the files come (no pass over them later)."""

    def __init__(self) -> None:
        self.total = 0
        self.counts: dict[str, int] = {}
        self.checked = self.clear = self.tiffs = self.public = 0
        self.scans = self.known = self.enough = 0

    def add(self, p: Mapping[str, Any]) -> None:
        self.total += 1
        result = p.get("open", "not performed")
        self.counts[result] = self.counts.get(result, 0) + 1
        if "encrypted" in p:
            self.checked += 1
            self.clear += not p["encrypted"]
        if "compression_public" in p:
            self.tiffs += 1
            self.public += bool(p["compression_public"])
        if _scan_like(p):
            self.scans += 1
            if p.get("dpi"):
                self.known += 1
                self.enough += not p.get("dpi_below_minimum")

    def findings(self) -> list[Finding]:
        total, counts = self.total, self.counts
        checked, clear, tiffs, public = self.checked, self.clear, self.tiffs, self.public
        scans, known, enough = self.scans, self.known, self.enough
        out: list[Finding] = []
        opened = counts.get("pass", 0)
        if opened:
            parts = ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
            out.append(
                Finding(
                    OPEN_OPENS.code,
                    "pass",
                    f"{opened} of {total} files opened ({parts})",
                    details={"total": total, **counts},
                )
            )
        if clear:
            out.append(
                Finding(
                    OPEN_ENCRYPTED.code,
                    "pass",
                    f"{clear} of {checked} files checked for encryption are not encrypted",
                    details={"not_encrypted": clear, "checked": checked},
                )
            )
        if public:
            out.append(
                Finding(
                    OPEN_COMPRESSION.code,
                    "pass",
                    f"{public} of {tiffs} TIFF files use a public compression scheme",
                    details={"public": public, "checked": tiffs},
                )
            )
        if enough:
            out.append(
                Finding(
                    OPEN_RESOLUTION.code,
                    "pass",
                    f"{enough} of {scans} possible scanned images meet the minimum resolution"
                    f" ({scans - known} record none)",
                    details={"enough": enough, "with_resolution": known, "images": scans},
                )
            )
        return out
