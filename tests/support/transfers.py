"""Builders of transfers for tests: folders, scanned pages with their sheet, archives,
bags, hostile archives and bombs, sheets in CSV and XLSX.

Everything is written under a folder the test gives (``tmp_path``); nothing is kept
in the repository. Contents are small and deterministic. Reuse them from any test
package: ``from tests.support.transfers import make_folder_transfer``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import bagit
import zstandard

from preservation.model import ARCHIVAL_FIELDS

FONDS = "Z109"
YEAR = "2011"
SHEET_COLUMNS = (
    "reference_code", "fonds", "year", "retention", "unit", "item_number", "title",
    "creator", "date", "document_number", "security_level", "secrecy_term", "pages",
    "open_status", "notes", "path", "level", "volume",
)  # fmt: skip


def item_code(n: int, fonds: str = FONDS, year: str = YEAR, retention: str = "Y",
              unit: str = "BGS") -> str:  # fmt: skip
    """A DA/T 22 item reference code, e.g. ``Z109-WS·2011-Y-BGS-0001``."""
    return f"{fonds}-WS·{year}-{retention}-{unit}-{n:04d}"


def content(n: int, size: int = 64) -> bytes:
    seed = f"file {n} ".encode()
    return (seed * (size // len(seed) + 1))[:size]


def write_files(root: Path, files: Mapping[str, bytes]) -> Path:
    """Write ``{relative path: bytes}`` under ``root`` (created)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        target = root.joinpath(*rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def make_folder_transfer(parent: Path, name: str = "T01", n: int = 3, size: int = 64) -> Path:
    """A folder with ``n`` files: ``doc-001.txt`` ... and one in a sub-folder."""
    files = {f"doc-{i:03d}.txt": content(i, size) for i in range(1, n + 1)}
    if n > 1:
        files[f"sub/doc-{n:03d}.txt"] = files.pop(f"doc-{n:03d}.txt")
    return write_files(parent / name, files)


def sheet_row(n: int, pages: int | str = 2, **overrides: str) -> dict[str, str]:
    """One item row (canonical keys) that passes every check."""
    row = {
        "reference_code": item_code(n),
        "fonds": FONDS,
        "year": YEAR,
        "retention": "永久",
        "unit": "BGS",
        "item_number": str(n),
        "title": f"关于第{n}号事项的通知",
        "creator": "办公室",
        "date": f"{YEAR}03{n % 28 + 1:02d}",
        "document_number": f"办〔{YEAR}〕{n}号",
        "security_level": "公开",
        "pages": str(pages),
        "open_status": "开放",
    }
    row.update(overrides)
    return row


def write_csv_sheet(
    path: Path,
    rows: Sequence[Mapping[str, str]],
    *,
    encoding: str = "utf-8-sig",
    columns: Sequence[str] = SHEET_COLUMNS,
    english: bool = False,
    delimiter: str = ",",
    title_rows: Sequence[str] = (),
) -> Path:
    """A CSV sheet with Chinese headers (or the English keys), rows by canonical key."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    for t in title_rows:
        w.writerow([t])
    w.writerow([c if english else ARCHIVAL_FIELDS[c] for c in columns])
    for r in rows:
        w.writerow([r.get(c, "") for c in columns])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def write_xlsx_sheet(
    path: Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    columns: Sequence[str] = SHEET_COLUMNS,
    extra_sheets: Mapping[str, Sequence[Sequence[Any]]] | None = None,
) -> Path:
    """An XLSX sheet; a value starting with '=' is written as a formula by openpyxl."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "目录"
    ws.append([ARCHIVAL_FIELDS[c] for c in columns])
    for r in rows:
        ws.append([r.get(c) for c in columns])
    for title, data in (extra_sheets or {}).items():
        other = wb.create_sheet(title)
        for line in data:
            other.append(list(line))
    wb.save(path)
    return path


def add_external_link(xlsx: Path, target: str = "file:///C:/机密/other.xlsx") -> Path:
    """Add an external-workbook link part (as Excel writes it) to an existing XLSX."""
    link = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<externalLink xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
        ' xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<externalBook r:id="rId1"><sheetNames><sheetName val="Sheet1"/></sheetNames>'
        "</externalBook></externalLink>"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        f'relationships/externalLinkPath" Target="{target}" TargetMode="External"/>'
        "</Relationships>"
    )
    tmp = xlsx.with_suffix(".tmp")
    with zipfile.ZipFile(xlsx) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(
                    b"</Types>",
                    b'<Override PartName="/xl/externalLinks/externalLink1.xml" ContentType='
                    b'"application/vnd.openxmlformats-officedocument.spreadsheetml.'
                    b'externalLink+xml"/></Types>',
                )
            if info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdX1" Type="http://schemas.openxmlformats.org/'
                    b'officeDocument/2006/relationships/externalLink" Target='
                    b'"externalLinks/externalLink1.xml"/></Relationships>',
                )
            dst.writestr(info, data)
        dst.writestr("xl/externalLinks/externalLink1.xml", link)
        dst.writestr("xl/externalLinks/_rels/externalLink1.xml.rels", rels)
    tmp.replace(xlsx)
    return xlsx


def tiff_page(seed: int, size: int = 16) -> bytes:
    """A small, valid, 300 dpi greyscale TIFF whose pixels depend on ``seed``."""
    from PIL import Image

    image = Image.new("L", (size, size))
    image.putdata([(seed * 31 + i * 7) % 256 for i in range(size * size)])
    buf = io.BytesIO()
    image.save(buf, format="TIFF", dpi=(300, 300))
    return buf.getvalue()


def make_scanned_transfer(
    parent: Path,
    name: str = "T01",
    items: int = 3,
    pages: int = 2,
    *,
    sheet: str = "csv",
    encoding: str = "utf-8-sig",
) -> tuple[Path, Path, list[dict[str, str]]]:
    """Digitised pages ``<档号>-<page>.tif`` (real 300 dpi TIFFs) in one folder per item,
    and the sheet.

    Returns ``(transfer folder, sheet path, rows)``; the sheet lies beside the folder.
    """
    files: dict[str, bytes] = {}
    rows = []
    for n in range(1, items + 1):
        code = item_code(n)
        rows.append(sheet_row(n, pages=pages))
        for p in range(1, pages + 1):
            files[f"{code}/{code}-{p:04d}.tif"] = tiff_page(n * 1000 + p)
    folder = write_files(parent / name, files)
    if sheet == "csv":
        sheet_path = write_csv_sheet(parent / f"{name}.csv", rows, encoding=encoding)
    else:
        sheet_path = write_xlsx_sheet(parent / f"{name}.xlsx", rows)
    return folder, sheet_path, rows


# --------------------------------------------------------------------------- archives


def _walk(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


def zip_folder(folder: Path, dest: Path | None = None, *, top: bool = True) -> Path:
    """Zip ``folder`` (with the folder itself as the top-level entry when ``top``)."""
    dest = dest or folder.with_name(folder.name + ".zip")
    base = folder.parent if top else folder
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for p in _walk(folder):
            z.write(p, p.relative_to(base).as_posix())
    return dest


def tar_folder(
    folder: Path, dest: Path | None = None, *, compression: str = "", top: bool = True
) -> Path:
    """Tar ``folder``; compression '' (plain), 'gz', 'bz2', 'xz' or 'zst'."""
    suffix = ".tar" + (f".{compression}" if compression else "")
    dest = dest or folder.with_name(folder.name + suffix)
    plain = dest if compression in ("", "zst") else None
    mode = "w" if compression in ("", "zst") else f"w:{compression}"
    target = dest.with_name(dest.name + ".plain") if compression == "zst" else (plain or dest)
    with tarfile.open(target, mode) as t:  # type: ignore[call-overload]
        t.add(folder, arcname=folder.name if top else ".")
    if compression == "zst":
        with target.open("rb") as src, dest.open("wb") as out:
            zstandard.ZstdCompressor().copy_stream(src, out)
        target.unlink()
    return dest


def make_bag(
    folder: Path, dest: Path | None = None, checksums: Iterable[str] = ("sha256",)
) -> Path:
    """A BagIt bag of a copy of ``folder`` (the original stays as it is)."""
    dest = dest or folder.with_name(folder.name + "-bag")
    shutil.copytree(folder, dest)
    bagit.make_bag(os.fspath(dest), {"Source-Organization": "Test Archive"},
                   checksums=list(checksums))  # fmt: skip
    return dest


class RawZipInfo(zipfile.ZipInfo):
    """A ZipInfo whose name is written in ``encoding`` without the UTF-8 flag, or with
    extra flag bits (e.g. 0x1, 'encrypted')."""

    encoding: str | None = None
    extra_flags: int = 0

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # zipfile's private hook
        if self.encoding is not None:
            return self.filename.encode(self.encoding), self.flag_bits | self.extra_flags
        name, flags = super()._encodeFilenameFlags()  # type: ignore[misc]
        return name, flags | self.extra_flags


def zip_entries(path: Path, entries: Iterable[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for info, data in entries:
            z.writestr(info, data)
    return path


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def encrypted_info(name: str) -> RawZipInfo:
    info = RawZipInfo(name)
    info.extra_flags = 0x1
    return info


def legacy_name_info(name: str, encoding: str) -> RawZipInfo:
    info = RawZipInfo(name)
    info.encoding = encoding
    return info


def hostile_zip(path: Path) -> Path:
    """'../evil.txt', an absolute path, a drive letter, a symlink, an encrypted member."""
    return zip_entries(
        path,
        [
            ("ok.txt", b"fine"),
            ("../evil.txt", b"escape"),
            ("/etc/evil.txt", b"absolute"),
            ("C:/Windows/evil.txt", b"drive"),
            (symlink_info("link-to-passwd"), b"/etc/passwd"),
            (encrypted_info("secret.txt"), b"not really encrypted"),
        ],
    )


def _tarinfo(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = link
    return info


def hostile_tar(path: Path, compression: str = "") -> Path:
    """'../evil', an absolute path, a symlink, a hard link, a device and a FIFO."""
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(path, mode) as t:  # type: ignore[call-overload]
        t.addfile(_tarinfo("ok.txt", size=4), io.BytesIO(b"fine"))
        t.addfile(_tarinfo("../evil.txt", size=6), io.BytesIO(b"escape"))
        t.addfile(_tarinfo("/etc/evil.txt", size=8), io.BytesIO(b"absolute"))
        t.addfile(_tarinfo("link", tarfile.SYMTYPE, link="/etc/passwd"))
        t.addfile(_tarinfo("hard", tarfile.LNKTYPE, link="ok.txt"))
        dev = _tarinfo("dev/null-device", tarfile.CHRTYPE)
        dev.devmajor, dev.devminor = 1, 3
        t.addfile(dev)
        t.addfile(_tarinfo("pipe", tarfile.FIFOTYPE))
    return path


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced on demand (no big buffer)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def zip_bomb(path: Path, size: int = 64 * 1024 * 1024, name: str = "zeros.bin") -> Path:
    """One member of ``size`` zero bytes (64 MiB compress to about 64 KiB)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open(name, "w") as w:
        shutil.copyfileobj(Zeros(size), w, 1024 * 1024)
    return path


def tar_bomb(path: Path, size: int = 64 * 1024 * 1024, compression: str = "gz") -> Path:
    """A compressed tar holding ``size`` zero bytes in one member."""
    raw = path.with_name(path.name + ".plain") if compression == "zst" else path
    mode = "w" if compression == "zst" else f"w:{compression}"
    with tarfile.open(raw, mode) as t:  # type: ignore[call-overload]
        t.addfile(_tarinfo("zeros.bin", size=size), io.BufferedReader(Zeros(size)))
    if compression == "zst":
        with raw.open("rb") as src, path.open("wb") as out:
            zstandard.ZstdCompressor().copy_stream(src, out)
        raw.unlink()
    return path


def lying_zip(path: Path, real: int = 16 * 1024 * 1024, declared: int = 1000) -> Path:
    """A zip whose headers declare ``declared`` bytes for a member of ``real`` zeros."""
    zip_bomb(path, real, name="liar.bin")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    # local header: uncompressed size at offset 22; central directory entry: offset 24.
    data[info.header_offset + 22 : info.header_offset + 26] = declared.to_bytes(4, "little")
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path
