"""Accepting a migration output: identified as expected, opens, essential properties kept.

Every check runs and is reported (cheapest first); the output is accepted only when
all pass. Essential properties and their tolerances:

- ``pdf`` (PDF to PDF/A): the page count is equal.
- ``document`` (office document to PDF/A): a presentation's slide count (OOXML
  ``docProps/app.xml`` Slides) equals the page count; a text document's page count
  (OOXML ``Pages`` or ODF ``meta:page-count``, when the source records one) may differ
  by at most 1 page or 10 %, whichever is larger (page breaks move when fonts are
  substituted). When the source records no count (DOC, RTF), the output must have at
  least one page, and the report says the count could not be compared.
- ``spreadsheet``: the sheet count is equal when the source records it (XLSX, ODS);
  otherwise at least one sheet.
- ``image``: width, height and frame count are equal; for images up to
  :data:`PIXEL_COMPARE_LIMIT` pixels the decoded pixels (as RGBA) are identical
  (every image action is lossless).
- ``av``: the number and kinds of streams are equal, video width and height and audio
  channels and sample rate are equal, and the duration differs by at most
  :data:`DURATION_TOLERANCE_S` seconds or :data:`DURATION_TOLERANCE_RATIO` of it,
  whichever is larger. The output must decode completely (``ffmpeg -f null``) without
  an error.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from preservation.formats.tools import TOOLS, Action, run_tool
from preservation.model import FileEntry, FormatInfo

PIXEL_COMPARE_LIMIT = 100_000_000
DURATION_TOLERANCE_S = 0.15
DURATION_TOLERANCE_RATIO = 0.005
PAGE_TOLERANCE_RATIO = 0.10
_APP_XML = "docProps/app.xml"
_ODF_MIME_PREFIX = "application/vnd.oasis.opendocument."


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    output_format: FormatInfo | None = None
    source_properties: dict[str, Any] = field(default_factory=dict)
    output_properties: dict[str, Any] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def summary(self) -> str:
        return "; ".join(
            f"{c.name}: {'ok' if c.ok else 'FAILED'} ({c.detail})" for c in self.checks
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "checks": [c.to_dict() for c in self.checks],
            "output_format": self.output_format.to_dict() if self.output_format else None,
            "source_properties": self.source_properties,
            "output_properties": self.output_properties,
        }


# ------------------------------------------------------------------ properties


def _zip_member(path: Path, name: str, limit: int = 16 * 1024 * 1024) -> bytes | None:
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(name)
            if info.file_size > limit:
                return None
            return zf.read(info)
    except (KeyError, OSError, zipfile.BadZipFile):
        return None


def _int_tag(xml: bytes | None, pattern: str) -> int | None:
    if not xml:
        return None
    m = re.search(pattern.encode(), xml)
    return int(m.group(1)) if m else None


def office_counts(path: Path) -> dict[str, int]:
    """Pages, slides or sheets an OOXML or ODF file records about itself."""
    out: dict[str, int] = {}
    app = _zip_member(path, _APP_XML)
    for key, tag in (("pages", "Pages"), ("slides", "Slides")):
        value = _int_tag(app, rf"<(?:\w+:)?{tag}>(\d+)</")
        if value:
            out[key] = value
    workbook = _zip_member(path, "xl/workbook.xml")
    if workbook:
        out["sheets"] = len(re.findall(rb"<(?:\w+:)?sheet\b", workbook))
    meta = _zip_member(path, "meta.xml")
    pages = _int_tag(meta, r'meta:page-count="(\d+)"')
    if pages:
        out["pages"] = pages
    return out


def ods_sheets(path: Path) -> int | None:
    """Sheets (``table:table``) of an ODF spreadsheet, streamed from content.xml.

    None when unknown, also when content.xml has a DOCTYPE with entities or an external
    DTD (refused by the one safe XML parser, like every outside document)."""
    from preservation.errors import XMLMalformed, XMLUnsafe
    from preservation.metadata.xmlsafe import iterparse_untrusted

    table = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}table"
    try:
        with zipfile.ZipFile(path) as zf, zf.open("content.xml") as fh:
            count = 0
            for _ev, el in iterparse_untrusted(fh, label=f"{path.name}/content.xml", tag=table):
                count += 1
                el.clear()
            return count
    except (KeyError, OSError, zipfile.BadZipFile, XMLMalformed, XMLUnsafe):
        return None


def pdf_pages(path: Path) -> tuple[int | None, str]:
    from pypdf import PdfReader

    try:
        with path.open("rb") as fh:
            return len(PdfReader(fh, strict=False).pages), ""
    except Exception as e:  # any parser error: the file does not open
        return None, f"{type(e).__name__}: {e}"


def image_properties(path: Path, *, pixels: bool) -> dict[str, Any]:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 1_000_000_000)
    with Image.open(path) as im:
        width, height = im.size
        frames = int(getattr(im, "n_frames", 1))
        props: dict[str, Any] = {"width": width, "height": height, "frames": frames}
        if pixels and width * height * frames <= PIXEL_COMPARE_LIMIT:
            digest = hashlib.sha256()
            for i in range(frames):
                im.seek(i)
                digest.update(im.convert("RGBA").tobytes())
            props["pixels_sha256"] = digest.hexdigest()
    return props


def av_properties(path: Path, timeout: float = 600) -> dict[str, Any]:
    exe = TOOLS["ffprobe"].path()
    done = subprocess.run(
        [exe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise ValueError(done.stderr.decode("utf-8", "replace").strip() or "ffprobe failed")
    data = json.loads(done.stdout)
    streams = []
    for s in data.get("streams", []):
        kind = s.get("codec_type")
        item: dict[str, Any] = {"type": kind, "codec": s.get("codec_name")}
        if kind == "video":
            item.update(width=s.get("width"), height=s.get("height"))
        elif kind == "audio":
            item.update(channels=s.get("channels"), sample_rate=s.get("sample_rate"))
        streams.append(item)
    duration = data.get("format", {}).get("duration")
    return {"duration": float(duration) if duration else None, "streams": streams}


# ------------------------------------------------------------------ checks


def _identify(v: Verdict, output: Path, action: Action) -> None:
    from preservation.ingest.identify import identify_files

    fmt = identify_files([output]).get(output)
    v.output_format = fmt
    puid = fmt.puid if fmt else None
    name = f" ({fmt.name})" if fmt and fmt.name else ""
    expected = " or ".join(action.outputs)
    v.add(
        "identified", puid in action.outputs, f"{puid or 'unidentified'}{name}; expected {expected}"
    )


def _opens_with_checker(v: Verdict, output: Path) -> None:
    from preservation.ingest.usability import check_file

    entry = FileEntry(
        path=output.name,
        size=output.stat().st_size,
        digests={},
        source=output,
        format=v.output_format,
    )
    outcome = check_file(entry)
    v.add(
        "opens",
        outcome.result == "pass",
        outcome.message or f"{outcome.props.get('checker')} check passed",
    )


def _compare_counts(
    v: Verdict, what: str, src: int | None, out: int | None, *, exact: bool
) -> None:
    if out is None:
        v.add(what, False, f"cannot count the output's {what}")
    elif src is None:
        v.add(what, out >= 1, f"output has {out}; the source records no {what} count to compare")
    else:
        slack = 0 if exact else max(1, round(src * PAGE_TOLERANCE_RATIO))
        v.add(
            what,
            abs(out - src) <= slack,
            f"source {src}, output {out}"
            + (f" (tolerance ±{slack})" if slack else " (must be equal)"),
        )


def _verify_pdf(v: Verdict, source: Path, output: Path) -> None:
    src, err = pdf_pages(source)
    out, out_err = pdf_pages(output)
    v.source_properties["pages"], v.output_properties["pages"] = src, out
    if out is None:
        v.add("pages", False, f"output does not open: {out_err}")
        return
    if src is None:
        v.add("pages", False, f"source page count unknown ({err})")
        return
    _compare_counts(v, "pages", src, out, exact=True)


def _verify_document(v: Verdict, source: Path, output: Path) -> None:
    counts = office_counts(source)
    v.source_properties.update(counts)
    out, err = pdf_pages(output)
    v.output_properties["pages"] = out
    if out is None:
        v.add("pages", False, f"output does not open: {err}")
    elif "slides" in counts:
        _compare_counts(v, "pages", counts["slides"], out, exact=True)
    else:
        _compare_counts(v, "pages", counts.get("pages"), out, exact=False)


def _verify_spreadsheet(v: Verdict, source: Path, output: Path) -> None:
    mime = _zip_member(output, "mimetype")
    ok = mime is not None and mime.decode("ascii", "replace").startswith(_ODF_MIME_PREFIX)
    try:
        with zipfile.ZipFile(output) as zf:
            bad = zf.testzip()
    except (OSError, zipfile.BadZipFile) as e:
        ok, bad = False, str(e)
    v.add(
        "opens",
        ok and bad is None,
        "ODF package with mimetype and intact members"
        if ok and bad is None
        else f"not a sound ODF package ({bad or 'no ODF mimetype'})",
    )
    src = office_counts(source).get("sheets") or (
        ods_sheets(source) if zipfile.is_zipfile(source) else None
    )
    out = ods_sheets(output)
    v.source_properties["sheets"], v.output_properties["sheets"] = src, out
    _compare_counts(v, "sheets", src, out, exact=True)


def _verify_image(v: Verdict, source: Path, output: Path) -> None:
    try:
        src = image_properties(source, pixels=True)
        out = image_properties(output, pixels=True)
    except Exception as e:  # a decoder error on either side fails the check
        v.add("pixels", False, f"cannot decode: {type(e).__name__}: {e}")
        return
    v.source_properties.update(src)
    v.output_properties.update(out)
    for key in ("width", "height", "frames"):
        v.add(key, src[key] == out[key], f"source {src[key]}, output {out[key]} (must be equal)")
    if "pixels_sha256" in src and "pixels_sha256" in out:
        v.add(
            "pixels",
            src["pixels_sha256"] == out["pixels_sha256"],
            "decoded RGBA pixels identical"
            if src["pixels_sha256"] == out["pixels_sha256"]
            else "decoded pixels differ",
        )
    else:
        v.add("pixels", True, f"not compared: more than {PIXEL_COMPARE_LIMIT} pixels")


def _decode_all(v: Verdict, output: Path, scratch: Path, timeout: float) -> None:
    exe = TOOLS["ffmpeg"].path()
    run = run_tool(
        [exe, "-nostdin", "-v", "error", "-i", str(output), "-f", "null", "-"],
        cwd=scratch,
        timeout=timeout,
        max_file_bytes=1024 * 1024,
    )
    v.add(
        "opens",
        run.ok and not run.output,
        "decodes completely"
        if run.ok and not run.output
        else f"decoding: {run.output or run.returncode}",
    )


def _verify_av(v: Verdict, source: Path, output: Path, scratch: Path, timeout: float) -> None:
    try:
        src = av_properties(source, timeout)
        out = av_properties(output, timeout)
    except (ValueError, subprocess.TimeoutExpired) as e:
        v.add("streams", False, f"ffprobe: {e}")
        return
    v.source_properties.update(src)
    v.output_properties.update(out)
    _decode_all(v, output, scratch, timeout)
    s_types = [s["type"] for s in src["streams"]]
    o_types = [s["type"] for s in out["streams"]]
    v.add("streams", s_types == o_types, f"source {s_types}, output {o_types} (must be equal)")
    if s_types == o_types:
        keys = ("width", "height", "channels", "sample_rate")
        diffs = [
            f"stream {i} {k}: {a.get(k)} -> {b.get(k)}"
            for i, (a, b) in enumerate(zip(src["streams"], out["streams"], strict=True))
            for k in keys
            if a.get(k) != b.get(k)
        ]
        v.add(
            "stream properties",
            not diffs,
            "; ".join(diffs) or "dimensions, channels and sample rates equal",
        )
    sd, od = src["duration"], out["duration"]
    if sd is None or od is None:
        v.add("duration", False, f"source {sd}, output {od}: duration unknown")
    else:
        slack = max(DURATION_TOLERANCE_S, sd * DURATION_TOLERANCE_RATIO)
        v.add(
            "duration",
            abs(sd - od) <= slack,
            f"source {sd:.3f} s, output {od:.3f} s (tolerance ±{slack:.3f} s)",
        )


def verify_output(
    source: Path, output: Path, action: Action, *, scratch: Path, timeout: float
) -> Verdict:
    """Run every acceptance check of ``output`` made from ``source`` by ``action``."""
    v = Verdict()
    size = output.stat().st_size if output.is_file() else 0
    v.add("written", size > 0, f"{size} bytes")
    if size == 0:
        return v
    _identify(v, output, action)
    if action.kind in ("pdf", "document"):
        _opens_with_checker(v, output)
        (_verify_pdf if action.kind == "pdf" else _verify_document)(v, source, output)
    elif action.kind == "spreadsheet":
        _verify_spreadsheet(v, source, output)
    elif action.kind == "image":
        _opens_with_checker(v, output)
        _verify_image(v, source, output)
    else:
        _verify_av(v, source, output, scratch, timeout)
    return v
