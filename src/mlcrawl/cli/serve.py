"""``mlcrawl serve``: the read-only web view of the catalog."""

from __future__ import annotations

import click

from . import options as opt

LOCAL_HOST = "127.0.0.1"


@click.command()
@click.option("--host", default=LOCAL_HOST, show_default=True,
              help="Address to bind; anything but 127.0.0.1 shows the catalog to the network (see --token).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--token", envvar="MLCRAWL_SERVE_TOKEN", help="Secret every request must carry (?token=... once, "
              "then a cookie; or Authorization: Bearer). Default: $MLCRAWL_SERVE_TOKEN.")
@opt.catalog_options
def serve(host, port, token, config_path, catalog) -> None:
    """Browse runs, metric charts, comparisons and lineage at http://127.0.0.1:8765 (read-only)."""
    import uvicorn

    from ..serve.app import create_app

    store = opt.open_store(opt.load(config_path), catalog)
    with store.connect(read_only=True):
        pass  # refuse a missing or newer catalog before listening
    if host != LOCAL_HOST:
        click.echo(f"warning: serving on {host}: anyone who can reach this address can read the catalog"
                   + ("" if token else "; pass --token SECRET to require a token"), err=True)
    suffix = f"/?token={token}" if token else "/"
    click.echo(f"mlcrawl serve: http://{host}:{port}{suffix} (catalog {store.path}, read-only; Ctrl-C stops)")
    uvicorn.run(create_app(store, token), host=host, port=port, log_level="warning")


COMMANDS = (serve,)
