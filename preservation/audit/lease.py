"""One holder at a time for a named job, across threads, processes and hosts.

``with lease(repo, "audit:primary"):`` takes the lease row in the catalogue (see
:func:`preservation.catalog.audit_queries.acquire_lease`), renews it from a
background thread every third of its time-to-live, and releases it on exit. A second
taker gets :class:`~preservation.errors.JobBusy` naming the holder. A holder that
died leaves a lease that expires after ``ttl`` seconds, or at once when it was a
process of this host that no longer exists.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preservation.errors import JobBusy
from preservation.jobs import process_alive
from preservation.model import utcnow

if TYPE_CHECKING:
    from preservation.repository import Repository

log = logging.getLogger(__name__)

_held: set[tuple[str, str]] = set()
_held_lock = threading.Lock()


@dataclass(frozen=True)
class Taken:
    """A lease just taken. ``previous``: its row as it was just before (the
    :func:`~preservation.catalog.queries.job_dict` of the lease, None when the
    lease had never been taken): who held it last, and until when."""

    name: str
    previous: dict[str, Any] | None


@contextlib.contextmanager
def lease(
    repo: Repository,
    name: str,
    ttl_seconds: float | None = None,
    lost: threading.Event | None = None,
) -> Iterator[Taken]:
    """Hold the lease ``name`` for the block; JobBusy when someone else holds it.

    ``lost`` is set if a heartbeat finds the lease taken over (this process stalled
    longer than ``ttl``): the holder should then stop what it does.
    """
    from preservation.catalog import audit_queries as aq
    from preservation.catalog import queries as q

    ttl = float(ttl_seconds or repo.config.settings.audit.lease_seconds)
    host, pid = socket.gethostname(), os.getpid()
    token = (str(repo.config.catalog_url), name)
    with _held_lock:
        if token in _held:
            raise JobBusy(job=name, holder=f"{host} pid {pid} (this process)")
        _held.add(token)
    try:
        with repo.catalog.session() as s:
            previous = q.get_job(s, aq.lease_id(name))
            holder = aq.acquire_lease(
                s, name, host=host, pid=pid, ttl_seconds=ttl, now=utcnow(), alive=process_alive
            )
        if holder is not None:
            raise JobBusy(
                job=name,
                holder=f"{holder.host} pid {holder.pid} since {holder.since.isoformat()}",
            )
        stop = threading.Event()
        beat = threading.Thread(
            target=_heartbeat,
            args=(repo, name, host, pid, ttl, stop, lost),
            daemon=True,
            name=f"lease-{name}",
        )
        beat.start()
        try:
            yield Taken(name, previous)
        finally:
            stop.set()
            beat.join()
            with repo.catalog.session() as s:
                aq.release_lease(s, name, host=host, pid=pid, now=utcnow())
    finally:
        with _held_lock:
            _held.discard(token)


def _heartbeat(
    repo: Repository,
    name: str,
    host: str,
    pid: int,
    ttl: float,
    stop: threading.Event,
    lost: threading.Event | None,
) -> None:
    from preservation.catalog import audit_queries as aq

    while not stop.wait(ttl / 3):
        try:
            with repo.catalog.session() as s:
                kept = aq.renew_lease(s, name, host=host, pid=pid, now=utcnow())
            if not kept:
                log.error("lease %s was taken over by another process", name)
                if lost is not None:
                    lost.set()
                return
        except Exception:  # the next beat tries again; the lease expires only after ttl
            log.exception("could not renew lease %s", name)
