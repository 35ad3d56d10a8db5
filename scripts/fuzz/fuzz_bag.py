#!/usr/bin/env python3
"""atheris (libFuzzer) target: the BagIt parser and validator.

Each input is a whole bag in a small container format: its parts separated by the
bytes ``\\x00--\\x00``, in this order: ``bagit.txt``, ``manifest-sha256.txt``,
``bag-info.txt``, ``tagmanifest-sha256.txt``, ``fetch.txt``, then payload files
``data/a.txt``, ``data/sub/b.txt``, ``data/%.txt`` (missing parts are absent files).
The bag is written to a temporary folder and checked with
:func:`preservation.bags.validate.validate_bag` (which must never raise for a bad bag:
any exception is a finding) and its manifests once more with ``read_manifest``
(every entry it yields must be a safe path inside the bag).

Run it (from the top of the checkout, in the virtual environment)::

    # the seed corpus: valid bags, one with percent-encoded names, one with CRLF lines
    .venv/bin/python scripts/fuzz/fuzz_bag.py --make-seeds fuzz-corpus/bag
    # a long run: 8 hours, 2 processes, new inputs kept in the corpus folder,
    # crashes written as crash-<sha1> files into fuzz-findings/
    mkdir -p fuzz-findings
    .venv/bin/python scripts/fuzz/fuzz_bag.py fuzz-corpus/bag -max_total_time=28800 \\
        -jobs=2 -workers=2 -timeout=20 -rss_limit_mb=2048 -artifact_prefix=fuzz-findings/
    # replay one crash
    .venv/bin/python scripts/fuzz/fuzz_bag.py fuzz-findings/crash-...

Every libFuzzer flag works (``-help=1``). The test suite runs it for a few seconds
(tests/fuzz/test_atheris.py). A crash file is a regression test waiting to be written:
add its bytes to a test under tests/bags/ before fixing the parser.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["preservation"]):
    from preservation.bags.findings import BagFinding
    from preservation.bags.manifest import escape_problem, read_manifest
    from preservation.bags.tagfiles import TagText
    from preservation.bags.validate import validate_bag

SEPARATOR = b"\x00--\x00"
TAG_PARTS = (
    "bagit.txt",
    "manifest-sha256.txt",
    "bag-info.txt",
    "tagmanifest-sha256.txt",
    "fetch.txt",
)
PAYLOAD_PARTS = ("data/a.txt", "data/sub/b.txt", "data/%.txt")
PARTS = TAG_PARTS + PAYLOAD_PARTS
_WORK = Path(tempfile.mkdtemp(prefix="fuzz-bag-"))


def write_bag(data: bytes, root: Path) -> Path:
    """Unpack one input into a bag folder under ``root``."""
    bag = root / "bag"
    if bag.exists():
        shutil.rmtree(bag)
    (bag / "data" / "sub").mkdir(parents=True)
    for name, part in zip(PARTS, data.split(SEPARATOR), strict=False):
        (bag / name).write_bytes(part)
    return bag


def check(data: bytes) -> None:
    bag = write_bag(data, _WORK)
    report = validate_bag(bag)
    assert isinstance(report.valid, bool)
    for manifest, kind in (("manifest-sha256.txt", "payload"), ("tagmanifest-sha256.txt", "tag")):
        path = bag / manifest
        if not path.is_file():
            continue
        findings: list[BagFinding] = []
        for entry in read_manifest(TagText(path, "utf-8"), "sha256", findings, kind=kind,  # type: ignore[arg-type]
                                   file=manifest):  # fmt: skip
            assert escape_problem(entry.path) is None, entry.path
            assert entry.path.startswith("data/") == (kind == "payload"), entry.path


def TestOneInput(data: bytes) -> None:
    check(data)


def _line(content: bytes, path: str) -> bytes:
    return f"{hashlib.sha256(content).hexdigest()}  {path}\n".encode()


def seed_inputs() -> dict[str, bytes]:
    payload = {"data/a.txt": b"alpha\n", "data/sub/b.txt": b"beta\n", "data/%.txt": b"%\n"}
    bagit = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    manifest = b"".join(_line(c, p.replace("%", "%25")) for p, c in payload.items())
    info = f"Source-Organization: Fuzz\nPayload-Oxum: {sum(map(len, payload.values()))}.3\n"
    tags = {"bagit.txt": bagit, "manifest-sha256.txt": manifest, "bag-info.txt": info.encode()}
    tagmanifest = b"".join(_line(c, p) for p, c in tags.items())
    valid = [bagit, manifest, info.encode(), tagmanifest, b"", *payload.values()]
    crlf = [p.replace(b"\n", b"\r\n") if i < 4 else p for i, p in enumerate(valid)]
    fetch = [*valid]
    fetch[4] = b"https://example.org/a.txt 6 data/a.txt\n"
    old = [b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n", *valid[1:]]
    return {
        "valid": SEPARATOR.join(valid),
        "crlf": SEPARATOR.join(crlf),
        "fetch": SEPARATOR.join(fetch),
        "old-version": SEPARATOR.join(old),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from driver import main

    main(sys.argv, TestOneInput, seed_inputs, _WORK)
