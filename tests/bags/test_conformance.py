"""The Library of Congress BagIt conformance suite, one test per bag.

Expected outcomes (suite README): valid/ -> valid, no error; invalid/ and the running
platform's <os>-only/ -> not valid; warning/ -> valid with at least one warning;
other platforms' <os>-only/ -> skipped. Beyond the outcome, each case names the codes
it must produce (invalid: errors, warning: warnings), so a bag that fails for the
wrong reason fails the test.

Two documented deviations, each asserted precisely:

- ``v0.97/warning/special-system-files``: the vendored bag lost ``data/.DS_Store``
  (upstream lost it too, probably to a .gitignore; its manifest digest is the empty
  file's and Payload-Oxum ``0.2`` counts two empty files). The test checks that the
  bag as stored fails for exactly that loss, then restores the empty file in a copy
  and expects the case's intended outcome: valid with a junk-file warning.
- ``extra-from-open-pull-requests/pr14/v0.97/valid/local-fetch`` (an unmerged PR; the
  suite README calls its validity doubtful) breaks RFC 8493 2.2.3 twice: fetch.txt
  lists ``sachiel.png``, outside data/ ("a fetch file MUST NOT list any tag files";
  also absent from the manifest), and ``data/.gitkeep`` is in no manifest. We expect
  it to be invalid for those reasons.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest

from preservation.bags import validate_bag
from preservation.bags.validate import BagReport
from tests.bags.conftest import SUITE

CATEGORIES = ("valid", "invalid", "warning", "linux-only", "windows-only", "darwin-only")
THIS_PLATFORM = {"Linux": "linux-only", "Windows": "windows-only", "Darwin": "darwin-only"}.get(
    platform.system()
)
PR = "extra-from-open-pull-requests"

INVALID_CODES: dict[str, set[str]] = {
    "v0.97/invalid/baginfo-missing-encoding": {"BAG106"},
    "v0.97/invalid/bom-in-bagit.txt": {"BAG103"},
    "v0.97/invalid/corrupt-data-file": {"BAG701", "BAG402"},
    "v0.97/invalid/corrupt-tag-file": {"BAG702"},
    "v0.97/invalid/extra-file-in-bag": {"BAG502", "BAG401", "BAG402"},
    "v0.97/invalid/invalid-version-number": {"BAG105"},
    "v0.97/invalid/missing-baginfo": {"BAG504"},
    "v0.97/invalid/missing-bagit.txt": {"BAG101"},
    "v0.97/invalid/out-of-scope-file-paths-using-dot-notation": {"BAG303"},
    "v0.97/invalid/out-of-scope-file-paths-using-dot-notation-for-fetch": {"BAG303"},
    "v0.97/invalid/same-filename-listed-twice-with-different-hashes": {"BAG306"},
    "v1.0/invalid/bagit-with-invalid-whitespace": {"BAG104"},
    "v1.0/invalid/notAllManifestsListAllFiles": {"BAG502"},
    "v1.0/invalid/same-filename-listed-twice-with-different-hashes": {"BAG306", "BAG104"},
    "v1.0/invalid/same-filename-listed-twice-with-the-same-hash": {"BAG307", "BAG702"},
    # OS-specific: run on their own platform only
    "v0.97/linux-only/out-of-scope-file-paths-using-absolute-path": {"BAG303"},
    "v0.97/linux-only/out-of-scope-file-paths-using-absolute-path-for-fetch": {"BAG303"},
    "v0.97/linux-only/out-of-scope-file-paths-using-shortcut": {"BAG303"},
    "v0.97/linux-only/out-of-scope-file-paths-using-shortcut-for-fetch": {"BAG303"},
    "v0.97/linux-only/out-of-scope-file-paths-using-shortcut-username": {"BAG303"},
    "v0.97/linux-only/out-of-scope-file-paths-using-shortcut-username-for-fetch": {"BAG303"},
    "v0.97/windows-only/out-of-scope-file-paths-using-absolute-path": {"BAG303"},
    "v0.97/windows-only/out-of-scope-file-paths-using-absolute-path-for-fetch": {"BAG303"},
    "v0.97/windows-only/out-of-scope-file-paths-using-shortcut": {"BAG303"},
    "v0.97/windows-only/out-of-scope-file-paths-using-shortcut-for-fetch": {"BAG303"},
    "v0.97/windows-only/out-of-scope-file-paths-using-unc": {"BAG303"},
    "v0.97/windows-only/out-of-scope-file-paths-using-unc-for-fetch": {"BAG303"},
    # deviation: expected valid by its directory, invalid by RFC 8493 (module doc)
    f"{PR}/pr14/v0.97/valid/local-fetch": {"BAG603", "BAG502"},
}

WARNING_CODES: dict[str, set[str]] = {
    "v0.97/warning/duplicate-file-with-different-case": {"BAG310", "BAG507"},
    "v0.97/warning/made-with-md5sum-tools": {"BAG309"},
    "v0.97/warning/relative-path": {"BAG308"},
    "v0.97/warning/same-filename-listed-twice-with-different-normalization": {"BAG311", "BAG507"},
    "v0.97/warning/same-filename-listed-twice-with-the-same-hash": {"BAG307"},
    "v0.97/warning/special-system-files": {"BAG508"},
}

OVERRIDDEN_INVALID = {f"{PR}/pr14/v0.97/valid/local-fetch"}
# case -> (files lost from the vendored copy, the errors that loss causes as stored)
RESTORE: dict[str, tuple[list[str], set[str]]] = {
    "v0.97/warning/special-system-files": (["data/.DS_Store"], {"BAG501", "BAG401"}),
}


def _suite_cases() -> list[tuple[str, str]]:
    """(case id relative to the suite, category) for every bag of every version."""
    roots = [SUITE, *sorted((SUITE / PR).glob("pr*"))] if SUITE.is_dir() else []
    cases = []
    for root in roots:
        for version in sorted(root.glob("v*")):
            for category in CATEGORIES:
                for case in sorted((version / category).glob("*")):
                    if case.is_dir():
                        cases.append((case.relative_to(SUITE).as_posix(), category))
    return cases


CASES = _suite_cases()


def test_suite_is_present_and_complete() -> None:
    """60 cases on upstream master plus 8 from open pull requests (suite README)."""
    assert SUITE.is_dir(), f"conformance suite not found at {SUITE}"
    counts: dict[str, int] = {}
    for case_id, category in CASES:
        key = f"{'pr:' if case_id.startswith(PR) else ''}{category}"
        counts[key] = counts.get(key, 0) + 1
    assert counts == {
        "valid": 27,
        "invalid": 15,
        "warning": 6,
        "linux-only": 6,
        "windows-only": 6,
        "pr:valid": 7,
        "pr:darwin-only": 1,
    }
    for case_id, category in CASES:
        if category in ("invalid", "linux-only", "windows-only"):
            assert case_id in INVALID_CODES, f"no expected codes for {case_id}"
        if category == "warning":
            assert case_id in WARNING_CODES, f"no expected codes for {case_id}"


def _show(report: BagReport) -> str:
    return "\n".join(str(f) for f in report.findings)


@pytest.mark.parametrize(("case_id", "category"), CASES, ids=[c for c, _ in CASES])
def test_case(case_id: str, category: str, tmp_path: Path) -> None:
    if category.endswith("-only") and category != THIS_PLATFORM:
        pytest.skip(f"{category} case; this platform is {platform.system()}")
    bag = SUITE / case_id
    if case_id in RESTORE:
        lost, as_stored = RESTORE[case_id]
        stored = validate_bag(bag)
        assert stored.codes("error") == as_stored, _show(stored)
        assert {f.file for f in stored.errors if f.code == "BAG501"} == set(lost)
        bag = Path(shutil.copytree(bag, tmp_path / "bag"))
        for rel in lost:
            (bag / rel).write_bytes(b"")

    report = validate_bag(bag)
    assert report.checked == "full"

    if category in ("invalid", "linux-only", "windows-only") or case_id in OVERRIDDEN_INVALID:
        assert not report.valid, _show(report)
        missing = INVALID_CODES[case_id] - report.codes("error")
        assert not missing, f"expected errors {sorted(missing)}:\n{_show(report)}"
    elif category == "warning":
        assert report.valid, _show(report)
        assert report.warnings, "a warning case must produce a warning"
        missing = WARNING_CODES[case_id] - report.codes("warning")
        assert not missing, f"expected warnings {sorted(missing)}:\n{_show(report)}"
    else:
        assert category in ("valid", "darwin-only")
        assert report.valid, _show(report)
        assert not report.errors


WINDOWS_ONLY = [c for c, cat in CASES if cat == "windows-only"]


@pytest.mark.parametrize("case_id", WINDOWS_ONLY, ids=WINDOWS_ONLY)
def test_windows_only_cases_are_rejected_everywhere(case_id: str) -> None:
    """Backslashes and drive letters are unsafe on any OS: a bag must travel."""
    report = validate_bag(SUITE / case_id)
    assert not report.valid
    assert "BAG303" in report.codes("error")
