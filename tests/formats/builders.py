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
    work = folder / "lo-work"
    work.mkdir(exist_ok=True)
    subprocess.run(
        [
            need("soffice"),
            f"-env:UserInstallation={(work / 'profile').as_uri()}",
            "--headless",
            "--convert-to",
            "docx:MS Word 2007 XML",
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
    out = folder / f"{name}.docx"
    assert out.is_file()
    return out


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


def sys_executable() -> str:
    import sys

    return sys.executable
