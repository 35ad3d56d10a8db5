"""Parsing XML that we did not write, safely.

Every XML document from outside (transfer payload files, submitted METS, an AIP's
METS read back from a store) is parsed here and nowhere else, with libxml2 told
never to resolve entities, load a DTD or touch the network, and never to lift its
size limits (``huge_tree=False``). On top of that a document is **refused**
(:class:`~preservation.errors.XMLUnsafe`, naming the file) when its DOCTYPE

- names an external DTD (``SYSTEM``/``PUBLIC`` identifier), or
- declares any entity, general or parameter (XXE, "billion laughs", ``%pe;`` tricks).

A bare ``<!DOCTYPE x>`` or one that only declares elements and attributes is allowed.
The check runs before any element reaches the caller; since entity resolution and
DTD loading are off, nothing the DOCTYPE names is ever fetched or expanded, refused
or not (the tests prove it with a FIFO and a loopback port as bait).

Everything streams: :func:`iterparse_untrusted` yields events and callers clear what
they have used (:func:`release`), so memory does not grow with the document.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from lxml import etree

from preservation.errors import XMLMalformed, XMLUnsafe

Source = Path | str | bytes | IO[bytes]

_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,
    "remove_pis": False,
}


def _label(source: Source, label: str | None) -> str:
    if label:
        return label
    if isinstance(source, Path | str):
        return str(source)
    if isinstance(source, bytes):
        return "<bytes>"
    return str(getattr(source, "name", "<stream>"))


def doctype_problem(tree: etree._ElementTree) -> str | None:
    """Why the document's DOCTYPE is refused, or None when it is acceptable."""
    info = tree.docinfo
    if info.system_url or info.public_id:
        ident = info.system_url or info.public_id
        return f"refused: the DOCTYPE names an external DTD ({ident})"
    for dtd in (info.internalDTD, info.externalDTD):
        if dtd is None:
            continue
        for entity in dtd.iterentities():
            where = f" ({entity.system_url})" if entity.system_url else ""
            return f"refused: the DOCTYPE declares entity {entity.name!r}{where}"
    return None


def iterparse_untrusted(
    source: Source,
    *,
    label: str | None = None,
    events: Sequence[str] = ("end",),
    tag: str | Sequence[str] | None = None,
    schema: etree.XMLSchema | None = None,
) -> Iterator[tuple[str, Any]]:
    """Yield ``(event, element)`` like ``lxml.etree.iterparse``, safely.

    The DOCTYPE is checked first, on the root element's start event (a first short
    pass over the prolog for paths, bytes and seekable streams; otherwise inside the
    one pass), before libxml2 has looked at any content. ``tag`` filters in libxml2
    (``{ns}*`` wildcards allowed), so elements the caller does not ask for cost no
    Python work.

    Raises XMLUnsafe for a refused DOCTYPE and XMLMalformed for anything libxml2
    rejects (including schema errors when ``schema`` is given). Callers should call
    :func:`release` on elements they are done with to keep memory flat.
    """
    name = _label(source, label)
    with ExitStack() as stack:
        stream = _open(source, name, stack)
        early = stream.seekable()
        if early:
            position = stream.tell()
            _check_prolog(stream, name)
            stream.seek(position)
        kwargs: dict[str, Any] = dict(_PARSER_OPTIONS)
        if schema is not None:
            kwargs["schema"] = schema
        wanted = tuple(events)
        if early and tag is not None:
            kwargs["tag"] = tag
        elif not early:
            wanted = tuple(dict.fromkeys(("start", *events)))
        parser = etree.iterparse(stream, events=wanted, **kwargs)
        checked = early
        try:
            for event, el in parser:
                if not checked:
                    _refuse(el, name)
                    checked = True
                if early or (event in events and (tag is None or _matches(el.tag, tag))):
                    yield event, el
        except etree.XMLSyntaxError as e:
            raise XMLMalformed(path=name, reason=_syntax_message(e)) from e


def _open(source: Source, name: str, stack: ExitStack) -> IO[bytes]:
    if isinstance(source, Path | str):
        try:
            return stack.enter_context(Path(source).open("rb"))
        except OSError as e:
            raise XMLMalformed(path=name, reason=f"cannot read: {e.strerror or e}") from e
    if isinstance(source, bytes):
        return io.BytesIO(source)
    return source


def _refuse(el: Any, name: str) -> None:
    problem = doctype_problem(el.getroottree())
    if problem:
        raise XMLUnsafe(path=name, reason=problem)


def _check_prolog(stream: IO[bytes], name: str) -> None:
    """Parse up to the root element's start tag and refuse a bad DOCTYPE."""
    try:
        for _event, el in etree.iterparse(stream, events=("start",), **_PARSER_OPTIONS):
            _refuse(el, name)
            return
    except etree.XMLSyntaxError as e:
        raise XMLMalformed(path=name, reason=_syntax_message(e)) from e


def _matches(el_tag: Any, tag: str | Sequence[str]) -> bool:
    tags = (tag,) if isinstance(tag, str) else tag
    name = str(el_tag)
    return any(t == name or (t.endswith("}*") and name.startswith(t[:-1])) for t in tags)


def _syntax_message(e: etree.XMLSyntaxError) -> str:
    msg = str(e.msg or e)
    if e.lineno and "line " not in msg:  # schema errors do not name their line
        msg = f"line {e.lineno}: {msg}"
    return msg


def release(el: Any) -> None:
    """Free an element handled during iterparse, and its already-handled siblings."""
    el.clear(keep_tail=True)
    parent = el.getparent()
    if parent is None:
        return
    while el.getprevious() is not None:
        del parent[0]


def parse_untrusted(source: Source, *, label: str | None = None) -> etree._ElementTree:
    """Parse a whole document safely and return its tree.

    Raises XMLUnsafe (XML001) for a refused DOCTYPE, XMLMalformed (XML002) otherwise
    when the document is not well-formed.
    """
    root: Any = None
    for _event, el in iterparse_untrusted(source, label=label, events=("start",)):
        if root is None:
            root = el
    return etree.ElementTree(root)


class _Discard:
    """Parser target without callbacks: libxml2 parses in C and builds no tree."""

    def close(self) -> None:
        return None


def xml_wellformed(path: Path, *, label: str | None = None) -> str | None:
    """The problem with an XML file (not well-formed, refused DOCTYPE), or None.

    Used by ingest's usability check of XML payload files. The DOCTYPE is checked on
    the first parse event; the well-formedness pass then runs with a parser target that
    builds no tree, so memory stays flat however large the file is.
    """
    name = label or str(path)
    try:
        for _event in iterparse_untrusted(path, label=name, events=("start",)):
            break
    except (XMLUnsafe, XMLMalformed) as e:
        return str(e.fields.get("reason", e))
    parser = etree.XMLParser(target=_Discard(), **_PARSER_OPTIONS)
    try:
        with Path(path).open("rb") as f:
            etree.parse(f, parser)
    except etree.XMLSyntaxError as e:
        return _syntax_message(e)
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    return None


_XML_INVALID = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text_problem(value: str) -> str | None:
    """Why ``value`` cannot be written as XML 1.0 text, or None."""
    m = _XML_INVALID.search(value)
    if m is None:
        return None
    return f"contains the character U+{ord(m.group()):04X}, which XML 1.0 cannot carry"
