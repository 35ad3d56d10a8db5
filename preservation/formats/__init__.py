"""preservation.formats: the format policy, format-risk checks and migrations.

- :mod:`~preservation.formats.policy`  the policy registry (status, target, action by PUID)
- :mod:`~preservation.formats.risk`    the format-risk check, the report and re-identification
- :mod:`~preservation.formats.tools`   migration tools and actions, run as limited subprocesses
- :mod:`~preservation.formats.verify`  essential properties and the acceptance of an output
- :mod:`~preservation.formats.migrate` planning and running migrations into new AIP versions
"""
