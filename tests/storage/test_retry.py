"""The shared retry wrapper: transient errors only, bounded exponential backoff."""

from __future__ import annotations

import random

import pytest

from preservation.errors import (
    AccessDenied,
    CatalogUnavailable,
    PreservationError,
    StorageError,
    StoreUnavailable,
    UsageError,
)
from preservation.storage.retry import backoff_delay, retry, retrying


class Flaky:
    def __init__(self, errors: list[BaseException], result: str = "done") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.result = result

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


def unavailable() -> StoreUnavailable:
    return StoreUnavailable(store="s", reason="503 SlowDown")


def test_transient_errors_are_retried_until_success() -> None:
    sleeps: list[float] = []
    seen: list[tuple[int, str, float]] = []
    fn = Flaky([unavailable(), CatalogUnavailable("db restarting"), unavailable()])
    result = retry(
        fn,
        attempts=5,
        base_delay=0.1,
        max_delay=1.0,
        sleep=sleeps.append,
        on_retry=lambda n, e, d: seen.append((n, e.code, d)),
    )
    assert result == "done"
    assert fn.calls == 4
    assert [s[0] for s in seen] == [1, 2, 3]
    assert [s[1] for s in seen] == ["STO003", "CAT001", "STO003"]
    assert sleeps == [s[2] for s in seen]


@pytest.mark.parametrize(
    "error",
    [
        AccessDenied(store="s", reason="403"),
        StorageError("unknown vendor code XYZ"),
        ValueError("a bug"),
        KeyboardInterrupt(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_permanent_errors_are_not_retried(error: BaseException) -> None:
    sleeps: list[float] = []
    fn = Flaky([error])
    with pytest.raises(type(error)):
        retry(fn, attempts=5, sleep=sleeps.append)
    assert fn.calls == 1
    assert sleeps == []


def test_gives_up_after_attempts_with_the_last_error() -> None:
    sleeps: list[float] = []
    errors: list[BaseException] = [
        StoreUnavailable(store="s", reason=f"try {i}") for i in range(1, 4)
    ]
    fn = Flaky(errors)
    with pytest.raises(StoreUnavailable, match="try 3"):
        retry(fn, attempts=3, sleep=sleeps.append)
    assert fn.calls == 3
    assert len(sleeps) == 2


def test_backoff_is_full_jitter_and_bounded() -> None:
    rng = random.Random(42)
    base, cap = 0.2, 3.0
    for attempt in range(1, 30):
        ceiling = min(cap, base * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, base, cap, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # full jitter: spread over the whole range, not clustered at the ceiling
        assert min(delays) < ceiling * 0.2
        assert max(delays) > ceiling * 0.8
    sleeps: list[float] = []
    with pytest.raises(StoreUnavailable):
        retry(
            Flaky([unavailable() for _ in range(20)]),
            attempts=20,
            base_delay=0.5,
            max_delay=2.0,
            sleep=sleeps.append,
        )
    assert len(sleeps) == 19
    assert max(sleeps) <= 2.0
    assert sum(sleeps) <= 19 * 2.0


def test_decorator_form() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    @retrying(attempts=3, base_delay=0.01, sleep=sleeps.append)
    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 2:
            raise unavailable()
        return x * 2

    assert flaky(21) == 42
    assert calls == [21, 21]
    assert len(sleeps) == 1


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base_delay": -1.0}, {"max_delay": -1.0}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        retry(lambda: None, **kwargs)  # type: ignore[arg-type]


def test_transient_flag_decides() -> None:
    class Custom(PreservationError):
        code = "TST001"
        transient = True

    fn = Flaky([Custom("flaky")])
    assert retry(fn, attempts=2, sleep=lambda d: None) == "done"
    assert fn.calls == 2
