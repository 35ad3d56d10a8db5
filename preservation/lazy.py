"""Package attributes loaded on first use (PEP 562).

A package whose ``__init__`` re-exports the public names of its modules would import
every one of them, and what they import, for a caller that needs one. With
:func:`lazy_exports` the package names each attribute's module instead, and the
module is imported the first time the attribute is looked up (then kept in the
package's namespace)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``homes`` maps each exported name to
    the submodule (relative name) that defines it."""

    def __getattr__(name: str) -> Any:
        module = homes.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        vars(sys.modules[package])[name] = value
        return value

    return __getattr__
