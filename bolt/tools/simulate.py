"""A workload on the RTL backend, with its cycle report and projected latency (``bolt sim``)."""

from __future__ import annotations

import time

from tqdm import tqdm

from bolt.map import Map
from bolt.protocol import Op
from bolt.tools.workloads import make_workload


def run_simulation(params, *, workload: str, ops: int, seed: int, waveform=None,
                   progress: bool = True, channel: bool = False, **projection) -> dict:
    """Bulk-load the workload's content on the RTL, run its operations, return the report.

    Without the sealed channel (the default) the accelerator core answers with its cycle
    stamps, which the projection splits into on-chip phases and the host link's part; through
    the channel only totals come back and the projection counts the simulated link as on-chip
    work (pessimistic)."""
    work = make_workload(workload, params, ops, seed)
    options = params.arguments()
    start = time.perf_counter()
    with Map.from_items(work.preload, backend="rtl", waveform=waveform, channel=channel,
                        **options, **projection) as m:
        started = time.perf_counter() - start
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
        report = m.stats.summary()
    report.update({"workload": workload, "operations": ops,
                   "simulated accesses per second": ops / seconds,
                   "start-up and Setup (s)": started})
    return report
