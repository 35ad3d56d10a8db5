"""Alerts: one message per run listing every failure, to a webhook (JSON POST) and by
e-mail (SMTP), both on loopback test servers; repeated only when the situation changes,
while the log line is written every time."""

from __future__ import annotations

import json
import logging
import socketserver
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from preservation.audit.repair import repair_incidents
from preservation.audit.runner import AuditRequest, run_audit
from preservation.repository import Repository
from tests.audit.builders import build_aip, content, flip_byte, make_repo, place_replica


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(  # type: ignore[attr-defined]
            {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, MAIL, RCPT, DATA, QUIT."""

    def handle(self) -> None:
        self.wfile.write(b"220 localhost test SMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.decode("ascii", "replace").strip().upper()
            if verb.startswith(("EHLO", "HELO")):
                self.wfile.write(b"250-localhost\r\n250 OK\r\n")
            elif verb.startswith("DATA"):
                self.wfile.write(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = self.rfile.readline()
                    if not chunk:
                        return
                    data += chunk
                self.server.messages.append(data[: -len(b".\r\n")])  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif verb.startswith("QUIT"):
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def servers() -> Iterator[tuple[ThreadingHTTPServer, socketserver.ThreadingTCPServer]]:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    hook.received = []  # type: ignore[attr-defined]
    smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    smtp.daemon_threads = True
    smtp.messages = []  # type: ignore[attr-defined]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (hook, smtp)]
    for t in threads:
        t.start()
    yield hook, smtp
    for s in (hook, smtp):
        s.shutdown()
        s.server_close()


def test_one_message_per_run_repeated_only_on_change(
    tmp_path: Path,
    servers: tuple[ThreadingHTTPServer, socketserver.ThreadingTCPServer],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook, smtp = servers
    monkeypatch.setenv("AUDIT_HOOK_TOKEN", "s3cret")
    repo: Repository = make_repo(
        tmp_path / "repo",
        extra=f"""
[alerts]
webhook_url = "http://127.0.0.1:{hook.server_address[1]}/alerts"
webhook_token_env = "AUDIT_HOOK_TOKEN"
smtp_host = "127.0.0.1"
smtp_port = {smtp.server_address[1]}
mail_from = "preservation@archive.test"
mail_to = ["ops@archive.test", "keeper@archive.test"]
""",
    )
    posts: list[dict[str, Any]] = hook.received  # type: ignore[attr-defined]
    mails: list[bytes] = smtp.messages  # type: ignore[attr-defined]
    files = {f"f{i}.bin": content(i, 300) for i in range(5)}
    aip = build_aip(repo, files)
    place_replica(repo, aip, "offsite")
    for name in ("f0.bin", "f1.bin"):
        flip_byte(repo, "primary", f"{aip}/v1/data/{name}")

    caplog.set_level(logging.WARNING, logger="preservation.alerts")
    (first,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    assert first.failures == 2
    assert len(posts) == 1 and len(mails) == 1
    body = posts[0]["json"]
    assert posts[0]["path"] == "/alerts"
    assert posts[0]["headers"]["Authorization"] == "Bearer s3cret"
    assert body["kind"] == "audit" and body["severity"] == "error"
    assert {f["path"] for f in body["failures"]} == {"data/f0.bin", "data/f1.bin"}
    assert all(f["new"] for f in body["failures"]) and body["summary"]["run"] == first.run_id
    mail = message_from_bytes(mails[0])
    assert mail["To"] == "ops@archive.test, keeper@archive.test"
    assert "audit of store primary" in mail["Subject"]
    text = mail.get_payload(decode=True).decode()
    assert "data/f0.bin" in text and "data/f1.bin" in text
    assert first.alert == {"logged": True, "webhook": True, "email": True, "errors": []}

    # the same two failures again: logged, but no new message
    caplog.clear()
    (second,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    assert second.failures == 2
    assert len(posts) == 1 and len(mails) == 1
    assert any("2 problem(s)" in r.getMessage() for r in caplog.records)
    assert second.alert == {"logged": True, "webhook": None, "email": None, "errors": []}

    # a new failure changes the situation: one message listing all three
    flip_byte(repo, "primary", f"{aip}/v1/data/f2.bin")
    (third,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    assert third.failures == 3
    assert len(posts) == 2 and len(mails) == 2
    failures = posts[1]["json"]["failures"]
    assert len(failures) == 3
    assert {f["path"] for f in failures if f["new"]} == {"data/f2.bin"}

    # the repair is reported once too
    report = repair_incidents(repo)
    assert report.ok and len(posts) == 3
    assert posts[2]["json"]["kind"] == "repair"
    assert posts[2]["json"]["summary"]["repaired"] == 3


def test_unreachable_webhook_does_not_stop_the_audit(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = make_repo(
        tmp_path / "repo",
        extra=f'[alerts]\nwebhook_url = "http://127.0.0.1:{port}/x"\nwebhook_timeout = 2\n',
    )
    aip = build_aip(repo, {"a.bin": content(1, 100)})
    flip_byte(repo, "primary", f"{aip}/v1/data/a.bin")
    (r,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    assert r.failures == 1
    assert r.alert is not None and r.alert["webhook"] is False and r.alert["errors"]
    # not marked as reported: the next run tries again
    (again,) = run_audit(repo, AuditRequest(store="primary", aip=aip))
    assert again.alert is not None and again.alert["webhook"] is False
