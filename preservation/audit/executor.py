"""One executor interface for audit and replication work: threads here, or Dask.

``make_executor(config)`` gives a :class:`ThreadExecutor` (worker threads of this
process, the default) or, with ``[executor] kind = "dask"``, a :class:`DaskExecutor`
connected to a ``distributed`` scheduler. Both have the same one method::

    for result in executor.map(fn, items, site="site-a"):
        ...

``map`` runs ``fn`` over ``items`` with a bounded number in flight and yields the
results in input order (memory stays bounded however many items there are); the first
exception is raised in the caller. ``fn`` and the items must be picklable for Dask
(module-level functions, plain data). With ``pin_to_site`` a Dask task asks for one
unit of the worker resource named after ``site``: only workers started with that
resource (``dask worker ADDRESS --resources site-a=4``) run it, so each site's
workers read only their own stores. A site no worker offers is refused up front
instead of waiting for ever.
"""

from __future__ import annotations

import abc
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from preservation.errors import ConfigError, UsageError
from preservation.executor import bounded_map

if TYPE_CHECKING:
    from preservation.config import Config

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


class Executor(abc.ABC):
    """Runs picklable work somewhere, bounded, results in order."""

    kind: str = "abstract"

    @abc.abstractmethod
    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, site: str | None = None
    ) -> Iterator[R]: ...

    def close(self) -> None:
        return None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadExecutor(Executor):
    kind = "threads"

    def __init__(self, workers: int, window: int | None = None) -> None:
        if workers < 1:
            raise UsageError("workers must be at least 1")
        self.workers = workers
        self.window = window

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, site: str | None = None
    ) -> Iterator[R]:
        return bounded_map(fn, items, self.workers, self.window)


class DaskExecutor(Executor):
    """Work on a Dask distributed cluster through a ``distributed.Client``."""

    kind = "dask"

    def __init__(
        self,
        client: Any,
        *,
        pin_to_site: bool = False,
        window: int | None = None,
        own_client: bool = False,
    ) -> None:
        self.client = client
        self.pin_to_site = pin_to_site
        self.window = window
        self._own = own_client

    @classmethod
    def connect(
        cls,
        address: str,
        *,
        pin_to_site: bool = False,
        window: int | None = None,
        timeout: float = 30.0,
    ) -> DaskExecutor:
        try:
            from distributed import Client
        except ImportError as e:
            raise ConfigError(
                "executor kind = 'dask' needs the optional extra: pip install"
                " 'preservation[distributed]'"
            ) from e
        try:
            client = Client(address, timeout=timeout, set_as_default=False)
        except OSError as e:
            raise ConfigError(f"cannot reach the Dask scheduler at {address}: {e}") from e
        return cls(client, pin_to_site=pin_to_site, window=window, own_client=True)

    def _workers(self) -> int:
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def _check_site(self, site: str) -> None:
        workers = self.client.scheduler_info().get("workers", {})
        if not any((w.get("resources") or {}).get(site) for w in workers.values()):
            raise ConfigError(
                f"no Dask worker offers the resource {site!r} (pin_to_site is on); start the"
                f" workers of that site with --resources {site}=N"
            )

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, site: str | None = None
    ) -> Iterator[R]:
        resources: dict[str, float] | None = None
        if self.pin_to_site and site:
            self._check_site(site)
            resources = {site: 1}
        limit = self.window or self._workers() * 2
        pending: deque[Any] = deque()
        try:
            for item in items:
                pending.append(self.client.submit(fn, item, pure=False, resources=resources))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        if self._own:
            self.client.close()


def make_executor(config: Config, workers: int | None = None) -> Executor:
    """The executor the configuration asks for (``[executor]``)."""
    settings = config.settings.executor
    if settings.kind == "dask":
        assert settings.address is not None
        return DaskExecutor.connect(
            settings.address, pin_to_site=settings.pin_to_site, window=settings.window
        )
    n = workers or config.settings.audit.workers
    return ThreadExecutor(n, settings.window)
