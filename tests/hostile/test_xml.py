"""Hostile XML at every place we parse XML, with a loopback HTTP server and a FIFO as bait.

tests/metadata/test_xmlsafe.py proves the parser module itself (every attack, every way
in). Here the same attacks go through the entry points that read outside XML: the METS
reader (catalogue rebuild, periodic checks), METS schema validation, an XML payload file
during ``preservation ingest``, an XLSX catalogue sheet, and the ODS sheet count of the
migration verifier. Each must be refused or ignored without a request reaching the HTTP
server, the FIFO being opened, or /etc/passwd appearing anywhere.
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from preservation.errors import PreservationError
from preservation.formats.verify import ods_sheets
from preservation.metadata.mets_reader import read_mets
from preservation.metadata.mets_writer import write_mets
from preservation.metadata.xsd import validate_mets
from tests.hostile.support import finding_files, new_repository, nothing_stored, run_cli
from tests.metadata.builders import chinese_package
from tests.metadata.test_xmlsafe import Honeypot
from tests.support import transfers as tr


class RecordingServer:
    """A loopback HTTP server that serves an entity-laden DTD and records every request."""

    DTD = b'<!ENTITY leak SYSTEM "file:///etc/passwd"><!ENTITY remote "REMOTE-ENTITY-TEXT">'

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/xml-dtd")
                self.send_header("Content-Length", str(len(outer.DTD)))
                self.end_headers()
                self.wfile.write(outer.DTD)

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def bait(tmp_path: Path) -> Iterator[tuple[RecordingServer, Honeypot]]:
    server, pot = RecordingServer(), Honeypot(tmp_path)
    # the detectors work: a real fetch is seen (so 'nothing was fetched' can fail)
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/probe.dtd", timeout=5) as r:
        assert r.read() == RecordingServer.DTD
    assert server.requests == ["/probe.dtd"]
    server.requests.clear()
    yield server, pot
    server.close()
    pot.close()


def attacks(url: str, fifo_uri: str) -> dict[str, str]:
    laughs = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9)
    )
    return {
        "external-entity-file": '<!DOCTYPE %(root)s [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        "external-entity-fifo": f'<!DOCTYPE %(root)s [<!ENTITY x SYSTEM "{fifo_uri}">]>',
        "external-entity-http": f'<!DOCTYPE %(root)s [<!ENTITY x SYSTEM "{url}/e.xml">]>',
        "billion-laughs": f"<!DOCTYPE %(root)s [{laughs}]>",
        "external-dtd-http": f'<!DOCTYPE %(root)s SYSTEM "{url}/mets.dtd">',
        "external-dtd-public": f'<!DOCTYPE %(root)s PUBLIC "-//X//DTD X//EN" "{url}/p.dtd">',
        "parameter-entity-http": f'<!DOCTYPE %(root)s [<!ENTITY %% p SYSTEM "{url}/p.dtd"> %%p;]>',
    }


ATTACKS = list(attacks("http://x", "file:///x"))


def hostile(doc: str, attack: str, url: str, fifo_uri: str, root: str) -> bytes:
    """``doc`` with the attack's DOCTYPE after its XML declaration and a reference in it."""
    doctype = attacks(url, fifo_uri)[attack] % {"root": root}
    decl_end = doc.index("?>") + 2 if doc.startswith("<?xml") else 0
    body = doc[decl_end:]
    refs = {"billion-laughs": "&j;", "external-dtd-http": "&leak;",
            "external-dtd-public": "&remote;", "parameter-entity-http": "&leak;"}  # fmt: skip
    ref = refs.get(attack, "&x;")
    close = body.index(">", body.index("<" + root)) + 1
    body = body[:close] + ref + body[close:]
    return (doc[:decl_end] + doctype + body).encode("utf-8")


def assert_untouched(server: RecordingServer, pot: Honeypot) -> None:
    pot.settle()
    assert server.requests == [], f"the parser fetched {server.requests}"
    assert pot.fifo_opens == 0, "the parser opened the FIFO"


@pytest.fixture(scope="module")
def mets_doc(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("mets") / "mets.xml"
    write_mets(path, chinese_package())
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("reader", ["read_mets", "validate_mets"])
def test_mets_attacks_are_refused(
    attack: str, reader: str, mets_doc: str, bait: tuple[RecordingServer, Honeypot],
    tmp_path: Path,
) -> None:  # fmt: skip
    server, pot = bait
    path = tmp_path / "mets.xml"
    path.write_bytes(hostile(mets_doc, attack, server.url, pot.file_uri, "mets:mets"))
    if reader == "read_mets":
        with pytest.raises(PreservationError) as e:
            read_mets(path)
        assert e.value.code == "XML001" and "mets.xml" in str(e.value)
    else:
        problems = validate_mets(path)
        assert problems and any("refused" in str(p) for p in problems), problems
    assert_untouched(server, pot)


def test_mets_nested_10000_deep_is_malformed_not_a_crash() -> None:
    doc = (
        '<mets:mets xmlns:mets="http://www.loc.gov/METS/" OBJID="urn:uuid:x">'
        + "<mets:div>" * 10_000 + "</mets:div>" * 10_000 + "</mets:mets>"
    )  # fmt: skip
    with pytest.raises(PreservationError) as e:
        read_mets(doc.encode(), label="deep.xml")
    assert e.value.code in {"XML002", "MET001"} and "deep.xml" in str(e.value)


@pytest.mark.parametrize("attack", ATTACKS)
def test_xml_payload_file_during_ingest(
    attack: str, bait: tuple[RecordingServer, Honeypot], tmp_path: Path
) -> None:
    server, pot = bait
    repo = new_repository(tmp_path / "repo")
    folder = tr.make_folder_transfer(tmp_path)
    (folder / "record.xml").write_bytes(
        hostile('<?xml version="1.0"?><r>text</r>', attack, server.url, pot.file_uri, "r")
    )
    out = run_cli("--repo", str(repo.root), "--json", "ingest", str(folder), "--no-replicate")
    assert out.status == 0, out.stdout  # kept as a record, flagged as not usable
    found = finding_files(out)
    assert "record.xml" in found["OPEN-001"]
    assert any("refused" in m for m in found["OPEN-001 message"]), found["OPEN-001 message"]
    assert "root:" not in out.stdout  # nothing of /etc/passwd in the receipt
    assert_untouched(server, pot)


def _xlsx_with_doctype(path: Path, doctype: str) -> Path:
    rows = [tr.sheet_row(1)]
    tr.write_xlsx_sheet(path, rows)
    src = path.with_suffix(".orig.xlsx")
    path.rename(src)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                text = data.decode("utf-8")
                end = text.index("?>") + 2 if text.startswith("<?xml") else 0
                data = (text[:end] + doctype % {"root": "worksheet"} + text[end:]).encode()
            zout.writestr(info, data)
    src.unlink()
    return path


@pytest.mark.parametrize("attack", ["external-dtd-http", "external-entity-http", "billion-laughs"])
def test_xlsx_sheet_with_a_doctype_is_refused(
    attack: str, bait: tuple[RecordingServer, Honeypot], tmp_path: Path
) -> None:
    server, pot = bait
    repo = new_repository(tmp_path / "repo")
    folder, _sheet, _rows = tr.make_scanned_transfer(tmp_path, "T01", items=1, pages=1)
    sheet = _xlsx_with_doctype(tmp_path / "sheet.xlsx", attacks(server.url, pot.file_uri)[attack])
    out = run_cli("--repo", str(repo.root), "ingest", str(folder), "--metadata", str(sheet))
    assert out.status == 3 and out.error is not None
    messages = finding_files(out).get("SHEET-001 message", set())
    text = str(out.error) + " ".join(messages)
    assert "sheet.xlsx" in text and "DTD" in text, text
    assert nothing_stored(repo)
    assert_untouched(server, pot)


OdsCheck = Callable[[Path], int | None]


@pytest.mark.parametrize("attack", ATTACKS)
def test_ods_sheet_count_never_fetches(
    attack: str, bait: tuple[RecordingServer, Honeypot], tmp_path: Path
) -> None:
    """formats/verify.py counts the sheets of a migrated spreadsheet by parsing its
    content.xml: an attack there yields 'unknown' (None), never a fetch."""
    server, pot = bait
    content = (
        '<?xml version="1.0"?><office:document-content'
        ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0">'
        "<table:table/><table:table/></office:document-content>"
    )
    ods = tmp_path / "a.ods"
    with zipfile.ZipFile(ods, "w") as z:
        z.writestr("content.xml", content)
    assert ods_sheets(ods) == 2
    with zipfile.ZipFile(ods, "w") as z:
        z.writestr(
            "content.xml",
            hostile(content, attack, server.url, pot.file_uri, "office:document-content"),
        )
    assert ods_sheets(ods) is None
    assert_untouched(server, pot)
