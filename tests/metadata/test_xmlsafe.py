"""Untrusted XML: entity attacks and external DTDs are refused, and nothing is fetched."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from preservation.errors import XMLMalformed, XMLUnsafe
from preservation.metadata.xmlsafe import (
    iterparse_untrusted,
    parse_untrusted,
    xml_text_problem,
    xml_wellformed,
)


class Honeypot:
    """A FIFO and a loopback TCP port that record any attempt to read them.

    Opening the FIFO for reading is seen by a watcher that repeatedly tries a
    non-blocking open for writing (which only succeeds while a reader has it open, and
    then unblocks that reader); a TCP connection waits in the listen backlog until
    :meth:`settle` accepts it.
    """

    def __init__(self, folder: Path) -> None:
        self.fifo = folder / "secret"
        os.mkfifo(self.fifo)
        self.fifo_opens = 0
        self.connections = 0
        self._stop = threading.Event()
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.setblocking(False)
        self.port = self.server.getsockname()[1]
        self._watcher = threading.Thread(target=self._watch_fifo, daemon=True)
        self._watcher.start()

    @property
    def file_uri(self) -> str:
        return self.fifo.as_uri()

    @property
    def http_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/x.dtd"

    def _watch_fifo(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.002)
                continue
            self.fifo_opens += 1
            os.write(fd, b"<x/>")
            os.close(fd)
            time.sleep(0.01)

    def settle(self) -> None:
        """Count the connections made so far (a connect completes in the kernel)."""
        time.sleep(0.01)
        while True:
            try:
                conn, _ = self.server.accept()
            except BlockingIOError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._watcher.join(timeout=2)
        self.server.close()


@pytest.fixture
def honeypot(tmp_path: Path) -> Iterator[Honeypot]:
    pot = Honeypot(tmp_path)
    yield pot
    pot.close()


def test_honeypot_notices_reads(honeypot: Honeypot) -> None:
    """The detector itself works, so the 'nothing was read' assertions can fail."""
    with honeypot.fifo.open("rb") as f:
        f.read(1)
    socket.create_connection(("127.0.0.1", honeypot.port), timeout=2).close()
    honeypot.settle()
    assert honeypot.fifo_opens >= 1
    assert honeypot.connections == 1


def _attacks(pot: Honeypot) -> dict[str, str]:
    laughs = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9)
    )
    return {
        "xxe-file": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{pot.file_uri}">]><r>&x;</r>',
        "xxe-passwd": '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        "xxe-http": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{pot.http_uri}">]><r>&x;</r>',
        "billion-laughs": f"<!DOCTYPE r [{laughs}]><r>&j;</r>",
        "external-dtd-http": f'<!DOCTYPE r SYSTEM "{pot.http_uri}"><r/>',
        "external-dtd-file": f'<!DOCTYPE r SYSTEM "{pot.file_uri}"><r/>',
        "external-dtd-public": f'<!DOCTYPE r PUBLIC "-//X//DTD X//EN" "{pot.http_uri}"><r/>',
        "parameter-entity-http": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{pot.http_uri}"> %p;]><r/>',
        "parameter-entity-file": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{pot.file_uri}"> %p;]><r/>',
        "parameter-entity-internal": (
            "<!DOCTYPE r [<!ENTITY % p \"<!ENTITY q 'z'>\"> %p;]><r>&q;</r>"
        ),
    }


def _attack_names() -> list[str]:
    class _Names:  # only the keys are used; the documents are built per test
        file_uri = "file:///nonexistent"
        http_uri = "http://127.0.0.1:9/x.dtd"

    return sorted(_attacks(_Names()))  # type: ignore[arg-type]


Parse = Callable[[bytes, Path], object]


def _via_parse(doc: bytes, tmp: Path) -> object:
    return parse_untrusted(doc, label="attack.xml")


def _via_path(doc: bytes, tmp: Path) -> object:
    path = tmp / "attack.xml"
    path.write_bytes(doc)
    return parse_untrusted(path)


def _via_iterparse(doc: bytes, tmp: Path) -> object:
    return list(iterparse_untrusted(doc, label="attack.xml", events=("end",)))


@pytest.mark.parametrize("name", _attack_names())
@pytest.mark.parametrize("parse", [_via_parse, _via_path, _via_iterparse])
def test_attack_refused_without_reading(
    name: str, parse: Parse, honeypot: Honeypot, tmp_path: Path
) -> None:
    doc = ('<?xml version="1.0"?>' + _attacks(honeypot)[name]).encode()
    with pytest.raises(XMLUnsafe) as info:
        parse(doc, tmp_path)
    assert info.value.code == "XML001"
    assert "attack.xml" in str(info.value)
    assert "refused" in str(info.value)
    honeypot.settle()
    assert honeypot.fifo_opens == 0
    assert honeypot.connections == 0


@pytest.mark.parametrize("name", _attack_names())
def test_wellformed_check_reports_attacks(name: str, honeypot: Honeypot, tmp_path: Path) -> None:
    path = tmp_path / "payload.xml"
    path.write_text('<?xml version="1.0"?>' + _attacks(honeypot)[name], encoding="utf-8")
    problem = xml_wellformed(path)
    assert problem is not None and problem.startswith("refused")
    honeypot.settle()
    assert (honeypot.fifo_opens, honeypot.connections) == (0, 0)


def test_harmless_doctype_allowed() -> None:
    tree = parse_untrusted(b'<!DOCTYPE r [<!ELEMENT r ANY>]><r a="1">x</r>', label="ok")
    assert tree.getroot().get("a") == "1"
    assert parse_untrusted(b"<!DOCTYPE r><r/>", label="ok").getroot().tag == "r"


def test_malformed_raises_with_file_name(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_bytes(b"<r>\n<a></r>")
    with pytest.raises(XMLMalformed) as info:
        parse_untrusted(path)
    assert info.value.code == "XML002"
    assert str(path) in str(info.value)
    assert "line 2" in str(info.value)


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(XMLMalformed, match="cannot read"):
        parse_untrusted(tmp_path / "absent.xml")


def test_wellformed_ok_and_broken(tmp_path: Path) -> None:
    good = tmp_path / "good.xml"
    good.write_text("<?xml version='1.0' encoding='utf-8'?><档案><件 号='1'>正文</件></档案>")
    assert xml_wellformed(good) is None
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<a><b></a>")
    problem = xml_wellformed(bad)
    assert problem is not None and "mismatch" in problem
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    assert xml_wellformed(empty) is not None


def test_wellformed_streams_large_file(tmp_path: Path) -> None:
    """~30 MB of small elements: checked by streaming, every element freed."""
    path = tmp_path / "large.xml"
    row = b"<row><c>" + b"x" * 40 + b"</c><d>1</d></row>\n"
    with path.open("wb") as f:
        f.write(b"<table>")
        for _ in range(500):
            f.write(row * 1000)
        f.write(b"</table>")
    assert xml_wellformed(path) is None
    with path.open("r+b") as f:  # corrupt the very end: the whole file is read
        f.seek(-3, os.SEEK_END)
        f.write(b"xx>")
    assert xml_wellformed(path) is not None


def test_xml_text_problem() -> None:
    assert xml_text_problem("档号 Z109\t\n") is None
    problem = xml_text_problem("bad\x0bvalue")
    assert problem is not None and "U+000B" in problem
    assert xml_text_problem("\ufffe") is not None


def _pipe(data: bytes) -> io.BufferedReader:
    return io.BufferedReader(_Unseekable(data))


class _Unseekable(io.RawIOBase):
    """A pipe-like stream: the safe parser must check the DOCTYPE within its one pass."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        chunk = self._data.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("name", _attack_names())
def test_attack_refused_from_unseekable_stream(name: str, honeypot: Honeypot) -> None:
    doc = ('<?xml version="1.0"?>' + _attacks(honeypot)[name]).encode()
    with pytest.raises(XMLUnsafe):
        list(iterparse_untrusted(_pipe(doc), label="pipe"))
    honeypot.settle()
    assert (honeypot.fifo_opens, honeypot.connections) == (0, 0)


def test_tag_filter_same_with_and_without_seek() -> None:
    doc = b'<a xmlns:x="urn:x"><x:b/><c><x:d/></c><x:e/></a>'
    for make in (lambda: doc, lambda: _pipe(doc)):
        wildcard = [el.tag for _, el in iterparse_untrusted(make(), tag="{urn:x}*")]
        assert wildcard == ["{urn:x}b", "{urn:x}d", "{urn:x}e"]
        listed = [el.tag for _, el in iterparse_untrusted(make(), tag=["c", "{urn:x}e"])]
        assert listed == ["c", "{urn:x}e"]
