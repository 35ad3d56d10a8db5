"""The dashboard's two languages: Chinese (the default) and English.

The language of a request is ``?lang=zh|en`` when given (and then remembered in the
``lang`` cookie), else the ``lang`` cookie, else the best of ``Accept-Language``
(q-values honoured), else Chinese. Every label the pages show is a key of
:data:`LABELS`; a missing key is a programming error (``KeyError``), never an
untranslated string shown to users.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
DEFAULT: Language = "zh"
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600

# key: (中文, English)
LABELS: dict[str, tuple[str, str]] = {
    "app": ("数字档案长期保存", "Digital preservation"),
    "nav.overview": ("概览", "Overview"),
    "nav.replication": ("副本健康", "Replication health"),
    "nav.audits": ("审计", "Audits"),
    "nav.formats": ("格式", "Formats"),
    "nav.ingests": ("接收记录", "Ingest history"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "sign_out": ("退出", "Sign out"),
    "sign_in": ("登录", "Sign in"),
    "language": ("语言", "Language"),
    "role.admin": ("管理员", "administrator"),
    "role.archivist": ("档案员", "archivist"),
    "role.auditor": ("审计员", "auditor"),
    "role.reader": ("读者", "reader"),
    "public_only": (
        "仅统计开放的公开档案。",
        "Only open, public records are counted.",
    ),
    "generated": ("生成时间", "Generated"),
    "none": ("无", "none"),
    "never": ("从未", "never"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "total": ("合计", "total"),
    # overview
    "ov.aips": ("档案信息包 (AIP)", "AIPs"),
    "ov.versions": ("版本", "versions"),
    "ov.files": ("文件", "Files"),
    "ov.bytes": ("数据量", "Bytes"),
    "ov.copies": ("副本", "Copies"),
    "ov.copies_verified": ("已验证副本", "verified copies"),
    "ov.ndsa": ("NDSA 存储级别", "NDSA storage level"),
    "ov.ndsa_ceiling": ("存储配置上限", "ceiling of the configured stores"),
    "ov.incidents": ("未处理事件", "Open incidents"),
    "ov.last_audit": ("最近审计", "Last audit"),
    "ov.copies_by_state": ("副本状态", "Copies by state"),
    # states and outcomes
    "state.pending": ("待复制", "pending"),
    "state.stored": ("已存储", "stored"),
    "state.verified": ("已验证", "verified"),
    "state.failed": ("失败", "failed"),
    "state.missing": ("缺失", "missing"),
    "state.deleted": ("已删除", "deleted"),
    "state.running": ("进行中", "running"),
    "state.staging": ("暂存中", "staging"),
    "state.finalising": ("完成中", "finalising"),
    "state.done": ("完成", "done"),
    "state.cancelled": ("已取消", "cancelled"),
    "severity.warning": ("警告", "warning"),
    "severity.error": ("错误", "error"),
    "severity.critical": ("严重", "critical"),
    "outcome.success": ("通过", "passed"),
    "outcome.failure": ("失败", "failed"),
    # replication
    "rep.title": ("副本健康", "Replication health"),
    "rep.policy": ("保存策略", "Policy"),
    "rep.policy_text": (
        "每个 AIP 至少 {copies} 个已验证副本，分布在 {sites} 个站点",
        "at least {copies} verified copies of each AIP on {sites} sites",
    ),
    "rep.stores": ("存储", "Stores"),
    "rep.sites": ("站点", "Sites"),
    "rep.store": ("存储", "Store"),
    "rep.site": ("站点", "Site"),
    "rep.role": ("角色", "Role"),
    "rep.media": ("介质", "Media"),
    "rep.reachable": ("可访问", "Reachable"),
    "rep.verified": ("已验证", "Verified"),
    "rep.pending": ("待复制", "Pending"),
    "rep.failed": ("失败", "Failed"),
    "rep.stale": ("过期", "Stale"),
    "rep.aips": ("AIP 数", "AIPs"),
    "rep.objects": ("对象", "Objects"),
    "rep.last_error": ("最近复制错误", "Last replication error"),
    "rep.below": ("低于策略的 AIP", "AIPs below policy"),
    "rep.below_none": ("所有 AIP 均符合策略。", "Every AIP meets the policy."),
    "rep.aip": ("AIP", "AIP"),
    "rep.reference": ("档号", "Reference code"),
    "rep.level": ("级别", "Level"),
    "rep.problems": ("问题", "Problems"),
    "rep.truncated": ("仅列出前 {n} 个。", "Only the first {n} are listed."),
    "rep.chart": ("各存储副本状态", "Copies per store and state"),
    # audits
    "aud.title": ("固定性审计", "Fixity audits"),
    "aud.chart": (
        "每日检查结果（每个副本每次审计一个事件）",
        "Checks per day (one per copy and run)",
    ),
    "aud.coverage": ("审计周期内覆盖率", "Coverage within interval"),
    "aud.interval": ("周期（天）", "Interval (days)"),
    "aud.file_copies": ("文件副本", "File copies"),
    "aud.in_interval": ("周期内已验证", "Verified within interval"),
    "aud.overdue": ("逾期", "Overdue"),
    "aud.never": ("从未验证", "Never verified"),
    "aud.failing": ("失败", "Failing"),
    "aud.runs": ("最近审计运行", "Recent audit runs"),
    "aud.run": ("运行", "Run"),
    "aud.mode": ("方式", "Mode"),
    "aud.state": ("状态", "State"),
    "aud.started": ("开始", "Started"),
    "aud.checked": ("已检查", "Checked"),
    "aud.stopped_by": ("停止原因", "Stopped by"),
    "aud.no_runs": ("尚无审计运行。", "No audit run yet."),
    "aud.days": ("最近 {n} 天", "last {n} days"),
    # formats
    "fmt.title": ("文件格式", "File formats"),
    "fmt.chart": ("各状态的格式（文件数）", "Formats by status (files)"),
    "fmt.status": ("状态", "Status"),
    "fmt.puid": ("PUID", "PUID"),
    "fmt.name": ("格式", "Format"),
    "fmt.category": ("类别", "Category"),
    "fmt.files": ("文件", "Files"),
    "fmt.bytes": ("数据量", "Bytes"),
    "fmt.at_risk": ("有风险的文件", "Files at risk"),
    "fmt.at_risk_migrated": ("有风险但已迁移", "At risk, already migrated"),
    "fmt.policy": ("格式策略", "Format policy"),
    "fmt.status.preservation": ("长期保存格式", "preservation"),
    "fmt.status.acceptable": ("可接受", "acceptable"),
    "fmt.status.at-risk": ("有风险", "at risk"),
    "fmt.status.obsolete": ("过时", "obsolete"),
    "fmt.status.unknown": ("未知", "unknown"),
    # ingest
    "ing.title": ("接收记录", "Ingest history"),
    "ing.started": ("开始", "Started"),
    "ing.finished": ("结束", "Finished"),
    "ing.source": ("移交", "Transfer"),
    "ing.state": ("状态", "State"),
    "ing.aip": ("AIP", "AIP"),
    "ing.reference": ("档号", "Reference code"),
    "ing.title_col": ("题名", "Title"),
    "ing.files": ("文件", "Files"),
    "ing.bytes": ("数据量", "Bytes"),
    "ing.report": ("检测报告", "Report"),
    "ing.error": ("错误", "Error"),
    "ing.none": ("尚无接收记录。", "No ingest yet."),
    "ing.page": ("第 {page} / {pages} 页", "Page {page} of {pages}"),
    "ing.prev": ("上一页", "Previous"),
    "ing.next": ("下一页", "Next"),
    "ing.job": ("接收作业", "Ingest job"),
    "ing.details": ("详情与检测报告", "Details and report"),
    "ing.open_report": ("查看四性检测报告", "Open the check report"),
    "ing.no_report": ("此作业没有保存的报告。", "No report was kept for this job."),
    "ing.by_state": ("按状态", "By state"),
    # errors
    "err.forbidden": ("无权访问此页面。", "You may not open this page."),
    "err.not_found": ("未找到。", "Not found."),
}


@dataclass(frozen=True)
class Translator:
    """Labels in one language: ``t("ov.aips")``, ``t("rep.truncated", n=10)``."""

    lang: Language

    def __call__(self, key: str, **values: object) -> str:
        zh, en = LABELS[key]
        text = zh if self.lang == "zh" else en
        return text.format(**values) if values else text

    def state(self, prefix: str, value: str) -> str:
        """The label of a state or outcome, or the raw value when none is defined."""
        key = f"{prefix}.{value}"
        return self(key) if key in LABELS else value

    @property
    def html_lang(self) -> str:
        return "zh-CN" if self.lang == "zh" else "en"


def parse_accept_language(header: str) -> Language | None:
    """The best supported language of an ``Accept-Language`` header, or None."""
    best: tuple[float, int, Language] | None = None
    for index, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        tag = fields[0].lower()
        if not tag:
            continue
        quality = 1.0
        for f in fields[1:]:
            if f.startswith("q="):
                try:
                    quality = float(f[2:])
                except ValueError:
                    quality = 0.0
        primary = tag.split("-", 1)[0]
        lang: Language | None = "zh" if primary == "zh" else "en" if primary == "en" else None
        if lang is None or quality <= 0:
            continue
        # higher quality first; on a tie, the earlier entry
        if best is None or (quality, -index) > (best[0], best[1]):
            best = (quality, -index, lang)
    return best[2] if best else None


def _valid(value: str | None) -> Language | None:
    return value if value in LANGUAGES else None


def choose(query: Mapping[str, str], cookies: Mapping[str, str], accept: str | None) -> Language:
    """``?lang``, then the cookie, then ``Accept-Language``, then Chinese."""
    return (
        _valid(query.get("lang"))
        or _valid(cookies.get(COOKIE))
        or parse_accept_language(accept or "")
        or DEFAULT
    )


def language_of(request: Request) -> Language:
    return choose(request.query_params, request.cookies, request.headers.get("accept-language"))


def translator(request: Request) -> Translator:
    return Translator(language_of(request))


def remember(request: Request, response: Response) -> None:
    """Keep an explicit ``?lang=`` choice in the cookie."""
    chosen = _valid(request.query_params.get("lang"))
    if chosen is not None and request.cookies.get(COOKIE) != chosen:
        response.set_cookie(
            COOKIE,
            chosen,
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
