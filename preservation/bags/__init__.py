"""BagIt bags: read, validate and write (BagIt 1.0, RFC 8493; reading back to 0.93).

- :func:`validate_bag` collects every finding (codes in :data:`CODES`) into a
  :class:`BagReport`; it never stops at the first problem. Its memory does not grow
  with the number of files (a scratch database); the manifests' payload entries are
  streamed to an ``on_entries`` callback.
- :class:`BagWriter` writes a bag's tag files incrementally for a local folder or a
  store; :func:`make_bag_in_place` bags a folder.
- :func:`validate_profile` checks a bag against ``schemas/bagit-profile.json``.
- :mod:`preservation.bags.tagfiles` and :mod:`preservation.bags.manifest` parse and
  format the individual tag files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from preservation.lazy import lazy_exports

if TYPE_CHECKING:
    from preservation.bags.findings import CODES, BagFinding
    from preservation.bags.profile import PROFILE_IDENTIFIER, validate_profile
    from preservation.bags.validate import BagReport, validate_bag
    from preservation.bags.writer import BagWriter, TagFile, make_bag_in_place

# Loaded on first use (PEP 562): a command that needs only the manifest parser (the
# audit) does not import the validator, the writer and the profile checker.
_HOME = {
    "CODES": "findings",
    "BagFinding": "findings",
    "PROFILE_IDENTIFIER": "profile",
    "validate_profile": "profile",
    "BagReport": "validate",
    "validate_bag": "validate",
    "BagWriter": "writer",
    "TagFile": "writer",
    "make_bag_in_place": "writer",
}

__all__ = [
    "CODES",
    "PROFILE_IDENTIFIER",
    "BagFinding",
    "BagReport",
    "BagWriter",
    "TagFile",
    "make_bag_in_place",
    "validate_bag",
    "validate_profile",
]

__getattr__ = lazy_exports(__name__, _HOME)
