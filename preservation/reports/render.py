"""The statistics report as HTML (the source), PDF, CSV and JSON.

The HTML is rendered from the Jinja2 template ``templates/statistics.html.j2`` with
autoescaping; charts are SVG drawn on the server with pygal (no script, inline in the
page). The PDF is the HTML printed by headless Chromium (``chromium --headless
--print-to-pdf``); without Chromium, ToolMissing (TOOL001). Labels are Chinese or
English (``lang``); the page's fonts fall back to Noto Sans CJK (fonts-noto-cjk).
CSV is long-form (``section,metric,key,value``), one figure a line; JSON is the
gathered data as it is.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined

from preservation.errors import PreservationError, ToolMissing
from preservation.metadata.spreadsheet_safe import safe_row

Lang = Literal["zh", "en"]
Format = Literal["html", "pdf", "csv", "json"]
FORMATS: tuple[str, ...] = ("html", "pdf", "csv", "json")
FONT_FAMILY = "'Noto Sans CJK SC', 'Noto Sans SC', 'Noto Sans', 'DejaVu Sans', sans-serif"
PDF_TIMEOUT = 120.0
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Preservation statistics",
        "period": "Period",
        "generated": "Generated",
        "summary": "Summary",
        "monthly": "Received per month",
        "month": "Month",
        "transfers": "Transfers",
        "transfers_met": "Met the standard",
        "transfers_refused": "Refused",
        "aips": "AIPs",
        "items": "Items (件)",
        "volumes": "Volumes (卷)",
        "files": "Files",
        "pages": "Pages",
        "images": "Images",
        "bytes": "Bytes",
        "total": "Total",
        "standard": "Transfers meeting the receiving standard",
        "share": "Share",
        "target": "Target",
        "duplicates": "Duplicates",
        "fixity": "Fixity checks",
        "checks": "Checks",
        "passed": "Passed",
        "failed": "Failed",
        "pass_rate": "Pass rate",
        "store": "Store",
        "site": "Site",
        "availability": "Store availability as seen by the checks",
        "unreadable": "Unreadable",
        "audit_runs": "Audit runs",
        "audit_runs_failed": "Audit runs failed",
        "coverage": "Audit coverage within interval",
        "interval_days": "Interval (days)",
        "file_copies": "File copies",
        "verified_in_interval": "Verified within interval",
        "as_of": "as of",
        "replication": "Replication",
        "active_aips": "Active AIPs",
        "meeting_policy": "Meeting the copy policy",
        "ndsa_level": "NDSA storage level",
        "formats": "Format risk",
        "status": "Status",
        "at_risk_files": "At risk, not migrated",
        "at_risk_migrated": "At risk, migrated",
        "migrations": "Migrations",
        "versions": "New versions",
        "migrated_files": "Files migrated",
        "access": "Access and downloads by role",
        "role": "Role",
        "action": "Action",
        "count": "Count",
        "downloads": "Downloads",
        "views": "Views",
        "exports": "Exports",
        "restricted": "Restricted records touched",
        "denied": "Denied or failed",
        "no_access_log": "The access log is not available in this catalogue.",
        "digitised": "Digitised pages",
        "resolution": "Resolution (dpi)",
        "colour_mode": "Colour mode",
        "scans": "Scanned images",
        "below_minimum": "Below the minimum resolution",
        "incidents": "Incidents",
        "opened": "Opened",
        "repaired": "Repaired",
        "checks_drills": "Periodic checks and restore drills",
        "preservation_checks": "Periodic four-property checks",
        "restore_drills": "Restore drills",
        "runs": "Runs",
        "without_detail": "AIPs without received detail (ingested before it was recorded)",
        "without_sheet": "AIPs without sheet counts (no ingest record, e.g. a rebuilt catalogue):"
        " items and volumes not counted",
        "none": "none",
    },
    "zh": {
        "title": "长期保存统计报表",
        "period": "统计期间",
        "generated": "生成时间",
        "summary": "概要",
        "monthly": "按月接收情况",
        "month": "月份",
        "transfers": "移交批次",
        "transfers_met": "符合接收标准",
        "transfers_refused": "拒收",
        "aips": "归档信息包",
        "items": "件数",
        "volumes": "卷数",
        "files": "文件数",
        "pages": "页数",
        "images": "图像数",
        "bytes": "字节数",
        "total": "合计",
        "standard": "符合接收标准的移交比例",
        "share": "比例",
        "target": "目标",
        "duplicates": "重复移交",
        "fixity": "固定性检测",
        "checks": "检测次数",
        "passed": "通过",
        "failed": "不通过",
        "pass_rate": "通过率",
        "store": "存储",
        "site": "站点",
        "availability": "检测所见存储可用性",
        "unreadable": "不可读",
        "audit_runs": "审计运行次数",
        "audit_runs_failed": "审计运行失败",
        "coverage": "周期内审计覆盖率",
        "interval_days": "检测周期(天)",
        "file_copies": "文件副本数",
        "verified_in_interval": "周期内已验证",
        "as_of": "截至",
        "replication": "复制与备份",
        "active_aips": "在存信息包",
        "meeting_policy": "符合副本策略",
        "ndsa_level": "NDSA 存储级别",
        "formats": "格式风险",
        "status": "状态",
        "at_risk_files": "有风险且未迁移",
        "at_risk_migrated": "有风险已迁移",
        "migrations": "格式迁移",
        "versions": "新版本",
        "migrated_files": "已迁移文件",
        "access": "按角色统计的利用与下载",
        "role": "角色",
        "action": "操作",
        "count": "次数",
        "downloads": "下载",
        "views": "查看",
        "exports": "导出",
        "restricted": "涉及受控档案",
        "denied": "拒绝或失败",
        "no_access_log": "本目录库中没有访问日志。",
        "digitised": "数字化页面",
        "resolution": "分辨率(dpi)",
        "colour_mode": "色彩模式",
        "scans": "扫描图像",
        "below_minimum": "低于最低分辨率",
        "incidents": "异常事件",
        "opened": "发现",
        "repaired": "已修复",
        "checks_drills": "定期检测与恢复演练",
        "preservation_checks": "长期保存四性检测",
        "restore_drills": "备份恢复演练",
        "runs": "次数",
        "without_detail": "无接收明细的信息包(记录前接收)",
        "without_sheet": "无目录统计的信息包(无接收记录,如重建的目录库),未计入件数和卷数",
        "none": "无",
    },
}


def labels(lang: str) -> dict[str, str]:
    return LABELS["zh" if lang == "zh" else "en"]


# ------------------------------------------------------------------ charts
def _style() -> Any:
    from pygal.style import Style

    return Style(
        font_family=FONT_FAMILY,
        background="white",
        plot_background="white",
        colors=("#2f6f9f", "#d9822b", "#3d9a50", "#b04a4a", "#7a5ea8", "#8c8c8c"),
    )


def _render(chart: Any, label: str) -> str:
    """Inline SVG without pygal's script (as the dashboard's charts)."""
    from lxml import etree

    tree = chart.render_tree()
    for script in tree.xpath("//*[local-name()='script']"):
        script.getparent().remove(script)
    tree.set("role", "img")
    tree.set("aria-label", label)
    return str(etree.tostring(tree, encoding="unicode"))


def charts(data: dict[str, Any], lang: str) -> dict[str, str]:
    """SVG charts (inline markup, no script) for the parts people would rather see."""
    import pygal

    t = labels(lang)
    common = {
        "style": _style(),
        "js": [],
        "disable_xml_declaration": True,
        "width": 720,
        "height": 300,
        "legend_at_bottom": True,
        "print_values": False,
    }
    out: dict[str, str] = {}
    months = [m["month"] for m in data["months"]]

    bar = pygal.Bar(title=t["monthly"], **common)
    bar.x_labels = months
    for key in ("transfers", "aips", "items", "volumes"):
        bar.add(t[key], [m[key] for m in data["months"]])
    out["monthly"] = _render(bar, t["monthly"])

    title = f"{t['pages']} / {t['images']}"
    pages = pygal.Bar(title=title, **common)
    pages.x_labels = months
    for key in ("pages", "images"):
        pages.add(t[key], [m[key] for m in data["months"]])
    out["pages"] = _render(pages, title)

    by_status = data["formats"]["by_status"]
    if any(v["files"] for v in by_status.values()):
        pie = pygal.Pie(title=t["formats"], inner_radius=0.4, **common)
        for status, v in by_status.items():
            if v["files"]:
                pie.add(status, v["files"])
        out["formats"] = _render(pie, t["formats"])

    by_role = data["access"]["by_role"]
    if by_role:
        access = pygal.HorizontalBar(title=t["access"], **common)
        access.x_labels = list(by_role)
        for action in data["access"]["by_action"]:
            access.add(action, [by_role[r].get(action, 0) for r in by_role])
        out["access"] = _render(access, t["access"])

    dig = data["digitised"]
    if dig["by_resolution"]:
        res = pygal.Bar(title=t["resolution"], **common)
        res.x_labels = list(dig["by_resolution"])
        res.add(t["scans"], list(dig["by_resolution"].values()))
        out["resolution"] = _render(res, t["resolution"])
    if dig["by_colour_mode"]:
        col = pygal.Pie(title=t["colour_mode"], **common)
        for mode, n in dig["by_colour_mode"].items():
            col.add(mode, n)
        out["colour_mode"] = _render(col, t["colour_mode"])
    return out


# ------------------------------------------------------------------ HTML
_env: Environment | None = None


def _environment() -> Environment:
    global _env
    if _env is None:
        _env = Environment(
            loader=PackageLoader("preservation.reports", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _env


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def render_html(data: dict[str, Any], lang: str = "zh") -> str:
    from markupsafe import Markup

    env = _environment()
    env.filters["percent"] = _percent
    svg = {k: Markup(v) for k, v in charts(data, lang).items()}
    return env.get_template("statistics.html.j2").render(
        d=data,
        t=labels(lang),
        lang="zh-CN" if lang == "zh" else "en",
        charts=svg,
        font_family=FONT_FAMILY,
    )


# ------------------------------------------------------------------ CSV / JSON
def _flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            rows += _flatten(f"{prefix}.{k}" if prefix else str(k), v)
        return rows
    if isinstance(value, list):
        rows = []
        for i, v in enumerate(value):
            key = v.get("month") or v.get("store") or v.get("puid") if isinstance(v, dict) else None
            rows += _flatten(f"{prefix}[{key if key is not None else i}]", v)
        return rows
    return [(prefix, "" if value is None else str(value))]


def render_csv(data: dict[str, Any]) -> str:
    """Every figure on its own line: ``section,metric,value`` (UTF-8, for spreadsheets)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["section", "metric", "value"])
    for key, value in data.items():
        for metric, text in _flatten("", value):
            # Store names, format names and the like come from outside: a cell that
            # a spreadsheet would run as a formula is written as text.
            w.writerow(safe_row([key, metric, text]))
    return buf.getvalue()


def render_json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# ------------------------------------------------------------------ PDF
def find_chromium() -> str:
    explicit = os.environ.get("PRESERVATION_CHROMIUM")
    if explicit:
        if shutil.which(explicit) is None:
            raise ToolMissing(tool=f"Chromium ({explicit})", package="chromium")
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    raise ToolMissing(tool="Chromium (for PDF reports)", package="chromium")


def html_to_pdf(html: str, out: Path, *, timeout: float = PDF_TIMEOUT) -> None:
    """Print ``html`` to ``out`` with headless Chromium (A4, no header or footer)."""
    chromium = find_chromium()
    with tempfile.TemporaryDirectory(prefix="report-pdf-") as tmp:
        work = Path(tmp)
        page = work / "report.html"
        page.write_text(html, encoding="utf-8")
        pdf = work / "report.pdf"
        cmd = [
            chromium,
            "--headless",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--no-pdf-header-footer",
            f"--user-data-dir={work / 'profile'}",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium refuses to run as root with it
        env = {**os.environ, "HOME": str(work), "TMPDIR": str(work)}
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired as e:
            raise PreservationError(f"Chromium did not print the report in {timeout:g}s") from e
        if proc.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
            tail = proc.stderr.decode(errors="replace")[-800:]
            raise PreservationError(
                f"Chromium could not print the report (exit {proc.returncode}): {tail}"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(f".{out.name}.tmp")
        shutil.copyfile(pdf, tmp_out)
        tmp_out.replace(out)


def render(data: dict[str, Any], fmt: str, lang: str, out: Path) -> Path:
    """Write the report in ``fmt`` to ``out`` (written whole or not at all)."""
    if fmt == "pdf":
        html_to_pdf(render_html(data, lang), out)
        return out
    if fmt == "html":
        payload = render_html(data, lang).encode("utf-8")
    elif fmt == "csv":
        payload = ("\ufeff" + render_csv(data)).encode("utf-8")
    else:
        payload = render_json(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(payload)
    tmp.replace(out)
    return out
