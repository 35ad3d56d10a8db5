"""The one retry wrapper: exponential backoff with full jitter, transient errors only.

Only errors of the preservation tree whose ``transient`` flag is True are retried
(``StoreUnavailable``, ``CatalogUnavailable``); every other exception, permanent
errors and programming errors alike, propagates at once. Callers translate vendor
errors *inside* the retried function, so that the flag is known here.

A retried function must be safe to call again: it may hold its request body in
memory, but it must not read from a stream that an earlier attempt already consumed.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from preservation.errors import PreservationError, UsageError

T = TypeVar("T")
P = ParamSpec("P")

OnRetry = Callable[[int, PreservationError, float], None]
"""Called before sleeping: ``(attempt that failed (1-based), error, delay in seconds)``."""

DEFAULT_ATTEMPTS = 5
DEFAULT_BASE_DELAY = 0.2
DEFAULT_MAX_DELAY = 10.0


def backoff_delay(
    attempt: int, base_delay: float, max_delay: float, rng: random.Random | None = None
) -> float:
    """Full jitter: a uniform delay in ``[0, min(max_delay, base_delay * 2**(attempt-1))]``."""
    ceiling = min(max_delay, base_delay * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0.0, ceiling)


def retry(
    fn: Callable[[], T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = DEFAULT_BASE_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn`` up to ``attempts`` times while it raises a transient error.

    The last transient error is raised when every attempt failed.
    """
    if attempts < 1:
        raise UsageError(f"attempts must be at least 1 (got {attempts})")
    if base_delay < 0 or max_delay < 0:
        raise UsageError("retry delays must not be negative")
    attempt = 1
    while True:
        try:
            return fn()
        except PreservationError as e:
            if not e.transient or attempt >= attempts:
                raise
            delay = backoff_delay(attempt, base_delay, max_delay, rng)
            if on_retry is not None:
                on_retry(attempt, e, delay)
            sleep(delay)
            attempt += 1


def retrying(
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    base_delay: float = DEFAULT_BASE_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator form of :func:`retry`."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return retry(
                lambda: fn(*args, **kwargs),
                attempts=attempts,
                base_delay=base_delay,
                max_delay=max_delay,
                on_retry=on_retry,
                sleep=sleep,
            )

        return wrapper

    return decorate
