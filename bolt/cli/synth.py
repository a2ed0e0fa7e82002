"""``bolt synth``: the accelerator for the Alveo U55C: its HBM map and on-chip memories, and
Yosys ``synth_xilinx`` of it (or of one component) against the card's logic."""

from __future__ import annotations

import time

import click

from bolt.hdl.report import (COMPONENTS, CORE, U55C, U55C_LOGIC, YosysError, _mbit,
                             hierarchy_total, make_component, memory_inventory, xilinx_synth)

from .common import make_params, params_options, print_table


@click.command("synth")
@params_options
@click.option("--component", type=click.Choice(COMPONENTS), default="accelerator",
              show_default=True,
              help="What to synthesise: the accelerator core, the core behind its sealed "
                   "channel, the core's control alone (its units as black boxes), or one "
                   "component alone (command front, page engine, page GCM, pipelined or "
                   "iterative AES-128, lookup, take, flush, re-placement, HBM master, host "
                   "AXI bridge, DRBG sampler, channel).")
@click.option("--no-yosys", is_flag=True, help="List the HBM map and memories only; skip Yosys.")
def command(component, no_yosys, **options):
    """Resource estimate for the Alveo U55C: the HBM address map and the on-chip memories of
    the accelerator, then Yosys synth_xilinx (UltraScale+): LUTs, flip-flops, block RAM,
    UltraRAM and DSPs per module against the card, and the longest logic path in LUT levels."""
    params = make_params(**options)
    click.echo(f"{component} for {params!r}")
    top = make_component(component, params)
    if component == "accelerator":
        _memories(top)
    if no_yosys:
        return
    click.echo("")
    click.echo("Yosys synth_xilinx -family xcup -noiopad -noclkbuf (hierarchy kept):")
    start = time.time()
    try:
        synthesis = xilinx_synth(top, "bolt", alone=CORE if component == "core" else None)
    except YosysError as error:
        raise click.ClickException(str(error)) from error
    seconds = time.time() - start
    modules = synthesis.modules
    rows = []
    for name, module in modules.items():
        used = module.resources
        rows.append([name, *(_count(used[r]) for r in U55C_LOGIC),
                     f"{module.path.luts} ({module.path.cells})"])
    total = hierarchy_total(modules, synthesis.top)
    rows.append(["total", *(_count(total[r]) for r in U55C_LOGIC), ""])
    rows.append(["U55C", *(f"{U55C_LOGIC[r]:,}" for r in U55C_LOGIC), ""])
    rows.append(["share", *(f"{100 * total[r] / U55C_LOGIC[r]:.3f}%" for r in U55C_LOGIC), ""])
    print_table(rows, headers=("module (own cells)", *U55C_LOGIC, "LUT levels (cells)"))
    name, inside = max(((name, module.path) for name, module in modules.items()),
                       key=lambda item: (item[1].luts, item[1].cells))
    click.echo(f"longest logic path inside one module: {inside.luts} LUT levels, {inside.cells} "
               f"cells, in {name}: {inside.start} -> {inside.end}")
    longest = synthesis.path
    click.echo(f"longest logic path across modules: {longest.luts} LUT levels, {longest.cells} "
               f"cells (with wide multiplexers and carry cells): {longest.start} -> "
               f"{longest.end}")
    click.echo(f"Yosys took {seconds:.0f} s")


def _memories(top) -> None:
    """The HBM address map and the on-chip memories against the U55C's memory budget."""
    click.echo(f"HBM address map (behind the {top.hbm_map.ports} hbm AXI4 ports; a region on "
               "several is striped over them, element i on the (i mod ports)-th):")
    print_table([(name, ports, f"{base:#x}", count, beats, f"{size / 2**20:.2f}")
                 for name, ports, base, count, beats, size in top.hbm_map.table()],
                headers=("region", "ports", "base", "elements", "beats each", "MiB each"))
    click.echo("")
    memories = memory_inventory(top)
    on_chip = sum(m.bits for m in memories)
    click.echo(f"on-chip memories: {len(memories)} (S-box ROMs, FIFOs, page RAMs, the index's "
               f"overflow area), {_mbit(on_chip)}")
    hbm = 8 * top.hbm_map.size
    click.echo("U55C budget:")
    for name, bits in U55C.items():
        click.echo(f"  {name:<22} {_mbit(bits)}")
    click.echo(f"HBM structures: {_mbit(hbm)} = {100 * hbm / U55C['HBM (16 GiB)']:.4f}% of HBM; "
               f"on-chip memories: {_mbit(on_chip)} = "
               f"{100 * on_chip / (U55C['BRAM (2016 x 36 Kbit)'] + U55C['URAM (960 x 288 Kbit)']):.3f}%"
               " of BRAM + URAM")


def _count(value) -> str:
    return f"{value:,.1f}" if value % 1 else f"{int(value):,}"
