"""Migration tools and actions: which program makes which format, and running it safely.

A :class:`Tool` is an external program with the Debian package that provides it; a
missing one raises ToolMissing naming that package (never a silent skip). An
:class:`Action` is one named conversion the format policy can point at
(``libreoffice-pdfa2b``, ``ghostscript-pdfa2b``, ``pillow-tiff``, ``pillow-png``,
``openjpeg-jp2``, ``ffmpeg-flac-mkv``, ``ffmpeg-ffv1-mkv``): the tool, its
command line, the PUIDs its output must be identified as, and the essential properties
compared afterwards.

:func:`run_tool` runs a command in a scratch folder: its own process group (killed
whole at the time limit), ``HOME`` and temporary files inside the scratch folder, each
file it writes limited by ``RLIMIT_FSIZE``, and its combined output kept (the last
:data:`OUTPUT_KEEP` characters) for the report.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from preservation.errors import ToolMissing

OUTPUT_KEEP = 4000  # characters of a tool's output kept for reports

Kind = Literal["document", "presentation", "spreadsheet", "pdf", "image", "av"]


@dataclass(frozen=True)
class Tool:
    name: str
    executable: str
    package: str  # the Debian package that provides it
    version_args: tuple[str, ...] = ("--version",)

    def path(self) -> str:
        found = shutil.which(self.executable)
        if found is None:
            raise ToolMissing(tool=self.executable, package=self.package)
        return found

    def version(self) -> str:
        return tool_version(self)


PYTHON = Tool("pillow", sys.executable, "python3-pil", ("-c", "import PIL; print(PIL.__version__)"))
TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("libreoffice", "soffice", "libreoffice-writer-nogui"),
        Tool("ghostscript", "gs", "ghostscript"),
        Tool("openjpeg", "opj_compress", "libopenjp2-tools", ("-h",)),
        Tool("ffmpeg", "ffmpeg", "ffmpeg", ("-version",)),
        Tool("ffprobe", "ffprobe", "ffmpeg", ("-version",)),
        PYTHON,
    )
}

_VERSION_RE = re.compile(r"(\d+(?:\.\d+)+)")


@functools.lru_cache(maxsize=32)
def tool_version(tool: Tool) -> str:
    """The tool's version as it reports it (first dotted number of its output)."""
    exe = tool.path()
    try:
        done = subprocess.run(
            [exe, *tool.version_args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "HOME": os.environ.get("TMPDIR", "/tmp")},
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    m = _VERSION_RE.search(done.stdout + done.stderr)
    return m.group(1) if m else "unknown"


@dataclass
class ToolRun:
    argv: list[str]
    returncode: int | None  # None: killed at the time limit
    output: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _limit_files(max_bytes: int) -> Callable[[], None]:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return preexec


def run_tool(argv: Sequence[str], *, cwd: Path, timeout: float, max_file_bytes: int) -> ToolRun:
    """Run ``argv`` in ``cwd`` with a time limit and a per-file size limit."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "TMPDIR": str(cwd),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_limit_files(max_file_bytes),
    )
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    text = out.decode("utf-8", "replace")
    if len(text) > OUTPUT_KEEP:
        text = "..." + text[-OUTPUT_KEEP:]
    rc = None if timed_out else proc.returncode
    if timed_out:
        text += f"\n(killed after {timeout:g} s)"
    elif rc is not None and rc < 0:
        text += f"\n(ended by signal {signal.Signals(-rc).name})"
    return ToolRun(list(argv), rc, text.strip(), time.monotonic() - start, timed_out)


# ----------------------------------------------------------------------------- actions

Argv = Callable[[str, Path, Path], list[str]]  # (executable, input, output folder) -> argv

PDFA2B_FILTER = 'pdf:writer_pdf_Export:{"SelectPdfVersion":{"type":"long","value":"2"}}'


def _soffice(convert_to: str) -> Argv:
    def argv(exe: str, src: Path, out: Path) -> list[str]:
        return [
            exe,
            f"-env:UserInstallation={(out.parent / 'lo-profile').as_uri()}",
            "--headless",
            "--norestore",
            "--convert-to",
            convert_to,
            "--outdir",
            str(out),
            str(src),
        ]

    return argv


def _gs(exe: str, src: Path, out: Path) -> list[str]:
    return [
        exe,
        "-dPDFA=2",
        "-dBATCH",
        "-dNOPAUSE",
        "-dSAFER",
        "-dQUIET",
        "-sColorConversionStrategy=RGB",
        "-dPDFACompatibilityPolicy=1",
        "-sDEVICE=pdfwrite",
        f"-sOutputFile={out / (src.stem + '.pdf')}",
        str(src),
    ]


def _pillow(fmt: str, ext: str, *options: str) -> Argv:
    def argv(exe: str, src: Path, out: Path) -> list[str]:
        return [
            exe,
            "-I",
            "-m",
            "preservation.formats.pillow_convert",
            str(src),
            str(out / f"{src.stem}.{ext}"),
            fmt,
            *options,
        ]

    return argv


def _opj(exe: str, src: Path, out: Path) -> list[str]:
    return [exe, "-i", str(src), "-o", str(out / f"{src.stem}.jp2")]  # lossless by default


def _ffmpeg(*codec: str) -> Argv:
    def argv(exe: str, src: Path, out: Path) -> list[str]:
        return [
            exe,
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-i",
            str(src),
            "-map",
            "0",
            *codec,
            str(out / f"{src.stem}.mkv"),
        ]

    return argv


@dataclass(frozen=True)
class Action:
    name: str
    tool: Tool
    argv: Argv
    extension: str  # of the output
    outputs: tuple[str, ...]  # PUIDs the output may be identified as
    kind: Kind  # which essential properties are compared
    parameters: str  # as recorded in the PREMIS event
    description: str = ""
    extra_packages: tuple[str, ...] = ()  # needed for some inputs (LibreOffice Calc...)

    @property
    def target_name(self) -> str:
        return {
            "fmt/477": "PDF/A-2b",
            "fmt/1755": "OpenDocument Spreadsheet",
            "fmt/353": "TIFF (lossless)",
            "fmt/11": "PNG",
            "x-fmt/392": "JPEG 2000 (JP2, lossless)",
            "fmt/569": "Matroska",
        }.get(self.outputs[0], self.outputs[0])


LIBREOFFICE = TOOLS["libreoffice"]
ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action(
            "libreoffice-pdfa2b",
            LIBREOFFICE,
            _soffice(PDFA2B_FILTER),
            "pdf",
            ("fmt/477",),
            "document",
            f"soffice --headless --convert-to '{PDFA2B_FILTER}'",
            description="office document to PDF/A-2b with LibreOffice",
            extra_packages=("libreoffice-calc-nogui", "libreoffice-impress-nogui"),
        ),
        Action(
            "libreoffice-ods",
            LIBREOFFICE,
            _soffice("ods"),
            "ods",
            ("fmt/1755", "fmt/295"),
            "spreadsheet",
            "soffice --headless --convert-to ods",
            description="spreadsheet to OpenDocument Spreadsheet with LibreOffice",
            extra_packages=("libreoffice-calc-nogui",),
        ),
        Action(
            "ghostscript-pdfa2b",
            TOOLS["ghostscript"],
            _gs,
            "pdf",
            ("fmt/477",),
            "pdf",
            "gs -dPDFA=2 -sColorConversionStrategy=RGB -dPDFACompatibilityPolicy=1"
            " -sDEVICE=pdfwrite",
            description="PDF to PDF/A-2b with Ghostscript",
        ),
        Action(
            "pillow-tiff",
            PYTHON,
            _pillow("TIFF", "tif", "compression=tiff_lzw"),
            "tif",
            ("fmt/353",),
            "image",
            "Pillow TIFF, LZW compression (lossless)",
            description="raster image to lossless TIFF with Pillow",
        ),
        Action(
            "pillow-png",
            PYTHON,
            _pillow("PNG", "png", "optimize=1"),
            "png",
            ("fmt/11", "fmt/12", "fmt/13"),
            "image",
            "Pillow PNG (lossless)",
            description="raster image to PNG with Pillow",
        ),
        Action(
            "openjpeg-jp2",
            TOOLS["openjpeg"],
            _opj,
            "jp2",
            ("x-fmt/392",),
            "image",
            "opj_compress (reversible 5/3 wavelet, lossless)",
            description="image to lossless JPEG 2000 (JP2) with OpenJPEG",
        ),
        Action(
            "ffmpeg-flac-mkv",
            TOOLS["ffmpeg"],
            _ffmpeg("-c:a", "flac", "-c:v", "copy"),
            "mkv",
            ("fmt/569",),
            "av",
            "ffmpeg -map 0 -c:a flac (Matroska)",
            description="audio to FLAC in Matroska with ffmpeg",
        ),
        Action(
            "ffmpeg-ffv1-mkv",
            TOOLS["ffmpeg"],
            _ffmpeg("-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1", "-c:a", "flac"),
            "mkv",
            ("fmt/569",),
            "av",
            "ffmpeg -map 0 -c:v ffv1 -level 3 -g 1 -slicecrc 1 -c:a flac (Matroska)",
            description="video to FFV1 with FLAC audio in Matroska with ffmpeg",
        ),
    )
}


def action(name: str) -> Action:
    from preservation.errors import ConfigError

    try:
        return ACTIONS[name]
    except KeyError as e:
        raise ConfigError(
            f"no migration action {name!r}; known: {', '.join(sorted(ACTIONS))}"
        ) from e
