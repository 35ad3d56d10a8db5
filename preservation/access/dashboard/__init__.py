"""The web dashboard (server-rendered HTML, Chinese and English): overview,
replication health, audits, formats, ingest history and ingest reports.

``router`` is included by :func:`preservation.access.app.create_app`.
"""

from preservation.access.dashboard.pages import router

__all__ = ["router"]
