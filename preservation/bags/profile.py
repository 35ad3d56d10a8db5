"""Check a bag against the repository's BagIt profile (``schemas/bagit-profile.json``).

The profile follows the bagit-profiles specification 1.3.0 and is checked with the
``bagit-profile`` package, always from the local JSON file: the profile is handed to
``bagit_profile.Profile`` as a dict, so it never fetches its identifier as a URL.

The identifier is a fixed ``urn:uuid:`` (:data:`PROFILE_IDENTIFIER`). Every AIP names
it in ``bag-info.txt`` as ``BagIt-Profile-Identifier``, so it must stay valid for as
long as the AIPs exist, wherever the repository is installed: a URN does not pretend
to be resolvable, unlike an https address on a domain the archive may not keep.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from preservation.errors import ConfigError, ToolMissing

PROFILE_IDENTIFIER = "urn:uuid:8735a6df-04db-4db3-b34e-e51d82a1e6cd"
PROFILE_FILE = "bagit-profile.json"


def profile_path() -> Path:
    """The profile JSON: packaged copy first, else the repository's ``schemas/``."""
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[1] / "_schemas" / PROFILE_FILE,
        here.parents[2] / "schemas" / PROFILE_FILE,
    ):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"the BagIt profile {PROFILE_FILE} is not installed")


@cache
def _load() -> dict[str, Any]:
    path = profile_path()
    try:
        with path.open(encoding="utf-8") as f:
            profile: dict[str, Any] = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot load the BagIt profile: {e}") from e
    ident = profile.get("BagIt-Profile-Info", {}).get("BagIt-Profile-Identifier")
    if ident != PROFILE_IDENTIFIER:
        raise ConfigError(f"{path}: identifier {ident!r} is not {PROFILE_IDENTIFIER}")
    return profile


def load_profile() -> dict[str, Any]:
    """A fresh copy of the profile (bagit_profile fills in defaults in place)."""
    return copy.deepcopy(_load())


def validate_profile(bag_path: Path) -> list[str]:
    """Problems of the bag at ``bag_path`` against the profile; empty when it conforms.

    A directory is read with bagit-python and checked fully. A serialised bag (a file)
    is checked for its serialisation type only; extract it to check its content.
    This does not validate the bag itself: use ``validate_bag`` for that.
    """
    try:
        import bagit
        import bagit_profile
    except ImportError as e:
        raise ToolMissing(
            "bagit-profile is not installed; pip install bagit-profile (it is in the"
            " 'test' extra of preservation)"
        ) from e
    bag_path = Path(bag_path)
    profile = bagit_profile.Profile(PROFILE_IDENTIFIER, profile=load_profile())
    problems: list[str] = []
    try:
        profile.validate_serialization(str(bag_path))
    except bagit_profile.ProfileValidationError as e:
        problems.append(str(e.value))
    except OSError as e:
        return [f"{bag_path}: {e}"]
    if bag_path.is_file():
        return problems
    try:
        bag = bagit.Bag(str(bag_path))
    except bagit.BagError as e:
        return [*problems, f"{bag_path}: not a readable bag: {e}"]
    profile.validate(bag)
    problems.extend(str(err.value) for err in profile.report.errors)
    return problems
