"""Commands of the dashboard: ``serve``, ``tokens create|list|revoke``.

``serve`` hands uvicorn the app factory by name (``lakestream.web``), with
the configuration file in ``$LAKESTREAM_CONFIG``: the CLI and the web app are
entry points side by side and do not import each other.
"""

from __future__ import annotations

import json
import os
import socket

import click
from rich.table import Table

from lakestream.cli.root import Context, cli, pass_ctx
from lakestream.errors import LakestreamError, UsageError
from lakestream.output import console, err_console

APP_FACTORY = "lakestream.web:app_from_environment"
CONFIG_ENV = "LAKESTREAM_CONFIG"


def run_server(config: str | None, host: str, port: int, debug: bool = False) -> None:
    """Serve the dashboard of the configuration in ``config`` until interrupted.

    Raises:
        LakestreamError: The port is taken or cannot be bound.
    """
    import uvicorn

    _check_port(host, port)
    os.environ[CONFIG_ENV] = os.path.abspath(config) if config else ""
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port,
                log_level="info" if debug else "warning")


def _check_port(host: str, port: int) -> None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise LakestreamError(f"cannot listen on {host}:{port}: {exc.strerror}",
                              "choose another port with --port") from None


def dashboard_url(host: str, port: int) -> str:
    """The URL a browser opens for ``host:port``."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve_demo(config: str, port: int, debug: bool) -> None:
    """Serve the demo's dashboard, with a new token to log in (printed once)."""
    from lakestream.demo import dashboard_token

    _check_port("127.0.0.1", port)
    token = dashboard_token(config)
    url = dashboard_url("127.0.0.1", port)
    console.print(f"\nServing the dashboard at {url} (Ctrl-C stops). Log in with this token "
                  f"(shown once; principal 'demo' reads every dataset):\n  {token}",
                  soft_wrap=True)
    run_server(config, "127.0.0.1", port, debug)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="Port to listen on.")
@pass_ctx
def serve(ctx: Context, host: str, port: int) -> None:
    """Serve the dashboard, the JSON API and Prometheus /metrics.

    \b
    Pages:   /  (overview), /datasets/NAME, /runs, /quality, /charts
    API:     /api/...  described by /openapi.json (Bearer token)
    Metrics: /metrics  (Prometheus text; a token, or metrics.principal: docs/api.md)
    Log in with a token:  lakestream tokens create --principal NAME
    What a token may read: lakestream permissions grant NAME DATASET
    """
    _ = ctx.api.settings  # a broken configuration fails here, in one line
    console.print(f"dashboard: {dashboard_url(host, port)}  (API: /openapi.json, metrics: "
                  "/metrics; Ctrl-C stops)", soft_wrap=True)
    run_server(ctx.config, host, port, ctx.debug)


@cli.group()
def tokens() -> None:
    """API tokens for the dashboard and the JSON API (stored hashed; shown once)."""


@tokens.command("create")
@click.option("--principal", "-p", required=True, help="Who the token acts as.")
@pass_ctx
def tokens_create(ctx: Context, principal: str) -> None:
    """Create a token acting as PRINCIPAL and print it (the only time it is shown).

    \b
    The token reads what PRINCIPAL may read:
      lakestream permissions grant alice role:analyst
      TOKEN=$(lakestream tokens create --principal alice)
      curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/api/datasets
    """
    token, info = ctx.api.tokens.issue(principal)
    click.echo(token)
    err_console.print(f"token {info.token_id} for '{principal}' created; it is shown only "
                      "now: keep it somewhere safe", soft_wrap=True)


@tokens.command("list")
@click.option("--principal", "-p", default=None, help="Only this principal's tokens.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_ctx
def tokens_list(ctx: Context, principal: str | None, fmt: str) -> None:
    """List tokens: id, principal, creation time and fingerprint (never the token)."""
    found = ctx.api.tokens.listing(principal)
    rows = [{"id": t.token_id, "principal": t.principal, "created_at": t.created_at.isoformat(),
             "fingerprint": t.fingerprint} for t in found]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "principal", "created (UTC)", "fingerprint")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table if rows else "no tokens yet: lakestream tokens create --principal NAME")


@tokens.command("revoke")
@click.argument("token_id", type=int, required=False)
@click.option("--principal", "-p", default=None, help="Revoke every token of this principal.")
@pass_ctx
def tokens_revoke(ctx: Context, token_id: int | None, principal: str | None) -> None:
    """Revoke the token TOKEN_ID (see `tokens list`), or all of --principal's."""
    if (token_id is None) == (principal is None):
        raise UsageError("give a TOKEN_ID or --principal, not both or neither")
    if principal is not None:
        count = ctx.api.tokens.revoke_principal(principal)
        console.print(f"revoked {count} token(s) of '{principal}'")
        return
    assert token_id is not None
    revoked = ctx.api.tokens.revoke(token_id)
    if revoked is None:
        raise LakestreamError(f"no token with id {token_id}", "see `lakestream tokens list`")
    console.print(f"revoked token {token_id} of '{revoked.principal}'")

