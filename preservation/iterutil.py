"""Small iteration helpers shared by the pipeline stages."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of ``n`` consecutive items (the last may be shorter); reads ``items``
    once, holding one list at a time (``itertools.batched`` from Python 3.12 on)."""
    if n < 1:
        raise ValueError("a batch holds at least one item")
    it = iter(items)
    while batch := list(islice(it, n)):
        yield batch
