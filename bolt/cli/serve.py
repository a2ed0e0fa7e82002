"""``bolt serve``: the untrusted host as a server for ``bolt.connect`` clients."""

from __future__ import annotations

import json
import logging
import sys

import click

from .common import make_params, params_options


@click.command("serve")
@click.option("--backend", type=click.Choice(["reference", "rtl"]), default="reference",
              show_default=True, help="The accelerator: the Python model or the RTL simulation.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default).")
@click.option("--port", "-p", type=int, default=7407, show_default=True,
              help="TCP port; 0 picks a free one (announced on standard output).")
@params_options
@click.option("--max-clients", type=int, default=64, show_default=True)
@click.option("--queue", "queue_size", type=int, default=64, show_default=True,
              help="Requests waiting for the accelerator at most.")
@click.option("--request-timeout", type=float, default=30.0, show_default=True,
              help="Seconds a client may take to finish a message or take an answer.")
@click.option("--idle-timeout", type=float, default=300.0, show_default=True,
              help="Seconds a client may stay silent before it is disconnected.")
@click.option("--reload", is_flag=True,
              help="Relay bulk loads after the first (each replaces the map for everyone).")
@click.option("--lifetime", type=float, default=None,
              help="Stop by itself after this many seconds.")
@click.option("--record", type=click.Path(dir_okay=False), default=None,
              help="Write the operator's view (every message's bytes, the page trace of each "
                   "exchange) to this file as JSON lines.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info",
              show_default=True, help="debug logs every exchange (lengths and timings only).")
def command(backend, host, port, capacity, key_size, value_size, load, hbm_fraction,
            max_clients, queue_size, request_timeout, idle_timeout, reload, lifetime, record,
            log_level):
    """Serve one accelerator to many clients; the host relays only sealed frames.

    Prints one JSON line (address, backend, attestation measurement) on standard output once it
    listens; logs JSON lines on standard error.
    """
    from ..host.server import JsonLogFormatter, ServerConfig, run

    params = make_params(capacity, key_size, value_size, load, hbm_fraction)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("bolt.serve")
    logger.addHandler(handler)
    logger.setLevel(log_level.upper())
    config = ServerConfig(host=host, port=port, max_clients=max_clients, queue_size=queue_size,
                          request_timeout_s=request_timeout, idle_timeout_s=idle_timeout,
                          reload=reload, lifetime_s=lifetime, record=record)

    def announce(facts: dict) -> None:
        click.echo(json.dumps(facts))
        sys.stdout.flush()

    run(backend, params, config, announce=announce)
