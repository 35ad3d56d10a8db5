"""Statistics reports of the repository (yearly, quarterly, monthly).

- :mod:`~preservation.reports.period`      ``2022`` | ``2022-Q3`` | ``2022-07``
- :mod:`~preservation.reports.received`    what one ingest received (kept in its job row)
- :mod:`~preservation.reports.statistics`  the figures, from the repository's own records
- :mod:`~preservation.reports.render`      HTML (source), PDF (headless Chromium), CSV, JSON
- :mod:`~preservation.reports.monthly`     the report service and the scheduler's monthly job
"""
