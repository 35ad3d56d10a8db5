"""Archival reference codes (档号, DA/T 22-2015): parse, normalise, validate.

A code such as ``Z109-WS·2011-Y-BGS-0001`` reads 全宗号 ``Z109`` - 门类代码 ``WS`` ·
年度 ``2011`` - 保管期限 ``Y`` - 机构（问题）代码 ``BGS`` - 件号 ``0001``: ``-``
separates levels and ``·`` (U+00B7 MIDDLE DOT) joins two parts of one level. The
pattern is ``IngestSettings.reference_code_pattern``; ``reference_code_patterns`` gives
per-fonds overrides keyed by 全宗号. Patterns name their parts with the groups
``fonds``, ``category``, ``year``, ``retention``, ``unit``, ``volume`` (案卷号, for
fonds whose item codes extend their volume's code) and ``item`` (all optional). The
numbering group of a code is the code up to its item number (or, for a volume code
without an item, up to its volume number).

Separator variants. Input methods and fonts produce look-alikes of ``·`` and ``-``, so
a code is first matched as written; if that fails it is normalised and matched again,
and the variants found are returned in :attr:`RefCode.notes` (the catalogue check
reports them as a warning, SHEET-008). Accepted as ``·``: U+30FB ``・`` (katakana
middle dot), U+FF65 ``･``, U+2022 ``•``, U+2027 ``‧``, U+2219 ``∙``, U+22C5 ``⋅``,
U+FF0E ``．`` (full-width full stop) and the ASCII full stop ``.`` (file names often
avoid ``·``). Accepted as ``-``: U+FF0D ``－``, U+2010 to U+2015 (hyphens and dashes) and
U+2212 ``−``. Full-width letters and digits (U+FF01 to U+FF5E) become ASCII. The
canonical form always uses U+00B7 and ASCII ``-``.

Digitised pages are named ``<档号>-<page>.<ext>`` (e.g. ``Z109-WS·2011-Y-BGS-0001-0003.tif``):
:func:`split_page_name` returns ``(canonical code, page)``. With patterns whose unit
code may be all digits a name can read both ways; the catalogue check prefers a whole
code that is in the sheet before splitting off a page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from preservation.config import IngestSettings

DOT = "\u00b7"
DOT_VARIANTS: dict[str, str] = {
    "\u30fb": "U+30FB KATAKANA MIDDLE DOT",
    "\uff65": "U+FF65 HALFWIDTH KATAKANA MIDDLE DOT",
    "\u2022": "U+2022 BULLET",
    "\u2027": "U+2027 HYPHENATION POINT",
    "\u2219": "U+2219 BULLET OPERATOR",
    "\u22c5": "U+22C5 DOT OPERATOR",
    "\uff0e": "U+FF0E FULLWIDTH FULL STOP",
    ".": "'.' FULL STOP",
}
HYPHEN_VARIANTS: dict[str, str] = {
    "\uff0d": "U+FF0D FULLWIDTH HYPHEN-MINUS",
    "\u2010": "U+2010 HYPHEN",
    "\u2011": "U+2011 NON-BREAKING HYPHEN",
    "\u2012": "U+2012 FIGURE DASH",
    "\u2013": "U+2013 EN DASH",
    "\u2014": "U+2014 EM DASH",
    "\u2015": "U+2015 HORIZONTAL BAR",
    "\u2212": "U+2212 MINUS SIGN",
}
_PARTS = ("fonds", "category", "year", "retention", "unit", "volume", "item")
_PAGE_STEM = re.compile(r"^(?P<code>.+)-(?P<page>\d+)$")
_EXTENSION = re.compile(r"^[A-Za-z0-9]{1,8}$")


@dataclass(frozen=True)
class RefCode:
    """A parsed reference code; ``canonical`` is the normalised text that matched."""

    text: str
    canonical: str
    group: str  # the code without its item number: the numbering group
    fonds: str | None = None
    category: str | None = None
    year: str | None = None
    retention: str | None = None
    unit: str | None = None
    volume: str | None = None
    item: str | None = None
    notes: tuple[str, ...] = ()  # separator variants that were normalised

    @property
    def item_number(self) -> int | None:
        return int(self.item) if self.item and self.item.isdigit() else None

    @property
    def volume_number(self) -> int | None:
        return int(self.volume) if self.volume and self.volume.isdigit() else None


def normalise(text: str) -> tuple[str, list[str]]:
    """The canonical form of ``text`` and the variants replaced (see the module docstring)."""
    out: list[str] = []
    notes: dict[str, None] = {}
    for c in text.strip():
        if c in DOT_VARIANTS:
            out.append(DOT)
            notes[f"{DOT_VARIANTS[c]} used for '·'"] = None
        elif c in HYPHEN_VARIANTS:
            out.append("-")
            notes[f"{HYPHEN_VARIANTS[c]} used for '-'"] = None
        elif "\uff01" <= c <= "\uff5e":
            out.append(chr(ord(c) - 0xFEE0))
            notes["full-width letters or digits"] = None
        else:
            out.append(c)
    return "".join(out), list(notes)


@lru_cache(maxsize=64)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def pattern_for(fonds: str | None, settings: IngestSettings) -> re.Pattern[str]:
    """The pattern that applies to ``fonds`` (its override, else the default)."""
    if fonds is not None:
        override = settings.reference_code_patterns.get(fonds)
        if override:
            return _compile(override)
    return _compile(settings.reference_code_pattern)


def _fonds_guess(text: str) -> str:
    return normalise(text)[0].split("-", 1)[0]


def _build(text: str, canonical: str, m: re.Match[str], notes: list[str]) -> RefCode:
    parts = {k: v for k, v in m.groupdict().items() if k in _PARTS and v}
    group = canonical
    for last in ("item", "volume"):
        if last in parts:
            group = canonical[: m.start(last)].rstrip("-" + DOT)
            break
    return RefCode(text=text, canonical=canonical, group=group, notes=tuple(notes), **parts)


def parse(text: str, settings: IngestSettings, fonds: str | None = None) -> RefCode | None:
    """Parse ``text`` with the pattern for ``fonds`` (guessed from the code when None)."""
    stripped = text.strip()
    if not stripped:
        return None
    pattern = pattern_for(fonds if fonds else _fonds_guess(stripped), settings)
    m = pattern.fullmatch(stripped)
    if m is not None:
        return _build(text, stripped, m, [])
    canonical, notes = normalise(stripped)
    m = pattern.fullmatch(canonical)
    if m is not None:
        return _build(text, canonical, m, notes)
    return None


def split_name(filename: str) -> tuple[str, str]:
    """``(stem, extension)`` of the last path segment; a code's own ``.`` is not an extension."""
    name = filename.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if dot and stem and _EXTENSION.match(ext) and not ext.isdigit():
        return stem, ext
    return name, ""


def split_page_name(
    filename: str, settings: IngestSettings | None = None
) -> tuple[str, int] | None:
    """``(canonical code, page)`` for a page image named ``<档号>-<page>.<ext>``, else None."""
    stem, _ = split_name(filename)
    m = _PAGE_STEM.match(normalise(stem)[0])
    if m is None:
        return None
    code = parse(m.group("code"), settings or IngestSettings())
    if code is None:
        return None
    return code.canonical, int(m.group("page"))
