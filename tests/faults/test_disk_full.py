"""Disk full on the local store and on the staging area: a small tmpfs is mounted over
the folder (root only; skipped with the reason otherwise). The ingest stops with a
clear error (STO006 for the store), nothing half-written stays visible, and the same
ingest succeeds once the space is back (the tmpfs remounted bigger)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from preservation.catalog.models import Aip
from preservation.errors import StorageFull
from preservation.ingest.pipeline import IngestRequest, run_ingest
from preservation.repository import Repository, init_repository
from tests.faults.consistency import problems
from tests.support import transfers as tr

Mount = Callable[[Path, str], None]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


@pytest.fixture
def tmpfs() -> Iterator[Mount]:
    """``mount(dir, size)``: a tmpfs of ``size`` over ``dir``; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if folder in mounted:
            proc = _run("mount", "-o", f"remount,size={size}", str(folder))
        else:
            proc = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); needs root")
        if folder not in mounted:
            mounted.append(folder)

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    for folder in reversed(mounted):
        _run("umount", "-l", str(folder))


def transfer(tmp_path: Path, name: str, files: int, size: int) -> Path:
    return tr.write_files(
        tmp_path / "in" / name,
        {f"scan-{i:02}.bin": os.urandom(size) for i in range(files)},
    )


def aips(repo: Repository) -> int:
    with repo.catalog.session() as s:
        return len(s.execute(select(Aip.id)).all())


@pytest.mark.slow
def test_store_full_then_space_back(tmp_path: Path, tmpfs: Mount) -> None:
    repo = init_repository(tmp_path / "repo", organization="Test Archive")
    primary = repo.config.resolve(Path("stores/primary"))
    tmpfs(primary, "8m")
    small = transfer(tmp_path, "small", 2, 100_000)
    first = run_ingest(repo, IngestRequest(source=small, submitter="tester"))
    big = transfer(tmp_path, "big", 6, 2_000_000)  # 12 MB on an 8 MB store
    with pytest.raises(StorageFull) as err:
        run_ingest(repo, IngestRequest(source=big, submitter="tester"))
    assert err.value.code == "STO006" and err.value.exit_status == 5
    assert "no space left" in str(err.value) and "primary" in str(err.value)
    # the earlier AIP is intact, the refused one is nowhere (its staging may remain
    # until the next run, which cleans it up first)
    assert aips(repo) == 1
    assert [p for p in problems(repo) if not p.startswith(("[staging]", "[job]"))] == []

    tmpfs(primary, "64m")  # the space is back
    second = run_ingest(repo, IngestRequest(source=big, submitter="tester"))
    assert second.aip and first.aip and aips(repo) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), "replicate",
         "--pending"],
        capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert problems(repo) == []


def zipped_transfer(tmp_path: Path) -> Path:
    folder = transfer(tmp_path, "zipped", 4, 1_000_000)
    archive = tmp_path / "in" / "zipped.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f.name)
    return archive


def cli_ingest(repo: Repository, archive: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "preservation", "--repo", str(repo.root), "ingest",
         str(archive), "--no-replicate"],
        capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PRESERVATION_")},
    )  # fmt: skip


@pytest.mark.slow
def test_staging_full_then_space_back(tmp_path: Path, tmpfs: Mount) -> None:
    """A zip transfer is unpacked into the staging area (2 MB for 4 MB): the CLI stops
    with an error naming the archive and the full disk, nothing is stored; the same
    command succeeds with space back."""
    repo = init_repository(tmp_path / "repo", organization="Test Archive")
    tmpfs(repo.config.staging_dir, "2m")
    archive = zipped_transfer(tmp_path)
    full = cli_ingest(repo, archive)
    assert full.returncode != 0
    assert str(archive) in full.stderr and "No space left on device" in full.stderr
    assert aips(repo) == 0
    assert [p for p in problems(repo) if not p.startswith(("[staging]", "[job]"))] == []
    assert not any(repo.config.staging_dir.rglob("*.bin"))  # the partial unpack is gone

    tmpfs(repo.config.staging_dir, "64m")
    done = cli_ingest(repo, archive)
    assert done.returncode == 0, done.stderr
    assert aips(repo) == 1
    assert problems(repo) == []


def test_staging_full_is_a_storage_error(tmp_path: Path, tmpfs: Mount) -> None:
    repo = init_repository(tmp_path / "repo", organization="Test Archive")
    tmpfs(repo.config.staging_dir, "2m")
    full = cli_ingest(repo, zipped_transfer(tmp_path))
    assert full.returncode == 5 and full.stderr.startswith("STO006"), full.stderr
