"""The ``lakestream`` command line: thin wrappers around :class:`lakestream.api.Lakestream`.

Each module of this package adds its commands to the root group; commands
parse arguments, call the facade once, and print. Exit status: 0 success,
1 failure (one clear line; ``--debug`` shows the traceback), 2 usage error.
"""

import lakestream.cli.warehouse  # noqa: F401  (registers the commands)
from lakestream.cli import (  # noqa: F401  (each module registers its commands)
    batch,
    derive,
    dlq,
    doctor,
    feeds,
    governance,
    lake,
    lineage,
    orchestrate,
    reference,
    statements,
    streams,
    weather,
    web,
)
from lakestream.cli.root import cli, main

__all__ = ["cli", "main"]
