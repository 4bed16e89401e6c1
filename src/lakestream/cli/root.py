"""The root ``lakestream`` command, its shared context and the exit-status mapping.

Exit status: 0 success, 1 failure (one clear line; ``--debug`` shows the
traceback), 2 usage error.
"""

from __future__ import annotations

import logging
import sys

import click

from lakestream import __version__
from lakestream.api import Lakestream
from lakestream.config import load_settings
from lakestream.errors import LakestreamError, UsageError
from lakestream.kafka.client import RepeatFilter
from lakestream.memory import limit_malloc_arenas
from lakestream.output import (
    err_console,
    print_error,
)


class Context:
    """What every command gets: the options of the root command, and the facade on demand."""

    def __init__(self, config: str | None, debug: bool) -> None:
        self.config = config
        self.debug = debug
        self._api: Lakestream | None = None

    @property
    def api(self) -> Lakestream:
        """The facade, built from the configuration on first use."""
        if self._api is None:
            self._api = Lakestream(load_settings(self.config))
        return self._api


pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: ./lakestream.yaml if present, else embedded defaults).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Show informational logs.")
@click.version_option(__version__, prog_name="lakestream")
@click.pass_context
def cli(ctx: click.Context, config: str | None, debug: bool, verbose: bool) -> None:
    """Lakestream keeps your analytical data current from Kafka event streams.

    \b
    Quick start (no servers needed):
      lakestream demo                       # broker, events, lake, summary
      lakestream broker start               # an embedded Kafka for the commands below
      lakestream produce transactions --messages 10000
      lakestream ingest --pipeline transactions --until-idle
      lakestream query "SELECT count(*) FROM transaction_stream"

    Configuration comes from ./lakestream.yaml (or --config) and LAKESTREAM_*
    environment variables; see docs/configuration.md.
    """
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if not debug:
        librdkafka = logging.getLogger("lakestream.kafka")
        librdkafka.setLevel(max(level, logging.ERROR))
        librdkafka.addFilter(RepeatFilter())
        # ... librdkafka's chatter only: the consumer loop's own retry warnings stay visible
        logging.getLogger("lakestream.kafka.consumer").setLevel(level)
    ctx.obj = Context(config, debug)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map errors to exit codes."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    limit_malloc_arenas()  # before the long-running commands start their threads
    try:
        cli.main(args=argv, prog_name="lakestream", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        err_console.print("aborted")
        return 130
    except UsageError as exc:
        _print_error(exc, debug)
        return 2
    except LakestreamError as exc:
        _print_error(exc, debug)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            raise
        print_error(
            f"internal error: {type(exc).__name__}: {exc}", "run with --debug for the traceback"
        )
        return 1
    return 0


def _print_error(exc: LakestreamError, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exception(exc)
    print_error(exc.message, exc.hint)


