"""Ingest over HTTP: streamed upload, size limit, job, status, report."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from preservation.access.ingest_jobs import uploads_dir
from tests.access.conftest import AccessEnv
from tests.support import transfers as tr


def _transfer(tmp_path: Path, *, security: str = "公开", n: int = 9) -> tuple[Path, Path]:
    folder = tr.make_folder_transfer(tmp_path / "t", "UP01", n=2, size=300 + n)
    rows = [
        tr.sheet_row(i, path=p, reference_code=tr.item_code(i, fonds="Z777"), fonds="Z777",
                     security_level=security)
        for i, p in ((1, "doc-001.txt"), (2, "sub/doc-002.txt"))
    ]  # fmt: skip
    sheet = tr.write_csv_sheet(tmp_path / "sheet.csv", rows)
    return tr.zip_folder(folder, tmp_path / "UP01.zip"), sheet


def _upload(client: TestClient, env: AccessEnv, zipped: Path, sheet: Path | None) -> dict:  # type: ignore[type-arg]
    files = {"transfer": (zipped.name, zipped.read_bytes(), "application/zip")}
    if sheet is not None:
        files["metadata"] = (sheet.name, sheet.read_bytes(), "text/csv")
    r = client.post("/api/ingest/uploads", files=files, headers=env.headers("archivist"))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_upload_ingest_status_and_report(
    fresh_client: TestClient, fresh_env: AccessEnv, tmp_path: Path
) -> None:
    zipped, sheet = _transfer(tmp_path)
    up = _upload(fresh_client, fresh_env, zipped, sheet)
    assert up["files"]["transfer"] == {"name": "UP01.zip", "size": zipped.stat().st_size}
    h = fresh_env.headers("archivist")
    r = fresh_client.post("/api/ingest/jobs", json={"upload": up["upload"]}, headers=h)
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    fresh_client.app.state.ingest_jobs.wait_idle()  # type: ignore[attr-defined]
    status = fresh_client.get(f"/api/ingest/jobs/{job}", headers=h).json()
    assert status["state"] == "done", status
    aip = status["aip_id"]
    assert status["result"]["receipt"]["aip"] == aip
    assert status["result"]["receipt"]["replication"]["verified"] == 1
    report = fresh_client.get(f"/api/ingest/jobs/{job}/report", headers=h)
    assert report.status_code == 200 and report.json()
    html = fresh_client.get(f"/api/ingest/jobs/{job}/report?format=html", headers=h)
    assert html.status_code == 200 and "<html" in html.text.lower()
    # values from the transfer are in it: sandboxed, never sniffed
    assert "sandbox" in html.headers["content-security-policy"]
    assert html.headers["x-content-type-options"] == "nosniff"
    # the upload is consumed; a second job on it finds nothing
    again = fresh_client.post("/api/ingest/jobs", json={"upload": up["upload"]}, headers=h)
    assert again.status_code == 404
    assert not any(uploads_dir(fresh_env.repo).iterdir())
    # the new AIP is public and the readers see it
    ids = {
        i["id"]
        for i in fresh_client.get("/api/aips", headers=fresh_env.headers("reader")).json()["items"]
    }
    assert aip in ids
    # readers cannot follow ingest jobs
    assert (
        fresh_client.get(f"/api/ingest/jobs/{job}", headers=fresh_env.headers("reader")).status_code
        == 403
    )
    # the ingest is in the access log
    import datetime as dt

    from preservation.access.accesslog import review
    from preservation.model import utcnow

    summary = review(fresh_env.repo, utcnow() - dt.timedelta(hours=1))
    assert summary["by_user"]["archivist-user"].get("ingest") == 1


def test_refused_ingest_keeps_its_report(
    fresh_client: TestClient, fresh_env: AccessEnv, tmp_path: Path
) -> None:
    zipped, sheet = _transfer(tmp_path, n=11)
    sheet.write_bytes(sheet.read_bytes().replace(b"doc-001.txt", b"missing.txt"))
    up = _upload(fresh_client, fresh_env, zipped, sheet)
    h = fresh_env.headers("admin")
    job = fresh_client.post("/api/ingest/jobs", json={"upload": up["upload"]}, headers=h).json()[
        "job"
    ]
    fresh_client.app.state.ingest_jobs.wait_idle()  # type: ignore[attr-defined]
    status = fresh_client.get(f"/api/ingest/jobs/{job}", headers=h).json()
    assert status["state"] == "failed"
    assert status["result"]["code"] == "ING001"
    report = fresh_client.get(f"/api/ingest/jobs/{job}/report", headers=h)
    assert report.status_code == 200
    assert "missing.txt" in report.text
    html = fresh_client.get(f"/api/ingest/jobs/{job}/report?format=html", headers=h)
    assert html.status_code == 200 and "missing.txt" in html.text
    assert "sandbox" in html.headers["content-security-policy"]
    assert html.headers["x-content-type-options"] == "nosniff"


def test_oversized_upload_is_413_and_leaves_nothing(
    fresh_client: TestClient, fresh_env: AccessEnv
) -> None:
    h = fresh_env.headers("archivist")
    big = b"x" * (300 * 1024)  # the fixture's limit is 256 KiB
    r = fresh_client.post("/api/ingest/uploads", files={"transfer": ("big.zip", big)}, headers=h)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "ING003"
    # also when the body is streamed without a Content-Length
    boundary = "b0undary"

    def body():  # type: ignore[no-untyped-def]
        yield (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="transfer"; filename="b.zip"\r\n\r\n'
        ).encode()
        for _ in range(40):
            yield b"y" * 8192
        yield f"\r\n--{boundary}--\r\n".encode()

    r = fresh_client.post(
        "/api/ingest/uploads",
        content=body(),
        headers={**h, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 413
    folder = uploads_dir(fresh_env.repo)
    assert not folder.exists() or not any(folder.iterdir())


def test_bad_uploads(fresh_client: TestClient, fresh_env: AccessEnv) -> None:
    h = fresh_env.headers("archivist")
    cases = [
        {"metadata": ("s.csv", b"a,b")},  # no transfer part
        {"transfer": ("../../evil.zip", b"x")},  # a path in the file name: last part kept
        {"other": ("x.zip", b"x")},
    ]
    statuses = [
        fresh_client.post("/api/ingest/uploads", files=f, headers=h).status_code for f in cases
    ]
    assert statuses == [400, 201, 400]
    evil = [p for p in fresh_env.repo.root.rglob("evil.zip")]
    assert evil and all(uploads_dir(fresh_env.repo) in p.parents for p in evil)
    r = fresh_client.post(
        "/api/ingest/uploads", content=b"plain", headers={**h, "Content-Type": "text/plain"}
    )
    assert r.status_code == 400


def test_reading_a_restricted_ingest_is_logged(
    fresh_client: TestClient, fresh_env: AccessEnv, tmp_path: Path
) -> None:
    import datetime as dt

    from preservation.access.accesslog import review
    from preservation.model import utcnow

    start = utcnow() - dt.timedelta(seconds=1)
    zipped, sheet = _transfer(tmp_path, security="秘密", n=13)
    up = _upload(fresh_client, fresh_env, zipped, sheet)
    h = fresh_env.headers("archivist")
    job = fresh_client.post(
        "/api/ingest/jobs", json={"upload": up["upload"], "replicate": False}, headers=h
    ).json()["job"]
    fresh_client.app.state.ingest_jobs.wait_idle()  # type: ignore[attr-defined]
    a = fresh_env.headers("auditor")
    status = fresh_client.get(f"/api/ingest/jobs/{job}", headers=a).json()
    assert status["state"] == "done", status
    aip = status["aip_id"]
    assert fresh_client.get(f"/api/ingest/jobs/{job}/report", headers=a).status_code == 200
    reads = review(fresh_env.repo, start)["restricted_reads"]["auditor-user"]
    assert reads["aips"] == {aip: 2}
