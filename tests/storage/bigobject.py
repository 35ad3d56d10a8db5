"""Run by test_contract's 1 GiB test in a fresh process: put a large generated object
into a store, read it back, and report digests and the process's peak RSS as JSON.

Usage: python -m tests.storage.bigobject '<json spec>'
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from preservation.config import S3StoreSettings
from preservation.storage.base import Store
from preservation.storage.local import LocalStore
from preservation.storage.s3 import S3Store
from tests.storage.streams import BLOCK, pattern


class PeakSampler(threading.Thread):
    """Samples this process's RSS every few milliseconds (VmHWM is the backstop)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self._stop_event = threading.Event()
        self._proc = psutil.Process()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.005)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def high_water_mark() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: that one keeps the high-water
    mark of the forked parent across exec, so a big pytest process would inflate it."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def make_store(spec: dict[str, Any]) -> Store:
    if spec["kind"] == "local":
        return LocalStore("big", "site", Path(spec["root"]))
    return S3Store("big", S3StoreSettings.model_validate(spec["settings"]))


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    store = make_store(spec)
    size: int = spec["size"]
    sampler = PeakSampler()
    sampler.start()
    started = time.monotonic()
    info = store.put(
        spec["key"],
        pattern(size, seed=spec["seed"]),
        digests={"sha256": spec["sha256"]} if spec.get("sha256") else None,
        size=size,
    )
    put_seconds = time.monotonic() - started
    h = hashlib.sha256()
    read = 0
    with store.open(spec["key"]) as f:
        while block := f.read(BLOCK):
            h.update(block)
            read += len(block)
    get_seconds = time.monotonic() - started - put_seconds
    head = store.head(spec["key"])
    store.delete(spec["key"])
    peak_sampled = sampler.stop()
    json.dump(
        {
            "put_sha256": info.digests.get("sha256"),
            "get_sha256": h.hexdigest(),
            "head_sha256": head.digests.get("sha256"),
            "size": info.size,
            "read": read,
            "head_size": head.size,
            "peak_rss": max(peak_sampled, high_water_mark()),
            "put_seconds": round(put_seconds, 2),
            "get_seconds": round(get_seconds, 2),
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
