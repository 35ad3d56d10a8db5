"""Queries of the access layer (REST API, dashboard, CLI user commands).

Three groups: users and browser sessions; the access log; and what a principal may
read of the AIPs (search, detail, one file). Every AIP query takes ``sees_restricted``
and adds :func:`preservation.catalog.visibility.aip_visible`, so a reader never gets
a row, a count or a file of a record that is not public. Search values are bound
parameters; ``LIKE`` patterns escape ``%``, ``_`` and the escape character itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from preservation.catalog.access_models import AccessLogEntry, UserSession
from preservation.catalog.models import Aip, AipVersion, Copy, EventRow, File, Job, User
from preservation.catalog.queries import aip_summary
from preservation.catalog.visibility import aip_visible
from preservation.errors import UnknownUser
from preservation.model import utcnow

# --- users ------------------------------------------------------------------------


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: str
    disabled: bool
    created_at: dt.datetime
    token_created_at: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
            "token_created_at": _iso(self.token_created_at),
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _info(u: User) -> UserInfo:
    return UserInfo(u.id, u.name, u.role, bool(u.disabled), u.created_at, u.token_created_at)


def add_user(session: Session, name: str, role: str, token_hash: str) -> UserInfo:
    """A new user holding the token whose hash is given (CatalogConflict if the
    name is taken: the unique constraint decides, safely under concurrency)."""
    now = utcnow()
    user = User(
        name=name,
        role=role,
        token_hash=token_hash,
        created_at=now,
        token_created_at=now,
        disabled=False,
    )
    session.add(user)
    session.flush()
    return _info(user)


def _require_user(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise UnknownUser(name=name)
    return user


def get_user(session: Session, name: str) -> UserInfo | None:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    return _info(user) if user is not None else None


def list_users(session: Session) -> list[UserInfo]:
    return [_info(u) for u in session.execute(select(User).order_by(User.name)).scalars()]


def set_user_token(session: Session, name: str, token_hash: str) -> UserInfo:
    """Replace a user's token; the old token and every browser session end."""
    user = _require_user(session, name)
    user.token_hash = token_hash
    user.token_created_at = utcnow()
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.flush()
    return _info(user)


def set_user_disabled(session: Session, name: str, disabled: bool = True) -> UserInfo:
    """Disable (or enable) a user; disabling ends every browser session."""
    user = _require_user(session, name)
    user.disabled = disabled
    if disabled:
        session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.flush()
    return _info(user)


def user_by_token_hash(session: Session, token_hash: str) -> UserInfo | None:
    """The enabled user holding this token, or None."""
    user = session.execute(
        select(User).where(User.token_hash == token_hash, User.disabled.is_(False))
    ).scalar_one_or_none()
    return _info(user) if user is not None else None


def add_session(
    session: Session, token_hash: str, user_id: int, expires_at: dt.datetime, client: str | None
) -> None:
    session.add(
        UserSession(
            token_hash=token_hash,
            user_id=user_id,
            created_at=utcnow(),
            expires_at=expires_at,
            client=client,
        )
    )
    session.flush()


def user_by_session(session: Session, token_hash: str, now: dt.datetime) -> UserInfo | None:
    """The enabled user of an unexpired browser session, or None."""
    user = session.execute(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            UserSession.token_hash == token_hash,
            UserSession.expires_at > now,
            User.disabled.is_(False),
        )
    ).scalar_one_or_none()
    return _info(user) if user is not None else None


def delete_session(session: Session, token_hash: str) -> None:
    session.execute(delete(UserSession).where(UserSession.token_hash == token_hash))


def delete_expired_sessions(session: Session, now: dt.datetime) -> int:
    result = session.execute(delete(UserSession).where(UserSession.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)


# --- access log -------------------------------------------------------------------


def add_access(
    session: Session,
    *,
    action: str,
    status: int,
    user_name: str | None = None,
    role: str | None = None,
    aip_id: str | None = None,
    path: str | None = None,
    client: str | None = None,
    restricted: bool = False,
    detail: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> None:
    session.add(
        AccessLogEntry(
            at=at or utcnow(),
            user_name=user_name,
            role=role,
            action=action,
            aip_id=aip_id,
            path=path,
            client=client,
            status=status,
            restricted=restricted,
            detail=dict(detail) if detail is not None else None,
        )
    )
    session.flush()


def access_entries(
    session: Session, since: dt.datetime, until: dt.datetime | None = None, batch: int = 2000
) -> Iterator[dict[str, Any]]:
    """Access-log rows from ``since`` (inclusive) to ``until`` (exclusive), oldest
    first, streamed in batches."""
    q = select(AccessLogEntry).where(AccessLogEntry.at >= since)
    if until is not None:
        q = q.where(AccessLogEntry.at < until)
    q = q.order_by(AccessLogEntry.at, AccessLogEntry.id).execution_options(yield_per=batch)
    for e in session.execute(q).scalars():
        yield {
            "id": e.id,
            "at": e.at,
            "user_name": e.user_name,
            "role": e.role,
            "action": e.action,
            "aip_id": e.aip_id,
            "path": e.path,
            "client": e.client,
            "status": e.status,
            "restricted": bool(e.restricted),
            "detail": e.detail,
        }


# --- AIPs as a principal sees them ------------------------------------------------


MAX_PAGE = 200


@dataclass
class AipFilter:
    """Search criteria; every field optional, all given ones must hold."""

    q: str | None = None  # in the reference code or the title
    reference_code: str | None = None  # contains
    title: str | None = None  # contains
    creator: str | None = None  # contains (the AIP-level 责任者)
    fonds: str | None = None  # equals
    year: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    puid: str | None = None  # a payload file of the current version has this PUID
    security_level: str | None = None  # equals
    open_status: str | None = None  # equals
    include_deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards escaped (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    return column.like(like_pattern(text), escape="\\")  # type: ignore[no-any-return]


def _conditions(f: AipFilter, sees_restricted: bool) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = [aip_visible(sees_restricted)]
    if not f.include_deleted:
        cond.append(Aip.state == "active")
    if f.q:
        cond.append(or_(_contains(Aip.reference_code, f.q), _contains(Aip.title, f.q)))
    if f.reference_code:
        cond.append(_contains(Aip.reference_code, f.reference_code))
    if f.title:
        cond.append(_contains(Aip.title, f.title))
    descriptive = AipVersion.descriptive
    if f.creator:
        cond.append(_contains(descriptive["creator"].as_string(), f.creator))
    if f.fonds:
        cond.append(Aip.fonds == f.fonds)
    if f.year is not None:
        cond.append(Aip.year == f.year)
    if f.date_from is not None or f.date_to is not None:
        # The AIP's span of 日期 (descriptive 'date_from'/'date_to', ISO, set at
        # ingest) must overlap the range. Without one (AIPs ingested before the span
        # was kept): its 'date' (YYYY-MM-DD or YYYYMMDD), else its year within the
        # range's years.
        lo = f.date_from or dt.date.min
        hi = f.date_to or dt.date.max
        span_from = descriptive["date_from"].as_string()
        span_to = descriptive["date_to"].as_string()
        has_span = func.coalesce(span_from, "") != ""
        by_span = (span_from <= hi.isoformat()) & (span_to >= lo.isoformat())
        date_text = func.replace(descriptive["date"].as_string(), "-", "")
        by_date = date_text.between(lo.strftime("%Y%m%d"), hi.strftime("%Y%m%d"))
        by_year = Aip.year.between(lo.year, hi.year)
        cond.append(
            or_(
                has_span & by_span,
                ~has_span & descriptive["date"].as_string().is_not(None) & by_date,
                ~has_span & descriptive["date"].as_string().is_(None) & by_year,
            )
        )
    if f.puid:
        cond.append(
            exists().where(
                File.version_id == AipVersion.id, File.kind == "payload", File.puid == f.puid
            )
        )
    if f.security_level:
        cond.append(Aip.security_level == f.security_level)
    if f.open_status:
        cond.append(Aip.open_status == f.open_status)
    return cond


def _current_join() -> ColumnElement[bool]:
    return (AipVersion.aip_id == Aip.id) & (AipVersion.number == Aip.current_version)


def search_aips(
    session: Session,
    f: AipFilter,
    *,
    sees_restricted: bool,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page of AIPs newest first) for a principal."""
    limit = max(1, min(limit, MAX_PAGE))
    offset = max(0, offset)
    cond = _conditions(f, sees_restricted)
    total = session.execute(
        select(func.count()).select_from(Aip).join(AipVersion, _current_join()).where(*cond)
    ).scalar_one()
    rows = session.execute(
        select(
            Aip.id,
            Aip.reference_code,
            Aip.title,
            Aip.fonds,
            Aip.year,
            Aip.security_level,
            Aip.open_status,
            Aip.public,
            Aip.state,
            Aip.current_version,
            Aip.created_at,
            AipVersion.file_count,
            AipVersion.byte_count,
        )
        .join(AipVersion, _current_join())
        .where(*cond)
        .order_by(Aip.created_at.desc(), Aip.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return int(total), [
        {
            "id": r.id,
            "reference_code": r.reference_code,
            "title": r.title,
            "fonds": r.fonds,
            "year": r.year,
            "security_level": r.security_level,
            "open_status": r.open_status,
            "public": bool(r.public),
            "state": r.state,
            "version": r.current_version,
            "created_at": _iso(r.created_at),
            "files": r.file_count,
            "bytes": r.byte_count,
        }
        for r in rows
    ]


def visible_aip(session: Session, aip_id: str, *, sees_restricted: bool) -> Aip | None:
    """The AIP if the principal may see it (any state), else None: a reader cannot
    tell a restricted AIP from one that does not exist."""
    return session.execute(
        select(Aip).where(Aip.id == aip_id, aip_visible(sees_restricted))
    ).scalar_one_or_none()


def aip_detail(
    session: Session,
    aip_id: str,
    *,
    sees_restricted: bool,
    file_limit: int = 1000,
    event_limit: int = 1000,
) -> dict[str, Any] | None:
    """``aip show``'s data plus ``public``, or None when not visible; at most
    ``file_limit`` files and the newest ``event_limit`` events (both bounded: an
    AIP's events grow with every audit)."""
    aip = visible_aip(session, aip_id, sees_restricted=sees_restricted)
    if aip is None:
        return None
    summary = aip_summary(session, aip_id, file_limit=file_limit, event_limit=event_limit)
    summary["aip"]["public"] = bool(aip.public)
    return summary


@dataclass(frozen=True)
class FileLocation:
    """One file of one version and the stores holding a good copy of its bytes."""

    aip_id: str
    public: bool
    version: int
    path: str  # inside the bag
    kind: str
    size: int
    sha256: str
    origin_version: int
    mime: str | None
    stores: tuple[str, ...]  # good copies first: verified, then stored

    @property
    def key(self) -> str:
        """The store key of the bytes (the origin version's object)."""
        return f"{self.aip_id}/v{self.origin_version}/{self.path}"


def locate_file(
    session: Session, aip_id: str, version: int | None, path: str, *, sees_restricted: bool
) -> FileLocation | None:
    """Where to read one file of a visible AIP (None if the AIP is not visible, the
    version or the file does not exist). ``stores`` lists the stores whose copy of the
    origin version is verified or stored, verified first, excluding stores with an
    open incident on that file."""
    from preservation.catalog.models import Incident

    aip = visible_aip(session, aip_id, sees_restricted=sees_restricted)
    if aip is None:
        return None
    number = version if version is not None else aip.current_version
    row = session.execute(
        select(File)
        .join(AipVersion, AipVersion.id == File.version_id)
        .where(AipVersion.aip_id == aip_id, AipVersion.number == number, File.path == path)
    ).scalar_one_or_none()
    if row is None:
        return None
    origin = row.origin_version if row.kind == "payload" else number
    origin_key = f"{aip_id}/v{origin}/{path}"
    bad = (
        select(Incident.id)
        .where(
            Incident.aip_id == aip_id,
            Incident.store_name == Copy.store_name,
            Incident.state == "open",
            Incident.path.in_([path, origin_key]),
        )
        .exists()
    )
    stores = session.execute(
        select(Copy.store_name, Copy.state)
        .join(AipVersion, AipVersion.id == Copy.version_id)
        .where(
            AipVersion.aip_id == aip_id,
            AipVersion.number == origin,
            Copy.state.in_(("verified", "stored")),
            ~bad,
        )
        .order_by(Copy.state.desc(), Copy.store_name)  # 'verified' > 'stored'
    ).all()
    return FileLocation(
        aip_id=aip_id,
        public=bool(aip.public),
        version=number,
        path=row.path,
        kind=row.kind,
        size=row.size,
        sha256=row.sha256,
        origin_version=origin,
        mime=row.mime,
        stores=tuple(s for s, _ in stores),
    )


def events_page(
    session: Session,
    *,
    sees_restricted: bool,
    aip_id: str | None = None,
    event_type: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """Catalogue events newest first; events of AIPs the principal may not see are
    left out (events about no AIP, such as store checks, stay)."""
    limit = max(1, min(limit, MAX_PAGE))
    visible_ids = select(Aip.id).where(aip_visible(sees_restricted))
    cond: list[ColumnElement[bool]] = [
        or_(EventRow.aip_id.is_(None), EventRow.aip_id.in_(visible_ids))
    ]
    if aip_id is not None:
        cond.append(EventRow.aip_id == aip_id)
    if event_type is not None:
        cond.append(EventRow.type == event_type)
    total = session.execute(select(func.count()).select_from(EventRow).where(*cond)).scalar_one()
    rows = session.execute(
        select(EventRow).where(*cond).order_by(EventRow.seq.desc()).limit(limit).offset(offset)
    ).scalars()
    return int(total), [
        {
            "seq": e.seq,
            "id": e.id,
            "aip_id": e.aip_id,
            "type": e.type,
            "datetime": _iso(e.datetime),
            "outcome": e.outcome,
            "detail": e.detail,
            "outcome_detail": e.outcome_detail,
            "store": e.store_name,
            "agents": e.agents,
        }
        for e in rows
    ]


def jobs_page(
    session: Session,
    *,
    sees_restricted: bool,
    kind: str | None = None,
    state: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """Journal rows newest first; jobs of AIPs the principal may not see are left
    out (jobs without an AIP, or whose AIP is not recorded yet, stay)."""
    limit = max(1, min(limit, MAX_PAGE))
    hidden_ids = select(Aip.id).where(~aip_visible(sees_restricted))
    cond: list[ColumnElement[bool]] = [or_(Job.aip_id.is_(None), Job.aip_id.not_in(hidden_ids))]
    if kind is not None:
        cond.append(Job.kind == kind)
    if state is not None:
        cond.append(Job.state == state)
    total = session.execute(select(func.count()).select_from(Job).where(*cond)).scalar_one()
    rows = session.execute(
        select(Job).where(*cond).order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)
    ).scalars()
    return int(total), [
        {
            "id": j.id,
            "kind": j.kind,
            "state": j.state,
            "aip_id": j.aip_id,
            "created_at": _iso(j.created_at),
            "updated_at": _iso(j.updated_at),
            "host": j.host,
            "result": j.result,
            "error": j.error,
        }
        for j in rows
    ]


def aip_is_public(session: Session, aip_id: str) -> bool | None:
    """Whether the AIP is public (None when there is no such AIP)."""
    value = session.execute(select(Aip.public).where(Aip.id == aip_id)).scalar_one_or_none()
    return None if value is None else bool(value)


def job_visible(session: Session, job_id: str, *, sees_restricted: bool) -> dict[str, Any] | None:
    """One journal row, unless it belongs to an AIP the principal may not see."""
    job = session.get(Job, job_id)
    if job is None:
        return None
    if job.aip_id is not None and not sees_restricted:
        public = aip_is_public(session, job.aip_id)
        if public is False:
            return None
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "aip_id": job.aip_id,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
        "host": job.host,
        "params": job.params,
        "result": job.result,
        "error": job.error,
    }
