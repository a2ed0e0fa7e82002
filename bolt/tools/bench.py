"""``bolt bench``: BOLT against the Path-ORAM baseline, measured in one run.

For every capacity N and value size V, both maps are bulk-loaded (Setup) and then run the same
random mix of operations; everything below is measured, from each map's recorded host trace:

- host bytes per operation (``Trace.bytes_moved() / Trace.op_count``), and that divided by V,
- page (BOLT) or bucket (baseline) touches per operation: host reads per op, each followed by
  the write of the same page or bucket,
- operations per second and Setup seconds of the Python implementation on this machine
  (the baseline in count-only mode above ``--baseline-full-max`` does no crypto, so its
  speed there flatters it; the table says which mode ran),
- the RTL's projected latency per operation, when ``bolt.Map(backend="rtl")`` can be built and
  reports one; "n/a" otherwise.

The operations come from :mod:`bolt.tools.workloads` (shared with the audit and ``bolt demo``):
Setup loads the workload's preload (half the capacity), then both systems run the same
operations (``uniform`` by default: GET, PUT or DELETE of uniform keys, hits, misses, inserts
and deletes); the baseline may run only the first ``--baseline-ops`` of them, since every
baseline operation moves exactly the same bytes (the table checks it).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

from ..errors import CapacityError
from ..params import Params
from ..protocol import Op
from .workloads import make_workload

__all__ = ["BenchRow", "run_bench"]

SYSTEMS = ("BOLT", "PathORAM-AVL")


@dataclass
class BenchRow:
    system: str
    mode: str
    capacity: int
    value_size: int
    items: int
    setup_seconds: float
    ops: int
    op_seconds: float
    bytes_per_op: float
    bytes_per_op_min: int
    bytes_per_op_max: int
    touches_per_op: float
    events_per_op: float
    expected_bytes_per_op: float
    #: The RTL's projection (:meth:`bolt.host.backend.RtlStats.summary`), None if unavailable.
    rtl: dict | None = None

    @property
    def ops_per_second(self) -> float:
        return self.ops / self.op_seconds if self.op_seconds > 0 else float("nan")

    @property
    def bytes_per_op_per_value_byte(self) -> float:
        return self.bytes_per_op / self.value_size

    def to_json(self) -> dict:
        record = asdict(self)
        record["ops_per_second"] = self.ops_per_second
        record["bytes_per_op_per_value_byte"] = self.bytes_per_op_per_value_byte
        return record


def _run_ops(m, ops) -> float:
    start = time.perf_counter()
    for op, key, value in ops:
        if op == Op.GET:
            try:
                m[key]
            except KeyError:
                pass
        elif op == Op.PUT:
            try:
                m[key] = value
            except CapacityError:
                pass
        else:
            try:
                del m[key]
            except KeyError:
                pass
    return time.perf_counter() - start


def _measure(system, mode, m, params, setup_seconds, items, ops, expected) -> BenchRow:
    m.trace.clear()
    seconds = _run_ops(m, ops)
    per_op = [sum(e.length for e in op) for op in m.trace.ops()]
    reads = sum(1 for e in m.trace if e.kind == "read")
    n = m.trace.op_count
    return BenchRow(
        system=system, mode=mode, capacity=params.capacity, value_size=params.value_size,
        items=items, setup_seconds=setup_seconds, ops=n, op_seconds=seconds,
        bytes_per_op=m.trace.bytes_moved() / n, bytes_per_op_min=min(per_op),
        bytes_per_op_max=max(per_op), touches_per_op=reads / n, events_per_op=len(m.trace) / n,
        expected_bytes_per_op=expected)


def rtl_projection(params: Params, ops: int = 100) -> dict | None:
    """The RTL backend's projected latency and throughput, or None if it is not available.

    Builds ``bolt.Map(backend="rtl")`` for these parameters (a Verilator build, cached per
    parameter set), runs ``ops`` PUTs then ``ops`` GETs, and returns its
    ``stats.summary()``: the simulated cycles on a real host link, with one access in flight
    and with the best number in flight (:mod:`bolt.model.schedule`). Any failure means "not
    available": the benchmark never depends on the RTL.
    """
    try:
        from ..map import Map
        with Map(**params.arguments(), backend="rtl") as m:
            keys = [i.to_bytes(4, "big") for i in range(ops)]
            for k in keys:
                m[k] = b"x"
            for k in keys:
                m[k]
            return m.backend.stats.summary()
    except Exception:  # noqa: BLE001 - the RTL is optional; any failure is "n/a"
        return None


def run_bench(capacities, value_sizes, *, ops: int, baseline_ops: int, key_size: int = 16,
              load: int = 8, hbm_fraction: float = 0.2, workload: str = "uniform", seed: int = 0,
              baseline_full_max: int = 4096, rtl: bool = True, rtl_max_capacity: int = 1024,
              progress: bool = True):
    """Measure both systems for every (N, V); returns a list of :class:`BenchRow`."""
    from tqdm import tqdm

    from .baseline import PathOramMap
    from ..map import Map

    configs = [(n, v) for n in capacities for v in value_sizes]
    rows: list[BenchRow] = []
    rtl_cache: dict[tuple, dict | None] = {}
    bar = tqdm(total=2 * len(configs), disable=not progress, unit="run")
    for n, v in configs:
        params = Params(capacity=n, key_size=key_size, value_size=v, load=load,
                        hbm_fraction=hbm_fraction)
        w = make_workload(workload, params, max(ops, baseline_ops), seed)
        setup = w.preload
        items = len(setup)
        op_list = list(w.ops())

        bar.set_description(f"BOLT N={n} V={v}")
        start = time.perf_counter()
        m = Map.from_items(setup, capacity=n, key_size=key_size, value_size=v, load=load,
                           hbm_fraction=hbm_fraction)
        setup_seconds = time.perf_counter() - start
        h = params.host_fraction
        row = _measure("BOLT", "reference", m, params, setup_seconds, items, op_list[:ops],
                       expected=4 * h * params.page_stride)
        m.close()
        del m
        if rtl and n <= rtl_max_capacity:
            key = (n, v)
            if key not in rtl_cache:
                rtl_cache[key] = rtl_projection(params)
            row.rtl = rtl_cache[key]
        rows.append(row)
        bar.update()

        count_only = n > baseline_full_max
        bar.set_description(f"baseline N={n} V={v}")
        start = time.perf_counter()
        b = PathOramMap.from_items(setup, capacity=n, key_size=key_size, value_size=v,
                                   seed=seed, count_only=count_only)
        setup_seconds = time.perf_counter() - start
        rows.append(_measure("PathORAM-AVL", "count-only" if count_only else "AES-GCM", b,
                             params, setup_seconds, items, op_list[:baseline_ops],
                             expected=b.bytes_per_op))
        del b, setup, op_list
        bar.update()
    bar.close()
    return rows


def table_rows(rows: list[BenchRow]):
    """(N, V, system, mode, Setup s, bytes/op, bytes/op/V, touches/op, ops/s, RTL, ratio)."""
    bolt_bytes = {(r.capacity, r.value_size): r.bytes_per_op for r in rows if r.system == "BOLT"}
    out = []
    for r in rows:
        ratio = r.bytes_per_op / bolt_bytes[(r.capacity, r.value_size)] \
            if (r.capacity, r.value_size) in bolt_bytes else float("nan")
        out.append((
            f"2^{math.log2(r.capacity):g}", r.value_size, r.system, r.mode,
            f"{r.setup_seconds:.2f}", f"{r.bytes_per_op:,.0f}",
            f"{r.bytes_per_op_per_value_byte:,.1f}", f"{r.touches_per_op:.2f}",
            f"{r.ops_per_second:,.0f}",
            *(_rtl_columns(r.rtl) if r.system == "BOLT" else ("", "", "")),
            f"{ratio:,.1f}x"))
    return out


def _rtl_columns(summary: dict | None) -> tuple[str, str, str]:
    """RTL projection: an idle accelerator's mean latency; 1 in flight and best (under load):
    mean / p99 latency, accesses/s; the paper's."""
    if summary is None:
        return "n/a", "n/a", ""

    def one(name):
        return (f"{summary[name + ': mean latency (us)']:.2f} / "
                f"{summary[name + ': p99 latency (us)']:.2f} us, "
                f"{summary[name + ': throughput (accesses/s)'] / 1e6:.2f} M/s")
    paper = summary.get("paper's FPGA latency (us)")
    return (f"idle {summary['idle accelerator: mean latency (us)']:.2f} us; "
            + one("1 in flight"),
            f"{summary['best in flight: depth']}: " + one("best in flight"),
            "" if paper is None else f"{paper} us, {1 / paper:.2f} M/s")


TABLE_HEADERS = ("N", "V", "system", "mode", "Setup s", "bytes/op", "bytes/op/V",
                 "touches/op", "ops/s", "RTL 1 in flight (mean / p99, rate)",
                 "RTL best depth: (mean / p99, rate)", "paper FPGA", "bytes vs BOLT")


def plot(rows: list[BenchRow], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5), constrained_layout=True)
    values = sorted({r.value_size for r in rows})
    for si, system in enumerate(SYSTEMS):
        for vi, v in enumerate(values):
            sel = sorted((r for r in rows if r.system == system and r.value_size == v),
                         key=lambda r: r.capacity)
            if not sel:
                continue
            style = dict(color=f"C{vi}", linestyle="-" if si == 0 else "--",
                         marker="o" if si == 0 else "s", label=f"{system} V={v}")
            xs = [r.capacity for r in sel]
            axes[0].plot(xs, [r.bytes_per_op for r in sel], **style)
            axes[1].plot(xs, [r.bytes_per_op_per_value_byte for r in sel], **style)
            axes[2].plot(xs, [r.ops_per_second for r in sel], **style)
            counted = [r for r in sel if r.mode == "count-only"]
            if counted:   # no crypto there: circle the points whose speed flatters
                axes[2].plot([r.capacity for r in counted],
                             [r.ops_per_second for r in counted], linestyle="none",
                             marker="o", markersize=11, markerfacecolor="none",
                             color=f"C{vi}")
    for ax, title in zip(axes, ("host bytes per op", "host bytes per op / V",
                                "ops/s (Python; circled: baseline count-only, no crypto)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("capacity N")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
