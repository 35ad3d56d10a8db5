"""Shared helpers for the bag tests: every bag is built under tmp_path."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from preservation.bags import make_bag_in_place
from preservation.bags.profile import PROFILE_IDENTIFIER

SUITE = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "conformance"
    / "bagit-conformance-suite"
)

BagFactory = Callable[..., Path]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("PRESERVATION_"):
            monkeypatch.delenv(key)
    yield


def write_files(root: Path, files: Mapping[str, bytes]) -> None:
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)


AIP_INFO = {
    "Source-Organization": "Municipal Archive",
    "External-Identifier": "urn:uuid:0f0c2a4e-5a57-4a41-9d3c-2f3f8c3c9d11",
    "BagIt-Profile-Identifier": PROFILE_IDENTIFIER,
}


@pytest.fixture
def make_bag(tmp_path: Path) -> BagFactory:
    """Build a BagIt 1.0 bag from ``{payload path: bytes}`` with make_bag_in_place."""
    counter = iter(range(1_000_000))

    def build(
        files: Mapping[str, bytes] | None = None,
        *,
        algorithms: tuple[str, ...] = ("sha256", "sha512"),
        info: Mapping[str, str] | None = None,
    ) -> Path:
        root = tmp_path / f"bag{next(counter)}"
        root.mkdir()
        write_files(root, files if files is not None else {"a.txt": b"hello\n"})
        make_bag_in_place(root, algorithms, info if info is not None else AIP_INFO)
        return root

    return build


def flip_byte(path: Path, offset: int = 0) -> None:
    """Corrupt a file in place by XOR-ing one byte."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
