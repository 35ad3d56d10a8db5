"""Charts of the dashboard, drawn by pygal as SVG on the server and embedded inline.

pygal lays out axes, bars and legends; this module only chooses the chart type, the
series and the labels. The SVG needs no JavaScript: pygal's configuration
``<script>`` is removed from the tree (the pages' Content-Security-Policy forbids
scripts anyway) and values are printed on the bars instead of shown as tooltips.
Text stays text (``<text>`` elements), so Chinese labels use the browser's fonts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pygal
from lxml import etree
from markupsafe import Markup
from pygal.graph.graph import Graph
from pygal.style import Style

FONT = '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Microsoft YaHei", sans-serif'
# colours by meaning, so that a state keeps its colour on every chart
COLOURS = {
    "verified": "#2e7d32",
    "pass": "#2e7d32",
    "success": "#2e7d32",
    "preservation": "#2e7d32",
    "acceptable": "#7cb342",
    "stored": "#0277bd",
    "pending": "#f9a825",
    "at-risk": "#ef6c00",
    "failed": "#c62828",
    "failure": "#c62828",
    "obsolete": "#c62828",
    "missing": "#6a1b9a",
    "deleted": "#757575",
    "unknown": "#9e9e9e",
}
OTHER_COLOURS = ("#5c6bc0", "#26a69a", "#8d6e63", "#ec407a", "#78909c", "#d4e157", "#ab47bc")


def _style(keys: Sequence[str]) -> Style:
    colours: list[str] = []
    spare = iter(OTHER_COLOURS * (len(keys) // len(OTHER_COLOURS) + 1))
    for key in keys:
        colours.append(COLOURS.get(key) or next(spare))
    return Style(
        font_family=FONT,
        label_font_family=FONT,
        major_label_font_family=FONT,
        value_font_family=FONT,
        title_font_family=FONT,
        legend_font_family=FONT,
        tooltip_font_family=FONT,
        value_label_font_family=FONT,
        background="transparent",
        plot_background="transparent",
        colors=tuple(colours),
        value_font_size=11,
        legend_font_size=13,
        label_font_size=12,
        major_label_font_size=12,
        title_font_size=15,
    )


def _options(title: str, keys: Sequence[str], height: int) -> dict[str, object]:
    return {
        "title": title,
        "style": _style(keys),
        "js": [],
        "disable_xml_declaration": True,
        "width": 860,
        "height": height,
        "explicit_size": False,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": min(max(len(keys), 1), 6),
        "print_values": True,
        "print_zeroes": False,
        "truncate_legend": -1,
        "truncate_label": -1,
        "x_label_rotation": 0,
        "margin": 12,
        "show_y_guides": True,
        "include_x_axis": True,
        "no_data_text": "—",
    }


def _svg(chart: Graph, label: str) -> Markup:
    """The chart as inline SVG markup, without pygal's script, with an accessible name."""
    tree = chart.render_tree()
    for script in tree.xpath("//*[local-name()='script']"):
        script.getparent().remove(script)
    tree.set("role", "img")
    tree.set("aria-label", label)
    tree.attrib.pop("width", None)
    tree.attrib.pop("height", None)
    text = etree.tostring(tree, encoding="unicode")
    return Markup(text)  # pygal escaped every label it placed in the tree


def integer_ticks(top: int, most: int = 6) -> list[int]:
    """Axis labels for counts: whole numbers from 0 in steps of 1, 2 or 5 x 10^k,
    at most ``most`` steps (pygal's own choice may land on 0.8, 1.6...)."""
    step = 1
    while top / step > most:
        for factor in (2, 5 / 2, 2):  # 1 -> 2 -> 5 -> 10 -> 20 ...
            step = int(step * factor)
            if top / step <= most:
                break
    return list(range(0, max(top, 1) + step, step))


def stacked_bars(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[int]],
    series_labels: Mapping[str, str],
    *,
    horizontal: bool = False,
    height: int = 360,
    label_every: int = 1,
) -> Markup:
    """Stacked bars of counts: one bar per category, one stacked series per key of
    ``series`` (each a value per category; zero values are not labelled). With
    ``label_every`` > 1 only every n-th category is named on the axis."""
    keys = list(series)
    cls = pygal.HorizontalStackedBar if horizontal else pygal.StackedBar
    options = _options(title, keys, height)
    tallest = max((sum(col) for col in zip(*series.values(), strict=True)), default=0)
    options["y_labels"] = integer_ticks(tallest)
    options["value_formatter"] = lambda v: f"{v:,.0f}"
    if label_every > 1:
        options["x_labels_major_every"] = label_every
        options["show_minor_x_labels"] = False
    chart = cls(**options)
    chart.x_labels = list(categories)
    for key in keys:
        chart.add(series_labels.get(key, key), [v or None for v in series[key]])
    return _svg(chart, title)


def pie(
    title: str, values: Mapping[str, int], labels: Mapping[str, str], height: int = 320
) -> Markup:
    """A ring of shares (only non-zero values)."""
    keys = [k for k, v in values.items() if v]
    options = _options(title, keys, height)
    options["inner_radius"] = 0.45
    chart = pygal.Pie(**options)
    for key in keys:
        chart.add(labels.get(key, key), values[key])
    return _svg(chart, title)
