"""What every fuzz target of this folder shares: its command line (``--make-seeds DIR``
writes the seed corpus, anything else goes to libFuzzer through atheris) and the
removal of its scratch folder when fuzzing ends."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import atheris


def make_seeds(folder: Path, seeds: Mapping[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (folder / name).write_bytes(data)


def main(
    argv: list[str],
    test_one_input: Callable[[bytes], None],
    seed_inputs: Callable[[], Mapping[str, bytes]],
    work: Path,
) -> None:
    if len(argv) == 3 and argv[1] == "--make-seeds":
        make_seeds(Path(argv[2]), seed_inputs())
        return
    atheris.Setup(argv, test_one_input)
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(work, ignore_errors=True)
