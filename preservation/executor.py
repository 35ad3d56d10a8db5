"""Bounded parallel work.

``bounded_map`` runs a function over an iterable on worker threads with at most
``window`` items in flight, yielding results in input order: memory stays bounded
however long the input is. Hashing (hashlib releases the GIL on large blocks) and
store I/O parallelise well on threads.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    window: int | None = None,
) -> Iterator[R]:
    """Like ``map(fn, items)`` on ``workers`` threads, in order, ``window`` in flight.

    The first exception raised by ``fn`` is re-raised here after the pending work
    has been cancelled or finished.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    limit = window or workers * 4
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preservation") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
