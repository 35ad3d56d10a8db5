"""Does each file open: real files built here, damaged by cutting or flipping bytes."""

from __future__ import annotations

import io
import struct
import wave
import zipfile
from pathlib import Path

import pypdf
import pytest
from PIL import Image

from preservation.ingest import usability
from preservation.ingest.findings import Finding
from preservation.ingest.identify import OFD_MIME, identify_files
from preservation.ingest.usability import (
    CompoundFile,
    check_file,
    check_usability,
    usability_summary,
)
from preservation.model import FileEntry, FormatInfo

# ------------------------------------------------------------------ builders


def pdf_bytes(pages: int = 2) -> bytes:
    w = pypdf.PdfWriter()
    for _ in range(pages):
        w.add_blank_page(100, 100)
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def encrypted_pdf(user: str, owner: str, algorithm: str) -> bytes:
    w = pypdf.PdfWriter()
    w.add_blank_page(100, 100)
    w.encrypt(user_password=user, owner_password=owner, algorithm=algorithm)
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def image(fmt: str, mode: str = "RGB", size: tuple[int, int] = (40, 30), **kw: object) -> bytes:
    im = Image.new(mode, size, 128 if mode in ("L", "1") else (10, 120, 200))
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def set_tiff_compression(data: bytes, value: int) -> bytes:
    """Rewrite the Compression (259) entry of a little-endian TIFF's first IFD."""
    assert data[:2] == b"II"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    out = bytearray(data)
    for i in range(count):
        pos = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", out, pos)
        if tag == 259:
            assert kind == 3
            struct.pack_into("<H", out, pos + 8, value)
            return bytes(out)
    raise AssertionError("no compression tag")


def zip_bytes(members: dict[str, str | bytes], deflate: bool = True) -> bytes:
    buf = io.BytesIO()
    mode = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", mode) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def mark_zip_encrypted(data: bytes) -> bytes:
    """Set the 'encrypted' flag bit on every local and central header (what a password
    tool leaves in the headers); zipfile cannot write real ZipCrypto."""
    out = bytearray(data)
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (i := out.find(sig, start)) >= 0:
            (flags,) = struct.unpack_from("<H", out, i + flag_at)
            struct.pack_into("<H", out, i + flag_at, flags | 0x1)
            start = i + 4
    return bytes(out)


CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    'package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>'
)
OFD_XML = (
    '<?xml version="1.0" encoding="UTF-8"?><ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016"'
    ' Version="1.0" DocType="OFD"><ofd:DocBody><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot>'
    "</ofd:DocBody></ofd:OFD>"
)

# --- a minimal writer of OLE2 compound files (MS-CFB version 3), for the OLE2 tests

SS = 512
END, FREE, FATSECT, NOSTREAM = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF


def make_cfb(streams: dict[str, bytes]) -> bytes:
    """A compound file with ``streams`` under its root; streams under 4096 bytes go into
    the mini stream, as real writers do."""
    names = list(streams)
    small = {n: d for n, d in streams.items() if len(d) < 4096}
    big = {n: d for n, d in streams.items() if len(d) >= 4096}
    ministream, mini_start, minifat = b"", {}, []
    for n, d in small.items():
        first, count = len(ministream) // 64, max(1, (len(d) + 63) // 64)
        mini_start[n] = first
        minifat += [first + i + 1 for i in range(count - 1)] + [END]
        ministream += d.ljust(count * 64, b"\0")
    n_dir = (len(names) + 1 + 3) // 4
    n_minifat = (len(minifat) * 4 + SS - 1) // SS
    n_container = (len(ministream) + SS - 1) // SS
    fat = [FATSECT]

    def alloc(count: int) -> int:
        start = len(fat)
        fat.extend(start + i + 1 if i < count - 1 else END for i in range(count))
        return start if count else END

    dir_start = alloc(n_dir)
    minifat_start = alloc(n_minifat)
    container_start = alloc(n_container)
    big_start = {n: alloc((len(d) + SS - 1) // SS) for n, d in big.items()}
    assert len(fat) <= SS // 4
    fat += [FREE] * (SS // 4 - len(fat))

    def dir_entry(name: str, kind: int, start: int, size: int, child: int, right: int) -> bytes:
        raw = name.encode("utf-16-le") + b"\0\0"
        e = bytearray(128)
        e[: len(raw)] = raw
        struct.pack_into("<HBB", e, 0x40, len(raw), kind, 1)
        struct.pack_into("<III", e, 0x44, NOSTREAM, right, child)
        struct.pack_into("<III", e, 0x74, start, size, 0)
        return bytes(e)

    root_start = container_start if ministream else END
    dirs = dir_entry("Root Entry", 5, root_start, len(ministream), 1, NOSTREAM)
    for i, n in enumerate(names):
        start = mini_start[n] if n in small else big_start[n]
        right = i + 2 if i + 1 < len(names) else NOSTREAM
        dirs += dir_entry(n, 2, start, len(streams[n]), NOSTREAM, right)
    header = bytearray(SS)
    header[:8] = bytes.fromhex("d0cf11e0a1b11ae1")
    struct.pack_into("<HHHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9, 6)
    minifat_first = minifat_start if minifat else END
    struct.pack_into(
        "<9I", header, 0x28, 0, 1, dir_start, 0, 4096, minifat_first, n_minifat, END, 0
    )
    struct.pack_into("<109I", header, 0x4C, 0, *([FREE] * 108))
    body = struct.pack(f"<{SS // 4}I", *fat) + dirs.ljust(n_dir * SS, b"\0")
    if minifat:
        body += struct.pack(f"<{len(minifat)}I", *minifat).ljust(n_minifat * SS, b"\xff")
    body += ministream.ljust(n_container * SS, b"\0")
    for d in big.values():
        body += d.ljust(((len(d) + SS - 1) // SS) * SS, b"\0")
    return bytes(header) + body


def word_stream(encrypted: bool, size: int) -> bytes:
    d = bytearray(size)
    struct.pack_into("<HH", d, 0, 0xA5EC, 0x00C1)  # FibBase.wIdent, nFib
    struct.pack_into("<H", d, 10, 0x0100 if encrypted else 0)  # fEncrypted
    return bytes(d)


def workbook_stream(encrypted: bool, size: int) -> bytes:
    d = struct.pack("<HH", 0x0809, 16) + bytes(16)  # BOF
    if encrypted:
        d += struct.pack("<HH", 0x002F, 6) + bytes(6)  # FilePass (XOR obfuscation)
    d += struct.pack("<HH", 0x00E1, 2) + bytes(2) + struct.pack("<HH", 0x000A, 0)
    return d.ljust(size, b"\0")


# ------------------------------------------------------------------ helpers

FMT = {
    "pdf": FormatInfo("fmt/17", "application/pdf", "Acrobat PDF 1.3", "1.3", None),
    "tiff": FormatInfo("fmt/353", "image/tiff", "Tagged Image File Format", None, None),
    "jpeg": FormatInfo("fmt/43", "image/jpeg", "JPEG File Interchange Format", "1.01", None),
    "png": FormatInfo("fmt/11", "image/png", "Portable Network Graphics", "1.0", None),
    "jp2": FormatInfo("x-fmt/392", "image/jp2", "JP2 (JPEG 2000 part 1)", None, None),
    "xml": FormatInfo("fmt/101", "application/xml", "Extensible Markup Language", "1.0", None),
    "docx": FormatInfo(
        "fmt/412",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "Microsoft Word for Windows",
        "2007 onwards",
        None,
    ),
    "ofd": FormatInfo("x-fmt/263", OFD_MIME, "OFD", None, None),
    "zip": FormatInfo("x-fmt/263", "application/zip", "ZIP Format", None, None),
    "doc": FormatInfo("fmt/40", "application/msword", "Microsoft Word Document", "97-2003", None),
    "xls": FormatInfo("fmt/61", "application/vnd.ms-excel", "Microsoft Excel 97", "8", None),
    "txt": FormatInfo("x-fmt/111", "text/plain", "Plain Text File", None, None),
    "wav": FormatInfo("fmt/141", "audio/x-wav", "Waveform Audio (PCMWAVEFORMAT)", None, None),
}


def make(tmp_path: Path, name: str, data: bytes, fmt: str | FormatInfo | None) -> FileEntry:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    info = FMT[fmt] if isinstance(fmt, str) else fmt
    return FileEntry(path=name, size=len(data), digests={}, source=p, format=info)


def run(*entries: FileEntry) -> tuple[list[Finding], dict[str, dict[str, object]]]:
    return check_usability(list(entries), workers=2)


def codes_for(findings: list[Finding], file: str) -> list[tuple[str, str]]:
    return sorted((f.code, f.result) for f in findings if f.file == file)


def message(findings: list[Finding], file: str, code: str) -> str:
    return next(f.message for f in findings if f.file == file and f.code == code)


# ------------------------------------------------------------------------- PDF


def test_pdf_opens_with_page_count(tmp_path: Path) -> None:
    findings, props = run(make(tmp_path, "报告.pdf", pdf_bytes(3), "pdf"))
    assert findings == []
    assert props["报告.pdf"]["open"] == "pass"
    assert props["报告.pdf"]["pages"] == 3
    assert props["报告.pdf"]["encrypted"] is False


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_password_protected_pdf_fails(tmp_path: Path, algorithm: str) -> None:
    if algorithm.startswith("AES"):
        pytest.importorskip("cryptography")
    e = make(tmp_path, "secret.pdf", encrypted_pdf("user-pw", "owner-pw", algorithm), "pdf")
    findings, props = run(e)
    assert codes_for(findings, "secret.pdf") == [("OPEN-001", "fail"), ("OPEN-002", "fail")]
    assert "encrypted or password-protected" in message(findings, "secret.pdf", "OPEN-002")
    assert "secret.pdf" in message(findings, "secret.pdf", "OPEN-001")
    assert props["secret.pdf"]["encrypted"] is True


def test_permissions_only_pdf_opens_but_is_flagged(tmp_path: Path) -> None:
    e = make(tmp_path, "restricted.pdf", encrypted_pdf("", "owner-pw", "RC4-128"), "pdf")
    findings, props = run(e)
    assert codes_for(findings, "restricted.pdf") == [("OPEN-002", "fail")]
    assert "permissions password only" in message(findings, "restricted.pdf", "OPEN-002")
    assert props["restricted.pdf"]["open"] == "pass"
    assert props["restricted.pdf"]["pages"] == 1


def test_truncated_pdf_fails(tmp_path: Path) -> None:
    data = pdf_bytes()
    e = make(tmp_path, "cut.pdf", data[: len(data) // 2], "pdf")
    findings, _ = run(e)
    assert codes_for(findings, "cut.pdf") == [("OPEN-001", "fail")]
    assert message(findings, "cut.pdf", "OPEN-001").startswith("cut.pdf: PDF does not open")


def test_pdf_with_broken_xref_pointer_opens_after_repair(tmp_path: Path) -> None:
    data = pdf_bytes()
    i = data.rindex(b"startxref\n") + len(b"startxref\n")
    j = data.index(b"\n", i)
    wrong = str(int(data[i:j]) - 40).encode()
    e = make(tmp_path, "xref.pdf", data[:i] + wrong + data[j:], "pdf")
    findings, props = run(e)
    assert codes_for(findings, "xref.pdf") == [("OPEN-001", "warn")]
    assert "opens only after repairs" in message(findings, "xref.pdf", "OPEN-001")
    assert props["xref.pdf"]["pages"] == 2


# ---------------------------------------------------------------------- images


def test_tiff_properties_for_the_statistics(tmp_path: Path) -> None:
    colour = make(tmp_path, "p1.tif", image("TIFF", compression="tiff_lzw", dpi=(300, 300)), "tiff")
    bitonal = make(
        tmp_path, "p2.tif", image("TIFF", mode="1", compression="group4", dpi=(600, 600)), "tiff"
    )
    grey = make(tmp_path, "p3.tif", image("TIFF", mode="L", dpi=(400, 400)), "tiff")
    findings, props = run(colour, bitonal, grey)
    assert findings == []
    assert (
        props["p1.tif"].items()
        >= {
            "open": "pass",
            "width": 40,
            "height": 30,
            "dpi": [300.0, 300.0],
            "colour_mode": "colour",
            "compression": "LZW",
            "compression_public": True,
            "decoded": True,
        }.items()
    )
    assert props["p2.tif"]["colour_mode"] == "bitonal"
    assert props["p2.tif"]["compression"] == "CCITT Group 4"
    assert props["p3.tif"]["colour_mode"] == "greyscale"
    assert props["p3.tif"]["compression"] == "none"


def test_low_dpi_scan_warns_per_da_t_31(tmp_path: Path) -> None:
    low = make(tmp_path, "scan/low.tif", image("TIFF", dpi=(150, 150)), "tiff")
    cm = make(  # 40 pixels per cm = 101.6 dpi
        tmp_path,
        "scan/cm.tif",
        image("TIFF", resolution_unit=3, x_resolution=40, y_resolution=40),
        "tiff",
    )
    jpeg = make(tmp_path, "scan/low.jpg", image("JPEG", dpi=(100, 100)), "jpeg")
    ok = make(tmp_path, "scan/ok.tif", image("TIFF", dpi=(200, 200)), "tiff")
    findings, props = run(low, cm, jpeg, ok)
    warned = sorted(f.file or "" for f in findings if f.code == "OPEN-004")
    assert warned == ["scan/cm.tif", "scan/low.jpg", "scan/low.tif"]
    assert "150x150 dpi is below the 200 dpi" in message(findings, "scan/low.tif", "OPEN-004")
    assert "101.6x101.6" in message(findings, "scan/cm.tif", "OPEN-004")
    assert all(f.result == "warn" for f in findings)
    assert props["scan/ok.tif"]["dpi_below_minimum"] is False


def test_camera_jpeg_is_not_held_to_the_scan_minimum(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    exif[0x0110] = "Model 1"
    photo = make(tmp_path, "photo.jpg", image("JPEG", dpi=(72, 72), exif=exif), "jpeg")
    findings, props = run(photo)
    assert findings == []
    assert props["photo.jpg"]["camera"] is True


def test_non_public_tiff_compression(tmp_path: Path) -> None:
    base = image("TIFF")
    jbig2 = make(tmp_path, "jbig2.tif", set_tiff_compression(base, 34715), "tiff")
    unknown = make(tmp_path, "secret.tif", set_tiff_compression(base, 60001), "tiff")
    findings, props = run(jbig2, unknown)
    assert ("OPEN-003", "warn") in codes_for(findings, "jbig2.tif")
    assert "JBIG2" in message(findings, "jbig2.tif", "OPEN-003")
    assert ("OPEN-003", "fail") in codes_for(findings, "secret.tif")
    assert "60001 is unknown" in message(findings, "secret.tif", "OPEN-003")
    assert props["secret.tif"]["compression_public"] is False
    # Pillow cannot decode either: the file does not open.
    assert ("OPEN-001", "fail") in codes_for(findings, "secret.tif")


def test_truncated_images_fail(tmp_path: Path) -> None:
    jpeg = image("JPEG", size=(400, 300))
    tiff = image("TIFF", size=(200, 200))
    entries = [
        make(tmp_path, "cut.jpg", jpeg[: len(jpeg) // 2], "jpeg"),
        make(tmp_path, "cut.tif", tiff[: len(tiff) // 2], "tiff"),
    ]
    findings, props = run(*entries)
    for name in ("cut.jpg", "cut.tif"):
        assert codes_for(findings, name) == [("OPEN-001", "fail")], name
        assert message(findings, name, "OPEN-001").startswith(f"{name}: ")
        assert props[name]["open"] == "fail"


def test_flipped_png_byte_fails_its_crc(tmp_path: Path) -> None:
    data = bytearray(image("PNG", size=(64, 64)))
    i = data.index(b"IDAT") + 10
    data[i] ^= 0xFF
    good = make(tmp_path, "good.png", image("PNG"), "png")
    bad = make(tmp_path, "bad.png", bytes(data), "png")
    findings, _ = run(good, bad)
    assert codes_for(findings, "good.png") == []
    assert codes_for(findings, "bad.png") == [("OPEN-001", "fail")]


def test_other_pillow_formats_open(tmp_path: Path) -> None:
    bmp = FormatInfo("fmt/116", "image/bmp", "Windows Bitmap", "3.0", None)
    gif = FormatInfo("fmt/4", "image/gif", "Graphics Interchange Format", "89a", None)
    findings, props = run(
        make(tmp_path, "a.bmp", image("BMP"), bmp), make(tmp_path, "a.gif", image("GIF"), gif)
    )
    assert findings == []
    assert props["a.bmp"]["decoded"] is True and props["a.gif"]["colour_mode"] == "colour"


def test_large_images_are_not_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usability, "DECODE_LIMIT", 100)
    bmp = FormatInfo("fmt/116", "image/bmp", "Windows Bitmap", "3.0", None)
    findings, props = run(make(tmp_path, "big.bmp", image("BMP", size=(50, 50)), bmp))
    assert findings == []
    assert props["big.bmp"]["decoded"] is False
    assert "pixels not decoded" in str(props["big.bmp"]["note"])


def test_decompression_bomb_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    monkeypatch.setattr(usability, "MAX_IMAGE_PIXELS", 100)
    findings, _ = run(make(tmp_path, "bomb.png", image("PNG", size=(60, 60)), "png"))
    assert codes_for(findings, "bomb.png") == [("OPEN-001", "warn")]
    assert "too large to open safely" in message(findings, "bomb.png", "OPEN-001")


def test_jpeg2000(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import features

    if not features.check("jpg_2000"):
        pytest.skip("this Pillow has no OpenJPEG")
    e = make(tmp_path, "a.jp2", image("JPEG2000"), "jp2")
    findings, props = run(e)
    assert findings == []
    assert props["a.jp2"]["compression"] == "JPEG 2000"
    monkeypatch.setattr(features, "check", lambda name: False)
    findings, props = run(e)
    assert codes_for(findings, "a.jp2") == [("OPEN-001", "not performed")]
    assert "no OpenJPEG support" in message(findings, "a.jp2", "OPEN-001")
    assert props["a.jp2"]["open"] == "not performed"


# ------------------------------------------------------------------------- XML


def test_xml_good_bad_and_refused(tmp_path: Path) -> None:
    good = make(tmp_path, "ok.xml", '<?xml version="1.0"?><目录><件/></目录>'.encode(), "xml")
    bad = make(tmp_path, "bad.xml", b'<?xml version="1.0"?><a><b></a>', "xml")
    xxe = make(
        tmp_path,
        "xxe.xml",
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
        "xml",
    )
    findings, _ = run(good, bad, xxe)
    assert codes_for(findings, "ok.xml") == []
    assert codes_for(findings, "bad.xml") == [("OPEN-001", "fail")]
    assert "bad.xml: XML is not well-formed" in message(findings, "bad.xml", "OPEN-001")
    assert codes_for(findings, "xxe.xml") == [("OPEN-001", "fail")]
    assert "entity" in message(findings, "xxe.xml", "OPEN-001")


# ------------------------------------------------------------- OFD, OOXML, ZIP


def test_docx_and_ofd_open(tmp_path: Path) -> None:
    docx = make(
        tmp_path,
        "a.docx",
        zip_bytes({"[Content_Types].xml": CONTENT_TYPES, "word/document.xml": "<w/>"}),
        "docx",
    )
    ofd = make(
        tmp_path, "a.ofd", zip_bytes({"OFD.xml": OFD_XML, "Doc_0/Document.xml": "<d/>"}), "ofd"
    )
    findings, props = run(docx, ofd)
    assert findings == []
    assert props["a.docx"]["encrypted"] is False and props["a.ofd"]["members"] == 2


def test_missing_required_parts(tmp_path: Path) -> None:
    docx = make(tmp_path, "a.docx", zip_bytes({"word/document.xml": "<w/>"}), "docx")
    ofd = make(tmp_path, "a.ofd", zip_bytes({"Doc_0/Document.xml": "<d/>"}), "ofd")
    findings, _ = run(docx, ofd)
    assert (
        message(findings, "a.docx", "OPEN-001")
    ) == "a.docx: Office Open XML document lacks the required part(s) [Content_Types].xml"
    assert "OFD lacks the required part(s) OFD.xml" in message(findings, "a.ofd", "OPEN-001")


def test_zip_with_encrypted_members(tmp_path: Path) -> None:
    data = mark_zip_encrypted(zip_bytes({"OFD.xml": OFD_XML, "Doc_0/a.xml": "<a/>"}))
    findings, props = run(make(tmp_path, "locked.ofd", data, "ofd"))
    assert codes_for(findings, "locked.ofd") == [("OPEN-001", "fail"), ("OPEN-002", "fail")]
    assert "2 encrypted member(s)" in message(findings, "locked.ofd", "OPEN-002")
    assert props["locked.ofd"]["encrypted"] is True


def test_damaged_zip_member_fails_its_crc(tmp_path: Path) -> None:
    payload = b"record text " * 200
    data = bytearray(zip_bytes({"[Content_Types].xml": CONTENT_TYPES, "a.txt": payload}, False))
    i = data.index(payload) + 100
    data[i] ^= 0x01
    findings, _ = run(make(tmp_path, "bad.docx", bytes(data), "docx"))
    assert codes_for(findings, "bad.docx") == [("OPEN-001", "fail")]
    assert "member 'a.txt' is damaged" in message(findings, "bad.docx", "OPEN-001")


def test_not_a_zip_fails(tmp_path: Path) -> None:
    findings, _ = run(make(tmp_path, "fake.docx", b"PK\x03\x04 but nothing else", "docx"))
    assert "does not open as a ZIP container" in message(findings, "fake.docx", "OPEN-001")


def test_plain_zip_is_opened_and_checked(tmp_path: Path) -> None:
    findings, props = run(make(tmp_path, "a.zip", zip_bytes({"x.txt": "hi"}), "zip"))
    assert findings == [] and props["a.zip"]["checker"] == "zip"


# ------------------------------------------------------------------------- OLE2


def test_compound_file_reader_regular_and_mini_streams(tmp_path: Path) -> None:
    p = tmp_path / "x.cfb"
    p.write_bytes(make_cfb({"WordDocument": word_stream(True, 5000), "1Table": b"t" * 600}))
    with p.open("rb") as f:
        cf = CompoundFile(f, p.stat().st_size)
        assert cf.names() == {"root entry", "worddocument", "1table"}
        assert cf.head("WordDocument", 4) == struct.pack("<HH", 0xA5EC, 0x00C1)
        assert cf.head("1Table", 8) == b"t" * 8  # from the mini stream


def test_ole2_documents_and_their_encryption(tmp_path: Path) -> None:
    entries = [
        make(tmp_path, "plain.doc", make_cfb({"WordDocument": word_stream(False, 5000)}), "doc"),
        make(tmp_path, "enc.doc", make_cfb({"WordDocument": word_stream(True, 5000)}), "doc"),
        make(tmp_path, "small.doc", make_cfb({"WordDocument": word_stream(True, 700)}), "doc"),
        make(tmp_path, "plain.xls", make_cfb({"Workbook": workbook_stream(False, 4096)}), "xls"),
        make(tmp_path, "enc.xls", make_cfb({"Workbook": workbook_stream(True, 300)}), "xls"),
    ]
    findings, props = run(*entries)
    assert codes_for(findings, "plain.doc") == []
    assert codes_for(findings, "plain.xls") == []
    for name in ("enc.doc", "small.doc", "enc.xls"):
        assert codes_for(findings, name) == [("OPEN-001", "fail"), ("OPEN-002", "fail")], name
        assert props[name]["encrypted"] is True
    assert message(findings, "enc.xls", "OPEN-002") == (
        "enc.xls: Excel workbook is encrypted or password-protected"
    )
    assert props["plain.doc"]["ole2_content"] == "Word document"


def test_password_protected_docx_is_an_encrypted_ole2_package(tmp_path: Path) -> None:
    data = make_cfb({"EncryptionInfo": bytes(200), "EncryptedPackage": bytes(5000)})
    p = tmp_path / "合同.docx"
    p.write_bytes(data)
    info = identify_files([p], workers=1)[p]
    assert info.puid == "fmt/494"  # Siegfried: Microsoft Office Encrypted Document
    e = FileEntry(path="合同.docx", size=len(data), digests={}, source=p, format=info)
    findings, _ = run(e)
    assert codes_for(findings, "合同.docx") == [("OPEN-001", "fail"), ("OPEN-002", "fail")]
    assert "password-protected Office Open XML" in message(findings, "合同.docx", "OPEN-002")
    # Identified by extension alone as DOCX, the check still finds the OLE2 package.
    e.format = FMT["docx"]
    findings, _ = run(e)
    assert ("OPEN-002", "fail") in codes_for(findings, "合同.docx")


def test_truncated_ole2_fails(tmp_path: Path) -> None:
    data = make_cfb({"WordDocument": word_stream(False, 5000)})
    findings, _ = run(make(tmp_path, "cut.doc", data[:1024], "doc"))
    assert codes_for(findings, "cut.doc") == [("OPEN-001", "fail")]
    assert "truncated" in message(findings, "cut.doc", "OPEN-001")


# ------------------------------------------------------------------------- text


def test_text_encodings(tmp_path: Path) -> None:
    entries = [
        make(tmp_path, "u8.txt", "档号,题名\n".encode(), "txt"),
        make(tmp_path, "gb.txt", "档号,题名\n".encode("gb18030"), "txt"),
        make(tmp_path, "u16.txt", "档号\n".encode("utf-16"), "txt"),
        make(tmp_path, "bin.txt", b"\x80\x80\x80\xff\x00", "txt"),
    ]
    findings, props = run(*entries)
    assert props["u8.txt"]["encoding"] == "utf-8"
    assert props["gb.txt"]["encoding"] == "gb18030"
    assert props["u16.txt"]["encoding"] == "utf-16"
    assert codes_for(findings, "bin.txt") == [("OPEN-001", "warn")]
    assert "not valid utf-8 or gb18030" in message(findings, "bin.txt", "OPEN-001")


# ---------------------------------------------------------- not performed, summary


def wav_bytes() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 100)
    return buf.getvalue()


def test_unchecked_formats_are_never_a_pass(tmp_path: Path) -> None:
    wav = make(tmp_path, "a.wav", wav_bytes(), "wav")
    unknown = make(tmp_path, "mystery", b"\x13\x37" * 50, FormatInfo(None, None, None, None, None))
    unidentified = make(tmp_path, "noformat", b"x", None)
    nosource = FileEntry(path="ghost.pdf", size=0, digests={}, format=FMT["pdf"])
    findings, props = run(wav, unknown, unidentified, nosource)
    for name in ("a.wav", "mystery", "noformat", "ghost.pdf"):
        assert codes_for(findings, name) == [("OPEN-001", "not performed")], name
        assert props[name]["open"] == "not performed"
    assert "no opening check for Waveform Audio (PCMWAVEFORMAT) (fmt/141)" in message(
        findings, "a.wav", "OPEN-001"
    )
    assert "unidentified format" in message(findings, "mystery", "OPEN-001")
    assert usability_summary(props) == []  # nothing passed: no pass evidence


def test_summary_counts_every_outcome(tmp_path: Path) -> None:
    entries = [
        make(tmp_path, "a.pdf", pdf_bytes(), "pdf"),
        make(tmp_path, "b.tif", image("TIFF", dpi=(100, 100)), "tiff"),
        make(tmp_path, "c.tif", set_tiff_compression(image("TIFF"), 34715), "tiff"),
        make(tmp_path, "f.tif", image("TIFF", dpi=(300, 300)), "tiff"),
        make(tmp_path, "d.pdf", encrypted_pdf("u", "o", "RC4-128"), "pdf"),
        make(tmp_path, "e.wav", wav_bytes(), "wav"),
    ]
    findings, props = run(*entries)
    summary = {f.code: f for f in usability_summary(props)}
    assert {f.result for f in summary.values()} == {"pass"}
    assert all(f.file is None for f in summary.values())
    assert summary["OPEN-001"].details == {
        "total": 6,
        "pass": 3,
        "fail": 2,
        "not performed": 1,
    }
    assert summary["OPEN-001"].message.startswith("3 of 6 files opened")
    assert summary["OPEN-002"].details == {"not_encrypted": 1, "checked": 2}
    assert summary["OPEN-003"].details == {"public": 2, "checked": 3}
    assert summary["OPEN-004"].details == {"enough": 1, "with_resolution": 2, "images": 3}
    # the problems are the per-file findings, each counted once
    assert sorted((f.code, f.result, f.file) for f in findings) == [
        ("OPEN-001", "fail", "c.tif"),
        ("OPEN-001", "fail", "d.pdf"),
        ("OPEN-001", "not performed", "e.wav"),
        ("OPEN-002", "fail", "d.pdf"),
        ("OPEN-003", "warn", "c.tif"),
        ("OPEN-004", "warn", "b.tif"),
    ]
    assert usability_summary({}) == []


def test_check_file_and_workers_agree(tmp_path: Path) -> None:
    entries = [make(tmp_path, f"{i}.png", image("PNG"), "png") for i in range(6)]
    entries.append(make(tmp_path, "x.pdf", pdf_bytes()[:50], "pdf"))
    one = check_usability(entries, workers=1)
    many = check_usability(entries, workers=3)
    assert one[1] == many[1]
    assert [f.to_dict() for f in one[0]] == [f.to_dict() for f in many[0]]
    assert check_file(entries[0]).result == "pass"
