"""Shared fixtures of the access tests (REST API, sign-in, dashboard, metrics).

``access_env`` (session scope, read-only: do not change it in a test) is a repository
with five ingested AIPs, two public and three restricted, and one enabled user of
each role plus a disabled one, each with its token; ``client`` is a TestClient of
the app built on it. Tests that change data use ``fresh_env`` (function scope: its
own repository with one restricted AIP, "secret").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from preservation.access.app import create_app
from preservation.access.auth import add_user, disable_user
from preservation.access.principal import Role
from preservation.config import CONFIG_NAME
from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import Repository, init_repository, open_repository, upgrade_catalog
from tests.support import transfers as tr

ROLES = tuple(r.value for r in Role)


@dataclass
class AipSpec:
    key: str
    fonds: str
    year: str
    security_level: str | None
    open_status: str | None
    public: bool


# key -> (fonds, year, 密级, 开放状态, public?)
SPECS = (
    AipSpec("open-a", "Z109", "2011", "公开", "开放", True),
    AipSpec("open-b", "Z200", "2015", "非密", "开放", True),
    AipSpec("secret", "Z109", "2012", "秘密", "不开放", False),
    AipSpec("controlled", "Z300", "2013", "公开", "控制", False),
    AipSpec("internal", "Z400", "2014", "内部", "开放", False),
)


@dataclass
class AccessEnv:
    repo: Repository
    tokens: dict[str, str]  # role (and 'disabled') -> token
    aips: dict[str, str]  # spec key -> AIP id
    public: set[str] = field(default_factory=set)  # AIP ids
    restricted: set[str] = field(default_factory=set)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def visible_to(self, role: str) -> set[str]:
        return self.public if role == Role.READER else self.public | self.restricted


def ingest_spec(repo: Repository, work: Path, spec: AipSpec, n: int) -> str:
    """Ingest a two-file transfer described by ``spec`` (``n`` makes it unique)."""
    folder = tr.make_folder_transfer(work / f"in-{spec.key}", f"T-{spec.key}", n=2, size=64 + n)
    overrides: dict[str, str] = {"fonds": spec.fonds, "year": spec.year}
    if spec.security_level is not None:
        overrides["security_level"] = spec.security_level
    else:
        overrides["security_level"] = ""
    overrides["open_status"] = spec.open_status or ""
    rows = [
        tr.sheet_row(
            i,
            path=p,
            reference_code=tr.item_code(i, fonds=spec.fonds, year=spec.year),
            date=f"{spec.year}03{i:02d}",
            **overrides,
        )
        for i, p in ((1, "doc-001.txt"), (2, "sub/doc-002.txt"))
    ]
    sheet = tr.write_csv_sheet(work / f"sheet-{spec.key}.csv", rows)
    receipt = run_ingest(repo, IngestRequest(source=folder, sheet=sheet, submitter="tester"))
    assert receipt.aip is not None, receipt
    return receipt.aip


def make_users(repo: Repository) -> dict[str, str]:
    tokens = {role: add_user(repo, f"{role}-user", role)[1] for role in ROLES}
    tokens["disabled"] = add_user(repo, "gone-user", "admin")[1]
    disable_user(repo, "gone-user")
    return tokens


def build_env(root: Path, specs: tuple[AipSpec, ...], catalog_url: str | None = None) -> AccessEnv:
    """A repository with ``specs`` ingested and the users; on the SQLite default, or
    on the (empty) database ``catalog_url``."""
    repo = init_repository(root / "repo", organization="Test Archive")
    if catalog_url is not None:
        toml = repo.root / CONFIG_NAME
        text = toml.read_text(encoding="utf-8")
        assert text.count('url = "sqlite:///catalog.sqlite"') == 1
        toml.write_text(text.replace("sqlite:///catalog.sqlite", catalog_url), encoding="utf-8")
        repo = open_repository(repo.root)
        upgrade_catalog(repo)
    env = AccessEnv(repo=repo, tokens=make_users(repo), aips={})
    for n, spec in enumerate(specs):
        aip = ingest_spec(repo, root / "work", spec, n)
        env.aips[spec.key] = aip
        (env.public if spec.public else env.restricted).add(aip)
    return env


@pytest.fixture(scope="session")
def access_env(tmp_path_factory: pytest.TempPathFactory) -> AccessEnv:
    return build_env(tmp_path_factory.mktemp("access"), SPECS)


@pytest.fixture(scope="session")
def access_app(access_env: AccessEnv) -> FastAPI:
    return create_app(access_env.repo)


@pytest.fixture
def client(access_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(access_app) as c:
        yield c


@pytest.fixture
def fresh_env(tmp_path: Path) -> AccessEnv:
    return build_env(tmp_path, (SPECS[2],))


@pytest.fixture
def fresh_client(fresh_env: AccessEnv) -> Iterator[TestClient]:
    with TestClient(create_app(fresh_env.repo, max_upload_bytes=256 * 1024)) as c:
        yield c


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
