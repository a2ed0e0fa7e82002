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
    top = RtlAccelerator(params)
    click.echo("HBM address map (behind the hbm AXI4 port):")
    print_table([(name, f"{base:#x}", count, beats, f"{size / 2**20:.2f}")
                 for name, base, count, beats, size in top.hbm_map.table()],
                headers=("region", "base", "elements", "beats each", "MiB"))
    click.echo("")
    memories = memory_inventory(top)
    click.echo(f"on-chip memories: {len(memories)} (S-box ROMs, FIFOs), "
               f"{_mbit(sum(m.bits for m in memories))}")
    hbm = 8 * top.hbm_map.size
    on_chip = sum(m.bits for m in memories)
    click.echo("U55C budget:")
    for name, bits in U55C.items():
        click.echo(f"  {name:<22} {_mbit(bits)}")
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
