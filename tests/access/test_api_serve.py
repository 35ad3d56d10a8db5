"""``preservation serve`` runs the app with uvicorn on the given host and port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.access.conftest import AccessEnv


@pytest.mark.slow
def test_serve_answers_on_loopback(access_env: AccessEnv) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "preservation", "--repo", str(access_env.repo.root), "serve",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/aips",
                    headers=access_env.headers("reader"),
                    timeout=2,
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.fail(f"serve did not start: {out}")
                time.sleep(0.2)
        assert r.status_code == 200
        assert {i["id"] for i in r.json()["items"]} == access_env.public
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
