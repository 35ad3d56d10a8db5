"""The one table of audit outcomes.

Every file check ends in one outcome. Its code is printed, stored in the catalogue
(``file_copies.detail``), written to the Parquet audit log and used as the kind of
the incident it opens. When several problems apply, the first in this order wins:
missing, unreadable, size, mismatch, checksum, manifest.

=========== ======= ============ ======================================================
outcome     code    file copy    meaning
=========== ======= ============ ======================================================
pass        AUD000  pass         content (or, for inventory, size and stored checksum)
                                 agrees with the catalogue and the bag manifest
missing     AUD001  missing      no object under the expected key
unreadable  AUD002  fail         the object exists but cannot be read
size        AUD003  fail         the object's size differs from the catalogue
                                 (truncated or extended)
mismatch    AUD004  fail         a digest of the content differs from the catalogue
checksum    AUD005  fail         inventory: the checksum the store keeps differs from
                                 the catalogue
manifest    AUD006  fail         the content agrees with the catalogue but the bag's
                                 manifest lists another digest (catalogue and bag
                                 disagree: needs a person, not repairable from a copy)
unexpected  AUD007  (none)       inventory: an object under a copy's prefix that the
                                 catalogue does not know
=========== ======= ============ ======================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal[
    "pass", "missing", "unreadable", "size", "mismatch", "checksum", "manifest", "unexpected"
]


@dataclass(frozen=True)
class OutcomeInfo:
    outcome: Outcome
    code: str
    file_copy_outcome: Literal["pass", "fail", "missing"] | None
    repairable: bool  # can a good copy on another store fix it?
    title: str


OUTCOMES: dict[str, OutcomeInfo] = {
    i.outcome: i
    for i in (
        OutcomeInfo("pass", "AUD000", "pass", False, "intact"),
        OutcomeInfo("missing", "AUD001", "missing", True, "object missing"),
        OutcomeInfo("unreadable", "AUD002", "fail", True, "object unreadable"),
        OutcomeInfo("size", "AUD003", "fail", True, "size differs from the catalogue"),
        OutcomeInfo("mismatch", "AUD004", "fail", True, "digest differs from the catalogue"),
        OutcomeInfo("checksum", "AUD005", "fail", True, "stored checksum differs"),
        OutcomeInfo("manifest", "AUD006", "fail", False, "bag manifest disagrees"),
        OutcomeInfo("unexpected", "AUD007", None, True, "unexpected object"),
    )
}

# Severity order: the first problem found in this order is the outcome of a check.
PRIORITY: tuple[Outcome, ...] = (
    "missing",
    "unreadable",
    "size",
    "mismatch",
    "checksum",
    "manifest",
)


def code_of(outcome: str) -> str:
    return OUTCOMES[outcome].code


def is_failure(outcome: str) -> bool:
    return outcome != "pass"
