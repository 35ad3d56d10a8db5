"""Small facts about journalled work shared by ingest, replication, audits and leases."""

from __future__ import annotations

import os
import socket

from preservation import AGENT_NAME, __version__
from preservation.model import Agent


def process_alive(host: str | None, pid: int | None) -> bool:
    """Whether the process that journalled a job may still run.

    A job of another host is assumed alive (it cannot be checked from here); a job of
    this host is alive while its process exists.
    """
    if host != socket.gethostname():
        return host is not None
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def software_agent() -> Agent:
    """The PREMIS agent for this software and version."""
    return Agent(f"{AGENT_NAME}/{__version__}", AGENT_NAME, "software", version=__version__)
