"""New AIP versions: unchanged payload is referenced through fetch.txt, never re-uploaded."""

from __future__ import annotations

from pathlib import Path

import bagit
import pytest

from preservation.bags.profile import validate_profile
from preservation.bags.validate import validate_bag
from preservation.catalog.events import verify_chain
from preservation.catalog.models import Aip, AipVersion, Copy, File
from preservation.errors import UsageError
from preservation.metadata.mets_reader import read_mets
from preservation.metadata.xsd import validate_mets
from preservation.model import Event
from preservation.repository import Repository
from preservation.storage.base import Store
from preservation.versions import (
    Changes,
    NewFile,
    build_version,
    default_agents,
    fetch_url,
    materialise,
    new_version,
    parse_fetch_url,
)


class CountingPuts:
    """Wraps a store's put to record every key written."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.keys: list[str] = []
        original = store.put

        def put(key: str, *args: object, **kwargs: object) -> object:
            self.keys.append(key)
            return original(key, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "put", put)


def check_bag(repo: Repository, aip: str, version: int, tmp_path: Path) -> Path:
    out = materialise(repo, aip, version, tmp_path / f"export-v{version}")
    report = validate_bag(out)
    assert report.valid, [f.message for f in report.errors]
    bagit.Bag(str(out)).validate()
    assert validate_mets(out / "metadata" / "mets.xml") == []
    assert validate_profile(out) == []
    return out


def add_one(repo: Repository, aip: str, tmp_path: Path, name: str = "added.txt") -> int:
    src = tmp_path / name
    src.write_bytes(b"a file added in a later version\n")
    event = Event(type="modification", outcome="success", detail=f"added {name}")
    return new_version(
        repo,
        aip,
        reason="reingest",
        changes=Changes(add=[NewFile(path=f"extra/{name}", source=src)]),
        events=[event],
        agents=default_agents(repo, "tester"),
    )


def test_v2_reuses_unchanged_payload(
    repo: Repository, aip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    puts = CountingPuts(repo.primary, monkeypatch)
    assert add_one(repo, aip, tmp_path) == 2

    keys = {i.key for i in repo.primary.list(f"{aip}/v2/")}
    assert f"{aip}/v2/data/extra/added.txt" in keys
    assert f"{aip}/v2/bagit.txt" in keys and f"{aip}/v2/fetch.txt" in keys
    assert not [k for k in keys if k.startswith(f"{aip}/v2/data/doc-")]
    assert not [k for k in puts.keys if "/data/doc-" in k or "/data/sub/" in k]
    assert not [i.key for i in repo.primary.list(".staging/")]

    out = check_bag(repo, aip, 2, tmp_path)
    fetch = (out / "fetch.txt").read_text(encoding="utf-8").splitlines()
    assert len(fetch) == 3
    assert all(line.startswith(f"preservation://{aip}/v1/data/") for line in fetch)

    mets = read_mets(out / "metadata" / "mets.xml")
    assert mets.version == 2 and mets.previous_version == 1
    assert len(mets.files) == 4
    carried = [f for f in mets.files if f.path != "extra/added.txt"]
    assert all(mets.stored_in[f.uuid] == 1 for f in carried)
    assert "modification" in {e.type for e in mets.events}
    assert "ingestion start" in {e.type for e in mets.events}  # earlier events kept
    assert (out / "metadata" / "report.json").is_file()  # carried tag file

    with repo.catalog.session() as s:
        a = s.get(Aip, aip)
        assert a is not None and a.current_version == 2
        v2 = s.query(AipVersion).filter_by(aip_id=aip, number=2).one()
        assert v2.reason == "reingest" and v2.file_count == 4
        origins = {
            f.path: f.origin_version
            for f in s.query(File).filter_by(version_id=v2.id, kind="payload")
        }
        assert origins["data/extra/added.txt"] == 2
        assert origins["data/doc-001.txt"] == 1
        copies = {c.store_name: c.state for c in s.query(Copy).filter_by(version_id=v2.id)}
        assert copies == {"primary": "verified", "offsite": "pending"}
        assert verify_chain(s).ok
    assert [i.key for i in repo.primary.list(f"{aip}/events/")]


def test_v3_follows_origins_through_versions(repo: Repository, aip: str, tmp_path: Path) -> None:
    add_one(repo, aip, tmp_path, "first.txt")
    assert add_one(repo, aip, tmp_path, "second.txt") == 3
    out = check_bag(repo, aip, 3, tmp_path)
    urls = {
        line.split()[2]: line.split()[0]
        for line in (out / "fetch.txt").read_text(encoding="utf-8").splitlines()
    }
    assert urls["data/extra/first.txt"] == fetch_url(aip, 2, "extra/first.txt")
    assert urls["data/doc-001.txt"] == fetch_url(aip, 1, "doc-001.txt")
    assert "data/extra/second.txt" not in urls


def test_metadata_correction_updates_rights(repo: Repository, aip: str, tmp_path: Path) -> None:
    result = build_version(
        repo,
        aip,
        reason="metadata",
        changes=Changes(descriptive={"open_status": "开放", "security_level": "公开"}),
        events=[Event(type="metadata modification", outcome="success", detail="开放状态")],
        agents=default_agents(repo, "archivist"),
    )
    assert result.version == 2 and result.uploaded_bytes == 0
    out = check_bag(repo, aip, 2, tmp_path)
    mets = read_mets(out / "metadata" / "mets.xml")
    assert mets.descriptive["open_status"] == "开放"
    assert mets.rights is not None and mets.rights.open_status == "开放"
    with repo.catalog.session() as s:
        a = s.get(Aip, aip)
        assert a is not None and a.open_status == "开放" and a.security_level == "公开"


def test_refused_change_leaves_nothing(repo: Repository, aip: str, tmp_path: Path) -> None:
    src = tmp_path / "dup.txt"
    src.write_bytes(b"x")
    with pytest.raises(UsageError, match="already in the AIP"):
        new_version(
            repo,
            aip,
            reason="reingest",
            changes=Changes(add=[NewFile(path="doc-001.txt", source=src)]),
        )
    assert not [i.key for i in repo.primary.list(f"{aip}/v2/")]
    assert not [i.key for i in repo.primary.list(".staging/")]
    with repo.catalog.session() as s:
        a = s.get(Aip, aip)
        assert a is not None and a.current_version == 1


def test_fetch_url_round_trip() -> None:
    url = fetch_url("0f8fad5b-d9cb-469f-a165-70867728950e", 1, "卷 1/a b%.pdf")
    assert " " not in url
    key = parse_fetch_url(url)
    assert key == "0f8fad5b-d9cb-469f-a165-70867728950e/v1/data/卷 1/a b%.pdf"
    with pytest.raises(UsageError):
        parse_fetch_url("https://example.org/x")
    with pytest.raises(UsageError):
        parse_fetch_url("preservation://aip/v1/data/../../etc/passwd")


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after the checkpoint runs, no cleanup either."""


@pytest.mark.parametrize(
    ("point", "committed"),
    [("version:before-commit", False), ("version:after-commit", True)],
)
def test_crash_is_rolled_back_or_forward(
    repo: Repository,
    aip: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
    committed: bool,
) -> None:
    import preservation.jobs as jobs
    import preservation.versions as versions

    def crash(name: str) -> None:
        if name == point:
            raise Killed(name)

    monkeypatch.setattr(versions, "checkpoint", crash)
    monkeypatch.setattr(versions._Builder, "abort", lambda self, exc: None)
    with pytest.raises(Killed):
        add_one(repo, aip, tmp_path)
    monkeypatch.setattr(jobs, "process_alive", lambda host, pid: False)
    cleaned = versions.cleanup_interrupted(repo)
    assert len(cleaned) == 1
    assert not [i.key for i in repo.primary.list(".staging/")]
    keys = {i.key for i in repo.primary.list(f"{aip}/v2/")}
    if committed:
        assert f"{aip}/v2/bagit.txt" in keys
        check_bag(repo, aip, 2, tmp_path)
    else:
        assert keys == set()
        assert {i.key for i in repo.primary.list(f"{aip}/v1/")}  # v1 untouched
        with repo.catalog.session() as s:
            a = s.get(Aip, aip)
            assert a is not None and a.current_version == 1
