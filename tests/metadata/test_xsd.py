"""Offline XSD validation of METS: where the schemas come from, what is reported."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from lxml import etree

from preservation.metadata import xsd
from preservation.metadata.mets_writer import write_mets
from preservation.metadata.xmlsafe import parse_untrusted
from preservation.metadata.xsd import ENV_SCHEMAS_DIR, schemas_dir, validate_mets
from tests.metadata.builders import SCHEMAS, chinese_package


@pytest.fixture
def mets_file(tmp_path: Path) -> Path:
    path = tmp_path / "mets.xml"
    write_mets(path, chinese_package())
    return path


def test_default_schemas_dir_is_beside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    assert schemas_dir().resolve() == SCHEMAS.resolve()
    monkeypatch.setenv(ENV_SCHEMAS_DIR, "/somewhere/else")
    assert schemas_dir() == Path("/somewhere/else")


def test_valid_document_by_path_stream_and_tree(mets_file: Path) -> None:
    assert validate_mets(mets_file) == []  # default location
    with mets_file.open("rb") as f:
        assert validate_mets(f, schemas=SCHEMAS) == []
    assert validate_mets(parse_untrusted(mets_file), schemas=SCHEMAS) == []


def test_env_variable_is_used(monkeypatch: pytest.MonkeyPatch, mets_file: Path) -> None:
    monkeypatch.setenv(ENV_SCHEMAS_DIR, str(mets_file.parent / "nothing-here"))
    problems = validate_mets(mets_file)
    assert len(problems) == 1
    assert problems[0].startswith("schemas not available")
    assert ENV_SCHEMAS_DIR in problems[0]


def test_missing_schemas_never_pass(tmp_path: Path, mets_file: Path) -> None:
    problems = validate_mets(mets_file, schemas=tmp_path / "none")
    assert problems and "schemas not available" in problems[0]


def test_schema_is_cached(mets_file: Path) -> None:
    assert xsd.load_schema(SCHEMAS) is xsd.load_schema(SCHEMAS)


def _corrupt(mets_file: Path, old: str, new: str, count: int = 1) -> Path:
    text = mets_file.read_text(encoding="utf-8")
    assert old in text
    bad = mets_file.with_name("bad.xml")
    bad.write_text(text.replace(old, new, count), encoding="utf-8")
    return bad


def test_schema_error_reported_with_line(mets_file: Path) -> None:
    bad = _corrupt(
        mets_file,
        "<premis:compositionLevel>0</premis:compositionLevel>",
        "<premis:compositionLevel>zero</premis:compositionLevel>",
    )
    problems = validate_mets(bad, schemas=SCHEMAS)
    assert any("compositionLevel" in p and p.startswith("line ") for p in problems)


def test_every_error_listed(mets_file: Path) -> None:
    bad = _corrupt(
        mets_file,
        "<premis:compositionLevel>0</premis:compositionLevel>",
        "<premis:compositionLevel>zero</premis:compositionLevel>",
        count=3,
    )
    bad_text = bad.read_text(encoding="utf-8").replace(
        'CHECKSUMTYPE="SHA-256"', 'CHECKSUMTYPE="SHA3"'
    )
    bad.write_text(bad_text, encoding="utf-8")
    problems = validate_mets(bad, schemas=SCHEMAS)
    assert sum("compositionLevel" in p for p in problems) == 3
    assert sum("CHECKSUMTYPE" in p for p in problems) == 7  # 6 payload files + 1 tag file


def test_dangling_idref_and_duplicate_id(mets_file: Path) -> None:
    bad = _corrupt(mets_file, 'ADMID="rightsMD-aip"', 'ADMID="rightsMD-nowhere"')
    problems = validate_mets(bad, schemas=SCHEMAS)
    assert problems == ["div ADMID refers to 'rightsMD-nowhere', which is no ID in the document"]
    tree = parse_untrusted(mets_file)
    second = tree.getroot().findall("{http://www.loc.gov/METS/}dmdSec")[1]
    second.set("ID", "dmd-aip-dc")
    problems = validate_mets(tree, schemas=SCHEMAS)
    assert "duplicate ID 'dmd-aip-dc'" in problems


def test_unsafe_document_is_a_problem(mets_file: Path) -> None:
    text = mets_file.read_text(encoding="utf-8")
    bad = mets_file.with_name("xxe.xml")
    bad.write_text(
        text.replace(
            "<?xml version='1.0' encoding='utf-8'?>",
            '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        ),
        encoding="utf-8",
    )
    problems = validate_mets(bad, schemas=SCHEMAS)
    assert len(problems) == 1 and "refused" in problems[0]


def test_schema_import_never_reaches_the_network(tmp_path: Path, mets_file: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, folder)
    wrapper = folder / "mets-premis-wrapper.xsd"
    wrapper.write_text(
        wrapper.read_text().replace(
            'schemaLocation="mets.xsd"', f'schemaLocation="http://127.0.0.1:{port}/mets.xsd"'
        )
    )
    try:
        problems = validate_mets(mets_file, schemas=folder)
        assert problems and "schemas not available" in problems[0]
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_mets_alone_would_reject_premis_but_wrapper_accepts(mets_file: Path) -> None:
    """Why the wrapper is needed: the plain METS schema rejects embedded PREMIS."""
    parser = etree.XMLParser(no_network=True)
    plain = etree.XMLSchema(etree.parse(str(SCHEMAS / "mets.xsd"), parser))
    assert not plain.validate(parse_untrusted(mets_file))
    assert validate_mets(mets_file, schemas=SCHEMAS) == []
