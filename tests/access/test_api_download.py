"""File download: path tricks, verification on the fly, a broken transfer on a bad
copy (through a real uvicorn server), and the incident it opens."""

from __future__ import annotations

import hashlib
import io
import zipfile

import httpx
import pytest
from fastapi.testclient import TestClient

from preservation.access.app import create_app
from preservation.ingest.pipeline import IngestRequest, run_ingest
from tests.access.conftest import AccessEnv, live_server
from tests.support import transfers as tr


def test_download_is_the_stored_file(client: TestClient, access_env: AccessEnv) -> None:
    aip = access_env.aips["open-a"]
    r = client.get(f"/api/aips/{aip}/files/data/doc-001.txt", headers=access_env.headers("reader"))
    assert r.status_code == 200
    assert r.content == tr.content(1, 64)
    assert r.headers["x-content-sha256"] == hashlib.sha256(r.content).hexdigest()
    assert r.headers["content-length"] == "64"
    mets = client.get(
        f"/api/aips/{aip}/files/metadata/mets.xml", headers=access_env.headers("reader")
    )
    assert mets.status_code == 200 and b"<mets:mets" in mets.content


@pytest.mark.parametrize(
    "path",
    [
        "data/../../../etc/passwd",
        "data/%2e%2e/%2e%2e/preservation.toml",
        "data%2F..%2F..%2Fpreservation.toml",
        "..%2F..%2Fcatalog.sqlite",
        "%2Fetc%2Fpasswd",
        "data//doc-001.txt",
        "data/doc-001.txt%00.pdf",
        "data\\..\\..\\preservation.toml",
        "data/nothing-here.txt",
    ],
)
def test_path_tricks_never_escape_the_bag(
    client: TestClient, access_env: AccessEnv, path: str
) -> None:
    aip = access_env.aips["open-a"]
    r = client.get(f"/api/aips/{aip}/files/{path}", headers=access_env.headers("admin"))
    assert r.status_code in (404, 422), (path, r.status_code)
    assert r.json()["error"]["code"] in ("PTH001", "CAT002")
    assert b"[repository]" not in r.content and b"root:" not in r.content


def test_encoded_slashes_reach_the_same_checked_path(
    client: TestClient, access_env: AccessEnv
) -> None:
    aip = access_env.aips["open-a"]
    r = client.get(
        f"/api/aips/{aip}/files/data%2Fsub%2Fdoc-002.txt", headers=access_env.headers("reader")
    )
    assert r.status_code == 200
    assert r.content == tr.content(2, 64)


def test_unknown_store_or_version(client: TestClient, access_env: AccessEnv) -> None:
    aip = access_env.aips["open-a"]
    h = access_env.headers("admin")
    for suffix in ("files/data/doc-001.txt", "export"):
        r = client.get(f"/api/aips/{aip}/{suffix}?store=nowhere", headers=h)
        assert r.status_code == 400 and r.json()["error"]["code"].startswith("CFG")
        r = client.get(f"/api/aips/{aip}/{suffix}?version=7", headers=h)
        assert r.status_code == 404 and r.json()["error"]["code"] == "CAT002"
    r = client.get(f"/api/aips/{aip}/files/data/doc-001.txt?store=offsite", headers=h)
    assert r.status_code == 400, r.text  # the replica copy is still pending
    r = client.get(f"/api/aips/{aip}/files/data/doc-001.txt?store=primary", headers=h)
    assert r.status_code == 200 and r.content == tr.content(1, 64)


def test_export_zip_is_a_complete_bag(client: TestClient, access_env: AccessEnv) -> None:
    aip = access_env.aips["open-b"]
    r = client.get(f"/api/aips/{aip}/export?format=zip", headers=access_env.headers("reader"))
    assert r.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert any(n.endswith("bagit.txt") for n in names)
    assert any(n.endswith("data/doc-001.txt") for n in names)
    bad = client.get(f"/api/aips/{aip}/export?format=rar", headers=access_env.headers("reader"))
    assert bad.status_code == 422


def _flip(path: pytest.TempPathFactory | object, offset: int) -> None:
    from pathlib import Path

    p = Path(str(path))
    p.chmod(0o644)
    data = bytearray(p.read_bytes())
    data[offset] ^= 0xFF
    p.write_bytes(bytes(data))


@pytest.mark.slow
def test_bad_copy_breaks_the_transfer_and_opens_an_incident(
    fresh_env: AccessEnv, tmp_path: object
) -> None:
    from pathlib import Path

    repo = fresh_env.repo
    size = 3 * 1024 * 1024 + 17
    folder = tr.write_files(Path(str(tmp_path)) / "big", {"big.bin": tr.content(7, size)})
    receipt = run_ingest(repo, IngestRequest(source=folder, submitter="tester"))
    aip = receipt.aip
    assert aip is not None
    primary = repo.primary
    _flip(primary.root / aip / "v1" / "data" / "big.bin", size - 5)  # type: ignore[attr-defined]

    app = create_app(repo)
    with live_server(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        headers = fresh_env.headers("admin")
        received = 0
        url = f"/api/aips/{aip}/files/data/big.bin"
        with (
            pytest.raises(httpx.RemoteProtocolError),
            http.stream("GET", url, headers=headers) as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-length"] == str(size)
            for chunk in r.iter_bytes():
                received += len(chunk)
        assert 0 < received < size  # a broken transfer, never the whole (bad) file
        incidents = http.get("/api/incidents", headers=headers).json()
        assert [(i["aip_id"], i["kind"]) for i in incidents] == [(aip, "mismatch")]
