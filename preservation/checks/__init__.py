"""Checks of stored AIPs during long-term preservation (DA/T 70, 长期保存阶段).

- :mod:`~preservation.checks.periodic`  ``preservation check``: the four-property check
  of stored AIPs, a report per AIP in the form of the ingest report, a PREMIS event
- :mod:`~preservation.checks.drill`     ``preservation drill``: restore drills from the
  off-site store (scheduler job ``restore-drill``)
"""
