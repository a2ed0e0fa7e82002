"""``bolt demo``: a small workload on the reference backend, and what the host saw of it."""

from __future__ import annotations

import random
import time
from collections import Counter

import click

from ..map import Map


def run_demo(*, capacity: int, value_size: int, ops: int, seed: int, echo=click.echo) -> dict:
    """Bulk-load half the capacity, run a mixed GET/PUT/DELETE workload, report the trace."""
    rng = random.Random(seed)
    keys = [b"key-%d" % i for i in range(capacity)]
    start = time.perf_counter()
    m = Map.from_items(((key, rng.randbytes(value_size)) for key in keys[:capacity // 2]),
                       capacity, value_size=value_size)
    setup_seconds = time.perf_counter() - start
    p = m.params
    echo(f"Setup of {len(m)} items: {p.host_bins} host pages of {p.page_stride} B written "
         f"in {setup_seconds:.2f} s")
    m.trace.clear()
    start = time.perf_counter()
    for _ in range(ops):
        key, roll = rng.choice(keys), rng.random()
        if roll < 0.45:
            m.get(key)
        elif roll < 0.9:
            m[key] = rng.randbytes(rng.randrange(value_size + 1))
        else:
            m.pop(key, None)  # a GET, then a DELETE if present
    seconds = time.perf_counter() - start
    accesses = m.trace.op_count
    touches = Counter(len(events) // 2 for events in m.trace.ops())
    host_bytes = m.trace.bytes_moved()
    h = p.host_fraction
    expected = {0: (1 - h) ** 2, 1: 2 * h * (1 - h), 2: h * h}
    echo(f"{ops} operations ({accesses} accesses) in {seconds:.2f} s: "
         f"{accesses / seconds:,.0f} accesses/s; {len(m)} items held")
    echo(f"host bytes per access: {host_bytes / accesses:,.0f} "
         f"({host_bytes / accesses / value_size:.1f} per value byte, V = {value_size})")
    echo(f"page touches per access (h = B/M = {h:.4f}):")
    echo("  touches  measured  expected")
    for n in (0, 1, 2):
        echo(f"  {n:>7}  {touches[n] / accesses:8.4f}  {expected[n]:8.4f}")
    m.close()
    return {"accesses": accesses, "host_bytes": host_bytes, "touches": dict(touches)}
