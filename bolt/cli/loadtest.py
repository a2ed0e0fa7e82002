"""``bolt loadtest``: K concurrent clients on one map, every answer checked."""

from __future__ import annotations

import json

import click

from ..tools.loadtest import run_clients
from .common import make_params, params_options, parse_int, print_table


@click.command("loadtest")
@click.option("--clients", "-K", type=int, default=4, show_default=True,
              help="Concurrent clients (threads), each with a key space of its own.")
@click.option("--ops", "-n", default="10000", show_default=True,
              help="Operations per client (45% GET, 45% PUT, 10% DELETE); 1e5 and 2^16 work.")
@click.option("--server", "address", default=None, metavar="HOST:PORT",
              help="A running `bolt serve`; without it a local one is started on 127.0.0.1.")
@click.option("--measurement", default=None,
              help="The attestation measurement --server must report (hex; `bolt serve` "
                   "prints it).")
@click.option("--setup", is_flag=True,
              help="With --server: bulk-load an empty map first (replaces the server's map).")
@click.option("--in-process", is_flag=True,
              help="The clients share one in-process bolt.Map (threads) instead of a server.")
@click.option("--compare", is_flag=True,
              help="Run the same load in process and against a local server, and print the "
                   "server's overhead per op.")
@click.option("--backend", type=click.Choice(["reference", "rtl"]), default="reference",
              show_default=True, help="The local server's (or in-process map's) accelerator.")
@params_options(capacity=65536)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="Seconds a client waits for any answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(clients, ops, address, measurement, setup, in_process, compare, backend, capacity,
            key_size, value_size, load, hbm_fraction, seed, timeout, as_json, quiet):
    """K clients, N checked operations each: ops/s, p50/p99 latency, wrong answers.

    Each client checks every answer against its own record of its own key space, then reads
    the whole key space back. Exits 1 if any answer was wrong or any client failed.
    """
    from .. import remote
    from ..host.server import start_local_server
    from ..map import Map

    ops = parse_int(ops)
    if clients < 1 or ops < 1:
        raise click.BadParameter("--clients and --ops must be at least 1")
    if address is not None and (in_process or compare):
        raise click.BadParameter("--server excludes --in-process and --compare")
    if address is not None and measurement is None:
        raise click.BadParameter("--server needs --measurement (the server prints it)")
    params = make_params(capacity, key_size, value_size, load, hbm_fraction)
    common = dict(clients=clients, ops=ops, seed=seed, progress=not quiet)

    results = []

    def go(open_client, close_client, where, params):
        result = run_clients(open_client, close_client=close_client,
                             keys_per_client=max(1, params.capacity // (2 * clients)),
                             key_size=params.key_size, value_size=params.value_size, **common)
        results.append(result)
        report(result, where=where, as_json=as_json)

    if in_process or compare:
        with Map(**params.arguments(), backend=backend) as m:
            go(lambda n: m, None, "threads on one in-process bolt.Map", params)
        if not compare:
            return

    def open_remote(where, pin, load_first):
        def open_client(n):
            return remote.connect(where, measurement=pin, timeout_s=timeout,
                                  items={} if n == 0 and load_first else None)
        return open_client

    if address is not None:
        probe = remote.connect(address, measurement=measurement, timeout_s=timeout,
                               items={} if setup else None)
        served = probe.params
        probe.close()
        go(open_remote(address, measurement, False), lambda c: c.close(),
           f"server {address}", served)
        return
    # A local server for this run only; it stops by itself if this process dies.
    lifetime = 3600.0
    # The RTL's first server of a parameter set builds the design (minutes).
    with start_local_server(params, backend=backend, lifetime_s=lifetime,
                            start_timeout_s=1800 if backend == "rtl" else 120) as server:
        go(open_remote(server.address, server.measurement, True), lambda c: c.close(),
           f"local {backend} server {server.address}", params)
    if compare:
        local, served = results
        overhead = {"mean_us": served.summary()["mean_us"] - local.summary()["mean_us"],
                    "p50_us": served.percentile_us(50) - local.percentile_us(50)}
        click.echo(json.dumps({"server_overhead_per_op": overhead}) if as_json else
                   f"server overhead per op: {overhead['mean_us']:,.0f} us mean, "
                   f"{overhead['p50_us']:,.0f} us p50")


def report(result, *, where: str, as_json: bool) -> None:
    summary = dict(result.summary(), where=where)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        print_table([(where, summary["clients"], f"{summary['ops']:,}",
                      f"{summary['ops_per_s']:,.0f}", f"{summary['mean_us']:,.0f}",
                      f"{summary['p50_us']:,.0f}", f"{summary['p99_us']:,.0f}",
                      summary["wrong"], summary["errors"])],
                    headers=("clients of", "K", "ops", "ops/s", "mean (us)", "p50 (us)",
                             "p99 (us)", "wrong", "errors"))
        for line in result.errors[:10]:
            click.echo(line, err=True)
    if result.wrong or result.errors:
        raise click.ClickException(f"{result.wrong} wrong answers, {len(result.errors)} "
                                   "failed clients")
