"""Job functions for the scheduler tests, configured as job slots
(``[scheduler.jobs.<name>] function = "tests.audit.schedjobs:..."``). Each run appends
one JSON line (pid, start, end) to a file in the repository folder."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from preservation.repository import Repository


def _record(repo: Repository, name: str, sleep: float) -> dict[str, Any]:
    start = time.time()
    time.sleep(sleep)
    end = time.time()
    line = json.dumps({"pid": os.getpid(), "start": start, "end": end}) + "\n"
    with (repo.root / f"probe-{name}.jsonl").open("a", encoding="utf-8") as f:
        f.write(line)
    return {"slept": sleep}


def slow_probe(repo: Repository) -> dict[str, Any]:
    """Takes longer than its interval: a second instance would overlap."""
    return _record(repo, "slow", 1.5)


def quick_probe(repo: Repository) -> dict[str, Any]:
    return _record(repo, "quick", 0.0)
