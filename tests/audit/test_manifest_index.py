"""The manifest index of a run (preservation.audit.manifests.ManifestIndex): the same
digests whether a copy's entries are kept in memory or in the scratch database, the
entries of a manifest that fails its own check dropped, bounded by evicting the least
recently used copies, and the same audit findings either way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from preservation.audit import manifests as manifests_mod
from preservation.audit.manifests import BagManifests, EntrySink, ManifestIndex
from preservation.audit.runner import AuditRequest, run_audit
from preservation.repository import Repository
from tests.audit.builders import build_aip, content

FILES = {f"f{i}.txt": content(i, 500 + i) for i in range(4)}


Manifest = tuple[str, list[tuple[str, str]], bool]  # algorithm, entries, passes its check


def _reader(manifests: list[Manifest], reads: list[int]) -> Callable[[EntrySink], BagManifests]:
    """A ``read`` for ManifestIndex.ensure that counts its calls in ``reads``."""

    def read(sink: EntrySink) -> BagManifests:
        reads.append(1)
        for alg, entries, passes in manifests:
            sink.start(alg)
            for path, digest in entries:
                sink.add(path, digest)
            if passes:
                sink.keep()
            else:
                sink.drop()
        return BagManifests()

    return read


MANIFESTS: list[Manifest] = [
    ("sha256", [("data/a", "a1"), ("data/b", "b1"), ("data/a", "a2")], True),  # last wins
    ("sha256", [("bagit.txt", "t1"), ("data/b", "bad")], False),  # failed its check
    ("sha512", [("data/a", "A"), ("data/é\nx", "E")], True),
    ("sha512", [("data/a", "A2")], True),  # a later manifest listing a path again
]
EXPECTED = {"data/a": {"sha256": "a2", "sha512": "A2"}, "data/b": {"sha256": "b1"},
            "data/é\nx": {"sha512": "E"}}  # fmt: skip


@pytest.mark.parametrize("memory_entries", [1000, 1])  # in memory; in the scratch database
def test_lookups_are_the_same_in_memory_and_on_disk(memory_entries: int) -> None:
    index = ManifestIndex(memory_entries=memory_entries)
    reads: list[int] = []
    try:
        assert index.ensure(7, 3, _reader(MANIFESTS, reads)) is not None
        assert index.ensure(7, 3, _reader(MANIFESTS, reads)) is None  # read once
        assert len(reads) == 1
        paths = ["data/a", "data/b", "data/é\nx", "bagit.txt", "data/none"]
        assert index.lookup(7, paths) == EXPECTED
        assert index.lookup(8, paths) == {}
    finally:
        index.close()


@pytest.mark.parametrize("in_memory", [True, False])
def test_least_recently_used_copies_are_dropped_and_read_again(in_memory: bool) -> None:
    one = [("sha256", [(f"data/{i}", str(i)) for i in range(10)], True)]
    index = (
        ManifestIndex(memory_entries=25)
        if in_memory
        else ManifestIndex(memory_entries=1, scratch_entries=25)
    )
    reads: list[int] = []
    try:
        for copy_id in (1, 2, 1, 3):  # 1 used again before 3 comes: 2 goes first
            index.ensure(copy_id, 10, _reader(one, reads))
        assert len(reads) == 3
        assert index.lookup(2, ["data/1"]) == {}
        assert (
            index.lookup(1, ["data/1"])
            == index.lookup(3, ["data/1"])
            == {"data/1": {"sha256": "1"}}
        )
        index.ensure(2, 10, _reader(one, reads))
        assert len(reads) == 4
    finally:
        index.close()


@pytest.fixture(params=["memory", "scratch"])
def where(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "scratch":
        monkeypatch.setattr(manifests_mod, "MEMORY_ENTRIES", 1)
    return str(request.param)


def test_manifest_disagreeing_with_catalogue_either_way(repo: Repository, where: str) -> None:
    aip = build_aip(repo, FILES, manifest_override={"data/f2.txt": "0" * 64})
    (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip, all_digests=True))
    assert r.outcomes == {"pass": 9, "manifest": 1}
    assert [i["path"] for i in r.incidents] == ["data/f2.txt"]


def test_damaged_manifest_not_used_either_way(repo: Repository, where: str) -> None:
    aip = build_aip(repo, FILES, manifest_override={"data/f2.txt": "0" * 64})
    key = f"{aip}/v1/manifest-sha256.txt"
    path = repo.config.resolve(Path("stores/primary")) / key
    path.chmod(0o644)
    damaged = path.read_bytes().replace(b"data/f0.txt", b"data/f9.txt")
    path.write_bytes(damaged)  # fails its own check: none of its entries is used
    (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    # the manifest itself; data/f2.txt is compared with the catalogue only (passes)
    assert r.outcomes == {"pass": 9, "mismatch": 1}
    assert [i["path"] for i in r.incidents] == ["manifest-sha256.txt"]
