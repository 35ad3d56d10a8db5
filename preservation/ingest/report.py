"""The four-property check report (DA/T 70 四性检测报告) of one transfer or AIP.

A :class:`CheckReport` holds every finding (cheapest checks first), counts them per
property and result, and says whether ingest is blocked under the configured policy
(failures of a ``blocking`` property). It renders as stable JSON (the record, validated
by ``schemas/check-report.schema.json``) and as a bilingual (中文 / English) HTML page
for people, from the Jinja2 template ``templates/report.html.j2`` with autoescaping on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined

from preservation import AGENT_NAME, __version__
from preservation.ingest.findings import (
    CHECKS,
    PROPERTIES,
    PROPERTY_ZH,
    RESULT_ZH,
    Finding,
    blocking,
    sort_findings,
)

RESULTS: tuple[str, ...] = ("pass", "fail", "warn", "not performed")
REPORT_FORMAT = "preservation-check-report/1"
KIND_ZH = {"receipt": "移交接收检测", "preservation": "长期保存检测"}
KIND_EN = {"receipt": "check at receipt", "preservation": "check during long-term preservation"}


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        raise ValueError("report times must be timezone-aware")
    return dt.isoformat()


@dataclass
class CheckReport:
    transfer: str
    aip: str | None
    started: datetime
    finished: datetime
    findings: list[Finding]
    blocking_properties: tuple[str, ...] = ("authenticity", "integrity")
    settings: dict[str, Any] = field(default_factory=dict)
    kind: Literal["receipt", "preservation"] = "receipt"
    # Codes of the checks that ran. A check that ran and found nothing passed; one
    # that did not run is absent (never reported as passed).
    performed: Iterable[str] = ()

    def __post_init__(self) -> None:
        self.findings = sort_findings(self.findings)
        self.blocking_properties = tuple(self.blocking_properties)
        self.performed = frozenset(self.performed)

    @property
    def blocking(self) -> list[Finding]:
        """The failures that block ingest under the configured policy."""
        return blocking(self.findings, self.blocking_properties)

    @property
    def blocked(self) -> bool:
        return bool(self.blocking)

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
        worst: dict[str, str] = {}
        for f in self.findings:
            if _SEVERITY[f.result] > _SEVERITY.get(worst.get(f.code, "pass"), 0):
                worst[f.code] = f.result
            else:
                worst.setdefault(f.code, f.result)
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

    def to_dict(self) -> dict[str, Any]:
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
            "blocking": [f.to_dict() for f in self.blocking],
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_json(self) -> bytes:
        """Stable UTF-8 JSON: fixed key order, findings sorted, Chinese kept as is."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=2, default=str)
        return (text + "\n").encode("utf-8")

    def to_html(self) -> bytes:
        template = _environment().get_template("report.html.j2")
        html = template.render(
            report=self,
            data=self.to_dict(),
            properties=PROPERTIES,
            results=RESULTS,
            property_zh=PROPERTY_ZH,
            result_zh=RESULT_ZH,
            kind_zh=KIND_ZH[self.kind],
            kind_en=KIND_EN[self.kind],
            rows=_rows(self.findings),
            blocking_rows=_rows(self.blocking),
        )
        return html.encode("utf-8")


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
