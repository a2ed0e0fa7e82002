"""``bolt sim``: a workload on the RTL backend, its cycle report and projected latency; with
``--cosim``, the RTL against the reference model."""

from __future__ import annotations

import click

from ..tools.simulate import run_cosimulation, run_simulation
from ..tools.workloads import WORKLOADS
from .common import make_params, params_options, print_table


@click.command("sim")
@params_options(capacity=4096)   # a Verilator build per parameter set: keep the default quick
@click.option("--workload", type=click.Choice(sorted(WORKLOADS)), default="uniform",
              show_default=True)
@click.option("--ops", type=int, default=500, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--clock-mhz", type=float, default=300.0, show_default=True,
              help="Accelerator clock for the latency projection.")
@click.option("--host-rtt-us", type=float, default=1.0, show_default=True,
              help="Host-memory round trip per page read.")
@click.option("--host-gbps", type=float, default=12.0, show_default=True,
              help="Host link bandwidth in GB/s (PCIe Gen3 x16 is about 12).")
@click.option("--simulate-link", is_flag=True,
              help="Simulate the host memory as the link above (its round trip and "
                   "bandwidth), so the measured phases leave out what a real link hides; "
                   "slower. Otherwise the host answers at once (a pessimistic projection).")
@click.option("--waveform", type=click.Path(file_okay=False), default=None,
              help="Directory for an FST waveform of the run (opens in GTKWave).")
@click.option("--channel/--no-channel", default=False, show_default=True,
              help="Through the sealed channel (its opening counted in the prelude, its "
                   "sealing as a phase of its own).")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--profile-guided/--no-profile-guided", default=True, show_default=True,
              help="Simulate on the profile-guided build (about a seventh less CPU an access; "
                   "its first build adds a training run and a second compilation). Not for "
                   "--channel, --waveform or N over 2^16, which use the plain build.")
@click.option("--cosim", is_flag=True,
              help="Instead: the cosimulation testbench, a Setup of --setup-items keys then "
                   "--ops mixed accesses, responses, trace and host bytes compared with the "
                   "reference model; prints build and run times and peak memory.")
@click.option("--setup-items", type=click.IntRange(min=0), default=None,
              help="Keys of the Setup: the --cosim one's (default N), or the first of the "
                   "workload's (default all of them, N/2 for most). An access's cycles do not "
                   "depend on what the map holds, so a short Setup keeps a large N quick.")
def command(capacity, key_size, value_size, load, hbm_fraction, workload, ops, seed,
            clock_mhz, host_rtt_us, host_gbps, simulate_link, waveform, channel, progress,
            profile_guided, cosim, setup_items):
    """Run a workload on the RTL (Verilator) and print cycles and projected latency."""
    params = make_params(capacity, key_size, value_size, load, hbm_fraction)
    if cosim:
        report = run_cosimulation(params, ops=ops, seed=seed + 1,
                                  setup_items=params.capacity if setup_items is None
                                  else setup_items)
        _print_report(report, "RTL against the model")
        return
    report = run_simulation(params, workload=workload, ops=ops, seed=seed, waveform=waveform,
                            progress=progress, channel=channel, setup_items=setup_items,
                            profile_guided=profile_guided,
                            clock_hz=clock_mhz * 1e6, host_round_trip_s=host_rtt_us * 1e-6,
                            host_bandwidth=host_gbps * 1e9, simulated_link=simulate_link)
    _print_report(report, "RTL report")
    if waveform:
        click.echo(f"waveform: {waveform}/dump.fst")


def _print_report(report: dict, title: str) -> None:
    rows = []
    for name, value in report.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}"
                              for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:,.2f}"
        rows.append((name, value))
    print_table(rows, headers=(title, "value"))
