"""The ingest spool gives back exactly what was written, any number of times."""

from __future__ import annotations

from pathlib import Path

from preservation.ingest.spool import EntrySpool
from preservation.model import FileEntry, FormatInfo


def test_round_trip_with_shared_values(tmp_path: Path) -> None:
    # The same string object in several places of a record, and in several records:
    # a shared unpickler memo would resolve a later record's reference to an earlier
    # record's object.
    same = "val"
    entries = []
    for i in range(50):
        mine = f"v{i}"  # one object, referenced twice in this record
        entries.append(
            FileEntry(
                path=f"f{i}.txt",
                size=i,
                digests={"sha256": f"{i:064x}", "sha512": same},
                format=FormatInfo(
                    puid=same if i % 2 else None, mime=same, name=mine, version=None, basis=same
                ),
                properties={"a": mine, "b": mine},
            )
        )
    spool = EntrySpool(tmp_path / "spool")
    for e in entries:
        spool.append(e)
    for _ in range(2):
        back = list(spool)
        assert [b.path for b in back] == [e.path for e in entries]
        assert [b.properties for b in back] == [e.properties for e in entries]
        assert [b.digests for b in back] == [e.digests for e in entries]
        assert [b.format for b in back] == [e.format for e in entries]
        assert [b.uuid for b in back] == [e.uuid for e in entries]
    spool.close()
    assert spool.count == 50 and spool.bytes == sum(range(50))
