"""``ecert serve``: the registry's sharing service on uvicorn (the ``server`` extra)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from ecert_cli._app import EXIT_OK, cli, input_error, interrupted, settings
from ecert_cli._render import say


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), required=True,
              help="Port to listen on.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes, each with its own connections to the registry's "
                   "database (several: use PostgreSQL).")
@click.option("--base-url", default=None,
              help="The service's public base URL, which requests are signed for "
                   "(default: http://HOST:PORT).")
@click.option("--bundle", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=None,
              help="Read the region's trust list from this published bundle directory "
                   "(default: from the registry's base URL).")
def serve(host: str, port: int, workers: int, base_url: str | None,
          bundle: Path | None) -> None:
    """Serve the sharing service: other agencies fetch purpose-bound copies over HTTP.

    Runs as the service operator (ECERT_OPERATOR, ECERT_OPERATOR_PASSPHRASE); the
    registry's passphrase (ECERT_PASSPHRASE) unlocks the sharing key. Stops on SIGTERM or
    Ctrl-C, finishing the requests in progress.
    """
    from ecert._extras import needs

    with needs("registry"):
        import ecert.registry  # noqa: F401 - a verifier-only install says which extra first
    with needs("server"):
        from ecert.sharing import serve as serving

    s = settings()
    if not s.operator:
        raise input_error("name the service operator: --operator NAME or ECERT_OPERATOR")
    url = (base_url or f"http://{host}:{port}").rstrip("/")
    config = serving.ServiceSettings(
        home=str(s.home), database_url=s.database_url, operator=s.operator, base_url=url,
        bundle=None if bundle is None else str(bundle.resolve()))

    def started() -> None:
        say("serving the sharing service on {url} as {operator} ({workers} worker(s)); "
            "stop with Ctrl-C or SIGTERM", url=url, operator=s.operator, workers=workers)

    stopped_by = serving.serve(config, host=host, port=port, workers=workers,
                               passphrase=s.passphrase(),
                               operator_passphrase=s.operator_passphrase(),
                               on_started=started)
    if stopped_by == signal.SIGINT:
        interrupted()
    say("stopped ({signal})", signal="SIGTERM" if stopped_by == signal.SIGTERM else "-")
    sys.exit(EXIT_OK)
