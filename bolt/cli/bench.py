"""``bolt bench``: BOLT against an oblivious AVL tree over Path ORAM."""

from __future__ import annotations

import json
import os
import platform
import time

import click

from ..params import Params
from ..tools.bench import TABLE_HEADERS, plot, run_bench, table_rows
from ..tools.workloads import WORKLOADS
from .common import parse_capacities, print_table


@click.command("bench")
@click.option("--capacities", default="10-20", show_default=True,
              help='Capacities: "10-20" (powers of two), "1024,4096" or "2^10,2^12".')
@click.option("--value-sizes", default="8,64,256", show_default=True)
@click.option("--ops", type=int, default=1000, show_default=True,
              help="Operations measured on BOLT per configuration.")
@click.option("--baseline-ops", type=int, default=100, show_default=True,
              help="Operations measured on the baseline per configuration (every one "
                   "moves the same bytes, so few suffice).")
@click.option("--key-size", type=int, default=16, show_default=True)
@click.option("--load", "-c", type=int, default=8, show_default=True)
@click.option("--hbm-fraction", "-a", type=float, default=0.2, show_default=True)
@click.option("--workload", type=click.Choice(sorted(WORKLOADS)), default="uniform",
              show_default=True, help="Operations, from bolt.tools.workloads.")
@click.option("--baseline-full-max", type=int, default=4096, show_default=True,
              help="Largest N at which the baseline stores and encrypts its buckets; "
                   "above, count-only mode (exact bytes, no crypto).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rtl/--no-rtl", default=True, show_default=True,
              help="Try the RTL backend for a projected latency per op.")
@click.option("--rtl-max-capacity", type=int, default=1024, show_default=True,
              help="Largest N for which the RTL is built (once per parameter set) and "
                   "simulated.")
@click.option("--quick", is_flag=True,
              help="N = 2^10, 2^12, 2^14, V = 64, 200 ops (20 on the baseline).")
@click.option("--out", type=click.Path(file_okay=False), default="reports/bench",
              show_default=True, help="Directory for bench.json and bench.png.")
def command(capacities, value_sizes, ops, baseline_ops, key_size, load, hbm_fraction,
                  workload, baseline_full_max, seed, rtl, rtl_max_capacity, quick, out):
    """Benchmark BOLT against an oblivious AVL tree over Path ORAM.

    Host bytes per op (and per value byte), page touches per op, ops/s and Setup time, for
    both maps side by side, from their recorded host traces. Writes bench.json and
    bench.png to --out.
    """
    if quick:
        capacities, value_sizes, ops, baseline_ops = "2^10,2^12,2^14", "64", 200, 20
    caps = parse_capacities(capacities)
    vals = [int(v) for v in value_sizes.split(",")]
    try:
        for n in caps:
            for v in vals:
                Params(capacity=n, key_size=key_size, value_size=v, load=load,
                       hbm_fraction=hbm_fraction)
    except (TypeError, ValueError) as error:
        raise click.BadParameter(str(error)) from error
    wall = time.perf_counter()
    rows = run_bench(caps, vals, ops=ops, baseline_ops=baseline_ops, key_size=key_size,
                     load=load, hbm_fraction=hbm_fraction, workload=workload, seed=seed,
                     baseline_full_max=baseline_full_max, rtl=rtl,
                     rtl_max_capacity=rtl_max_capacity)
    wall = time.perf_counter() - wall
    print_table(table_rows(rows), headers=TABLE_HEADERS)
    for r in rows:
        if r.system != "BOLT" and r.bytes_per_op_min != r.bytes_per_op_max:
            click.echo(f"WARNING: baseline ops moved different byte counts at "
                       f"N={r.capacity} V={r.value_size}")
    click.echo(f"wall time {wall:.1f} s")
    os.makedirs(out, exist_ok=True)
    meta = {"command": "bolt bench " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in (
                    ("capacities", capacities), ("value_sizes", value_sizes), ("ops", ops),
                    ("baseline_ops", baseline_ops), ("key_size", key_size), ("load", load),
                    ("hbm_fraction", hbm_fraction), ("workload", workload),
                    ("baseline_full_max", baseline_full_max), ("seed", seed))),
            "wall_seconds": wall, "machine": platform.platform(),
            "python": platform.python_version(), "cpus": os.cpu_count()}
    with open(os.path.join(out, "bench.json"), "w") as f:
        json.dump({"meta": meta, "rows": [r.to_json() for r in rows]}, f, indent=1)
    plot(rows, os.path.join(out, "bench.png"))
    click.echo(f"wrote {os.path.join(out, 'bench.json')} and {os.path.join(out, 'bench.png')}")

