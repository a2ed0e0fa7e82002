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
@click.option("--in-process", is_flag=True,
              help="The clients share one in-process bolt.Map (threads) instead of a server.")
@params_options(capacity=65536)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(clients, ops, in_process, capacity, key_size, value_size, load, hbm_fraction, seed,
            as_json, quiet):
    """K clients, N checked operations each: ops/s, p50/p99 latency, wrong answers."""
    from ..map import Map

    params = make_params(capacity, key_size, value_size, load, hbm_fraction)
    ops = parse_int(ops)
    if clients < 1 or ops < 1:
        raise click.BadParameter("--clients and --ops must be at least 1")
    keys_per_client = max(1, capacity // (2 * clients))
    with Map(**params.arguments()) as m:
        result = run_clients(lambda n: m, clients=clients, ops=ops,
                             keys_per_client=keys_per_client, key_size=params.key_size,
                             value_size=params.value_size, seed=seed, progress=not quiet)
    report(result, where="threads on one in-process bolt.Map", as_json=as_json)


def report(result, *, where: str, as_json: bool) -> None:
    summary = dict(result.summary(), where=where)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        print_table([(where, summary["clients"], f"{summary['ops']:,}",
                      f"{summary['ops_per_s']:,.0f}", f"{summary['p50_us']:,.0f}",
                      f"{summary['p99_us']:,.0f}", summary["wrong"], summary["errors"])],
                    headers=("clients of", "K", "ops", "ops/s", "p50 (us)", "p99 (us)",
                             "wrong", "errors"))
        for line in result.errors[:10]:
            click.echo(line, err=True)
    if result.wrong or result.errors:
        raise SystemExit(1)
