"""Small builders of catalogue rows for the tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session

from preservation.catalog.models import Aip, AipVersion, StoreRow
from preservation.model import new_uuid


def add_store(
    session: Session, name: str = "primary", site: str = "site-a", role: str = "primary"
) -> StoreRow:
    row = StoreRow(name=name, site=site, role=role, kind="local", cold=False)
    session.add(row)
    session.flush()
    return row


def add_aip(
    session: Session,
    *,
    reference_code: str | None = "Z109-WS·2011-Y-BGS-0001",
    payload_key: str | None = None,
    state: str = "active",
) -> tuple[Aip, AipVersion]:
    aip = Aip(
        id=new_uuid(),
        reference_code=reference_code,
        title="关于档案工作的通知",
        transfer_name="transfer-1",
        fonds="Z109",
        year=2011,
        retention="Y",
        state=state,
        current_version=1,
        payload_key=payload_key,
    )
    session.add(aip)
    session.flush()
    version = AipVersion(aip_id=aip.id, number=1, reason="ingest", descriptive={"fonds": "Z109"})
    session.add(version)
    session.flush()
    return aip, version


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_rows(n: int, prefix: str = "data/docs") -> Iterator[dict[str, Any]]:
    """``n`` payload rows, generated lazily."""
    for i in range(n):
        path = f"{prefix}/{i:06d}.pdf"
        yield {
            "path": path,
            "kind": "payload",
            "size": i,
            "sha256": sha256_hex(path),
            "puid": "fmt/354",
            "mime": "application/pdf",
            "file_uuid": new_uuid(),
        }
