"""Ingest over HTTP: uploads streamed to the staging area, and ingest jobs.

**Uploads.** ``POST /api/ingest/uploads`` is a ``multipart/form-data`` body with a
``transfer`` file part (a zip, tar or any single file the receive step accepts) and
optional ``metadata`` (the catalogue sheet, CSV or XLSX) and ``register`` parts. The
body is parsed as it arrives (:func:`receive_upload`) and every file part is written
straight to ``<staging>/uploads/<upload id>/<part>/<file name>``; memory holds one
chunk. The upload is refused with UploadTooLarge (HTTP 413, ING003) as soon as the
body passes the limit (or at once when ``Content-Length`` says it will), and its
folder is removed: nothing half-written stays.

**Jobs.** ``POST /api/ingest/jobs`` starts the existing pipeline
(:mod:`preservation.ingest.pipeline`) on an upload in a worker thread of the server
(one at a time: ingest is I/O- and CPU-heavy). The job is a journal row (``jobs``,
kind ``api-ingest``) holding the options, who started it, and at the end the receipt
or the error code and message; the pipeline's own ``ingest`` journal row does the
crash safety. A server that stops while a job runs leaves the row ``running``; the
next server start marks it failed (the pipeline's cleanup removes its leftovers).
The upload is deleted when the job ends; the report stays: in the AIP
(``metadata/report.json``/``.html``) when ingested, else (refused, dry run) under
``<staging>/api-jobs/<job id>/``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import unicodedata
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from preservation.access import accesslog
from preservation.access.principal import Principal
from preservation.errors import (
    IngestRefused,
    InputError,
    NotInCatalog,
    PreservationError,
    UploadTooLarge,
    UsageError,
)
from preservation.model import new_uuid, utcnow
from preservation.paths import path_problem
from preservation.repository import Repository

log = logging.getLogger(__name__)

JOB_KIND = "api-ingest"
UPLOAD_PARTS = ("transfer", "metadata", "register")
MAX_NAME_BYTES = 255


def uploads_dir(repo: Repository) -> Path:
    return repo.config.staging_dir / "uploads"


def reports_dir(repo: Repository, job_id: str) -> Path:
    return repo.config.staging_dir / "api-jobs" / job_id


def safe_file_name(raw: str, part: str) -> str:
    """The last component of a client's file name, NFC, checked (UnsafePath-like
    InputError otherwise); clients may send full paths (old browsers do)."""
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    problem = path_problem(name) if name else "empty file name"
    if problem or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InputError(
            f"upload part {part!r}: file name {raw!r} refused: {problem or 'too long'}"
        )
    return name


@dataclass
class Upload:
    id: str
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)  # part -> file
    sizes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "upload": self.id,
            "files": {p: {"name": f.name, "size": self.sizes[p]} for p, f in self.files.items()},
        }


class _Receiver:
    """Callbacks of the streaming multipart parser: each file part to its own file."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.header_field = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.out: IO[bytes] | None = None
        self.part: str | None = None
        self.error: PreservationError | None = None

    def on_part_begin(self) -> None:
        self.headers = {}
        self.part = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.lower()] = self.header_value
        self.header_field = self.header_value = b""

    def on_headers_finished(self) -> None:
        _kind, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if name not in UPLOAD_PARTS:
            raise UsageError(f"unexpected form part {name!r}: send {', '.join(UPLOAD_PARTS)}")
        if filename is None:
            raise UsageError(f"form part {name!r} must be a file")
        if name in self.upload.files:
            raise UsageError(f"form part {name!r} was sent twice")
        file_name = safe_file_name(filename.decode("utf-8", "replace"), name)
        target = self.upload.folder / name / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        self.out = target.open("xb")
        self.part = name
        self.upload.files[name] = target
        self.upload.sizes[name] = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        assert self.out is not None and self.part is not None
        self.out.write(data[start:end])
        self.upload.sizes[self.part] += end - start

    def on_part_end(self) -> None:
        if self.out is not None:
            self.out.flush()
            os.fsync(self.out.fileno())
            self.out.close()
            self.out = None

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None


async def receive_upload(
    repo: Repository,
    content_type: str | None,
    content_length: str | None,
    chunks: AsyncIterator[bytes],
    limit: int,
) -> Upload:
    """Stream a multipart body into a new upload folder; see the module doc."""
    kind, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UsageError("send the transfer as multipart/form-data with a 'transfer' file part")
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise UploadTooLarge(name="(request body)", limit=limit)
    upload_id = new_uuid()
    upload = Upload(id=upload_id, folder=uploads_dir(repo) / upload_id)
    upload.folder.mkdir(parents=True)
    receiver = _Receiver(upload)
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": receiver.on_part_begin,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
        },
    )
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise UploadTooLarge(name=upload.files.get("transfer", Path("?")).name, limit=limit)
            parser.write(chunk)
        parser.finalize()
        if "transfer" not in upload.files:
            raise UsageError("the upload has no 'transfer' file part")
        if receiver.out is not None:
            raise UsageError("the multipart body ended inside a part")
    except PreservationError:
        receiver.close()
        shutil.rmtree(upload.folder, ignore_errors=True)
        raise
    except Exception as e:  # the parser's own errors: a malformed body
        receiver.close()
        shutil.rmtree(upload.folder, ignore_errors=True)
        raise UsageError(f"malformed multipart body: {e}") from e
    except BaseException:  # the request cancelled (client gone, server stopping)
        receiver.close()
        shutil.rmtree(upload.folder, ignore_errors=True)
        raise
    (upload.folder / "upload.json").write_text(
        json.dumps({"id": upload.id, **upload.to_dict(), "at": utcnow().isoformat()}),
        encoding="utf-8",
    )
    return upload


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def find_upload(repo: Repository, upload_id: str) -> Upload:
    """A finished upload by id (NotInCatalog when unknown or already consumed).

    Only an upload's own id, a UUID, names one: a job's claimed folder
    (``<upload>.job-<job>``) holds an ``upload.json`` too and must not be started
    again while its job runs."""
    if not _is_uuid(upload_id) or path_problem(upload_id):
        raise NotInCatalog(kind="upload", ident=upload_id)
    folder = uploads_dir(repo) / upload_id
    meta = folder / "upload.json"
    if not meta.is_file():
        raise NotInCatalog(kind="upload", ident=upload_id)
    return find_upload_at(folder, upload_id)


@dataclass(frozen=True)
class IngestOptions:
    upload: str
    reference_code: str | None = None
    allow_duplicate: bool = False
    dry_run: bool = False
    replicate: bool = True


class IngestJobs:
    """Runs ingest jobs in one worker thread and keeps their journal rows."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._recovered = False

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-ingest")
            return self._pool

    def recover(self) -> None:
        """Mark jobs of dead server processes failed (once per app)."""
        from preservation import jobs as journal
        from preservation.catalog import queries as q

        if self._recovered:
            return
        self._recovered = True
        with self.repo.catalog.session() as s:
            for job in q.unfinished_jobs(s, JOB_KIND):
                if not journal.process_alive(job.get("host"), job.get("pid")):
                    q.set_job_state(s, job["id"], "failed", error="the server stopped")

    def start(self, options: IngestOptions, principal: Principal, client: str | None) -> str:
        from preservation.catalog import queries as q

        self.recover()
        upload = find_upload(self.repo, options.upload)
        job_id = new_uuid()
        # Claim the upload: a second job on the same upload finds nothing.
        claimed = upload.folder.with_name(f"{upload.id}.job-{job_id}")
        try:
            upload.folder.rename(claimed)
        except FileNotFoundError:
            raise NotInCatalog(kind="upload", ident=options.upload) from None
        upload = find_upload_at(claimed, upload.id)
        with self.repo.catalog.session() as s:
            q.start_job(
                s,
                JOB_KIND,
                {
                    "upload": upload.id,
                    "files": {p: f.name for p, f in upload.files.items()},
                    "reference_code": options.reference_code,
                    "allow_duplicate": options.allow_duplicate,
                    "dry_run": options.dry_run,
                    "replicate": options.replicate,
                    "user": principal.name,
                },
                job_id=job_id,
                host=socket.gethostname(),
                pid=os.getpid(),
            )
        self._executor().submit(self._run, job_id, upload, options, principal, client)
        return job_id

    def _run(
        self,
        job_id: str,
        upload: Upload,
        options: IngestOptions,
        principal: Principal,
        client: str | None,
    ) -> None:
        from preservation.catalog import queries as q
        from preservation.ingest.pipeline import IngestRequest, ingest_and_replicate, run_ingest

        request = IngestRequest(
            source=upload.files["transfer"],
            sheet=upload.files.get("metadata"),
            register=upload.files.get("register"),
            dry_run=options.dry_run,
            allow_duplicate=options.allow_duplicate,
            submitter=principal.name,
            reference_code=options.reference_code,
        )
        status = 0
        aip_id: str | None = None
        result: dict[str, Any] = {}
        error: str | None = None
        try:
            run = ingest_and_replicate if options.replicate and not options.dry_run else run_ingest
            receipt = run(self.repo, request)
            aip_id = receipt.aip
            result = {"receipt": receipt.to_dict()}
            if receipt.dry_run:
                result["report_dir"] = str(self._keep_local_report(job_id, receipt.report))
        except BaseException as exc:
            status = exc.exit_status if isinstance(exc, PreservationError) else 1
            error = exc.message if isinstance(exc, PreservationError) else repr(exc)
            result = {"code": str(getattr(exc, "code", "PRS000"))}
            if isinstance(exc, IngestRefused) and exc.report is not None:
                result["report_dir"] = str(self._write_report(job_id, exc.report))
            if not isinstance(exc, Exception):
                raise
            if not isinstance(exc, PreservationError):
                log.exception("ingest job %s failed", job_id)
        finally:
            shutil.rmtree(upload.folder, ignore_errors=True)
        try:
            with self.repo.catalog.session() as s:
                q.set_job_state(
                    s,
                    job_id,
                    "done" if status == 0 else "failed",
                    result=result,
                    error=error,
                    aip_id=aip_id,
                )
            accesslog.record(
                self.repo,
                action="ingest",
                status=status,
                principal=principal,
                aip_id=aip_id,
                client=client,
                restricted=aip_id is not None and not self._public(aip_id),
                detail={"job": job_id, "dry_run": options.dry_run, "error": error},
            )
        except PreservationError:
            log.exception("could not record the end of ingest job %s", job_id)

    def _public(self, aip_id: str) -> bool:
        from preservation.catalog.access_queries import aip_is_public

        with self.repo.catalog.session() as s:
            return bool(aip_is_public(s, aip_id))

    def _write_report(self, job_id: str, report: Any) -> Path:
        folder = reports_dir(self.repo, job_id)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "report.json").open("wb") as out:
            report.write_json(out)
        with (folder / "report.html").open("wb") as out:
            report.write_html(out)
        return folder

    def _keep_local_report(self, job_id: str, html_path: str) -> Path:
        """A dry run's report (written by the pipeline under staging/reports) copied
        beside the job."""
        folder = reports_dir(self.repo, job_id)
        folder.mkdir(parents=True, exist_ok=True)
        html = Path(html_path)
        for src, name in ((html, "report.html"), (html.with_suffix(".json"), "report.json")):
            if src.is_file():
                shutil.copyfile(src, folder / name)
        return folder

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def wait_idle(self) -> None:
        """Wait for the queued jobs to finish (tests, orderly shutdown)."""
        self.shutdown()


def find_upload_at(folder: Path, upload_id: str) -> Upload:
    upload = Upload(id=upload_id, folder=folder)
    for part in UPLOAD_PARTS:
        files = sorted((folder / part).glob("*")) if (folder / part).is_dir() else []
        if files:
            upload.files[part] = files[0]
            upload.sizes[part] = files[0].stat().st_size
    return upload
