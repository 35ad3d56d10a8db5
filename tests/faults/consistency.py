"""Do the catalogue and the stores agree? The check every crash test ends with.

:func:`problems` returns one line per disagreement (empty when all is well):

- every copy the catalogue calls ``verified``, and every file copy whose outcome is
  ``pass``, has its object on the store with the catalogue's size and SHA-256
  (objects are re-hashed: nothing is taken on trust); the only exception is known
  damage: a file copy an audit found ``fail``/``missing`` with an open incident;
- every version a store declares (``<aip>/v<N>/bagit.txt``) is in the catalogue with
  a verified copy on that store;
- every object on a store is a catalogued file of a version with a copy on that
  store, an event document (``<aip>/events/``), the tombstone of a deleted AIP or the
  quarantine of a repair; no object of a copy the catalogue calls ``deleted`` remains;
  ``.staging/`` is empty and no temporary file of a local store is left;
- no job is left unfinished and the event chain verifies.

Each line starts with its kind in brackets (``[bad-object]``, ``[undeclared]``,
``[declared-unverified]``, ``[no-declaration]``, ``[staging]``, ``[uncatalogued]``,
``[temporary]``, ``[job]``, ``[chain]``, ``[damage-without-incident]``,
``[deleted-present]``), so that a test
can allow what a kill may leave until the next run.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

from preservation.catalog import queries as q
from preservation.catalog.events import verify_chain
from preservation.catalog.models import AipVersion, Copy, File, FileCopy, Incident
from preservation.errors import ObjectNotFound
from preservation.repository import Repository
from preservation.storage.local import TMP_NAME, LocalStore

DECLARED = re.compile(r"^([0-9a-f-]{36})/v([0-9]+)/bagit\.txt$")
VERSION = re.compile(r"^([0-9a-f-]{36})/v([0-9]+)/")
TOMBSTONE = re.compile(r"^[0-9a-f-]{36}/tombstone\.json$")
ALLOWED_PREFIXES = ("quarantine/",)


def _sha256(repo: Repository, store: str, key: str) -> tuple[int, str] | None:
    try:
        with repo.store(store).open(key) as f:
            h = hashlib.sha256()
            n = 0
            while block := f.read(1 << 20):
                h.update(block)
                n += len(block)
    except ObjectNotFound:
        return None
    return n, h.hexdigest()


def problems(repo: Repository) -> list[str]:
    out: list[str] = []
    with repo.catalog.session() as s:
        files = s.execute(
            select(
                AipVersion.id, AipVersion.aip_id, File.id, File.path, File.size, File.sha256,
                File.origin_version,
            ).join(File, File.version_id == AipVersion.id)
        ).all()  # fmt: skip
        copies = s.execute(
            select(Copy.id, Copy.version_id, Copy.store_name, Copy.state, AipVersion.aip_id,
                   AipVersion.number).join(AipVersion, AipVersion.id == Copy.version_id)
        ).all()  # fmt: skip
        outcomes = {
            (store, fid): outcome
            for store, fid, outcome in s.execute(
                select(FileCopy.store_name, FileCopy.file_id, FileCopy.outcome)
            ).all()
        }
        open_incidents = set(
            s.execute(
                select(Incident.store_name, Incident.version_id, Incident.path).where(
                    Incident.state == "open"
                )
            ).all()
        )
        unfinished = q.unfinished_jobs(s)
        chain = verify_chain(s)
    by_version: dict[int, list[tuple[int, str, int, str, str]]] = defaultdict(list)
    for vid, aip, fid, path, size, sha, origin in files:
        by_version[vid].append((fid, f"{aip}/v{origin}/{path}", size, sha, path))

    expected: dict[str, set[str]] = defaultdict(set)  # store -> keys it may hold
    verified_versions: dict[str, set[tuple[str, int]]] = defaultdict(set)
    to_check: dict[tuple[str, str], tuple[int, str, str]] = {}
    gone: dict[str, set[str]] = defaultdict(set)  # store -> keys of deleted copies
    for _cid, vid, where, state, aip, number in copies:
        if state == "deleted":
            gone[where] |= {key for _, key, *_ in by_version[vid]}
            continue
        for fid, key, size, sha, why in by_version[vid]:
            expected[where].add(key)
            outcome = outcomes.get((where, fid))
            if outcome in ("fail", "missing"):
                if (where, vid, why) not in open_incidents:
                    out.append(f"[damage-without-incident] {where}: {key} is {outcome}")
            elif state == "verified" or outcome == "pass":
                to_check[(where, key)] = (size, sha, f"{state} copy, file {why}")
        if state == "verified":
            verified_versions[where].add((aip, number))
    for (name, key), (size, sha, why) in sorted(to_check.items()):
        got = _sha256(repo, name, key)
        if got is None:
            kind = "no-declaration" if key.endswith("/bagit.txt") else "bad-object"
            out.append(f"[{kind}] {name}: {key} missing ({why})")
        elif got != (size, sha):
            out.append(f"[bad-object] {name}: {key} is {got}, catalogue says {(size, sha)} ({why})")

    for store_name in repo.config.settings.stores:
        store = repo.store(store_name)
        keys = [info.key for info in store.list("")]
        declared = {m.group(1, 2) for k in keys if (m := DECLARED.match(k))}
        for key in keys:
            m = DECLARED.match(key)
            if m and (m.group(1), int(m.group(2))) not in verified_versions[store_name]:
                out.append(
                    f"[declared-unverified] {store_name}: {key} declares a version without"
                    " a verified copy"
                )
            version = VERSION.match(key)
            if key.startswith(".staging/"):
                out.append(f"[staging] {store_name}: {key}")
            elif "/events/" in key or key.startswith(ALLOWED_PREFIXES):
                continue
            elif key in gone[store_name]:
                out.append(f"[deleted-present] {store_name}: {key} of a deleted copy")
            elif TOMBSTONE.match(key):
                continue
            elif key not in expected[store_name]:
                kind = (
                    "undeclared"
                    if version and version.group(1, 2) not in declared
                    else "uncatalogued"
                )
                out.append(f"[{kind}] {store_name}: {key} is not in the catalogue")
        if isinstance(store, LocalStore):
            out += [
                f"[temporary] {store_name}: {p}"
                for p in Path(store.root).rglob("*")
                if TMP_NAME.match(p.name)
            ]
    out += [f"[job] {j['id']} ({j['kind']}) left {j['state']}" for j in unfinished]
    if not chain.ok:
        out.append(f"[chain] event chain broken: {chain.to_dict()}")
    return out
