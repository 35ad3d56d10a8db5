"""XML namespaces, vocabulary authorities and fixed URIs used in our METS.

The archival (DA/T 46) fields travel in a small namespace of our own,
:data:`ARCHIVAL_NS` = ``urn:preservation:archival:1``. It is a name only: it does not
resolve and has no schema (METS wraps it in ``mdWrap MDTYPE="OTHER"``, whose
``xmlData`` is validated laxly). The final number changes only on an incompatible
change of the element layout, which :mod:`preservation.metadata.descriptive` documents.
Our METS profile is named by :data:`PROFILE` in the same way.
"""

from __future__ import annotations

from typing import Final

METS_NS: Final = "http://www.loc.gov/METS/"
PREMIS_NS: Final = "http://www.loc.gov/premis/v3"
XLINK_NS: Final = "http://www.w3.org/1999/xlink"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
DC_NS: Final = "http://purl.org/dc/elements/1.1/"
OAI_DC_NS: Final = "http://www.openarchives.org/OAI/2.0/oai_dc/"
ARCHIVAL_NS: Final = "urn:preservation:archival:1"

# Prefixes declared once on the METS root element.
NSMAP: Final[dict[str | None, str]] = {
    "mets": METS_NS,
    "premis": PREMIS_NS,
    "xlink": XLINK_NS,
    "xsi": XSI_NS,
    "dc": DC_NS,
    "oai_dc": OAI_DC_NS,
    "arc": ARCHIVAL_NS,
}

# Informational only: validators here never fetch these (see xsd.py).
SCHEMA_LOCATION: Final = (
    f"{METS_NS} http://www.loc.gov/standards/mets/mets.xsd "
    f"{PREMIS_NS} http://www.loc.gov/standards/premis/v3/premis.xsd"
)

PROFILE: Final = "urn:preservation:mets-profile:aip:1"
PREMIS_VERSION: Final = "3.0"
ARCHIVAL_MDTYPE: Final = "DA/T 46"
ARCHIVAL_MDTYPE_VERSION: Final = "DA/T 46-2009"

# Library of Congress preservation vocabularies (id.loc.gov/vocabulary/preservation/…).
LOC_VOCAB: Final = "http://id.loc.gov/vocabulary/preservation/"
HASH_AUTHORITY: Final = "cryptographicHashFunctions"
AGENT_TYPE_AUTHORITY: Final = "agentType"
AGENT_ROLE_AUTHORITY: Final = "eventRelatedAgentRole"
RELATIONSHIP_TYPE_AUTHORITY: Final = "relationshipType"
RELATIONSHIP_SUBTYPE_AUTHORITY: Final = "relationshipSubType"

# hashlib name -> label in the LoC cryptographicHashFunctions vocabulary (and METS CHECKSUMTYPE).
HASH_LABELS: Final[dict[str, str]] = {
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha224": "SHA-224",
    "sha256": "SHA-256",
    "sha384": "SHA-384",
    "sha512": "SHA-512",
}
HASH_NAMES: Final[dict[str, str]] = {v: k for k, v in HASH_LABELS.items()}
# METS CHECKSUMTYPE allows these; preference order for the fileSec CHECKSUM.
METS_CHECKSUM_ORDER: Final = ("sha256", "sha512", "sha384", "sha1", "md5")


def mets(local: str) -> str:
    return f"{{{METS_NS}}}{local}"


def premis(local: str) -> str:
    return f"{{{PREMIS_NS}}}{local}"


def dc(local: str) -> str:
    return f"{{{DC_NS}}}{local}"


def arc(local: str) -> str:
    return f"{{{ARCHIVAL_NS}}}{local}"


def xlink(local: str) -> str:
    return f"{{{XLINK_NS}}}{local}"


def xsi(local: str) -> str:
    return f"{{{XSI_NS}}}{local}"
