"""``bolt speed``: ops/s of the reference model and its Setup time."""

from __future__ import annotations

import statistics

import click

from ..params import PLACEMENTS
from ..tools.speed import measure
from .common import make_params, parse_capacities, print_table


@click.command("speed")
@click.option("--capacities", default="2^16,2^20", show_default=True,
              help='Capacities: "2^16,2^20", "65536" or "16-20" (exponents of 2).')
@click.option("--value-size", "-V", type=int, default=64, show_default=True)
@click.option("--ops", type=int, default=20000, show_default=True,
              help="Operations timed per capacity.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-setup", is_flag=True, help="Skip the Setup of N items.")
@click.option("--channel/--no-channel", default=True, show_default=True,
              help="Through the sealed client channel (bolt.Map's default) or calling the "
                   "model directly.")
@click.option("--placement", default="two-choice", show_default=True,
              help="Placement(s) to measure, comma-separated: two-choice, pool or both "
                   "(two-choice,pool).")
@click.option("--pool-size", "-P", type=int, default=None,
              help="P for the pool placement (default M).")
@click.option("--repeat", "-r", type=click.IntRange(min=1), default=1, show_default=True,
              help="Measure k times, each on a fresh map and Setup, and print the median and "
                   "the best of the k runs (wall clock on a shared machine varies from run "
                   "to run; the median is the figure to compare).")
def command(capacities, value_size, ops, seed, no_setup, channel, placement, pool_size,
            repeat):
    """Ops/s of the reference model (50/50 GET/PUT, uniform keys), the DRBG words per access
    and the Setup time of N items, for each placement given."""
    placements = [p.strip() for p in placement.split(",") if p.strip()]
    for name in placements:
        if name not in PLACEMENTS:
            raise click.BadParameter(f"unknown placement {name!r}; choose from "
                                     f"{', '.join(PLACEMENTS)}")
    rows = []
    for capacity in parse_capacities(capacities):
        for name in placements:
            params = make_params(capacity, value_size=value_size, placement=name,
                                 pool_size=pool_size if name == "pool" else None)
            runs = [measure(params, ops=ops, seed=seed, setup_full=not no_setup,
                            channel=channel) for _ in range(repeat)]
            r = runs[0]
            rows.append((f"2^{capacity.bit_length() - 1}" if capacity & (capacity - 1) == 0
                         else capacity, value_size, name,
                         _figure([run["ops_per_s"] for run in runs], "{:,.0f}", max),
                         f"{r['drbg_words_per_op']:.3f}", f"{r['host_bytes_per_op']:,.0f}",
                         f"{r['frame_bytes_per_op']:,.0f}",
                         _figure([run["setup_s"] for run in runs], "{:.2f}", min)
                         if "setup_s" in r else "-"))
    print_table(rows, headers=("N", "V", "placement", "ops/s (50/50 GET/PUT)",
                               "DRBG words/op", "page B/op", "frame B/op",
                               "Setup of N items (s)"))


def _figure(values: list[float], form: str, best) -> str:
    """One run's figure, or the median of several with the best of them."""
    if len(values) == 1:
        return form.format(values[0])
    return (f"{form.format(statistics.median(values))} (best {form.format(best(values))}, "
            f"{len(values)} runs)")
