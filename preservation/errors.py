"""The one error tree of preservation.

Every error has a stable ``code`` (printed by the CLI, returned by the API, looked up
in tests) and an ``exit_status``. ``transient`` marks errors worth retrying (network
trouble, throttling); everything else is permanent and is never retried.

    PreservationError                         PRS000  exit 1
    ├── UsageError                            USE001  exit 2
    │   └── NotRepairable                     AUD103
    ├── ConfigError                           CFG001  exit 2
    │   └── RepositoryNotFound                CFG002  exit 2
    ├── InputError                            INP000  exit 3   (bad transfer / bag / sheet)
    │   ├── UnsafePath                        PTH001
    │   ├── ArchiveError                      ARC001
    │   │   └── ArchiveRefused                ARC002
    │   ├── TransferUnreadable                RCV001
    │   ├── SheetUnreadable                   SHT001
    │   ├── RegisterUnreadable                REG001
    │   ├── BagInvalid                        BAG001
    │   ├── XMLUnsafe                         XML001
    │   ├── XMLMalformed                      XML002
    │   ├── MetsInvalid                       MET001
    │   ├── MetsBuildError                    MET002
    │   ├── IngestRefused                     ING001
    │   ├── DuplicateTransfer                 ING002
    │   └── UploadTooLarge                    ING003
    ├── IntegrityError                        FIX000  exit 4
    │   ├── DigestMismatch                    FIX001
    │   └── NoGoodCopy                        AUD102
    ├── StorageError                          STO000  exit 5
    │   ├── ObjectNotFound                    STO001
    │   ├── ObjectExists                      STO002
    │   ├── StoreUnavailable (transient)      STO003
    │   ├── AccessDenied                      STO004
    │   ├── InvalidKey                        STO005
    │   ├── StorageFull                       STO006
    │   ├── RetentionLocked                   STO007
    │   └── NoSourceCopy                      REP001
    ├── CatalogError                          CAT000  exit 6
    │   ├── CatalogUnavailable (transient)    CAT001
    │   ├── NotInCatalog                      CAT002
    │   ├── CatalogOutdated                   CAT003
    │   └── CatalogConflict                   CAT004
    ├── DeletionError                         DEL000  exit 8   (two-person deletion rule)
    │   ├── SameApprover                      DEL001
    │   ├── DeletionRequestClosed             DEL002
    │   ├── DeletionAlreadyRequested          DEL003
    │   ├── AipBusy                           DEL004
    │   └── AipNotActive                      DEL005
    ├── JobBusy                               AUD101  exit 9   (a job runs elsewhere)
    ├── AccessError                           ACC000  exit 10  (users, roles, sign-in)
    │   ├── NotAuthenticated                  ACC001
    │   ├── PermissionDenied                  ACC002
    │   ├── CsrfRejected                      ACC003
    │   └── UnknownUser                       ACC004
    └── ToolMissing                           TOOL001 exit 7
"""

from __future__ import annotations

from typing import Any, ClassVar


class PreservationError(Exception):
    """Base class. ``template`` is formatted with the keyword fields given."""

    code: ClassVar[str] = "PRS000"
    exit_status: ClassVar[int] = 1
    transient: ClassVar[bool] = False
    template: ClassVar[str] = "{message}"

    def __init__(self, message: str | None = None, /, **fields: Any) -> None:
        self.fields = fields
        if message is None:
            try:
                message = self.template.format(**fields)
            except (KeyError, IndexError):
                message = self.template
        self.message = message
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "transient": self.transient,
            "fields": {k: str(v) for k, v in self.fields.items()},
        }

    def __str__(self) -> str:
        return self.message


class UsageError(PreservationError):
    code = "USE001"
    exit_status = 2


class NotRepairable(UsageError):
    """An incident that repair from another copy cannot fix (or that is not open)."""

    code = "AUD103"
    template = "incident {incident}: {reason}"


class ConfigError(PreservationError):
    """A configuration problem. ``problems`` lists one message per bad key."""

    code = "CFG001"
    exit_status = 2

    def __init__(
        self, message: str | None = None, /, problems: list[str] | None = None, **fields: Any
    ) -> None:
        self.problems = list(problems or [])
        if message is None and self.problems:
            message = "; ".join(self.problems)
        super().__init__(message, **fields)


class RepositoryNotFound(ConfigError):
    code = "CFG002"
    template = "no repository at {path} (no preservation.toml); run 'preservation init DIR'"


class InputError(PreservationError):
    """Bad input from a user: a transfer, a bag, a sheet, a register."""

    code = "INP000"
    exit_status = 3


class UnsafePath(InputError):
    code = "PTH001"
    template = "unsafe path {path!r}: {reason}"


class ArchiveError(InputError):
    code = "ARC001"
    template = "{path}: {reason}"


class ArchiveRefused(ArchiveError):
    """An archive was refused and nothing of it kept; ``findings`` lists every bad member."""

    code = "ARC002"

    def __init__(
        self, message: str | None = None, /, findings: list[Any] | None = None, **fields: Any
    ) -> None:
        self.findings = list(findings or [])
        super().__init__(message, **fields)


class TransferUnreadable(InputError):
    code = "RCV001"
    template = "{path}: {reason}"


class SheetUnreadable(InputError):
    """The catalogue sheet cannot be read at all; ``findings`` says why (SHEET-001)."""

    code = "SHT001"

    def __init__(
        self, message: str | None = None, /, findings: list[Any] | None = None, **fields: Any
    ) -> None:
        self.findings = list(findings or [])
        super().__init__(message, **fields)


class RegisterUnreadable(InputError):
    code = "REG001"
    template = "{path}: {reason}"


class BagInvalid(InputError):
    """A bag failed validation; ``findings`` holds every problem found."""

    code = "BAG001"

    def __init__(
        self, message: str | None = None, /, findings: list[Any] | None = None, **fields: Any
    ) -> None:
        self.findings = list(findings or [])
        super().__init__(message, **fields)


class XMLUnsafe(InputError):
    code = "XML001"
    template = "{path}: {reason}"


class XMLMalformed(InputError):
    code = "XML002"
    template = "{path}: not well-formed XML ({reason})"


class MetsInvalid(InputError):
    """A METS document that is not one of our AIP METS files or is inconsistent."""

    code = "MET001"
    template = "{path}: {reason}"


class MetsBuildError(InputError):
    """The data handed to the METS writer cannot be written (bad value, broken link)."""

    code = "MET002"
    template = "cannot write METS: {reason}"


class IngestRefused(InputError):
    """The checks found blocking problems; ``report`` is the full check report."""

    code = "ING001"

    def __init__(self, message: str | None = None, /, report: Any = None, **fields: Any) -> None:
        self.report = report
        super().__init__(message, **fields)


class DuplicateTransfer(InputError):
    code = "ING002"
    template = (
        "this transfer was already ingested as AIP {aip} (same payload digests and reference code);"
        " use --allow-duplicate to ingest it again"
    )


class UploadTooLarge(InputError):
    """An upload over the configured limit; nothing of it is kept."""

    code = "ING003"
    template = "upload {name} is larger than the limit of {limit} bytes"


class IntegrityError(PreservationError):
    code = "FIX000"
    exit_status = 4


class DigestMismatch(IntegrityError):
    code = "FIX001"
    template = "{path}: {algorithm} expected {expected}, found {found}"


class NoGoodCopy(IntegrityError):
    """Repair found no intact copy of a file on any store: the incident is critical."""

    code = "AUD102"
    template = "{path} of AIP {aip} v{version}: no good copy left on any store ({detail})"


class StorageError(PreservationError):
    code = "STO000"
    exit_status = 5


class ObjectNotFound(StorageError):
    code = "STO001"
    template = "{store}: no object {key}"


class ObjectExists(StorageError):
    code = "STO002"
    template = "{store}: object {key} already exists"


class StoreUnavailable(StorageError):
    code = "STO003"
    transient = True
    template = "{store}: unavailable ({reason})"


class AccessDenied(StorageError):
    code = "STO004"
    template = "{store}: access denied ({reason})"


class InvalidKey(StorageError):
    code = "STO005"
    template = "invalid key {key!r}: {reason}"


class StorageFull(StorageError):
    code = "STO006"
    template = "{store}: no space left ({reason})"


class RetentionLocked(StorageError):
    code = "STO007"
    template = "{store}: {key} is under object-lock retention until {until}"


class NoSourceCopy(StorageError):
    """Replication found no verified copy on a readable (configured, not cold) store."""

    code = "REP001"
    template = "AIP {aip} v{version}: no verified copy on a readable store to replicate from"


class CatalogError(PreservationError):
    code = "CAT000"
    exit_status = 6


class CatalogUnavailable(CatalogError):
    code = "CAT001"
    transient = True


class NotInCatalog(CatalogError):
    code = "CAT002"
    template = "no {kind} {ident} in the catalogue"


class CatalogOutdated(CatalogError):
    code = "CAT003"
    template = (
        "the catalogue schema is at revision {found}, this version of preservation needs"
        " {expected}; run the catalogue migrations (upgrade)"
    )


class CatalogConflict(CatalogError):
    """A uniqueness, foreign-key or check constraint refused a write."""

    code = "CAT004"
    template = "the catalogue refused the change: {reason}"


class DeletionError(PreservationError):
    """The two-person deletion rule refused a step (nothing was deleted)."""

    code = "DEL000"
    exit_status = 8


class SameApprover(DeletionError):
    code = "DEL001"
    template = (
        "deletion request {request} was made by {user}; it must be approved by a different"
        " person"
    )


class DeletionRequestClosed(DeletionError):
    code = "DEL002"
    template = "deletion request {request} is {state}; nothing to approve"


class DeletionAlreadyRequested(DeletionError):
    code = "DEL003"
    template = "AIP {aip} already has an open deletion request {request} ({state})"


class AipBusy(DeletionError):
    code = "DEL004"
    template = "AIP {aip} is being replicated right now ({detail}); try again when it finishes"


class AipNotActive(DeletionError):
    code = "DEL005"
    template = "AIP {aip} is {state}; only an active AIP can be deleted"


class JobBusy(PreservationError):
    """A job (an audit of a store, a scheduled job) already runs in another process."""

    code = "AUD101"
    exit_status = 9
    template = "{job} is already running ({holder})"


class AccessError(PreservationError):
    """Who may do what: sign-in, roles, users (preservation.access)."""

    code = "ACC000"
    exit_status = 10


class NotAuthenticated(AccessError):
    code = "ACC001"
    template = "not signed in: {reason}"


class PermissionDenied(AccessError):
    code = "ACC002"
    template = "{user} ({role}) may not {action}"


class CsrfRejected(AccessError):
    code = "ACC003"
    template = "the form's CSRF token is missing or does not match; reload the form"


class UnknownUser(AccessError):
    code = "ACC004"
    template = "no user named {name}"


class ToolMissing(PreservationError):
    code = "TOOL001"
    exit_status = 7
    template = "{tool} is not installed; install the Debian package {package}"


def all_error_classes() -> list[type[PreservationError]]:
    """Every class of the tree, base included (for the code table and its tests)."""
    seen: list[type[PreservationError]] = []
    stack: list[type[PreservationError]] = [PreservationError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen
