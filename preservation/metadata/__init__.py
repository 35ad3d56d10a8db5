"""preservation.metadata: METS 1.12 + PREMIS 3 for AIPs, Dublin Core and DA/T 46 fields,
offline XSD validation, and safe parsing of untrusted XML.

Modules (one job each):

- :mod:`.xmlsafe`: parse untrusted XML (no entities, no DTD, no network; refuses
  DOCTYPEs with entities or an external DTD), ``xml_wellformed`` for payload files.
- :mod:`.namespaces`: namespaces, vocabulary authorities, our profile/namespace URNs.
- :mod:`.descriptive`: Dublin Core, the archival fields element, :class:`Rights`.
- :mod:`.premis`: PREMIS object/event/agent/rights builders and readers.
- :mod:`.mets_writer`: ``write_mets`` (streamed, bounded memory) and ``MetsPackage``.
- :mod:`.mets_reader`: ``read_mets`` -> ``MetsSummary`` (for the catalogue rebuild).
- :mod:`.xsd`: ``validate_mets`` against the official schemas (found via
  ``PRESERVATION_SCHEMAS_DIR`` or ``<repo>/../shared/schemas``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from preservation.lazy import lazy_exports

if TYPE_CHECKING:
    from preservation.metadata.descriptive import Rights
    from preservation.metadata.mets_reader import MetsSummary, read_mets
    from preservation.metadata.mets_writer import MetsPackage, TagFile, write_mets
    from preservation.metadata.xmlsafe import parse_untrusted, xml_wellformed
    from preservation.metadata.xsd import validate_mets

# Loaded on first use: ingest needs preservation.metadata.records (the catalogue
# sheet's rows on disk) from its start, but lxml and the METS modules only once the
# files are streamed, when its identification worker has exited.
_HOME = {
    "Rights": "descriptive",
    "MetsSummary": "mets_reader",
    "read_mets": "mets_reader",
    "MetsPackage": "mets_writer",
    "TagFile": "mets_writer",
    "write_mets": "mets_writer",
    "parse_untrusted": "xmlsafe",
    "xml_wellformed": "xmlsafe",
    "validate_mets": "xsd",
}

__all__ = [
    "MetsPackage",
    "MetsSummary",
    "Rights",
    "TagFile",
    "parse_untrusted",
    "read_mets",
    "validate_mets",
    "write_mets",
    "xml_wellformed",
]

__getattr__ = lazy_exports(__name__, _HOME)
