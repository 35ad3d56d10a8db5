"""The four-property check report (DA/T 70 四性检测报告) of one transfer or AIP.

A :class:`CheckReport` holds every finding (cheapest checks first) in a
:class:`~preservation.ingest.finding_store.FindingStore`, counts them per property and
result, and says whether ingest is blocked under the configured policy (failures of a
``blocking`` property). It renders as stable JSON (the record, validated by
``schemas/check-report.schema.json``) and as a bilingual (中文 / English) HTML page for
people, from the Jinja2 template ``templates/report.html.j2`` with autoescaping on. Both
are written to a file piece by piece (:meth:`CheckReport.write_json`,
:meth:`CheckReport.write_html`), so that memory does not grow with the findings.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, BinaryIO, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined

from preservation import AGENT_NAME, __version__
from preservation.ingest.finding_store import FindingStore
from preservation.ingest.findings import CHECKS, PROPERTIES, PROPERTY_ZH, RESULT_ZH, Finding

RESULTS: tuple[str, ...] = ("pass", "fail", "warn", "not performed")
REPORT_FORMAT = "preservation-check-report/1"
KIND_ZH = {"receipt": "移交接收检测", "preservation": "长期保存检测"}
KIND_EN = {"receipt": "check at receipt", "preservation": "check during long-term preservation"}


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        raise ValueError("report times must be timezone-aware")
    return dt.isoformat()


class CheckReport:
    """The report of one check run.

    ``findings`` is any iterable of findings or a :class:`FindingStore` (which the
    report then reads, sorted, without holding every finding in memory). ``performed``
    names the checks that ran: a check that ran and found nothing passed; one that did
    not run is absent (never reported as passed).
    """

    def __init__(
        self,
        transfer: str,
        aip: str | None,
        started: datetime,
        finished: datetime,
        findings: Iterable[Finding] | FindingStore,
        blocking_properties: Iterable[str] = ("authenticity", "integrity"),
        settings: dict[str, Any] | None = None,
        kind: Literal["receipt", "preservation"] = "receipt",
        performed: Iterable[str] = (),
    ) -> None:
        self.transfer = transfer
        self.aip = aip
        self.started = started
        self.finished = finished
        self.store = findings if isinstance(findings, FindingStore) else FindingStore(findings)
        self.blocking_properties = tuple(blocking_properties)
        self.settings: dict[str, Any] = settings if settings is not None else {}
        self.kind = kind
        self.performed = frozenset(performed)

    @property
    def findings(self) -> FindingStore:
        """Every finding, cheapest check first (iterable again and again; ``len``)."""
        return self.store

    @property
    def blocking(self) -> list[Finding]:
        """The failures that block ingest under the configured policy (in memory: for
        a count use :attr:`blocking_count`, to stream :meth:`iter_blocking`)."""
        return list(self.iter_blocking())

    def iter_blocking(self) -> Iterator[Finding]:
        return self.store.blocking(self.blocking_properties)

    @property
    def blocking_count(self) -> int:
        return self.store.count_blocking(self.blocking_properties)

    @property
    def blocked(self) -> bool:
        return self.blocking_count > 0

    def summary(self) -> dict[str, dict[str, int]]:
        """Checks per property and result (every property and result present): each
        check counts once, with the worst result among its findings."""
        counts: dict[str, dict[str, int]] = {p: dict.fromkeys(RESULTS, 0) for p in PROPERTIES}
        for check in self.checks_used().values():
            counts[check["property"]][check["result"]] += 1
        return counts

    def totals(self) -> dict[str, int]:
        """Checks per result over all properties."""
        out = dict.fromkeys(RESULTS, 0)
        for check in self.checks_used().values():
            out[check["result"]] += 1
        return out

    def checks_used(self) -> dict[str, dict[str, Any]]:
        """Every check that ran or found something, cheapest first, with its result:
        the worst result among its findings, or ``pass`` when it ran and found none."""
        worst: dict[str, str] = {
            code: max((r for r, n in by_result.items() if n), key=_SEVERITY.__getitem__)
            for code, by_result in self.store.counts().items()
        }
        codes = sorted(set(worst) | set(self.performed), key=lambda c: (CHECKS[c].cost, c))
        return {
            c: {
                "property": CHECKS[c].property,
                "title_en": CHECKS[c].title_en,
                "title_zh": CHECKS[c].title_zh,
                "cost": CHECKS[c].cost,
                "result": worst.get(c, "pass"),
            }
            for c in codes
        }

    def head(self) -> dict[str, Any]:
        """Everything of the JSON record but the two lists of findings."""
        return {
            "format": REPORT_FORMAT,
            "standard": "DA/T 70-2018",
            "kind": self.kind,
            "transfer": self.transfer,
            "aip": self.aip,
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "generator": {"name": AGENT_NAME, "version": __version__},
            "settings": self.settings,
            "blocking_properties": list(self.blocking_properties),
            "blocked": self.blocked,
            "summary": self.summary(),
            "totals": self.totals(),
            "checks": self.checks_used(),
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole record in memory (small reports; large ones use write_json)."""
        d = self.head()
        d["blocking"] = [f.to_dict() for f in self.iter_blocking()]
        d["findings"] = [f.to_dict() for f in self.store]
        return d

    def write_json(self, out: BinaryIO) -> None:
        """Write the stable UTF-8 JSON record piece by piece (fixed key order,
        findings sorted, Chinese kept as is); memory does not grow with findings."""
        head = _dumps(self.head())
        assert head.endswith("\n}")
        write = _Writer(out)
        write(head[:-2])
        for key, items in (("blocking", self.iter_blocking()), ("findings", iter(self.store))):
            write(f",\n  {json.dumps(key)}: [")
            sep = "\n    "
            for f in items:
                write(sep + _dumps(f.to_dict()).replace("\n", "\n    "))
                sep = ",\n    "
            write("]" if sep == "\n    " else "\n  ]")
        write("\n}\n")
        write.flush()

    def to_json(self) -> bytes:
        """Stable UTF-8 JSON: fixed key order, findings sorted, Chinese kept as is."""
        buf = io.BytesIO()
        self.write_json(buf)
        return buf.getvalue()

    def write_html(self, out: BinaryIO) -> None:
        """Write the bilingual HTML page piece by piece, the findings table row by row."""
        template = _environment().get_template("report.html.j2")
        blocking_count = self.blocking_count
        write = _Writer(out)
        for chunk in template.generate(
            report=self,
            data=self.head(),
            properties=PROPERTIES,
            results=RESULTS,
            property_zh=PROPERTY_ZH,
            result_zh=RESULT_ZH,
            kind_zh=KIND_ZH[self.kind],
            kind_en=KIND_EN[self.kind],
            findings_count=len(self.store),
            blocking_count=blocking_count,
            rows=_rows(self.store),
            blocking_rows=_rows(self.iter_blocking()) if blocking_count else iter(()),
        ):
            write(chunk)
        write.flush()

    def to_html(self) -> bytes:
        buf = io.BytesIO()
        self.write_html(buf)
        return buf.getvalue()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2, default=str)


class _Writer:
    """Collects text and writes it UTF-8 encoded in blocks of about 64 KiB."""

    def __init__(self, out: BinaryIO, block: int = 1 << 16) -> None:
        self.out = out
        self.block = block
        self.parts: list[str] = []
        self.size = 0

    def __call__(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= self.block:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            # backslashreplace: names that are not valid UTF-8 (surrogate escapes) show as \udcff
            self.out.write("".join(self.parts).encode("utf-8", "backslashreplace"))
        self.parts = []
        self.size = 0


_SEVERITY = {"pass": 0, "not performed": 1, "warn": 2, "fail": 3}


def _rows(findings: Iterable[Finding]) -> Iterable[dict[str, Any]]:
    for f in findings:
        check = f.check
        where = f.file or ""
        if f.row is not None:
            where = f"{where} (row {f.row} 行)" if where else f"row {f.row} 行"
        yield {
            "code": f.code,
            "property": check.property,
            "title_en": check.title_en,
            "title_zh": check.title_zh,
            "result": f.result,
            "where": where,
            "message": f.message,
        }


_env: Environment | None = None


def _environment() -> Environment:
    global _env
    if _env is None:
        _env = Environment(
            loader=PackageLoader("preservation.ingest", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
    return _env
