"""The ``bolt`` command-line tool."""

from __future__ import annotations

import click

from .params import Params


def params_options(function):
    """The parameter options of spec section 1, shared by every command that builds a map."""
    defaults = Params()
    options = [
        click.option("--capacity", "-N", type=int, default=defaults.capacity, show_default=True,
                     help="N, the most items the map may hold."),
        click.option("--key-size", type=int, default=defaults.key_size, show_default=True,
                     help="Key bytes."),
        click.option("--value-size", "-V", type=int, default=defaults.value_size,
                     show_default=True, help="V, the most value bytes."),
        click.option("--load", "-c", type=int, default=defaults.load, show_default=True,
                     help="c, average items per bin."),
        click.option("--hbm-fraction", "-a", type=float, default=defaults.hbm_fraction,
                     show_default=True, help="α, fraction of bins in HBM."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def make_params(capacity, key_size, value_size, load, hbm_fraction) -> Params:
    try:
        return Params(capacity=capacity, key_size=key_size, value_size=value_size, load=load,
                      hbm_fraction=hbm_fraction)
    except (TypeError, ValueError) as error:
        raise click.BadParameter(str(error)) from error


def print_table(rows, headers=None) -> None:
    rows = [[str(cell) for cell in row] for row in rows]
    if headers:
        rows.insert(0, list(headers))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        click.echo("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                             for i, (cell, width) in enumerate(zip(row, widths))).rstrip())
        if headers and n == 0:
            click.echo("  ".join("-" * width for width in widths))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """BOLT: an oblivious key-value map on a secure-HBM accelerator."""


@main.command("params")
@params_options
def params_command(**options):
    """Print the derived parameters, bounds and memory budget."""
    print_table(make_params(**options).table(), headers=("parameter", "value"))


# Commands defined in their own modules register here, one line each.
main.add_command(__import__("bolt.bounds", fromlist=["command"]).command)  # bolt bounds
from .demo import demo_command  # noqa: E402

main.add_command(demo_command)
main.add_command(__import__("bolt.bench", fromlist=["command"]).command)  # bolt bench
main.add_command(__import__("bolt.audit", fromlist=["command"]).command)  # bolt audit
