"""Hostile bags through ``preservation bag validate`` (in-process CLI) and ingest.

tests/bags/ already covers traversal and absolute manifest lines (test_manifest.py
test_unsafe_paths_are_errors_and_dropped, test_validate.py test_unsafe_paths_never_read),
symlinks, %0A/%0D/%25 decoding, CR-only line ends and the LoC conformance suite. Here:
a FIFO listed in the manifest, hard links, CRLF manifests, percent-encoding that tries to
smuggle '..' or '/' past the path check, 10,000-level nesting under data/, and a bag
transfer whose manifest points outside it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from preservation.bags.writer import make_bag_in_place
from tests.hostile.support import (
    finding_files,
    new_repository,
    nothing_stored,
    remove_nested,
    run_cli,
)
from tests.hostile.test_transfers import NESTING, _nested_folder

ALGS = ("sha256", "sha512")


def make_bag(parent: Path, files: dict[str, bytes]) -> Path:
    bag = parent / "bag"
    for name, data in files.items():
        target = bag / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    make_bag_in_place(bag, algorithms=ALGS)
    return bag


def digest_lines(path: str, data: bytes = b"") -> dict[str, str]:
    return {alg: f"{hashlib.new(alg, data).hexdigest()}  {path}\n" for alg in ALGS}


def append_to_manifests(bag: Path, path: str, data: bytes = b"") -> None:
    for alg, line in digest_lines(path, data).items():
        with (bag / f"manifest-{alg}.txt").open("a", encoding="utf-8", newline="") as f:
            f.write(line)
    refresh_tag_manifests(bag)


def refresh_tag_manifests(bag: Path) -> None:
    """Rewrite the tag manifests so that only the change under test is wrong."""
    names = sorted(p.name for p in bag.iterdir() if p.is_file() and not p.name.startswith("tag"))
    for alg in ALGS:
        lines = [f"{hashlib.new(alg, (bag / n).read_bytes()).hexdigest()}  {n}\n" for n in names]
        (bag / f"tagmanifest-{alg}.txt").write_text("".join(lines), encoding="utf-8")


def validate(bag: Path) -> tuple[bool, dict[str, set[str]]]:
    out = run_cli("--json", "bag", "validate", "--processes", "1", str(bag))
    assert out.status in (0, 3), out.stdout  # 3: an invalid bag
    data = out.data
    codes: dict[str, set[str]] = {}
    for f in data["findings"]:
        codes.setdefault(f["code"], set()).add(str(f.get("file")))
    return bool(data["valid"]) and out.status == 0, codes


def within(seconds: float, fn: Callable[[], object]) -> object:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it blocks."""
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s (blocked on a read?)"
    return result[0]


def test_fifo_listed_in_the_manifest_is_never_opened(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, {"a.txt": b"a"})
    os.mkfifo(bag / "data" / "pipe")
    append_to_manifests(bag, "data/pipe")
    valid, codes = within(20, lambda: validate(bag))  # type: ignore[misc]
    assert not valid and codes["BAG506"] == {"data/pipe"}


def test_hard_linked_payload_files_validate_like_copies(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, {"a.txt": b"same"})
    os.link(bag / "data" / "a.txt", bag / "data" / "b.txt")
    append_to_manifests(bag, "data/b.txt", b"same")
    (bag / "bag-info.txt").write_text(
        (bag / "bag-info.txt").read_text().replace("Payload-Oxum: 4.1", "Payload-Oxum: 8.2")
    )
    refresh_tag_manifests(bag)
    valid, codes = validate(bag)
    assert valid, codes


def test_crlf_manifests_are_read(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, {"a.txt": b"a", "sub/b.txt": b"b"})
    for alg in ALGS:
        m = bag / f"manifest-{alg}.txt"
        m.write_bytes(m.read_bytes().replace(b"\n", b"\r\n"))
    refresh_tag_manifests(bag)
    valid, codes = validate(bag)
    assert valid, codes


@pytest.mark.parametrize(
    ("line_path", "code"),
    [
        ("data/%2E%2E/%2E%2E/secret.txt", "BAG501"),  # only %0A %0D %25 decode: a literal name
        ("data/..%2F..%2Fsecret.txt", "BAG501"),
        ("data/%252E%252E/secret.txt", "BAG501"),  # decodes once, to a literal '%2E%2E'
        ("data/x%0A/../../../secret.txt", "BAG303"),  # decodes to a real '..' segment
        ("data/%0D/../../secret.txt", "BAG303"),
        ("data/../%25/../secret.txt", "BAG303"),
        ("%2Fetc/passwd", "BAG305"),  # not decoded: a relative name outside data/
    ],
)
def test_percent_encoding_cannot_smuggle_a_path_out(
    tmp_path: Path, line_path: str, code: str
) -> None:
    bag = make_bag(tmp_path, {"a.txt": b"a"})
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside")
    append_to_manifests(bag, line_path, b"outside")
    valid, codes = validate(bag)
    assert not valid and code in codes
    atime = secret.stat().st_atime_ns
    validate(bag)
    assert secret.stat().st_atime_ns == atime  # never opened (relatime: only if not newer)


def test_payload_nested_10000_levels(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, {"a.txt": b"a"})
    _nested_folder(bag / "data", NESTING)
    try:
        start = time.monotonic()
        valid, codes = validate(bag)
        assert not valid and "BAG703" in codes  # 'cannot list', naming the folder
        assert time.monotonic() - start < 30
    finally:
        remove_nested(bag / "data")


def test_bag_transfer_whose_manifest_points_outside_is_refused(tmp_path: Path) -> None:
    repo = new_repository(tmp_path / "repo")
    (tmp_path / "in").mkdir()
    bag = make_bag(tmp_path / "in", {"a.txt": b"a"})
    (tmp_path / "in" / "secret.txt").write_bytes(b"outside")
    append_to_manifests(bag, "data/../../secret.txt", b"outside")
    out = run_cli("--repo", str(repo.root), "--json", "ingest", str(bag), "--no-replicate")
    assert out.status == 3, out.stdout
    found = finding_files(out)
    messages = found["FIX-103 message"]  # the bag's own findings, BAG303 among them
    assert any("BAG303" in m and "data/../../secret.txt" in m for m in messages), messages
    assert nothing_stored(repo)


def test_fetch_txt_of_a_submitted_bag_is_never_fetched(tmp_path: Path) -> None:
    """A bag whose fetch.txt points at a loopback HTTP server (SSRF bait) and at a
    local file: ingest reports the files as not present and fetches nothing."""
    from tests.hostile.test_xml import RecordingServer

    server = RecordingServer()
    try:
        repo = new_repository(tmp_path / "repo")
        (tmp_path / "in").mkdir()
        bag = make_bag(tmp_path / "in", {"a.txt": b"a"})
        (bag / "fetch.txt").write_text(
            f"{server.url}/secret.txt 6 data/remote.txt\nfile:///etc/passwd - data/passwd.txt\n",
            encoding="utf-8",
        )
        append_to_manifests(bag, "data/remote.txt", b"remote")
        append_to_manifests(bag, "data/passwd.txt", b"x")
        out = run_cli("--repo", str(repo.root), "--json", "ingest", str(bag), "--no-replicate")
        assert out.status == 3, out.stdout
        assert server.requests == []
        assert "root:" not in out.stdout
        assert nothing_stored(repo)
    finally:
        server.close()
