"""Named crash points for fault-injection tests.

Long operations call :func:`checkpoint` at the points where a crash matters. When the
environment variable ``PRESERVATION_FAULT_KILL_AT`` names that point, the process kills
itself with SIGKILL there, exactly as a power cut or an OOM kill would. Without the
variable this is a dictionary look-up and nothing else.
"""

from __future__ import annotations

import os
import signal

ENV = "PRESERVATION_FAULT_KILL_AT"


def checkpoint(name: str) -> None:
    target = os.environ.get(ENV)
    if target and target == name:
        os.kill(os.getpid(), signal.SIGKILL)
