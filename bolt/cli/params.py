"""``bolt params``: the derived parameters, bounds and memory budget."""

from __future__ import annotations

import click

from .common import make_params, params_options, placement_options, print_table


@click.command("params")
@params_options
@placement_options
def command(**options):
    """Print the derived parameters, bounds and memory budget."""
    print_table(make_params(**options).table(), headers=("parameter", "value"))
