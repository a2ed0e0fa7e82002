"""``bolt bounds``: the access process against the four analytical bounds."""

from __future__ import annotations

import time

import click

from ..params import Params
from ..tools.bounds import plot, simulate
from .common import make_params, parse_floats, parse_ints, placement_options, print_table


@click.command("bounds")
@click.option("--capacity", "-N", default="1048576", show_default=True,
              help="N: 1048576 or 2^20 (comma list allowed).")
@click.option("--load", "-c", default="8", show_default=True,
              help="c, average items per bin (comma list allowed).")
@click.option("--hbm-fraction", "-a", default="0.2", show_default=True,
              help="α, fraction of bins in HBM (comma list allowed).")
@click.option("--accesses", "-T", default="1e6", show_default=True,
              help="Accesses to simulate after Setup (1e8 allowed).")
@click.option("--fill", type=float, default=1.0, show_default=True,
              help="Items at Setup as a fraction of N (1 = full map, the worst case).")
@click.option("--put", type=float, default=0.0, show_default=True,
              help="Fraction of PUTs (keys uniform over N key ids; 0 with --delete 0 "
                   "means all GET hits).")
@click.option("--delete", type=float, default=0.0, show_default=True,
              help="Fraction of DELETEs.")
@placement_options
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--jobs", "-j", type=int, default=2, show_default=True,
              help="Configurations simulated in parallel (threads; the kernel runs "
                   "without the GIL).")
@click.option("--out", type=click.Path(file_okay=False), default="reports/bounds",
              show_default=True, help="Directory for bounds.png and bounds.json.")
def command(capacity, load, hbm_fraction, accesses, fill, put, delete, placement, pool_size,
            seed, jobs, out):
    """Simulate the access process and compare the maxima with the analytical bounds.

    For every (N, c, α) given, runs Setup and T accesses of algorithm §3 on loads only
    and prints the largest bin load, items in HBM bins, eviction-buffer items and value
    frames ever observed next to the bounds of algorithm §1 (with --placement pool, also the
    pool's occupancy against its P slots). Writes a PNG of the running maxima over time and a
    JSON of the numbers.
    """
    import json
    import os
    from concurrent.futures import ThreadPoolExecutor

    configs = []
    for n in parse_ints(capacity):
        for c in parse_ints(load):
            for a in parse_floats(hbm_fraction):
                configs.append(make_params(n, load=c, hbm_fraction=a, placement=placement,
                                           pool_size=pool_size))
    t = parse_ints(accesses)[0]
    click.echo("compiling the numba kernel (cached after the first run) ...")
    compile_start = time.perf_counter()
    simulate(Params(capacity=16, load=2), 10, seed=seed)
    click.echo(f"  ready in {time.perf_counter() - compile_start:.1f} s; simulating "
               f"{len(configs)} configuration(s), T = {t:,} accesses each, {jobs} at a time")
    wall = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(
            lambda p: simulate(p, t, seed=seed, fill=fill, put=put, delete=delete),
            configs))
    wall = time.perf_counter() - wall
    rows = []
    for res in results:
        p = res.params
        for q, m, b, ratio, status in res.rows():
            rows.append((_name(p), q, m, b, ratio, status))
    print_table(rows, headers=("configuration", "quantity", "max observed", "bound",
                               "max/bound", "status"))
    click.echo("")
    for res in results:
        p = res.params
        h = p.host_fraction
        tt = res.touches / max(1, res.touches.sum())
        click.echo(f"{_name(p)}: T={res.accesses:,} in "
                   f"{res.seconds:.1f} s ({res.accesses / max(res.seconds, 1e-9) / 1e6:.1f} "
                   f"M accesses/s); touches 0/1/2 = {tt[0]:.4f}/{tt[1]:.4f}/{tt[2]:.4f} "
                   f"(expected {(1 - h) ** 2:.4f}/{2 * h * (1 - h):.4f}/{h * h:.4f}); "
                   f"refused re-placements {res.refused_bin}")
        for q in res.crossed:
            click.echo(f"  BOUND CROSSED: {q}: observed {res.maxima[q]} > bound "
                       f"{res.bounds[q]:.2f}")
    click.echo(f"wall time {wall:.1f} s")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "bounds.json"), "w") as f:
        json.dump([r.to_json() for r in results], f, indent=1)
    plot(results, os.path.join(out, "bounds.png"))
    click.echo(f"wrote {os.path.join(out, 'bounds.json')} and "
               f"{os.path.join(out, 'bounds.png')}")



def _name(p: Params) -> str:
    return (f"N={p.capacity} c={p.load} α={p.hbm_fraction}"
            + (f" pool P={p.pool_size}" if p.pooled else ""))
