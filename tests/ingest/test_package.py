"""Packaging a large transfer: its METS is written by a worker process while the ingest
process writes the report and the manifests; the AIP is the same valid AIP."""

from __future__ import annotations

from pathlib import Path

import pytest

from preservation.ingest import pipeline
from preservation.metadata.mets_reader import read_mets
from preservation.repository import Repository
from tests.ingest.test_pipeline import check_aip, ingest, kinds, repo, store_keys

__all__ = ["repo"]  # the fixture, used by name


@pytest.mark.parametrize("kind", ["folder", "bag"])
def test_mets_written_in_a_worker_process(
    repo: Repository, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "METS_PROCESS_FROM", 1)
    source, sheet = kinds(tmp_path, kind, with_sheet=True)
    receipt = ingest(repo, source, sheet=sheet, submitter="tester")
    out = check_aip(repo, receipt, tmp_path)
    mets = read_mets(out / "metadata" / "mets.xml")
    assert mets.aip_id == receipt.aip
    assert len(mets.files) == receipt.files == 6
    assert len(mets.records) == 3
    assert "ingestion end" in {e.type for e in mets.events}
    listed = (out / "metadata" / "mets.xml").read_text(encoding="utf-8")
    assert "metadata/report.json" in listed and "metadata/report.html" in listed
    assert not [k for k in store_keys(repo) if k.startswith(".staging")]
