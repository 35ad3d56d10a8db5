"""The AIP BagIt profile: loaded from schemas/, never fetched, checked on written bags."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import bagit_profile
import pytest

from preservation.bags import BagWriter, validate_bag
from preservation.bags.profile import (
    PROFILE_IDENTIFIER,
    load_profile,
    profile_path,
    validate_profile,
)
from tests.bags.conftest import AIP_INFO, BagFactory, write_files

PAYLOAD = {"doc.pdf": b"%PDF-1.7 dummy", "scan/0001.tif": b"II*\x00 dummy"}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the profile must never be fetched")

    monkeypatch.setattr(bagit_profile, "urlopen", refuse)


def aip(root: Path, *, info: dict[str, str] | None = None, mets: bool = True) -> Path:
    """A bag as ingest writes it: payload, metadata/mets.xml, sha256 + sha512."""
    write_files(root / "data", PAYLOAD)
    with BagWriter(root, info=AIP_INFO if info is None else info) as w:
        for rel, content in PAYLOAD.items():
            digests = {a: hashlib.new(a, content).hexdigest() for a in w.algorithms}
            w.add_payload(rel, len(content), digests)
        if mets:
            write_files(root, {"metadata/mets.xml": b"<mets:mets/>"})
            w.add_tag_file("metadata/mets.xml", root / "metadata" / "mets.xml")
        w.finish()
    return root


def test_profile_file_is_the_one_in_schemas() -> None:
    expected = Path(__file__).resolve().parents[2] / "schemas" / "bagit-profile.json"
    assert profile_path().resolve() == expected
    data = json.loads(profile_path().read_text(encoding="utf-8"))
    info = data["BagIt-Profile-Info"]
    assert info["BagIt-Profile-Identifier"] == PROFILE_IDENTIFIER
    assert info["BagIt-Profile-Version"] == "1.3.0"
    assert data["Manifests-Required"] == ["sha256", "sha512"]
    assert data["Tag-Manifests-Required"] == ["sha256", "sha512"]
    assert data["Tag-Files-Required"] == ["metadata/mets.xml"]
    assert data["Accept-BagIt-Version"] == ["1.0"]
    assert data["Allow-Fetch.txt"] is True
    # bagit_profile checks the profile itself when it is constructed
    bagit_profile.Profile(PROFILE_IDENTIFIER, profile=load_profile())


def test_written_aip_conforms(tmp_path: Path) -> None:
    bag = aip(tmp_path / "aip")
    assert validate_profile(bag) == []
    assert validate_bag(bag).valid


def test_missing_mets_and_label(tmp_path: Path) -> None:
    info = {k: v for k, v in AIP_INFO.items() if k != "External-Identifier"}
    problems = validate_profile(aip(tmp_path / "aip", info=info, mets=False))
    assert len(problems) == 2
    assert any("External-Identifier" in p for p in problems)
    assert any("metadata/mets.xml" in p for p in problems)


def test_wrong_profile_identifier_and_stray_tag_file(tmp_path: Path) -> None:
    info = {**AIP_INFO, "BagIt-Profile-Identifier": "urn:uuid:something-else"}
    bag = aip(tmp_path / "aip", info=info)
    (bag / "notes.txt").write_text("stray")
    problems = validate_profile(bag)
    assert any("profile's URI" in p for p in problems)
    assert any("notes.txt" in p and "Tag-Files-Allowed" in p for p in problems)


def test_old_bags_and_weak_manifests_do_not_conform(make_bag: BagFactory) -> None:
    bag = make_bag(algorithms=("md5",))
    problems = validate_profile(bag)
    assert any("sha256" in p for p in problems)  # required manifest missing
    assert any("md5" in p for p in problems)  # manifest type not allowed


def test_serialised_bags(tmp_path: Path) -> None:
    bag = aip(tmp_path / "aip")
    archive = tmp_path / "aip.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in sorted(bag.rglob("*")):
            z.write(p, p.relative_to(tmp_path).as_posix())
    assert validate_profile(archive) == []
    other = tmp_path / "aip.7z"
    other.write_bytes(b"7z")
    assert len(validate_profile(other)) == 1


def test_unreadable_bag(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    problems = validate_profile(tmp_path / "empty")
    assert len(problems) == 1 and "not a readable bag" in problems[0]
