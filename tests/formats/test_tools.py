"""The tool runner's limits and the verification of outputs, without a whole migration."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from preservation.errors import ToolMissing
from preservation.formats.tools import ACTIONS, Tool, run_tool
from preservation.formats.verify import verify_output
from tests.formats import builders as b


def test_time_limit_kills_the_whole_process_group(tmp_path: Path) -> None:
    sh = shutil.which("sh")
    assert sh is not None
    run = run_tool(
        [sh, "-c", "sleep 30 & sleep 30"], cwd=tmp_path, timeout=0.5, max_file_bytes=10**6
    )
    assert run.timed_out and not run.ok and run.returncode is None
    assert "killed after 0.5 s" in run.output
    assert run.seconds < 10


def test_file_size_limit_stops_a_runaway_tool(tmp_path: Path) -> None:
    sh = shutil.which("sh")
    assert sh is not None
    run = run_tool(
        [sh, "-c", "head -c 5000000 /dev/zero > big.bin"],
        cwd=tmp_path,
        timeout=30,
        max_file_bytes=100_000,
    )
    assert not run.ok
    assert (tmp_path / "big.bin").stat().st_size <= 100_000


def test_missing_tool_names_the_package() -> None:
    with pytest.raises(ToolMissing, match="install the Debian package some-package"):
        Tool("nothing", "no-such-program-here", "some-package").path()


def test_lossy_or_resized_image_is_refused(tmp_path: Path) -> None:
    source = b.make_image(tmp_path / "a.bmp", "BMP", (64, 48))
    resized = b.make_image(tmp_path / "out" / "a.tif", "TIFF", (64, 47))
    v = verify_output(source, resized, ACTIONS["pillow-tiff"], scratch=tmp_path, timeout=60)
    assert not v.accepted
    failed = {c.name for c in v.checks if not c.ok}
    assert failed == {"height", "pixels"}

    from PIL import Image

    lossy = tmp_path / "out" / "b.tif"
    with Image.open(source) as im:
        im.save(lossy, "TIFF", compression="jpeg", quality=20)
    v = verify_output(source, lossy, ACTIONS["pillow-tiff"], scratch=tmp_path, timeout=60)
    assert [c.name for c in v.checks if not c.ok] == ["pixels"]


def test_wrong_format_and_short_audio_are_refused(tmp_path: Path) -> None:
    source = b.make_wav(tmp_path / "a.wav", seconds=2.0)
    shorter = b.make_wav(tmp_path / "out" / "a.wav", seconds=1.0)
    v = verify_output(source, shorter, ACTIONS["ffmpeg-flac-mkv"], scratch=tmp_path, timeout=60)
    failed = {c.name for c in v.checks if not c.ok}
    assert failed == {"identified", "duration"}  # a WAV, not Matroska; 1 s instead of 2 s
