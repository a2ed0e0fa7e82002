"""``bolt demo``: a small workload on the reference model, and what the host saw."""

from __future__ import annotations

import click

from ..tools.demo import run_demo


@click.command("demo")
@click.option("--capacity", "-N", type=int, default=4096, show_default=True)
@click.option("--value-size", "-V", type=int, default=64, show_default=True)
@click.option("--ops", type=int, default=20000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
def command(capacity, value_size, ops, seed):
    """Run a small workload on the reference model and show what the host saw."""
    run_demo(capacity=capacity, value_size=value_size, ops=ops, seed=seed)
