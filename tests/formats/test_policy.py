"""The format policy registry: its schema, its coverage, and site overrides."""

from __future__ import annotations

import json

import pytest

from preservation.config import FormatOverride, FormatsSettings
from preservation.errors import ConfigError
from preservation.formats.policy import STATUSES, load_policy
from preservation.formats.tools import ACTIONS
from preservation.ingest.identify import find_schema_file

# One PUID at least for every format the issue names (GB/T 18894 records, DA/T 31 scans).
REQUIRED = {
    "PDF 1.x": "fmt/276",
    "PDF/A-1b": "fmt/354",
    "PDF/A-2b": "fmt/477",
    "PDF/A-3b": "fmt/480",
    "OFD": "local/ofd",
    "DOC": "fmt/40",
    "DOCX": "fmt/412",
    "XLS": "fmt/61",
    "XLSX": "fmt/214",
    "PPT": "fmt/126",
    "PPTX": "fmt/215",
    "RTF": "fmt/45",
    "WPS": "local/wps",
    "ODT": "fmt/1756",
    "ODS": "fmt/1755",
    "ODP": "fmt/1754",
    "TXT": "x-fmt/111",
    "CSV": "x-fmt/18",
    "XML": "fmt/101",
    "HTML": "fmt/471",
    "EML": "fmt/950",
    "MSG": "x-fmt/430",
    "TIFF": "fmt/353",
    "JPEG": "fmt/43",
    "JPEG 2000": "x-fmt/392",
    "PNG": "fmt/11",
    "GIF": "fmt/4",
    "BMP": "fmt/116",
    "WAV": "fmt/141",
    "MP3": "fmt/134",
    "MP4": "fmt/199",
    "AVI": "fmt/5",
    "MOV": "x-fmt/384",
    "WMV": "fmt/133",
    "ZIP": "x-fmt/263",
    "RAR": "x-fmt/264",
    "7Z": "fmt/484",
}


def test_registry_validates_and_covers_the_required_formats() -> None:
    import jsonschema

    data = json.loads(find_schema_file("format-policy.json").read_text(encoding="utf-8"))
    schema = json.loads(find_schema_file("format-policy.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(data)) == []

    policy = load_policy()
    missing = {name: key for name, key in REQUIRED.items() if key not in policy.entries}
    assert missing == {}
    for entry in policy.entries.values():
        assert entry.status in STATUSES
        assert entry.rationale
        if entry.action:
            assert entry.target in ACTIONS[entry.action].outputs
    assert policy.lookup("x-fmt/263", "application/ofd", "a.ofd").key == "local/ofd"  # type: ignore[union-attr]
    assert policy.lookup("fmt/40", "application/msword", "公文.wps").key == "local/wps"  # type: ignore[union-attr]
    assert policy.status_of("fmt/40", None, "a.doc") == "at-risk"
    assert policy.status_of(None) == "unknown"
    assert policy.status_of("fmt/999999") == policy.unlisted == "unknown"


def test_site_overrides_change_entries_and_the_digest() -> None:
    base = load_policy()
    site = load_policy(
        FormatsSettings(
            overrides={
                "fmt/353": FormatOverride(status="obsolete", rationale="site decision"),
                "fmt/40": FormatOverride(action="", target=""),
                "fmt/1000": FormatOverride(name="Local thing", category="other", status="at-risk"),
            }
        )
    )
    assert site.entries["fmt/353"].status == "obsolete" and site.entries["fmt/353"].overridden
    assert site.entries["fmt/40"].action is None and site.entries["fmt/40"].target is None
    assert site.entries["fmt/1000"].status == "at-risk"
    assert site.digest != base.digest


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (FormatOverride(action="no-such-tool"), "unknown action"),
        (FormatOverride(target="fmt/11"), "does not produce"),
    ],
)
def test_bad_overrides_are_refused(override: FormatOverride, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_policy(FormatsSettings(overrides={"fmt/116": override}))


def test_an_unlisted_override_needs_its_description() -> None:
    with pytest.raises(ConfigError, match="give name, category and status"):
        load_policy(FormatsSettings(overrides={"fmt/5000": FormatOverride(status="obsolete")}))
    with pytest.raises(ValueError, match="PUID"):
        FormatsSettings(overrides={"pdf": FormatOverride(status="obsolete")})
