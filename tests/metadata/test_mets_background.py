"""The METS written by a worker process (MetsInBackground, as ingest does for a large
transfer) is the METS written in process, and its refusals come back intact."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from preservation.errors import MetsBuildError
from preservation.ingest.spool import EntrySpool
from preservation.metadata.mets_writer import MetsInBackground, MetsPackage, TagFile, write_mets
from preservation.model import FileEntry
from tests.metadata.builders import chinese_package, digests

TAGS = [
    TagFile("metadata/report.json", 10, {"sha256": "1" * 64, "sha512": "2" * 128}, "text/plain"),
    TagFile("metadata/report.html", 20, {"sha256": "3" * 64, "sha512": "4" * 128}, "text/html"),
]


def _spooled(tmp_path: Path, package: MetsPackage) -> MetsPackage:
    spool = EntrySpool(tmp_path / "entries.spool")
    for entry in package.files():
        spool.append(entry)
    return dataclasses.replace(package, files=spool.reader(), tag_files=())


def test_spool_reader_is_picklable_and_rereadable(tmp_path: Path) -> None:
    spool = EntrySpool(tmp_path / "entries.spool")
    entries = [FileEntry(f"d/{i}.bin", i, digests(str(i))) for i in range(600)]
    for e in entries[:300]:
        spool.append(e)
    reader = pickle.loads(pickle.dumps(spool.reader()))
    for e in entries[300:]:  # appended later: not in the reader made before
        spool.append(e)
    assert [e.path for e in reader()] == [e.path for e in entries[:300]]
    assert [(e.uuid, e.size) for e in reader] == [(e.uuid, e.size) for e in entries[:300]]
    assert [e.uuid for e in spool] == [e.uuid for e in entries]


def test_background_mets_is_the_in_process_mets(tmp_path: Path) -> None:
    package = _spooled(tmp_path, chinese_package())
    write_mets(tmp_path / "here.xml", dataclasses.replace(package, tag_files=TAGS))
    with MetsInBackground(tmp_path / "there.xml", package) as background:
        background.finish(TAGS)
    assert (tmp_path / "there.xml").read_bytes() == (tmp_path / "here.xml").read_bytes()
    assert b"metadata/report.html" in (tmp_path / "there.xml").read_bytes()


def test_background_refusal_comes_back_with_every_problem(tmp_path: Path) -> None:
    files = [FileEntry("../a", 1, digests("a")), FileEntry("ok/b", 1, digests("b"))]
    package = _spooled(
        tmp_path, dataclasses.replace(chinese_package(), files=lambda: iter(files), records=[])
    )
    with (
        MetsInBackground(tmp_path / "m.xml", package) as background,
        pytest.raises(MetsBuildError) as info,
    ):
        background.finish(TAGS)
    assert info.value.code == "MET002"
    assert len(info.value.fields["problems"]) == 1
    assert "../a" in str(info.value)
    assert not (tmp_path / "m.xml").exists()


def test_leaving_without_finish_stops_the_worker(tmp_path: Path) -> None:
    package = _spooled(tmp_path, chinese_package())
    with pytest.raises(RuntimeError), MetsInBackground(tmp_path / "m.xml", package) as background:
        raise RuntimeError("the caller failed")
    assert not background._process.is_alive()
    assert not (tmp_path / "m.xml").exists()
