"""Real inputs for migration tests, made with the tools themselves (no binary fixtures)."""

from __future__ import annotations

import math
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import pytest


def need(executable: str) -> str:
    """The tool's path; fails the test (never skips) when it is not installed."""
    found = shutil.which(executable)
    if found is None:
        pytest.fail(f"{executable} is not installed (see .ci/run for the Debian packages)")
    return found


def _soffice_convert(text: Path, convert_to: str, folder: Path) -> None:
    work = folder / "lo-work"
    work.mkdir(exist_ok=True)
    subprocess.run(
        [
            need("soffice"),
            f"-env:UserInstallation={(work / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            convert_to,
            "--outdir",
            str(folder),
            str(text),
        ],
        check=True,
        capture_output=True,
        timeout=180,
        env={"HOME": str(work), "PATH": "/usr/bin:/bin"},
    )
    text.unlink()
    shutil.rmtree(work)


def make_docx(folder: Path, name: str = "letter", paragraphs: int = 40) -> Path:
    """A DOCX made by LibreOffice from a text file (python-docx is not a dependency)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / f"{name}.txt"
    text.write_text(
        "\n\n".join(
            f"Paragraph {i}: 关于档案数字化的通知 - the quick brown fox." for i in range(paragraphs)
        ),
        encoding="utf-8",
    )
    _soffice_convert(text, "docx:MS Word 2007 XML", folder)
    out = folder / f"{name}.docx"
    assert out.is_file()
    return out


def make_xls(folder: Path, name: str = "ledger", rows: int = 20) -> Path:
    """An Excel 97 workbook made by LibreOffice Calc from a CSV file."""
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"{name}.csv"
    csv.write_text(
        "item,amount\n" + "".join(f"row {i},{i * 3}\n" for i in range(rows)), encoding="utf-8"
    )
    _soffice_convert(csv, "xls:MS Excel 97", folder)
    out = folder / f"{name}.xls"
    assert out.is_file()
    return out


def make_pdf(path: Path, pages: int = 3) -> Path:
    """A plain (non-PDF/A) PDF 1.4 of ``pages`` pages, written by Pillow."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.new("RGB", (60, 80), (40 * i % 256, 90, 150)) for i in range(pages)]
    images[0].save(path, "PDF", save_all=True, append_images=images[1:])
    return path


def make_image(path: Path, fmt: str, size: tuple[int, int] = (120, 80)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.new("RGB", size)
    im.putdata(
        [
            ((x * 7) % 256, (y * 5) % 256, (x + y) % 256)
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    im.save(path, fmt)
    return path


def make_wav(path: Path, seconds: float = 1.5, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(struct.pack("<h", int(8000 * math.sin(i * 0.05))) for i in range(frames))
        )
    return path


def make_video(path: Path, seconds: int = 1) -> Path:
    """A short AVI (MPEG-4 video and PCM audio) from ffmpeg's test sources."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            need("ffmpeg"),
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=duration={seconds}:size=96x64:rate=10",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}:sample_rate=8000",
            "-c:v",
            "mpeg4",
            "-c:a",
            "pcm_s16le",
            "-shortest",
            str(path),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path


def truncate_docx_body(docx: Path, out: Path) -> Path:
    """A DOCX whose main part (word/document.xml) is cut in half: still identified as
    DOCX by its container signature, but the document itself is truncated."""
    import zipfile

    with zipfile.ZipFile(docx) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = data[: len(data) // 2]
            dst.writestr(info, data)
    return out
