"""A workload on the RTL backend, with its cycle report and projected latency (``bolt sim``),
and the cosimulation of the RTL against the reference model (``bolt sim --cosim``)."""

from __future__ import annotations

import json
import resource
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from bolt.map import Map
from bolt.protocol import Op
from bolt.tools.workloads import make_workload


def run_simulation(params, *, workload: str, ops: int, seed: int, waveform=None,
                   progress: bool = True, channel: bool = False, setup_items: int | None = None,
                   profile_guided: bool = True, **projection) -> dict:
    """Bulk-load the workload's content on the RTL, run its operations, return the report.

    The accelerator's cycle stamps, which the projection splits into on-chip phases and the
    host link's part, come with the core's answers, or through the sealed channel from its
    measurement port, counted from each frame's acceptance (the channel's opening of the
    command is then in the prelude, its sealing of the answer a phase of its own).

    ``setup_items`` keeps only the first that many of the workload's Setup items (the
    workload's keys past them then miss). An access's cycles do not depend on what the map
    holds, so the projection stays the same while a Setup at N = 2^20 shrinks from hours of
    simulation to minutes.

    ``profile_guided``: on the accelerator's profile-guided build
    (:func:`bolt.host.backend.build_accelerator`), whose accesses take about a seventh less of
    the simulator's CPU, at the cost of a training run and a second compilation once per
    build."""
    work = make_workload(workload, params, ops, seed)
    preload = work.preload if setup_items is None else work.preload[:setup_items]
    options = params.arguments()
    start = time.perf_counter()
    with Map.from_items(preload, backend="rtl", waveform=waveform, channel=channel,
                        profile_guided=profile_guided, **options, **projection) as m:
        started = time.perf_counter() - start
        simulator_cpu = getattr(m.backend, "simulator_cpu_seconds", lambda: None)
        cpu_before, parent_before = simulator_cpu(), time.process_time()
        start = time.perf_counter()
        for op, key, value in tqdm(work, total=ops, disable=not progress, unit="op",
                                   desc="RTL accesses"):
            try:   # through the map: its sealed channel, the same access whatever the outcome
                if op == Op.PUT:
                    m[key] = value
                elif op == Op.GET:
                    m.get(key)
                else:
                    del m[key]
            except KeyError:
                pass
        seconds = time.perf_counter() - start
        parent_cpu = time.process_time() - parent_before
        cpu_after = simulator_cpu()
        report = m.stats.summary()
    report.update({"workload": workload, "operations": ops, "setup items": len(preload),
                   "simulated accesses per second": ops / seconds})
    if cpu_before is not None and cpu_after is not None:
        # CPU time, which other jobs on the machine disturb less than wall-clock time.
        report["simulation CPU per access (ms)"] = 1e3 * (cpu_after - cpu_before) / ops
        report["parent CPU per access (ms)"] = 1e3 * parent_cpu / ops
    report["start-up and Setup (s)"] = started
    return report


def _peak_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def run_cosimulation(params, *, setup_items: int, ops: int, seed: int) -> dict:
    """Build the accelerator for ``params`` (or reuse its cached build), then run the
    cosimulation testbench (``bolt.sim.tb_accelerator``, ``test_cosim``): a Setup of
    ``setup_items`` distinct keys, then ``ops`` mixed accesses, every response, trace event
    and host byte compared with the reference model in the simulation process. Raises
    :class:`bolt.sim.verilator.SimulationFailed` on any difference.

    The map's first Setup is the items' (the testbench's empty first Setup costs as much as
    theirs at N = 2^20).

    Returns the build's wall-clock time and peak memory (this process, which converts the
    design to Verilog, and the largest of its children, Verilator and the C++ compiler), the
    Setup's and the accesses' wall-clock times (RTL and model together) and the simulation's
    peak memory. The clock is the main loop's, as in the RTL backend's simulations."""
    from bolt.host.backend import build_accelerator, run_cosim_testbench

    start = time.perf_counter()
    handle = build_accelerator(params)
    report = {"build (s)": time.perf_counter() - start,
              "build peak memory, Python (MiB)": _peak_mib(resource.RUSAGE_SELF),
              "build peak memory, Verilator and C++ (MiB)": _peak_mib(resource.RUSAGE_CHILDREN)}
    with tempfile.TemporaryDirectory(prefix="bolt-cosim-") as directory:
        path = Path(directory) / "cosim.json"
        run_cosim_testbench(handle, params, setup_items=setup_items, ops=ops, seed=seed,
                            BOLT_CRYPTO=1, BOLT_COSIM_REPORT=path)
        cosim = json.loads(path.read_text())
    report.update(cosim)
    report["simulated accesses per second"] = ops / cosim["accesses (s)"]
    return report
