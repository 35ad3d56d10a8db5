"""Packages that load their modules on first use (preservation.lazy)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_a_lazy_package_imports_a_module_only_when_its_name_is_used() -> None:
    code = (
        "import sys, preservation.metadata.records, preservation.metadata as m\n"
        "assert 'lxml.etree' not in sys.modules, 'records pulled in lxml'\n"
        "assert 'preservation.metadata.mets_writer' not in sys.modules\n"
        "w = m.write_mets\n"
        "assert w.__module__ == 'preservation.metadata.mets_writer'\n"
        "assert 'write_mets' in vars(m)  # kept: the next lookup is a plain attribute\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unknown_name_is_an_attribute_error() -> None:
    import preservation.bags
    import preservation.metadata

    for package in (preservation.bags, preservation.metadata):
        with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
            package.nothing  # noqa: B018
