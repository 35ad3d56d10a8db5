"""The command line: click commands only, one module per area; each calls one service
function. ``main`` is the console script ``preservation``."""

from preservation.cli import access as access
from preservation.cli import aips, ingest, replication, repository
from preservation.cli import audit as audit
from preservation.cli import formats as formats
from preservation.cli import recovery as recovery
from preservation.cli import reports as reports
from preservation.cli.app import cli, main

__all__ = ["aips", "cli", "ingest", "main", "replication", "repository"]
