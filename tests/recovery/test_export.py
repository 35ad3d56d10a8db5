"""Export: complete, valid bags (zip, tar, folder) verified while they stream; a flipped
byte stops the export with FIX001, leaves nothing behind and opens an incident; the
access package (DIP) holds access copies, METS and a formula-safe CSV, and no
restricted file for a reader."""

from __future__ import annotations

import csv
import io
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import bagit
import pytest
from sqlalchemy import select

from preservation.access.dip import export_dip
from preservation.access.export import export_bag, stream_bag
from preservation.access.principal import Principal, Role
from preservation.bags.validate import validate_bag
from preservation.catalog.models import Incident
from preservation.errors import ConfigError, DigestMismatch, NotInCatalog, UsageError
from preservation.metadata.mets_reader import read_mets
from preservation.metadata.spreadsheet_safe import is_dangerous
from preservation.metadata.xsd import validate_mets
from preservation.repository import init_repository
from preservation.storage.local import LocalStore
from tests.audit.builders import flip_byte
from tests.recovery.conftest import (
    ACCESS_COPY,
    FORMULA_TITLE,
    SECRET_FILE,
    Done,
    History,
    build_history,
)

READER = Principal("reader-user", Role.READER)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    root = tmp_path_factory.mktemp("export")
    return build_history(init_repository(root / "repo", organization="Test Archive"), root)


def check_bag(folder: Path) -> None:
    report = validate_bag(folder)
    assert report.valid, [f.message for f in report.errors]
    bagit.Bag(str(folder)).validate()


def unpack(data: bytes, fmt: str, out: Path) -> Path:
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert zf.testzip() is None
            zf.extractall(out)
    else:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            tf.extractall(out, filter="data")
    return out


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_streamed_archives_are_valid_bags(history: History, tmp_path: Path, fmt: str) -> None:
    chunks = stream_bag(history.repo, history.aip, fmt=fmt)  # type: ignore[arg-type]
    out = unpack(b"".join(chunks), fmt, tmp_path / fmt)
    check_bag(out)
    # v3 holds no payload object of its own: everything comes through fetch.txt
    fetched = (out / "fetch.txt").read_text(encoding="utf-8")
    assert "/v1/data/doc-001.txt" in fetched and f"/v2/data/{ACCESS_COPY}" in fetched
    with history.repo.primary.open(f"{history.aip}/v1/data/{SECRET_FILE}") as fh:
        assert (out / "data" / SECRET_FILE).read_bytes() == fh.read()


def test_version_2_folder_and_files(history: History, tmp_path: Path) -> None:
    v2 = export_bag(history.repo, history.aip, tmp_path / "v2", version=2)
    assert v2.version == 2 and v2.stores == ["primary", "offsite"]
    check_bag(tmp_path / "v2")
    assert (tmp_path / "v2" / "data" / "doc-001.txt").is_file()  # from v1's objects
    assert read_mets(tmp_path / "v2" / "metadata" / "mets.xml").version == 2
    # from the off-site store alone, into a zip and a tar file
    for fmt in ("zip", "tar"):
        target = tmp_path / f"v1.{fmt}"
        export_bag(history.repo, history.aip, target, fmt=fmt, version=1, store="offsite")
        data = target.read_bytes()
        check_bag(unpack(data, fmt, tmp_path / f"v1-{fmt}"))
    with pytest.raises(UsageError, match="already exists"):
        export_bag(history.repo, history.aip, tmp_path / "v1.zip", fmt="zip")
    with pytest.raises(NotInCatalog):
        export_bag(history.repo, history.aip, tmp_path / "v9", version=9)
    # a reader may not take the whole AIP (not public: one record is secret)
    with pytest.raises(NotInCatalog):
        stream_bag(history.repo, history.aip, principal=READER)


def test_flipped_byte_stops_the_export(
    history: History, tmp_path: Path, run_cli: Callable[..., Done]
) -> None:
    repo, aip = history.repo, history.aip
    key = f"{aip}/v1/data/{SECRET_FILE}"
    flip_byte(repo, "primary", key)
    try:
        out = tmp_path / "out"
        out.mkdir()
        done = run_cli(repo.root, "export", aip, "--from", "primary", "--zip", str(out / "a.zip"))
        assert done.returncode == 4, done.stderr
        assert "FIX001" in done.stderr and SECRET_FILE in done.stderr
        assert list(out.iterdir()) == []  # no output, no temporary file
        # the library's stream: bytes flow, then the error, never a complete archive
        got = bytearray()
        with pytest.raises(DigestMismatch):
            for chunk in stream_bag(repo, aip, fmt="tar", store="primary"):
                got += chunk
        with repo.primary.open(key) as fh:
            bad = fh.read()
        assert got and bad not in got  # earlier files flowed; the bad file never completed
        with pytest.raises(DigestMismatch):
            export_bag(repo, aip, tmp_path / "folder", store="primary")
        assert not (tmp_path / "folder").exists()
        assert [p.name for p in tmp_path.iterdir() if p.name != "out"] == []
        with repo.catalog.session() as s:
            incidents = s.execute(
                select(Incident).where(Incident.store_name == "primary", Incident.state == "open")
            ).scalars().all()
        assert [(i.path, i.kind, i.evidence["found_by"]) for i in incidents] == [
            (f"data/{SECRET_FILE}", "mismatch", "export")
        ]
        # without --from, the bad copy still stops the export (never a silent fallback)
        with pytest.raises(DigestMismatch):
            b"".join(stream_bag(repo, aip))
    finally:
        flip_byte(repo, "primary", key)  # the same byte again: the object is whole


def test_dip_for_reader_and_staff(
    history: History, tmp_path: Path, run_cli: Callable[..., Done]
) -> None:
    repo, aip = history.repo, history.aip
    reader = export_dip(repo, aip, tmp_path / "reader", principal=READER)
    root = tmp_path / "reader"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        f"data/{ACCESS_COPY}",
        "data/sub/doc-003.txt",
        "metadata/mets.xml",
        "metadata/records.csv",
    ]
    assert reader.skipped == [SECRET_FILE]
    assert validate_mets(tmp_path / "reader" / "metadata" / "mets.xml") == []
    summary = read_mets(tmp_path / "reader" / "metadata" / "mets.xml")
    assert {f.path for f in summary.files} == {ACCESS_COPY, "sub/doc-003.txt"}
    assert all(SECRET_FILE not in r.files for r in summary.records) and len(summary.records) == 2
    with (tmp_path / "reader" / "metadata" / "records.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][0] == "档号" and len(rows) == 3
    titles = [r[6] for r in rows[1:]]
    assert "'" + FORMULA_TITLE in titles  # neutralised: shown as text, never evaluated
    assert not any(is_dangerous(c) for r in rows for c in r)

    # staff (the CLI operator by default) get every file; the CLI writes a tar
    done = run_cli(repo.root, "export", aip, "--dip", "--tar", str(tmp_path / "dip.tar"), "--json")
    assert done.returncode == 0, done.stderr
    with tarfile.open(tmp_path / "dip.tar") as tf:
        names = set(tf.getnames())
    assert f"data/{SECRET_FILE}" in names and f"data/{ACCESS_COPY}" in names
    assert "data/doc-001.txt" not in names  # replaced by its access copy
    done = run_cli(
        repo.root, "export", aip, "--dip", "--as-role", "reader", "--zip", str(tmp_path / "r.zip")
    )
    assert done.returncode == 0, done.stderr
    assert f"data/{SECRET_FILE}" not in zipfile.ZipFile(tmp_path / "r.zip").namelist()


def test_missing_object_is_fetched_from_another_copy(history: History, tmp_path: Path) -> None:
    repo, aip = history.repo, history.aip
    store = repo.primary
    assert isinstance(store, LocalStore)
    path = store.root / aip / "v1" / "data" / "sub" / "doc-003.txt"
    aside = tmp_path / "aside"
    path.rename(aside)
    try:
        result = export_bag(repo, aip, tmp_path / "bag", fmt="zip")
        check_bag(unpack((tmp_path / "bag").read_bytes(), "zip", tmp_path / "bag-out"))
        assert result.files > 0
        with repo.catalog.session() as s:
            kinds = [
                (i.store_name, i.kind)
                for i in s.execute(
                    select(Incident).where(Incident.path == "data/sub/doc-003.txt")
                ).scalars()
            ]
        assert ("primary", "missing") in kinds
        with pytest.raises(ConfigError):
            export_bag(repo, aip, tmp_path / "x", store="nowhere")
    finally:
        aside.rename(path)


@pytest.mark.seaweedfs
def test_export_from_seaweedfs(s3_history: History, tmp_path: Path) -> None:
    repo, aip = s3_history.repo, s3_history.aip
    data = b"".join(stream_bag(repo, aip, fmt="tar", version=2, store="offsite"))
    check_bag(unpack(data, "tar", tmp_path / "v2"))
    result = export_dip(repo, aip, tmp_path / "dip.zip", fmt="zip", store="offsite")
    assert result.stores == ["offsite"] and result.files == 4  # 3 payload + the METS read
