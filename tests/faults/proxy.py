"""A small fault-injecting HTTP proxy on loopback, in front of a real S3 server.

The proxy forwards each request unchanged (the ``Host`` header included, so SigV4
signatures stay valid) to the upstream server and passes the answer back, unless a
:class:`Rule` matches the request. A rule can

- ``status``: answer with an S3 error document (``500 InternalError``, ``503 SlowDown``,
  ``429``...) without forwarding the request;
- ``reset``: reset the connection (RST) before forwarding: the server never sees it;
- ``lose``: forward the request, let the server act on it, then reset the connection
  instead of answering (the "response lost" case: the work is done, the client cannot
  know);
- ``delay``: forward, then hold the answer back for ``delay`` seconds (a client read
  timeout shorter than that gives up meanwhile);
- ``truncate``: forward, then send the headers and only part of the body and close;
- ``corrupt``: forward, then flip one byte of the response body (a server that returns
  wrong bytes), or of the request body before forwarding (``corrupt_request``);
- ``kill``: from this request on the upstream is "dead": this request and every
  later one is reset until :meth:`FaultProxy.revive`. ``kill_after_bytes`` lets part
  of a response body through first (killed mid-download).

Rules match on method, a substring of the path and query (``"partNumber=2"``,
``"uploads"``), and the S3 operation family; ``skip`` lets the first matching requests
through, ``times`` limits how often a rule fires (None: always). Every request is
logged in :attr:`FaultProxy.log` as ``(method, path, what happened)``.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Literal
from urllib.parse import urlsplit

Action = Literal[
    "status", "reset", "lose", "delay", "truncate", "corrupt", "corrupt_request", "kill"
]

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
_REASONS = {500: "Internal Server Error", 503: "Service Unavailable", 429: "Too Many Requests"}


@dataclass
class Request:
    method: str
    target: str  # path and query, as sent
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class Rule:
    action: Action
    method: str | None = None
    contains: str | None = None  # a substring of the path and query
    where: Callable[[Request], bool] | None = None
    skip: int = 0  # matching requests let through before the rule fires
    times: int | None = 1  # how often it fires; None: every time
    status: int = 503
    code: str = "SlowDown"
    delay: float = 0.0
    keep: float = 0.5  # truncate: the share of the body that is sent
    kill_after_bytes: int = 0
    seen: int = 0
    fired: int = 0

    def matches(self, req: Request) -> bool:
        if self.method is not None and req.method != self.method:
            return False
        if self.contains is not None and self.contains not in req.target:
            return False
        return self.where is None or self.where(req)

    def take(self, req: Request) -> bool:
        """Whether the rule fires for this request (counts it)."""
        if not self.matches(req):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


def is_object_get(req: Request) -> bool:
    """A GET of an object (not a listing, not a bucket sub-resource)."""
    path = urlsplit(req.target).path
    query = urlsplit(req.target).query
    return req.method == "GET" and path.count("/") >= 2 and "list-type" not in query


@dataclass
class FaultProxy:
    upstream: str  # http://host:port
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    dead: bool = False
    _server: socketserver.ThreadingTCPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control ---------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, rule: Rule) -> Rule:
        """Install a fresh copy of ``rule`` (counters at zero) and return the copy."""
        rule = dataclasses.replace(rule, seen=0, fired=0)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log.clear()
            self.dead = False

    def kill(self) -> None:
        self.dead = True

    def revive(self) -> None:
        self.dead = False

    def events(self, what: str) -> list[tuple[str, str, str]]:
        return [e for e in self.log if e[2] == what]

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- one connection ----------------------------------------------------------------

    def _pick(self, req: Request) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.take(req):
                    return rule
        return None

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                req = _read_request(reader, conn)
                if req is None:
                    return
                if not self._one(conn, req):
                    return
        except (OSError, http.client.HTTPException, ValueError):
            return
        finally:
            reader.close()

    def _note(self, req: Request, what: str) -> None:
        with self._lock:
            self.log.append((req.method, req.target, what))

    def _one(self, conn: socket.socket, req: Request) -> bool:
        """Handle one request; False when the connection is to be closed."""
        if self.dead:
            self._note(req, "dead")
            _reset(conn)
            return False
        rule = self._pick(req)
        action = rule.action if rule else None
        if rule is not None and action == "status":
            self._note(req, f"status {rule.status}")
            _send_error(conn, rule.status, rule.code)
            return True
        if action == "reset":
            self._note(req, "reset")
            _reset(conn)
            return False
        if rule is not None and action == "kill" and not rule.kill_after_bytes:
            self.dead = True
            self._note(req, "killed")
            _reset(conn)
            return False
        if action == "corrupt_request" and req.body:
            changed = bytearray(req.body)
            changed[len(changed) // 2] ^= 0xFF
            req = Request(req.method, req.target, req.headers, bytes(changed))
            self._note(req, "corrupted request")
        status, reason, headers, body = self._forward(req)
        if action == "lose":
            self._note(req, "lost")
            _reset(conn)
            return False
        if rule is not None and action == "delay":
            self._note(req, f"delayed {rule.delay}s")
            time.sleep(rule.delay)
        head = _head(status, reason, headers, len(body))
        if rule is not None and action == "truncate" and body:
            self._note(req, "truncated")
            conn.sendall(head + body[: int(len(body) * rule.keep)])
            _reset(conn)
            return False
        if rule is not None and action == "kill":
            self.dead = True
            self._note(req, "killed mid-response")
            conn.sendall(head + body[: rule.kill_after_bytes])
            _reset(conn)
            return False
        if action == "corrupt" and body:
            flipped = bytearray(body)
            flipped[len(flipped) // 2] ^= 0xFF
            body = bytes(flipped)
            self._note(req, "corrupted")
        elif rule is None:
            self._note(req, f"forwarded {status}")
        conn.sendall(head + body)
        return True

    def _forward(self, req: Request) -> tuple[int, str, list[tuple[str, str]], bytes]:
        up = urlsplit(self.upstream)
        client = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=120)
        try:
            client.putrequest(req.method, req.target, skip_host=True, skip_accept_encoding=True)
            for k, v in req.headers:
                if k.lower() in _HOP or k.lower() == "content-length":
                    continue
                client.putheader(k, v)
            if req.body or req.method in ("PUT", "POST"):
                client.putheader("Content-Length", str(len(req.body)))
            client.endheaders(req.body or None)
            resp = client.getresponse()
            body = resp.read()
            headers = [
                (k, v)
                for k, v in resp.getheaders()
                if k.lower() not in _HOP
                and (k.lower() != "content-length" or req.method == "HEAD")
            ]
            return resp.status, resp.reason, headers, body
        finally:
            client.close()


def _read_request(rf: BinaryIO, conn: socket.socket) -> Request | None:
    line = rf.readline(65537)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise ValueError(f"bad request line {line!r}")
    method, target, _version = parts
    headers: list[tuple[str, str]] = []
    while True:
        h = rf.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        name, _, value = h.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    req = Request(method, target, headers, b"")
    if (req.header("Expect") or "").lower() == "100-continue":
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        req.headers = [(k, v) for k, v in headers if k.lower() != "expect"]
    length = req.header("Content-Length")
    if (req.header("Transfer-Encoding") or "").lower() == "chunked":
        chunks = bytearray()
        while True:
            size = int(rf.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while rf.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks += rf.read(size)
            rf.readline()
        req.body = bytes(chunks)
    elif length:
        req.body = rf.read(int(length))
    return req


def _head(status: int, reason: str, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if not any(k.lower() == "content-length" for k, _ in headers):  # HEAD keeps its own
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _send_error(conn: socket.socket, status: int, code: str) -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>injected by the fault proxy</Message>"
        "<RequestId>fault-proxy</RequestId></Error>"
    ).encode()
    head = _head(
        status,
        _REASONS.get(status, "Error"),
        [("Content-Type", "application/xml"), ("Retry-After", "0")],
        len(body),
    )
    conn.sendall(head + body)


def _reset(conn: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a cut cable does."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass
