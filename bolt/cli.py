"""The ``bolt`` command-line tool."""

from __future__ import annotations

import importlib

import click

from .params import Params


def params_options(function=None, *, capacity: int | None = None):
    """The parameter options of spec section 1, shared by every command that builds a map.

    ``capacity`` overrides the default N (``@params_options(capacity=4096)``), for commands
    whose cost grows with N.
    """
    if function is None:
        return lambda f: params_options(f, capacity=capacity)
    defaults = Params()
    options = [
        click.option("--capacity", "-N", type=int, default=capacity or defaults.capacity,
                     show_default=True, help="N, the most items the map may hold."),
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


#: Commands defined in their own modules, imported only when run (``bolt --help`` stays quick
#: and never loads Amaranth, numba or cocotb).
LAZY_COMMANDS = {
    "audit": "bolt.audit:command",
    "bench": "bolt.bench:command",
    "bounds": "bolt.bounds:command",
    "demo": "bolt.demo:demo_command",
    "sim": "bolt.host.cli:sim_command",
    "speed": "bolt.speed:command",
    "synth": "bolt.hdl.report:command",
}


class _LazyGroup(click.Group):
    """A click group that imports a subcommand's module when that subcommand is asked for."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            module, attribute = LAZY_COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """BOLT: an oblivious key-value map on a secure-HBM accelerator."""


@main.command("params")
@params_options
def params_command(**options):
    """Print the derived parameters, bounds and memory budget."""
    print_table(make_params(**options).table(), headers=("parameter", "value"))
