"""Validate METS documents against the official METS 1.12 + PREMIS 3 schemas, offline.

Where the schemas are: the folder named by the environment variable
``PRESERVATION_SCHEMAS_DIR``, else ``<repository>/../shared/schemas`` relative to this
package's source (``preservation/metadata/xsd.py`` → three levels up, then
``../shared/schemas``), which is where a development checkout and CI find them. The
schemas are never copied into the project. When the folder (or its
``mets-premis-wrapper.xsd``) is missing, :func:`validate_mets` does **not** pass: it
returns the single problem ``schemas not available: …``.

The wrapper schema (METS + PREMIS 3 + PREMIS 2.2, see the schemas' README) is compiled
once per folder and cached, with a parser that has ``no_network=True`` and a resolver
that refuses every http(s)/ftp URL, so a schema import can never reach the network.

libxml2 checks ``xs:ID`` syntax but not that every IDREF (``ADMID``, ``DMDID``,
``FILEID``) points at an existing ID, nor reliably that IDs are unique when streaming;
:func:`validate_mets` checks both itself.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from lxml import etree

from preservation.errors import XMLMalformed, XMLUnsafe
from preservation.metadata.namespaces import METS_NS, PREMIS_NS
from preservation.metadata.xmlsafe import iterparse_untrusted, parse_untrusted, release

ENV_SCHEMAS_DIR = "PRESERVATION_SCHEMAS_DIR"
WRAPPER = "mets-premis-wrapper.xsd"
MAX_PROBLEMS = 200
# Re-validate a failing file as a whole tree (to list every error, not only the first)
# when it is at most this big.
FULL_REPORT_MAX_BYTES = 64 * 1024 * 1024

_IDREF_ATTRS = ("ADMID", "DMDID", "FILEID")
_lock = threading.Lock()
_cache: dict[Path, etree.XMLSchema] = {}


def schemas_dir() -> Path:
    """The schemas folder: ``$PRESERVATION_SCHEMAS_DIR`` or ``<repo>/../shared/schemas``."""
    env = os.environ.get(ENV_SCHEMAS_DIR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "schemas"


class _OfflineResolver(etree.Resolver):  # type: ignore[misc]
    """Refuse any schema import that would leave the machine."""

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        scheme = urlparse(system_url or "").scheme.lower()
        if scheme in ("http", "https", "ftp"):
            raise XMLUnsafe(path=system_url, reason="schema import refused: network access is off")
        return None


class SchemasUnavailable(Exception):
    """Internal: the schema folder is missing (reported as a validation problem)."""


def load_schema(directory: Path | None = None) -> etree.XMLSchema:
    """The compiled wrapper schema for ``directory`` (default :func:`schemas_dir`), cached."""
    folder = (directory or schemas_dir()).resolve()
    with _lock:
        schema = _cache.get(folder)
        if schema is not None:
            return schema
        wrapper = folder / WRAPPER
        if not wrapper.is_file():
            raise SchemasUnavailable(
                f"schemas not available: no {WRAPPER} in {folder}"
                f" (set {ENV_SCHEMAS_DIR} to the folder holding the METS/PREMIS schemas)"
            )
        parser = etree.XMLParser(
            no_network=True, resolve_entities=False, load_dtd=False, huge_tree=False
        )
        parser.resolvers.add(_OfflineResolver())
        try:
            schema = etree.XMLSchema(etree.parse(str(wrapper), parser))
        except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as e:
            raise SchemasUnavailable(f"schemas not available: {wrapper} does not load: {e}") from e
        _cache[folder] = schema
        return schema


def validate_mets(
    source: Path | str | IO[bytes] | etree._ElementTree | etree._Element,
    *,
    schemas: Path | None = None,
) -> list[str]:
    """Every problem found validating a METS document; an empty list means valid.

    ``source`` is a path or binary stream (parsed safely, streaming) or an lxml tree or
    element (validated as it is).
    """
    try:
        schema = load_schema(schemas)
    except SchemasUnavailable as e:
        return [str(e)]
    if isinstance(source, etree._ElementTree | etree._Element):
        return _validate_tree(schema, source)
    return _validate_stream(schema, source)


def _format_log(log: Any) -> list[str]:
    return [f"line {entry.line}: {entry.message}" for entry in log][:MAX_PROBLEMS]


def _validate_tree(schema: etree.XMLSchema, source: Any) -> list[str]:
    tree = source if isinstance(source, etree._ElementTree) else source.getroottree()
    problems: list[str] = []
    if not schema.validate(tree):
        problems.extend(_format_log(schema.error_log))
    ids = _IdCheck()
    for el in tree.iter():
        if isinstance(el.tag, str):
            ids.element(el)
    problems.extend(ids.problems())
    return problems[:MAX_PROBLEMS]


def _validate_stream(schema: etree.XMLSchema, source: Path | str | IO[bytes]) -> list[str]:
    ids = _IdCheck()
    label = str(source) if isinstance(source, Path | str) else None
    try:
        elements = iterparse_untrusted(source, label=label, schema=schema, tag=_ID_TAGS)
        for _event, el in elements:
            ids.element(el)
            if el.tag in _RELEASE:
                release(el)
    except XMLUnsafe as e:
        return [str(e)]
    except XMLMalformed as e:
        reason = str(e.fields.get("reason", e))
        if isinstance(source, Path | str):
            size = Path(source).stat().st_size if Path(source).is_file() else None
            if size is not None and size <= FULL_REPORT_MAX_BYTES:
                try:
                    return _validate_tree(schema, parse_untrusted(source))
                except (XMLUnsafe, XMLMalformed) as again:
                    return [str(again)]
        return [reason]
    return ids.problems()[:MAX_PROBLEMS]


# Elements that can carry IDs or IDREFs (the rest is validated by libxml2 alone).
_ID_TAGS = (
    f"{{{METS_NS}}}*",
    *(f"{{{PREMIS_NS}}}{local}" for local in ("object", "event", "agent", "rights")),
)
# Elements freed as soon as they (and their IDs) have been looked at.
_RELEASE = frozenset(
    f"{{{METS_NS}}}{local}"
    for local in ("dmdSec", "techMD", "rightsMD", "sourceMD", "digiprovMD", "file", "div")
)


class _IdCheck:
    """IDs unique; every IDREF(S) resolves. Memory: the set of IDs."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.duplicates: list[str] = []
        self.pending: dict[str, str] = {}  # forward reference -> where it was seen

    def element(self, el: Any) -> None:
        tag = el.tag
        if not isinstance(tag, str):
            return
        if tag.startswith(f"{{{METS_NS}}}"):
            ident = el.get("ID")
            if ident is not None:
                self._add(ident)
            for attr in _IDREF_ATTRS:
                for ref in (el.get(attr) or "").split():
                    if ref not in self.ids:
                        self.pending.setdefault(ref, f"{tag[len(METS_NS) + 2 :]} {attr}")
        elif tag.startswith(f"{{{PREMIS_NS}}}"):
            ident = el.get("xmlID")
            if ident is not None:
                self._add(ident)

    def _add(self, ident: str) -> None:
        if ident in self.ids:
            self.duplicates.append(ident)
        else:
            self.ids.add(ident)

    def problems(self) -> list[str]:
        out = [f"duplicate ID {d!r}" for d in self.duplicates]
        out.extend(
            f"{where} refers to {ref!r}, which is no ID in the document"
            for ref, where in self.pending.items()
            if ref not in self.ids
        )
        return out
