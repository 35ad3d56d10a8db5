"""Alerts: a log line always; a webhook (JSON POST) and an e-mail (SMTP) when set.

One message per run lists every failure of the run; it goes to the webhook and the
mail recipients only when the situation changed since the last message: a new
incident, or one that became critical (or, with ``alerts.repeat_after``, when an
unchanged situation was last reported longer ago than that). Which incidents were
reported, at which severity and when, is kept in each incident's evidence
(``alerted_severity``, ``alerted_at``), so the state survives restarts and is shared
by every host using the catalogue. Delivery problems are logged, never raised: an
alert that cannot be sent must not stop an audit.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from preservation.audit.incidents import IncidentNote
from preservation.model import utcnow

if TYPE_CHECKING:
    from preservation.config import AlertSettings
    from preservation.repository import Repository

log = logging.getLogger("preservation.alerts")
MAX_LISTED = 200  # failures listed in one message; the rest are counted


@dataclass
class Alert:
    kind: str  # 'audit' | 'repair'
    severity: str  # 'error' | 'critical' | 'info'
    subject: str
    summary: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        lines = [self.subject, ""]
        for key, value in self.summary.items():
            lines.append(f"{key}: {value}")
        if self.items:
            lines.append("")
            for it in self.items[:MAX_LISTED]:
                flag = "NEW " if it.get("new") else ""
                lines.append(
                    f"- {flag}[{it.get('severity')}] incident {it.get('incident')}:"
                    f" {it.get('kind')} {it.get('store')}:{it.get('aip')}"
                    f" v{it.get('version')} {it.get('path')} ({it.get('detail')})"
                )
            if len(self.items) > MAX_LISTED:
                lines.append(f"... and {len(self.items) - MAX_LISTED} more")
        return "\n".join(lines) + "\n"

    def payload(self, repository: str) -> dict[str, Any]:
        return {
            "source": "preservation",
            "repository": repository,
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "summary": self.summary,
            "failures": self.items[:MAX_LISTED],
            "failures_total": len(self.items),
            "text": self.text,
            "sent_at": utcnow().isoformat(),
        }


@dataclass
class Delivery:
    logged: bool = True
    webhook: bool | None = None  # None: not configured
    email: bool | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "logged": self.logged,
            "webhook": self.webhook,
            "email": self.email,
            "errors": list(self.errors),
        }


def deliver(settings: AlertSettings, alert: Alert, repository: str, *, external: bool) -> Delivery:
    """Log the alert; when ``external``, also POST it and mail it where configured."""
    level = (
        logging.CRITICAL
        if alert.severity == "critical"
        else (logging.WARNING if alert.severity == "error" else logging.INFO)
    )
    log.log(level, "%s", alert.text.rstrip("\n").replace("\n", " | "))
    out = Delivery()
    if not external:
        return out
    if settings.webhook_url:
        out.webhook = _webhook(settings, alert.payload(repository), out.errors)
    if settings.smtp_host:
        out.email = _mail(settings, alert, repository, out.errors)
    return out


def _webhook(settings: AlertSettings, payload: dict[str, Any], errors: list[str]) -> bool:
    assert settings.webhook_url is not None
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "preservation"}
    if settings.webhook_token_env:
        token = os.environ.get(settings.webhook_token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    request = urllib.request.Request(
        settings.webhook_url, data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.webhook_timeout) as resp:
            ok = bool(200 <= resp.status < 300)
            if not ok:
                errors.append(f"webhook answered HTTP {resp.status}")
            return ok
    except (urllib.error.URLError, OSError, ValueError) as e:
        errors.append(f"webhook: {e}")
        log.error("alert webhook %s failed: %s", settings.webhook_url, e)
        return False


def _mail(settings: AlertSettings, alert: Alert, repository: str, errors: list[str]) -> bool:
    assert settings.smtp_host is not None
    msg = EmailMessage()
    msg["Subject"] = f"[{repository}] {alert.subject}"
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(settings.mail_to)
    if alert.severity == "critical":
        msg["Importance"] = "high"
        msg["X-Priority"] = "1"
    msg.set_content(alert.text)
    user = os.environ.get(settings.smtp_user_env) if settings.smtp_user_env else None
    password = os.environ.get(settings.smtp_password_env) if settings.smtp_password_env else None
    try:
        smtp: smtplib.SMTP
        if settings.smtp_security == "ssl":
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
        else:
            smtp = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
        with smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls()
            if user and password:
                smtp.login(user, password)
            smtp.send_message(msg)
        return True
    except (smtplib.SMTPException, OSError) as e:
        errors.append(f"smtp: {e}")
        log.error("alert mail via %s failed: %s", settings.smtp_host, e)
        return False


def _needs_notice(note: IncidentNote, now: datetime, repeat: timedelta | None) -> bool:
    alerted = note.evidence.get("alerted_severity")
    if alerted != note.severity:
        return True
    if repeat is None:
        return False
    at = note.evidence.get("alerted_at")
    return at is None or datetime.fromisoformat(at) <= now - repeat


def alert_findings(
    repo: Repository,
    notes: Sequence[IncidentNote],
    *,
    kind: str,
    subject: str,
    summary: dict[str, Any],
) -> Delivery | None:
    """One message for the failures of a run; external only if the situation changed.

    Returns None when there is nothing to report.
    """
    from preservation.audit.budget import parse_duration
    from preservation.catalog import audit_queries as aq

    if not notes:
        return None
    settings = repo.config.settings.alerts
    now = utcnow()
    repeat = (
        timedelta(seconds=parse_duration(settings.repeat_after)) if settings.repeat_after else None
    )
    changed = [n for n in notes if _needs_notice(n, now, repeat)]
    severity = "critical" if any(n.severity == "critical" for n in notes) else "error"
    alert = Alert(
        kind=kind,
        severity=severity,
        subject=subject + (" -- CRITICAL: NO GOOD COPY LEFT" if severity == "critical" else ""),
        summary={**summary, "new_or_changed": len(changed)},
        items=[{**n.to_dict(), "new": n in changed} for n in notes],
    )
    delivery = deliver(
        settings, alert, repo.config.settings.repository.name, external=bool(changed)
    )
    if changed and (delivery.webhook is not False and delivery.email is not False):
        with repo.catalog.session() as s:
            for n in changed:
                aq.update_incident(
                    s,
                    n.incident,
                    evidence={"alerted_severity": n.severity, "alerted_at": now.isoformat()},
                )
    return delivery


def alert_message(repo: Repository, alert: Alert) -> Delivery:
    """Send a message that is not about incidents (e.g. a repair summary)."""
    return deliver(
        repo.config.settings.alerts, alert, repo.config.settings.repository.name, external=True
    )
