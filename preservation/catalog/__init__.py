"""preservation.catalog: the catalogue (SQLAlchemy models, Alembic migrations, queries).

Only this package speaks SQL. Open a :class:`Catalog` and use its ``session()``;
pass the session to the helpers re-exported here.
"""

from preservation.catalog.db import (
    Catalog,
    current_revision,
    head_revision,
    make_engine,
    normalise_url,
    upgrade,
)
from preservation.catalog.events import (
    ChainBreak,
    ChainReport,
    append_event,
    canonical_event_bytes,
    upsert_agent,
    verify_chain,
)
from preservation.catalog.models import sync_stores
from preservation.catalog.queries import (
    DueFile,
    add_copy,
    add_files_batched,
    aip_summary,
    due_file_copies,
    find_aip_by_payload_key,
    get_aip,
    get_job,
    get_version,
    job_dict,
    require_aip,
    set_job_state,
    start_job,
    unfinished_jobs,
)
from preservation.catalog.record import record_ingest

__all__ = [
    "Catalog",
    "ChainBreak",
    "ChainReport",
    "DueFile",
    "add_copy",
    "add_files_batched",
    "aip_summary",
    "append_event",
    "canonical_event_bytes",
    "current_revision",
    "due_file_copies",
    "find_aip_by_payload_key",
    "get_aip",
    "get_job",
    "get_version",
    "head_revision",
    "job_dict",
    "make_engine",
    "normalise_url",
    "record_ingest",
    "require_aip",
    "set_job_state",
    "start_job",
    "sync_stores",
    "unfinished_jobs",
    "upgrade",
    "upsert_agent",
    "verify_chain",
]
