"""``bolt synth``: resource estimate of the accelerator or of one crypto core."""

from __future__ import annotations

import time

import click

from bolt.hdl.report import (COMPONENTS, U55C, YosysError, _mbit, make_component,
                             memory_inventory, stat_summary, synth_stat, yosys_stat)

from .common import make_params, params_options, print_table


@click.command("synth")
@params_options
@click.option("--component", type=click.Choice(("accelerator", *COMPONENTS)),
              default="accelerator", show_default=True,
              help="What to estimate: the whole accelerator, or one crypto core alone (Yosys "
                   "synth; stat: pipelined or iterative AES-128, the page GCM, the U(bins) "
                   "sampler).")
@click.option("--no-yosys", is_flag=True, help="List the memories only; skip Yosys.")
def command(component, no_yosys, **options):
    """Resource estimate of the accelerator (memories vs the Alveo U55C, Yosys stat) or of one
    crypto core."""
    params = make_params(**options)
    if component != "accelerator":
        _component_report(component, params)
        return
    from bolt.hdl.accelerator import RtlAccelerator

    click.echo(f"BOLT accelerator for {params!r}")
    memories = memory_inventory(RtlAccelerator(params))
    rows = [(m.path.removeprefix("top."), m.depth, m.width, m.bits, m.placement)
            for m in sorted(memories, key=lambda m: -m.bits) if m.bits > 4096]
    small = [m for m in memories if m.bits <= 4096]
    rows.append((f"({len(small)} small memories: S-box ROMs, FIFOs)", "", "",
                 sum(m.bits for m in small), "LUT"))
    print_table(rows, headers=("memory", "depth", "width", "bits", "placement"))
    totals: dict[str, int] = {}
    for m in memories:
        totals[m.placement] = totals.get(m.placement, 0) + m.bits
    click.echo("")
    click.echo("memory bits by placement:")
    for placement, bits in sorted(totals.items(), key=lambda item: -item[1]):
        click.echo(f"  {placement:<18} {_mbit(bits)}")
    click.echo("U55C budget:")
    for name, bits in U55C.items():
        click.echo(f"  {name:<22} {_mbit(bits)}")
    hbm = sum(bits for placement, bits in totals.items() if placement.startswith("HBM"))
    on_chip = sum(bits for placement, bits in totals.items() if not placement.startswith("HBM"))
    click.echo(f"HBM structures: {_mbit(hbm)} = {100 * hbm / U55C['HBM (16 GiB)']:.4f}% of HBM; "
               f"on-chip memories: {_mbit(on_chip)} = "
               f"{100 * on_chip / (U55C['BRAM (2016 x 36 Kbit)'] + U55C['URAM (960 x 288 Kbit)']):.3f}%"
               " of BRAM + URAM")
    if no_yosys:
        return
    click.echo("")
    _echo_stat("Yosys (proc; flatten; opt -fast; memory -nomap; stat -width):",
               lambda: yosys_stat(RtlAccelerator(params)))


def _component_report(component: str, params) -> None:
    top = make_component(component, params)
    detail = {"gcm": f"plaintext_bytes={params.page_plaintext_bytes}",
              "sampler": f"n={params.bins}"}.get(component, "")
    click.echo(f"{component}: {type(top).__name__}({detail}) for {params!r}")
    _echo_stat("Yosys (synth -flatten; stat):",
               lambda: synth_stat(top, f"bolt_{component.replace('-', '_')}"))


def _echo_stat(title: str, run_yosys) -> None:
    """Run Yosys (``run_yosys()`` returns its ``stat`` output), print the statistics and the
    cell and flip-flop totals with the time it took."""
    click.echo(title)
    start = time.time()
    try:
        output = run_yosys()
    except YosysError as error:
        raise click.ClickException(str(error)) from error
    stat = output[output.rfind("Printing statistics"):] if "Printing statistics" in output \
        else output
    click.echo(stat.rstrip())
    cells, flops = stat_summary(stat)
    click.echo(f"cells: {cells}, flip-flop bits: {flops} (Yosys took {time.time() - start:.0f} s)")
