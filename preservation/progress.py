"""Progress bars: rich in a terminal, silent otherwise (and always silent with --json)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Reporter(Protocol):
    def start(self, label: str, total: float | None) -> None: ...
    def advance(self, amount: float = 1) -> None: ...
    def done(self) -> None: ...


class Silent:
    def start(self, label: str, total: float | None) -> None:
        return None

    def advance(self, amount: float = 1) -> None:
        return None

    def done(self) -> None:
        return None


class RichReporter:
    def __init__(self, progress: Progress) -> None:
        self._p = progress
        self._task: TaskID | None = None

    def start(self, label: str, total: float | None) -> None:
        self.done()
        self._task = self._p.add_task(label, total=total)

    def advance(self, amount: float = 1) -> None:
        if self._task is not None:
            self._p.advance(self._task, amount)

    def done(self) -> None:
        if self._task is not None:
            self._p.update(self._task, visible=False)
            self._task = None


@contextmanager
def reporter(enabled: bool = True, bytes_mode: bool = True) -> Iterator[Reporter]:
    """A progress reporter: rich bars when stderr is a terminal and enabled, else silent."""
    if not (enabled and sys.stderr.isatty()):
        yield Silent()
        return
    columns = [TextColumn("{task.description}"), BarColumn()]
    if bytes_mode:
        columns += [DownloadColumn(), TransferSpeedColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, transient=True) as p:
        yield RichReporter(p)
