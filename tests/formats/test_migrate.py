"""Migrations with the real tools: verified outputs become a new AIP version."""

from __future__ import annotations

from pathlib import Path

import bagit
import pytest

from preservation.bags.validate import validate_bag
from preservation.catalog.models import Aip
from preservation.errors import UsageError
from preservation.formats.migrate import plan_migrations, run_migrations
from preservation.metadata.mets_reader import read_mets
from preservation.metadata.xsd import validate_mets
from preservation.repository import Repository
from preservation.versions import materialise
from tests.formats import builders as b
from tests.formats.conftest import Ingest, with_formats_toml

# Make the formats under test "at risk" (TIFF with OpenJPEG as its action), so that one
# --all-at-risk run migrates every kind of input with its real tool.
AT_RISK_TOML = """
[formats.overrides."fmt/412"]
status = "at-risk"
[formats.overrides."fmt/141"]
status = "at-risk"
[formats.overrides."fmt/353"]
status = "at-risk"
target = "x-fmt/392"
action = "openjpeg-jp2"
"""


def exported(repo: Repository, aip: str, version: int, tmp_path: Path) -> Path:
    out = materialise(repo, aip, version, tmp_path / f"export-{aip}-v{version}")
    report = validate_bag(out)
    assert report.valid, [f.message for f in report.errors]
    bagit.Bag(str(out)).validate()
    assert validate_mets(out / "metadata" / "mets.xml") == []
    return out


@pytest.mark.slow
def test_every_kind_is_migrated_and_verified(
    repo: Repository, ingest: Ingest, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    aip = ingest(
        {
            "docs/letter.docx": b.make_docx(src),
            "scans/page.bmp": b.make_image(src / "page.bmp", "BMP"),
            "scans/page.tif": b.make_image(src / "page.tif", "TIFF"),
            "audio/speech.wav": b.make_wav(src / "speech.wav"),
            "video/clip.avi": b.make_video(src / "clip.avi"),
        }
    )
    repo = with_formats_toml(repo, AT_RISK_TOML)

    plan = plan_migrations(repo, all_at_risk=True)
    planned = {c.file.payload_path: c for c in plan.planned}
    assert {p: c.action.name for p, c in planned.items() if c.action} == {
        "docs/letter.docx": "libreoffice-pdfa2b",
        "scans/page.bmp": "pillow-tiff",
        "scans/page.tif": "openjpeg-jp2",
        "audio/speech.wav": "ffmpeg-flac-mkv",
        "video/clip.avi": "ffmpeg-ffv1-mkv",
    }
    assert planned["scans/page.bmp"].target_path == "scans/page.bmp.tif"  # page.tif is taken

    report = run_migrations(repo, all_at_risk=True, person="conservator")
    assert [r.error for r in report.results if not r.accepted] == []
    assert report.versions == {aip: 2}
    for r in report.results:
        assert r.verdict is not None
        assert r.verdict.accepted, r.verdict.summary()
        assert r.tool_version and r.tool_version != "unknown"
    images = {r.candidate.file.payload_path: r.verdict for r in report.results if r.verdict}
    assert (
        images["scans/page.bmp"].output_properties["pixels_sha256"]
        == (images["scans/page.bmp"].source_properties["pixels_sha256"])
    )
    assert images["video/clip.avi"].output_properties["streams"][0]["codec"] == "ffv1"
    assert images["audio/speech.wav"].output_properties["streams"][0]["codec"] == "flac"

    out = exported(repo, aip, 2, tmp_path)
    mets = read_mets(out / "metadata" / "mets.xml")
    by_path = mets.file_by_path()
    originals = ["docs/letter.docx", "scans/page.bmp", "scans/page.tif",
                 "audio/speech.wav", "video/clip.avi"]  # fmt: skip
    for path in originals:
        assert by_path[path].role == "original"
        assert (out / "data" / path).is_file()  # the original is kept
    expected = {
        "docs/letter.pdf": ("docs/letter.docx", "fmt/477"),
        "scans/page.bmp.tif": ("scans/page.bmp", "fmt/353"),
        "scans/page.jp2": ("scans/page.tif", "x-fmt/392"),
        "audio/speech.mkv": ("audio/speech.wav", "fmt/569"),
        "video/clip.mkv": ("video/clip.avi", "fmt/569"),
    }
    for path, (source, puid) in expected.items():
        entry = by_path[path]
        assert entry.role == "migrated"
        assert entry.derived_from == by_path[source].uuid
        assert entry.format is not None and entry.format.puid == puid
        assert mets.stored_in.get(entry.uuid) is None  # stored in v2 itself
    migrations = [e for e in mets.events if e.type == "migration"]
    assert len(migrations) == 5
    assert all(e.outcome == "success" for e in migrations)
    assert any("soffice" in e.detail or "libreoffice" in e.detail for e in migrations)
    keys = {i.key for i in repo.primary.list(f"{aip}/v2/data/")}
    assert keys == {f"{aip}/v2/data/{p}" for p in expected}  # originals not re-uploaded

    # nothing is migrated twice
    assert plan_migrations(repo, all_at_risk=True).planned == []


def test_truncated_document_fails_and_changes_nothing(
    repo: Repository, ingest: Ingest, tmp_path: Path
) -> None:
    docx = b.make_docx(tmp_path / "src")
    broken = b.truncate_docx_body(docx, tmp_path / "src" / "broken.docx")
    aip = ingest({"broken.docx": broken})
    before = {i.key for i in repo.primary.list("")}

    report = run_migrations(repo, puid="fmt/412")
    assert len(report.planned) == 1
    assert report.versions == {}
    [result] = report.results
    assert not result.accepted
    assert "wrote no pdf file" in result.error
    assert "could not be loaded" in result.tool_output  # LibreOffice's own message
    with repo.catalog.session() as s:
        a = s.get(Aip, aip)
        assert a is not None and a.current_version == 1
    assert {i.key for i in repo.primary.list("")} == before


def test_dry_run_lists_tool_and_target(repo: Repository, ingest: Ingest, tmp_path: Path) -> None:
    aip = ingest(
        {
            "a.bmp": b.make_image(tmp_path / "a.bmp", "BMP"),
            "b.tif": b.make_image(tmp_path / "b.tif", "TIFF"),
        }
    )
    report = run_migrations(repo, aip_id=aip, dry_run=True)
    data = report.to_dict()
    assert [(c["path"], c["action"], c["tool"], c["expected_format"]) for c in data["planned"]] == [
        ("a.bmp", "pillow-tiff", "pillow", "TIFF (lossless) (fmt/353)")
    ]
    assert report.results == [] and report.versions == {}
    with pytest.raises(UsageError):
        plan_migrations(repo)
    with pytest.raises(UsageError):
        plan_migrations(repo, aip_id=aip, all_at_risk=True)


OTHER_TOML = """
[formats.overrides."fmt/18"]
status = "at-risk"
[formats.overrides."fmt/3"]
status = "at-risk"
"""


@pytest.mark.slow
def test_pdf_gif_and_spreadsheet_actions(repo: Repository, ingest: Ingest, tmp_path: Path) -> None:
    src = tmp_path / "src"
    gif = b.make_image(src / "logo.gif", "GIF")
    aip = ingest(
        {
            "report.pdf": b.make_pdf(src / "report.pdf", pages=3),
            "logo.gif": gif,
            "ledger.xls": b.make_xls(src),
        }
    )
    repo = with_formats_toml(repo, OTHER_TOML)
    report = run_migrations(repo, aip_id=aip)
    assert {
        r.candidate.file.payload_path: r.candidate.action.name
        for r in report.results
        if r.candidate.action
    } == {
        "report.pdf": "ghostscript-pdfa2b",
        "logo.gif": "pillow-png",
        "ledger.xls": "libreoffice-ods",
    }
    assert [r.error for r in report.results if not r.accepted] == []
    verdicts = {r.candidate.target_path: r.verdict for r in report.results if r.verdict}
    pdf = verdicts["report.pdf.pdf"]
    assert pdf is not None and pdf.output_properties["pages"] == 3
    assert pdf.output_format is not None and pdf.output_format.puid == "fmt/477"
    ods = verdicts["ledger.ods"]
    assert ods is not None and ods.output_properties["sheets"] == 1
    out = exported(repo, aip, 2, tmp_path)
    mets = read_mets(out / "metadata" / "mets.xml")
    assert {f.path for f in mets.files if f.role == "migrated"} == {
        "report.pdf.pdf",
        "logo.png",
        "ledger.ods",
    }


def test_a_version_that_cannot_be_made_is_reported(
    repo: Repository, ingest: Ingest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import preservation.versions as versions
    from preservation.errors import CatalogConflict

    aip = ingest({"a.bmp": b.make_image(tmp_path / "a.bmp", "BMP")})

    def refuse(*args: object, **kwargs: object) -> None:
        raise CatalogConflict("another version was made meanwhile")

    monkeypatch.setattr(versions, "build_version", refuse)
    report = run_migrations(repo, aip_id=aip)
    [result] = report.results
    assert not result.accepted and result.verdict is not None and result.verdict.accepted
    assert "CAT004" in result.error and report.versions == {}
