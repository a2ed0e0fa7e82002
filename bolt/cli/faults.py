"""``bolt faults``: the fault campaign and the long-run nonce check of the reference model."""

from __future__ import annotations

import sys
import time

import click

from ..tools.faults import CAMPAIGN_PARAMS, KINDS, campaign, nonce_check
from .common import make_params, placement_options, print_table


@click.command("faults")
@click.option("--faults", "faults_per_kind", type=int, default=10_000, show_default=True,
              help="Faults injected per kind.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(list(KINDS)),
              help="Only these kinds (repeatable); all by default.")
@click.option("--maps", type=int, default=20, show_default=True,
              help="Nonce check: maps under one master key.")
@click.option("--setups", type=int, default=50, show_default=True,
              help="Nonce check: Setups (Map.load, a fresh salt each) per map.")
@click.option("--accesses", type=int, default=200, show_default=True,
              help="Nonce check: accesses after each Setup.")
@click.option("--seed", type=int, default=0, show_default=True)
@placement_options
def command(faults_per_kind, kinds, maps, setups, accesses, seed, placement, pool_size):
    """Inject faults of every kind into the reference model (host tampering, host stores cut
    short or extended, exceptions at every step of an access); count each as detected,
    harmless or silent, and the items lost (the whole map is compared with a dict oracle after
    every fault). Then count repeated (page key, nonce) pairs over many maps and Setups."""
    start = time.perf_counter()
    params = make_params(**{**CAMPAIGN_PARAMS.arguments(), "placement": placement,
                            "pool_size": pool_size})
    tallies = campaign(faults_per_kind, seed=seed, kinds=kinds or None, params=params)
    rows = [(kind, f"{t.faults:,}", f"{t.detected:,}", f"{t.harmless:,}", f"{t.silent:,}",
             f"{t.lost:,}", f"{t.accesses:,}") for kind, t in tallies.items()]
    total = [sum(getattr(t, name) for t in tallies.values())
             for name in ("faults", "detected", "harmless", "silent", "lost", "accesses")]
    rows.append(("all", *(f"{value:,}" for value in total)))
    print_table(rows, headers=("fault kind", "faults", "detected", "harmless", "silent",
                               "items lost", "accesses"))
    click.echo(f"({time.perf_counter() - start:.0f} s)")
    for kind, tally in tallies.items():
        if tally.silent or tally.lost:
            click.echo(f"{kind}: {dict(tally.notes)}", err=True)
    start = time.perf_counter()
    count = nonce_check(maps=maps, setups=setups, accesses=accesses, seed=seed)
    click.echo(f"nonce check: {count.seals:,} page sealings under {count.page_keys:,} page keys "
               f"({maps} maps x {setups} Setups under one master key, {accesses} accesses "
               f"after each): {count.repeats} repeated (page key, nonce) pairs "
               f"({time.perf_counter() - start:.0f} s)")
    if total[3] or total[4] or count.repeats:
        sys.exit(1)
